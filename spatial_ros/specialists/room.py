"""Room walls as evidence for indoor boxes (depth specialist).

Indoors, furniture stands square to the walls and often against them (the "Manhattan world"
of indoor scene understanding), and a depth camera sees only the faces turned to it: a dresser
taller than the camera shows its front and nothing of its depth. Two corrections follow:

- ``snap_yaw``: a box heading within ``max_deg`` of a wall's direction takes that direction
  (the rectangle fitted to one visible face turns with its noise);
- ``extend_to_wall``: a box that is thin along the line of sight (only its front seen) and has
  a wall behind it, roughly parallel to that face and not far away, reaches back to the wall:
  the space between the face and the wall is hidden by the object itself, and furniture
  stands against walls;
- ``complete_depth``: without such a wall, a box of a known indoor class that is thin along
  the line of sight grows, away from the camera, to the class's typical depth
  (``INDOOR_SIZES``: SUN RGB-D training-set mean sizes, as published with Frustum PointNets
  and VoteNet), as the LiDAR specialist completes cars seen from one side.

Walls are ``planes.Plane`` objects in the working (z-up) frame with horizontal normals.
"""

from __future__ import annotations

import numpy as np

from spatial_ros.specialists.planes import Plane
from spatial_ros.types import Box3D

# SUN RGB-D training-set mean full sizes (length, width, height), metres, of the ten classes
# of its 3D detection benchmark.
INDOOR_SIZES: dict[str, tuple[float, float, float]] = {
    "bathtub": (1.398, 0.766, 0.473), "bed": (2.114, 1.620, 0.927),
    "bookshelf": (1.071, 0.405, 1.689), "chair": (0.592, 0.553, 0.827),
    "desk": (1.346, 0.695, 0.736), "dresser": (1.003, 0.529, 1.173),
    "night_stand": (0.632, 0.501, 0.683), "sofa": (1.867, 0.924, 0.845),
    "table": (1.280, 0.791, 0.718), "toilet": (0.699, 0.454, 0.756),
}


def walls_in_frame(walls: list[Plane], sensor: np.ndarray) -> list[Plane]:
    """Walls fitted to sensor-centred points (``planes.fit_walls``) expressed in the frame the
    sensor sits at ``sensor`` in (normals still pointing towards the sensor)."""
    out = []
    for w in walls:
        out.append(Plane(w.normal, float(w.offset - w.normal @ np.asarray(sensor)[:3]),
                         w.inliers, w.area))
    return out


def snap_yaw(yaw: float, walls: list[Plane], max_deg: float = 20.0) -> float | None:
    """The wall direction (mod 90 degrees) nearest ``yaw`` when within ``max_deg``, else
    None."""
    best, best_d = None, np.radians(max_deg)
    for w in walls:
        wy = float(np.arctan2(w.normal[1], w.normal[0]))
        d = (yaw - wy + np.pi / 4) % (np.pi / 2) - np.pi / 4  # difference mod 90 degrees
        if abs(d) <= best_d:
            best, best_d = yaw - d, abs(d)
    return best


def extend_to_wall(box: Box3D, walls: list[Plane], sensor: np.ndarray, *,
                   thin: float = 0.4, max_gap: float = 1.2, max_angle_deg: float = 20.0) -> Box3D:
    """``box`` reaching back to the wall behind it (see the module docstring), or ``box``.

    Args:
        box: yaw-only box in the walls' frame, metres.
        walls: walls in that frame (normals towards the sensor).
        sensor: (3,) sensor position in that frame.
        thin: only boxes thinner than this across their visible face are extended, metres.
        max_gap: largest distance from the box's far face to the wall, metres.
        max_angle_deg: largest angle between the face's normal and the wall's.
    """
    yaw = box.yaw
    k, e, _ = _depth_axis(box, sensor)  # the unseen depth, pointing away from the sensor
    if box.size[k] >= thin:
        return box
    far = box.center + e * box.size[k] / 2.0
    best = None
    for w in walls:
        cos = float(w.normal @ e)
        if cos > -np.cos(np.radians(max_angle_deg)):
            continue  # not facing the box's back
        gap = -(float(w.normal @ far) + w.offset) / cos
        if 0.0 < gap <= max_gap and (best is None or gap < best):
            best = gap
    if best is None:
        return box
    size = box.size.copy()
    size[k] += best
    center = box.center + e * best / 2.0
    if size[1] > size[0]:
        size[:2] = size[[1, 0]]
        yaw += np.pi / 2
    return Box3D.from_yaw(center, size, float(np.arctan2(np.sin(yaw), np.cos(yaw))),
                          box.frame_id)


def _depth_axis(box: Box3D, sensor: np.ndarray):
    """(index of the box's thin axis, that axis pointing away from the sensor, the other
    axis's index): a box fitted to the one face a camera sees is thin across that face,
    whatever the angle it is seen at."""
    yaw = box.yaw
    axes = (np.array([np.cos(yaw), np.sin(yaw), 0.0]), np.array([-np.sin(yaw), np.cos(yaw), 0.0]))
    to_box = box.center - np.asarray(sensor, dtype=np.float64)[:3]
    to_box[2] = 0.0
    k = int(np.argmin(box.size[:2]))
    e = axes[k] if axes[k] @ to_box >= 0 else -axes[k]
    return k, e, 1 - k


def complete_depth(box: Box3D, label: str, sensor: np.ndarray, *,
                   sizes: dict[str, tuple[float, float, float]] | None = None,
                   thin: float = 0.6) -> Box3D:
    """``box`` grown away from the sensor to its class's typical depth when it is thinner than
    ``thin`` x that depth across its visible face (only its front seen), else ``box``.

    The visible face is the class's length or width, whichever it is closer to (log ratio);
    the depth is the other. Unknown labels are left alone.
    """
    prior = (sizes or INDOOR_SIZES).get(label.strip().lower().replace(" ", "_"))
    if prior is None:
        return box
    k, e, j = _depth_axis(box, sensor)
    face, depth = float(box.size[j]), float(box.size[k])
    L, W = prior[0], prior[1]
    want = W if abs(np.log(max(face, 1e-3) / L)) <= abs(np.log(max(face, 1e-3) / W)) else L
    if depth >= thin * want:
        return box
    grow = want - depth
    size = box.size.copy()
    size[k] = want
    center = box.center + e * grow / 2.0
    yaw = box.yaw
    if size[1] > size[0]:
        size[:2] = size[[1, 0]]
        yaw += np.pi / 2
    return Box3D.from_yaw(center, size, float(np.arctan2(np.sin(yaw), np.cos(yaw))),
                          box.frame_id)
