"""Rigid transforms between named frames (a ROS-free stand-in for tf2 lookups).

A transform ``T_a_from_b`` is a 4x4 matrix mapping points expressed in frame b to frame a:
``p_a = T_a_from_b @ p_b``. This is what tf2 returns for ``lookup_transform(a, b)`` and what a
``geometry_msgs/TransformStamped`` with header.frame_id=a, child_frame_id=b encodes.

* :class:`TransformTree` — one set of transforms (``/tf_static``, or everything valid at one
  instant), looked up along any chain.
* :class:`TransformHistory` — time-stamped dynamic edges (``/tf``), evaluated at a stamp into a
  ``TransformTree`` by :meth:`TransformHistory.tree_at`.
"""

from __future__ import annotations

import bisect
from collections import deque

import numpy as np

from spatial_ros.errors import CalibrationError, ConfigError

NS_PER_S = 1_000_000_000

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
        w, x, y, z = (0.25 * s, (R[2, 1] - R[1, 2]) / s,
                      (R[0, 2] - R[2, 0]) / s, (R[1, 0] - R[0, 1]) / s)
    elif R[0, 0] > R[1, 1] and R[0, 0] > R[2, 2]:
        s = np.sqrt(1.0 + R[0, 0] - R[1, 1] - R[2, 2]) * 2
        w, x, y, z = ((R[2, 1] - R[1, 2]) / s, 0.25 * s,
                      (R[0, 1] + R[1, 0]) / s, (R[0, 2] + R[2, 0]) / s)
    elif R[1, 1] > R[2, 2]:
        s = np.sqrt(1.0 + R[1, 1] - R[0, 0] - R[2, 2]) * 2
        w, x, y, z = ((R[0, 2] - R[2, 0]) / s, (R[0, 1] + R[1, 0]) / s,
                      0.25 * s, (R[1, 2] + R[2, 1]) / s)
    else:
        s = np.sqrt(1.0 + R[2, 2] - R[0, 0] - R[1, 1]) * 2
        w, x, y, z = ((R[1, 0] - R[0, 1]) / s, (R[0, 2] + R[2, 0]) / s,
                      (R[1, 2] + R[2, 1]) / s, 0.25 * s)
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
        self._missing: dict[str, str] = {}  # frame -> why its edge is absent (error messages)

    def copy(self) -> TransformTree:
        """An independent tree with the same edges (setting edges on it leaves this one as is)."""
        out = TransformTree()
        out._edges = {a: dict(nbrs) for a, nbrs in self._edges.items()}
        out._missing = dict(self._missing)
        return out

    def note_missing(self, frame: str, reason: str) -> None:
        """Record why ``frame`` has no edge here (quoted when a lookup needs it)."""
        self._missing[frame] = reason

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
        """4x4 ``T_target_from_source``. Raises CalibrationError when the frames are not
        connected."""
        if target == source:
            return np.eye(4)
        if source not in self._edges or target not in self._edges:
            why = [self._missing[f] for f in (source, target) if f in self._missing]
            raise CalibrationError(
                f"no transform from '{source}' to '{target}' (known frames: {self.frames}); "
                + ("; ".join(why) if why else "publish it on /tf_static or set it in the config")
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
        raise CalibrationError(
            f"frames '{source}' and '{target}' are not connected: {self.frames}")


class TransformHistory:
    """Time-stamped dynamic transforms (like tf2's buffer for ``/tf``), evaluated at a stamp.

    Each edge ``parent -> child`` keeps its samples ``T_parent_from_child`` (4x4, metres) sorted
    by stamp (integer nanoseconds, the TransformStamped header stamp). :meth:`tree_at` gives the
    transforms valid at one instant: between two samples the translation is interpolated
    linearly and the rotation by slerp; before the first / after the last sample the nearest
    sample is used when it is at most ``max_gap_ns`` away, otherwise the edge is left out (a
    lookup through it raises ``CalibrationError`` saying why).

    Not thread-safe: a node that sets and evaluates from different threads holds a lock.

    Args:
        max_gap_ns: how far (ns) a stamp outside an edge's samples may be from the nearest one.
        cache_ns: history kept per edge (ns) behind its newest sample; older samples are pruned
            on :meth:`set`.
        reset_on_jump_back_ns: when a sample is this much (ns) older than the newest of any
            edge, the stamps jumped back (bag loop, simulator restart): everything is
            forgotten first, like tf2 on a time jump. None = never (bag replay).

    Raises:
        ConfigError: a negative ``max_gap_ns`` or a non-positive ``cache_ns`` /
            ``reset_on_jump_back_ns``.
    """

    def __init__(
        self,
        max_gap_ns: int = 100_000_000,
        cache_ns: int = 10 * NS_PER_S,
        reset_on_jump_back_ns: int | None = None,
    ) -> None:
        if max_gap_ns < 0 or cache_ns <= 0 or (
            reset_on_jump_back_ns is not None and reset_on_jump_back_ns <= 0
        ):
            raise ConfigError(
                "TransformHistory needs max_gap_ns >= 0, cache_ns > 0 and "
                f"reset_on_jump_back_ns > 0 or None (got max_gap_ns={max_gap_ns}, "
                f"cache_ns={cache_ns}, reset_on_jump_back_ns={reset_on_jump_back_ns})"
            )
        self.max_gap_ns = int(max_gap_ns)
        self.cache_ns = int(cache_ns)
        self.reset_on_jump_back_ns = reset_on_jump_back_ns
        self._newest_ns: int | None = None
        # (parent, child) -> (sorted stamps ns, T_parent_from_child per stamp)
        self._edges: dict[tuple[str, str], tuple[list[int], list[np.ndarray]]] = {}

    def set(self, parent: str, child: str, T_parent_from_child: np.ndarray, stamp_ns: int) -> None:
        """Add the sample ``T_parent_from_child`` (p_parent = T @ p_child) at ``stamp_ns``.

        Samples may come out of order; one at an existing stamp replaces it. Samples more than
        ``cache_ns`` older than the edge's newest are dropped.

        Raises:
            CalibrationError: empty or equal frame names, or a non-finite transform.
        """
        if not parent or not child or parent == child:
            raise CalibrationError(f"bad transform frames: parent '{parent}', child '{child}'")
        T = np.asarray(T_parent_from_child, dtype=np.float64).reshape(4, 4)
        if not np.all(np.isfinite(T)):
            raise CalibrationError(f"non-finite transform {parent} -> {child} at {stamp_ns} ns")
        stamp_ns = int(stamp_ns)
        jump = self.reset_on_jump_back_ns
        if jump is not None and self._newest_ns is not None and stamp_ns < self._newest_ns - jump:
            self.clear()
        self._newest_ns = stamp_ns if self._newest_ns is None else max(self._newest_ns, stamp_ns)
        stamps, mats = self._edges.setdefault((parent, child), ([], []))
        i = bisect.bisect_left(stamps, stamp_ns)
        if i < len(stamps) and stamps[i] == stamp_ns:
            mats[i] = T
        else:
            stamps.insert(i, stamp_ns)
            mats.insert(i, T)
        k = bisect.bisect_left(stamps, stamps[-1] - self.cache_ns)
        if k:
            del stamps[:k], mats[:k]

    def clear(self) -> None:
        """Forget every sample."""
        self._edges.clear()
        self._newest_ns = None

    def edges(self) -> list[tuple[str, str]]:
        """The (parent, child) pairs with samples, in first-seen order."""
        return list(self._edges)

    def stamps(self, parent: str, child: str) -> list[int]:
        """Sorted sample stamps (ns) of one edge (empty when unknown)."""
        return list(self._edges.get((parent, child), ([], []))[0])

    def tree_at(self, stamp_ns: int, base: TransformTree | None = None) -> TransformTree:
        """A new tree: a copy of ``base`` (e.g. the static transforms) plus every dynamic edge
        evaluated at ``stamp_ns`` (ns). ``base`` is not changed."""
        tree = TransformTree() if base is None else base.copy()
        t = int(stamp_ns)
        for (parent, child), (stamps, mats) in self._edges.items():
            T = self._at(stamps, mats, t)
            if T is not None:
                tree.set(parent, child, T)
            else:
                tree.note_missing(
                    child,
                    f"/tf edge '{parent}' -> '{child}' has no sample within "
                    f"{self.max_gap_ns / 1e6:g} ms of {t} ns (samples {stamps[0]}..{stamps[-1]})",
                )
        return tree

    def _at(self, stamps: list[int], mats: list[np.ndarray], t: int) -> np.ndarray | None:
        """T at ``t``: the sample itself, interpolated, the nearest within the gap, or None."""
        i = bisect.bisect_left(stamps, t)
        if i < len(stamps) and stamps[i] == t:
            return mats[i]
        if 0 < i < len(stamps):
            a = (t - stamps[i - 1]) / (stamps[i] - stamps[i - 1])  # exact int ns arithmetic
            return interpolate(mats[i - 1], mats[i], a)
        j = 0 if i == 0 else len(stamps) - 1
        return mats[j] if abs(stamps[j] - t) <= self.max_gap_ns else None


def interpolate(T0: np.ndarray, T1: np.ndarray, a: float) -> np.ndarray:
    """Rigid transform a fraction ``a`` (0..1) of the way from ``T0`` to ``T1``: translation
    linear, rotation by slerp (the shorter arc)."""
    from scipy.spatial.transform import Rotation, Slerp

    rots = Rotation.from_matrix(np.stack([T0[:3, :3], T1[:3, :3]]))
    R = Slerp([0.0, 1.0], rots)([a]).as_matrix()[0]
    return make_transform(R, (1.0 - a) * T0[:3, 3] + a * T1[:3, 3])
