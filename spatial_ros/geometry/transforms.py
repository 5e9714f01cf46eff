"""Rigid transforms between named frames (a static, ROS-free stand-in for tf2 lookups).

A transform ``T_a_from_b`` is a 4x4 matrix mapping points expressed in frame b to frame a:
``p_a = T_a_from_b @ p_b``. This is what tf2 returns for ``lookup_transform(a, b)`` and what a
``geometry_msgs/TransformStamped`` with header.frame_id=a, child_frame_id=b encodes.
"""

from __future__ import annotations

from collections import deque

import numpy as np

from spatial_ros.errors import CalibrationError

# REP-103: optical frame (z forward, x right, y down) relative to the body frame of the same
# camera (x forward, y left, z up). p_body = R_BODY_FROM_OPTICAL @ p_optical.
R_BODY_FROM_OPTICAL = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])


def make_transform(rotation=None, translation=None) -> np.ndarray:
    """4x4 homogeneous transform from a 3x3 rotation and a 3-vector translation (metres)."""
    T = np.eye(4)
    if rotation is not None:
        T[:3, :3] = np.asarray(rotation, dtype=np.float64).reshape(3, 3)
    if translation is not None:
        T[:3, 3] = np.asarray(translation, dtype=np.float64).reshape(3)
    return T


def invert(T: np.ndarray) -> np.ndarray:
    """Inverse of a rigid 4x4 transform."""
    R, t = T[:3, :3], T[:3, 3]
    Ti = np.eye(4)
    Ti[:3, :3] = R.T
    Ti[:3, 3] = -R.T @ t
    return Ti


def apply(T: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Apply a 4x4 transform to (N, 3) points (extra columns are kept unchanged)."""
    p = np.asarray(points)
    out = p.astype(np.float64, copy=True)
    out[:, :3] = p[:, :3] @ T[:3, :3].T + T[:3, 3]
    return out


def quaternion_to_matrix(x: float, y: float, z: float, w: float) -> np.ndarray:
    """3x3 rotation from a unit quaternion (ROS order x, y, z, w)."""
    q = np.array([x, y, z, w], dtype=np.float64)
    n = np.linalg.norm(q)
    if n == 0 or not np.isfinite(n):
        raise CalibrationError(f"invalid quaternion {q.tolist()}")
    x, y, z, w = q / n
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )


def matrix_to_quaternion(R: np.ndarray) -> tuple[float, float, float, float]:
    """Unit quaternion (x, y, z, w) of a 3x3 rotation matrix (w >= 0)."""
    R = np.asarray(R, dtype=np.float64)
    t = np.trace(R)
    if t > 0:
        s = np.sqrt(t + 1.0) * 2
        w, x, y, z = 0.25 * s, (R[2, 1] - R[1, 2]) / s, (R[0, 2] - R[2, 0]) / s, (R[1, 0] - R[0, 1]) / s
    elif R[0, 0] > R[1, 1] and R[0, 0] > R[2, 2]:
        s = np.sqrt(1.0 + R[0, 0] - R[1, 1] - R[2, 2]) * 2
        w, x, y, z = (R[2, 1] - R[1, 2]) / s, 0.25 * s, (R[0, 1] + R[1, 0]) / s, (R[0, 2] + R[2, 0]) / s
    elif R[1, 1] > R[2, 2]:
        s = np.sqrt(1.0 + R[1, 1] - R[0, 0] - R[2, 2]) * 2
        w, x, y, z = (R[0, 2] - R[2, 0]) / s, (R[0, 1] + R[1, 0]) / s, 0.25 * s, (R[1, 2] + R[2, 1]) / s
    else:
        s = np.sqrt(1.0 + R[2, 2] - R[0, 0] - R[1, 1]) * 2
        w, x, y, z = (R[1, 0] - R[0, 1]) / s, (R[0, 2] + R[2, 0]) / s, (R[1, 2] + R[2, 1]) / s, 0.25 * s
    q = np.array([x, y, z, w])
    q = q / np.linalg.norm(q)
    if q[3] < 0:
        q = -q
    return float(q[0]), float(q[1]), float(q[2]), float(q[3])


class TransformTree:
    """Static transforms between named frames, looked up along any chain (like tf2's buffer
    for /tf_static). Edges are stored both ways, so ``lookup(a, b)`` works in any direction."""

    def __init__(self) -> None:
        self._edges: dict[str, dict[str, np.ndarray]] = {}  # [a][b] = T_a_from_b

    def set(self, parent: str, child: str, T_parent_from_child: np.ndarray) -> None:
        """Record ``T_parent_from_child`` (p_parent = T @ p_child)."""
        T = np.asarray(T_parent_from_child, dtype=np.float64).reshape(4, 4)
        self._edges.setdefault(parent, {})[child] = T
        self._edges.setdefault(child, {})[parent] = invert(T)

    @property
    def frames(self) -> list[str]:
        return sorted(self._edges)

    def edges(self) -> list[tuple[str, str, np.ndarray]]:
        """Each stored (parent, child, T_parent_from_child) once, in insertion order."""
        seen, out = set(), []
        for a, nbrs in self._edges.items():
            for b, T in nbrs.items():
                if (b, a) not in seen:
                    seen.add((a, b))
                    out.append((a, b, T))
        return out

    def can_transform(self, target: str, source: str) -> bool:
        try:
            self.lookup(target, source)
            return True
        except CalibrationError:
            return False

    def lookup(self, target: str, source: str) -> np.ndarray:
        """4x4 ``T_target_from_source``. Raises CalibrationError when the frames are not connected."""
        if target == source:
            return np.eye(4)
        if source not in self._edges or target not in self._edges:
            raise CalibrationError(
                f"no transform from '{source}' to '{target}' (known frames: {self.frames}); "
                "publish it on /tf_static or set it in the config"
            )
        # BFS from source; accumulate T_node_from_source.
        prev: dict[str, tuple[str, np.ndarray]] = {source: ("", np.eye(4))}
        queue = deque([source])
        while queue:
            node = queue.popleft()
            T_node = prev[node][1]
            for nbr in self._edges[node]:
                if nbr in prev:
                    continue
                prev[nbr] = (node, self._edges[nbr][node] @ T_node)
                if nbr == target:
                    return prev[nbr][1]
                queue.append(nbr)
        raise CalibrationError(f"frames '{source}' and '{target}' are not connected: {self.frames}")
