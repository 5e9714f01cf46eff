"""The simulator's own goal geometry: how far a scene state is from a goal region.

Ground truth for reward work must not come from the code it checks. The reward annotator scores
with ``reward.goal_measure.measure``; the simulator computes the same quantities here, from
its objects' poses and extents only (centre, size, yaw; the camera rig for left/right), with
shapely footprints and plain vector algebra, so a test comparing the two catches a bug in
either (``test/test_sim_goal_truth.py``).

Goal regions (base_link, metres; the definitions of ``spatial_ros/sim/trajectory.py``):

* ``next_to``: footprint gap in (0, g] (g = the goal's distance, default ``NEXT_TO_GAP``) and the
  target resting on the table; remaining = max(0, gap - g).
* ``left_of`` / ``right_of`` / ``behind`` / ``in_front_of``, as seen from the camera: with the
  camera's horizontal left axis l and heading f, r = c_target - c_reference (horizontal) must
  reach ``need`` = (extent_target + extent_reference) / 2 + ``SIDE_CLEARANCE`` along the
  goal's axis (l, -l, f, -f) with at most ``SIDE_DEPTH`` sideways (|r . other axis|), target
  resting; remaining = hypot(max(0, need - r . axis), max(0, |r . other| - SIDE_DEPTH)).
* ``lift``: the target's bottom ``height`` +- ``LIFT_TOL`` above the table top; remaining =
  distance of (bottom - table top) to that band.

"Resting" = the bottom within ``REST_TOL`` of the table top. ``in_goal`` = remaining == 0 and
the conditions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from shapely.geometry import Polygon

from spatial_ros.errors import DataError
from spatial_ros.sim.scene import Scene, SimObject

# The simulator's goal regions (metres); the reward annotator's defaults must equal these
# (checked by test/test_sim_goal_truth.py).
NEXT_TO_GAP = 0.10
SIDE_CLEARANCE = 0.02
SIDE_DEPTH = 0.15
LIFT_TOL = 0.03
REST_TOL = 0.01
SIDE_GOALS = ("left_of", "right_of", "behind", "in_front_of")


@dataclass(frozen=True)
class GoalTruth:
    """Exact goal state of one scene state.

    Attributes:
        remaining: metres to the goal region (0 inside).
        in_goal: inside the region and the conditions (resting, not overlapping) hold.
    """

    remaining: float
    in_goal: bool


def footprint(obj: SimObject) -> Polygon:
    """Bird's-eye-view rectangle of ``obj`` (x, y metres) from its centre, size and yaw."""
    c, s = math.cos(obj.yaw), math.sin(obj.yaw)
    hx, hy = obj.size[0] / 2.0, obj.size[1] / 2.0
    corners = [(sx * hx, sy * hy) for sx, sy in ((1, 1), (-1, 1), (-1, -1), (1, -1))]
    return Polygon([(obj.center[0] + c * x - s * y, obj.center[1] + s * x + c * y)
                    for x, y in corners])


def width_along(obj: SimObject, axis: np.ndarray) -> float:
    """Full horizontal extent of ``obj`` along the unit horizontal ``axis`` (metres)."""
    c, s = math.cos(obj.yaw), math.sin(obj.yaw)
    along_x = abs(c * axis[0] + s * axis[1])  # |axis . the object's own x axis|
    along_y = abs(-s * axis[0] + c * axis[1])
    return float(along_x * obj.size[0] + along_y * obj.size[1])


def camera_axes(scene: Scene) -> tuple[np.ndarray, np.ndarray]:
    """(left, heading): unit horizontal axes of base_link as seen from the scene's camera."""
    forward = scene.rig.T_base_from_optical[:3, 2]
    heading = np.array([forward[0], forward[1]]) / math.hypot(forward[0], forward[1])
    left = np.array([-heading[1], heading[0]])  # heading turned +90 deg about +z
    return left, heading


def goal_truth(kind: str, target: SimObject, reference: SimObject | None, scene: Scene,
               height: float | None = None, distance: float | None = None) -> GoalTruth:
    """Remaining distance to the goal region of ``kind`` (see the module docstring).

    Args:
        kind: "next_to", "left_of", "right_of", "behind", "in_front_of" or "lift".
        target, reference: the objects at their current poses (reference None for lift).
        scene: the scene (table top height, camera rig).
        height: lift height (metres) for ``lift``.
        distance: largest gap for ``next_to`` (metres; None = ``NEXT_TO_GAP``).

    Raises:
        DataError: a kind the simulator has no truth for, or a missing reference / height.
    """
    table = float(scene.table_top_z)
    bottom = float(target.center[2] - target.size[2] / 2.0)
    resting = abs(bottom - table) <= REST_TOL
    if kind == "lift":
        if height is None:
            raise DataError("a lift goal needs its height")
        above = bottom - table
        remaining = max(0.0, (height - LIFT_TOL) - above, above - (height + LIFT_TOL))
        return GoalTruth(remaining, remaining <= 0.0)
    if reference is None:
        raise DataError(f"a {kind} goal needs a reference object")
    if kind == "next_to":
        gap = float(footprint(target).distance(footprint(reference)))
        remaining = max(0.0, gap - (NEXT_TO_GAP if distance is None else distance))
        return GoalTruth(remaining, remaining <= 0.0 and gap > 0.0 and resting)
    if kind not in SIDE_GOALS:
        raise DataError(f"the simulator has no ground truth for {kind!r} goals")
    left, heading = camera_axes(scene)
    axis, other = {"left_of": (left, heading), "right_of": (-left, heading),
                   "behind": (heading, left), "in_front_of": (-heading, left)}[kind]
    offset = target.center[:2] - reference.center[:2]
    need = (width_along(target, axis) + width_along(reference, axis)) / 2.0 + SIDE_CLEARANCE
    short = max(0.0, need - float(offset @ axis))
    sideways = max(0.0, abs(float(offset @ other)) - SIDE_DEPTH)
    remaining = math.hypot(short, sideways)
    return GoalTruth(remaining, remaining <= 0.0 and resting)
