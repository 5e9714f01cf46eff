"""Where a 3D state stands with respect to a goal: ``measure`` (metres to the goal region defined
in ``spatial_ros.reward.goal``'s docstring, and whether the side conditions hold) and the reach
stage of pick-and-place goals (``tool_distance``, ``target_moved``, ``staged_progress``).

Frames and units: every box is in one gravity-aligned z-up frame (REP-103; base_link in
practice), metres; "the robot" is the origin of that frame.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from shapely.geometry import MultiPoint, Point

from spatial_ros.errors import DataError
from spatial_ros.reward.goal import (
    CAMERA,
    DEFAULT_TOLERANCES,
    REACH_MOVED,
    REACH_WEIGHT,
    ROBOT,
    SIDE_KINDS,
    Goal,
    Tolerances,
)
from spatial_ros.spatial.predicates import (
    SpatialObject,
    Viewpoint,
    extent_along,
    horizontal_distance,
    point_box_distance,
    vertical_distance,
    z_interval,
)
from spatial_ros.types import Box3D


@dataclass(eq=False)
class SceneState:
    """Where a goal's objects are in one frame (boxes in one z-up frame, metres).

    Attributes:
        target: the target's box, or None when it was not found.
        reference: the reference object's box (None for lift / robot / camera references, or
            when not found).
        viewpoint: the camera (needed for left/right/front/behind and camera references).
        support_z: height of the surface objects rest on (the table top), or None = estimate.
        tool: (3,) the robot's tool centre point (gripper fingertips) in the boxes' frame, or
            None when unknown (no reach stage).
    """

    target: Box3D | None
    reference: Box3D | None = None
    viewpoint: Viewpoint | None = None
    support_z: float | None = None
    tool: np.ndarray | None = None

    def missing(self, goal: Goal) -> list[str]:
        """Names of what the goal needs and this state lacks (empty = complete)."""
        out = []
        if self.target is None:
            out.append(goal.target.name)
        if goal.reference is not None and not goal.reference.special and self.reference is None:
            out.append(goal.reference.name)
        if goal.needs_view and self.viewpoint is None:
            out.append("camera viewpoint")
        return out

    def to_json(self) -> dict:
        """JSON-able dict (exact floats), for resumable offline jobs."""

        vp = self.viewpoint
        return {
            "target": None if self.target is None else self.target.state_dict(),
            "reference": None if self.reference is None else self.reference.state_dict(),
            "viewpoint": None if vp is None else [vp.position.tolist(), vp.forward.tolist()],
            "support_z": self.support_z,
            "tool": None if self.tool is None else np.asarray(self.tool, float).tolist(),
        }

    @classmethod
    def from_json(cls, d: dict) -> SceneState:
        def box(b):
            return None if b is None else Box3D.from_state_dict(b)

        vp, tool = d.get("viewpoint"), d.get("tool")
        return cls(box(d.get("target")), box(d.get("reference")),
                   None if vp is None else Viewpoint(vp[0], vp[1]), d.get("support_z"),
                   None if tool is None else np.asarray(tool, float))


@dataclass(frozen=True)
class Measure:
    """Where one state stands with respect to a goal.

    Attributes:
        remaining: metres from the state to the goal region (0 inside).
        conditions: the side conditions outside ``remaining`` hold (target resting, not
            overlapping the reference).
        in_goal: ``remaining <= Tolerances.success`` and ``conditions``.
        value: the goal's main quantity (metres): gap, clearance, height, distance.
        text: short explanation, e.g. "gap(red cube, blue bowl) = 0.31 m".
    """

    remaining: float
    conditions: bool
    in_goal: bool
    value: float
    text: str


def _ref_distance(goal: Goal, a: SpatialObject, state: SceneState) -> float:
    """Distance of the target to the reference: horizontal centre distance to the robot (frame
    origin) or the camera, footprint gap to an object (metres)."""
    ref = goal.reference
    if ref.category == ROBOT:
        return float(np.hypot(*a.box.center[:2]))
    if ref.category == CAMERA:
        return float(np.hypot(*(a.box.center[:2] - state.viewpoint.position[:2])))
    b = SpatialObject(ref.name, state.reference)
    return float(horizontal_distance(a, b).details["footprint"])


def measure(
    goal: Goal,
    state: SceneState,
    start: SceneState | None = None,
    tol: Tolerances = DEFAULT_TOLERANCES,
) -> Measure:
    """Remaining distance to the goal region (metres), the side conditions and a short text.

    Args:
        goal: the goal.
        state: the current state (complete: ``state.missing(goal)`` empty).
        start: the episode's first state (relative goals, lift without ``support_z``); None =
            ``state`` itself.
        tol: goal-region sizes.

    Raises:
        DataError: the state lacks an object or the viewpoint the goal needs.
    """
    missing = state.missing(goal)
    if missing:
        raise DataError(f"cannot score '{goal.text}': missing {', '.join(missing)}")
    start = start or state
    an = goal.target.name
    a = SpatialObject(an, state.target)
    b = None
    if state.reference is not None and goal.reference is not None and not goal.reference.special:
        b = SpatialObject(goal.reference.name, state.reference)
    bottom_a = z_interval(state.target)[0]
    if state.support_z is not None:
        support = float(state.support_z)
    elif b is not None:
        support = z_interval(state.reference)[0]
    elif start.support_z is not None:
        support = float(start.support_z)
    else:
        support = z_interval(start.target)[0]
    resting = abs(bottom_a - support) <= tol.rest

    def result(rem: float, cond: bool, value: float, text: str) -> Measure:
        rem = float(rem)
        return Measure(rem, bool(cond), bool(rem <= tol.success and cond), float(value), text)

    if goal.kind == "next_to":
        g = goal.distance if goal.distance is not None else tol.next_to_gap
        gap = float(horizontal_distance(a, b).details["footprint"])
        text = f"gap({an}, {b.name}) = {gap:.2f} m (goal <= {g:.2f} m)"
        return result(max(0.0, gap - g), gap > 0.0 and resting, gap, text)
    if goal.kind in SIDE_KINDS:
        vp = state.viewpoint
        left, fwd = -vp.right, vp.heading
        axis, other = {
            "left_of": (left, fwd), "right_of": (-left, fwd),
            "behind": (fwd, left), "in_front_of": (-fwd, left),
        }[goal.kind]
        r = state.target.center - state.reference.center
        need = (extent_along(state.target, axis) + extent_along(state.reference, axis)) / 2
        need += tol.side_clearance
        along = float(r @ axis)
        d_axis = max(0.0, need - along)
        d_other = max(0.0, abs(float(r @ other)) - tol.side_depth)
        words = {"left_of": "left", "right_of": "right", "behind": "behind",
                 "in_front_of": "front"}[goal.kind]
        text = (f"{words}({an}, {b.name}) = {along:.2f} m (goal >= {need:.2f} m; sideways "
                f"{abs(float(r @ other)):.2f} m, at most {tol.side_depth:.2f} m)")
        return result(math.hypot(d_axis, d_other), resting, along, text)
    if goal.kind == "on_top_of":
        foot = MultiPoint(state.reference.corners()[:, :2]).convex_hull
        dxy = float(foot.distance(Point(state.target.center[:2])))
        dz = float(vertical_distance(a, b).details["a_bottom"]) - float(
            vertical_distance(a, b).details["b_top"]
        )
        rem = math.hypot(dxy, max(0.0, abs(dz) - tol.rest))
        text = f"over({an}, {b.name}) = {dxy:.2f} m, above its top {dz:+.2f} m"
        return result(rem, True, dz, text)
    if goal.kind == "lift":
        hb = bottom_a - support
        lo, hi = goal.height - tol.lift, goal.height + tol.lift
        text = f"height({an}) = {hb:.2f} m above the table (goal {goal.height:.2f} m)"
        return result(max(0.0, lo - hb, hb - hi), True, hb, text)
    # away_from / toward, relative to the episode's first frame
    d = _ref_distance(goal, a, state)
    d0 = _ref_distance(goal, SpatialObject(an, start.target), start)
    amount = goal.distance if goal.distance is not None else tol.move_amount
    rname = goal.reference.name
    if goal.kind == "away_from":
        want = d0 + amount
        text = f"distance({an}, {rname}) = {d:.2f} m (goal >= {want:.2f} m)"
        return result(max(0.0, want - d), True, d, text)
    want = max(d0 - amount, 0.0)
    text = f"distance({an}, {rname}) = {d:.2f} m (goal <= {want:.2f} m)"
    return result(max(0.0, d - want), True, d, text)


def tool_distance(tool: np.ndarray, target: Box3D) -> float:
    """Metres from the tool point to the target's box (0 inside): how far the reach is."""
    return float(point_box_distance(np.asarray(tool, float).reshape(1, 3), target)[0])


def target_moved(target: Box3D, start: Box3D, moved: float = REACH_MOVED) -> bool:
    """The target's centre is more than ``moved`` metres from its first-frame centre."""
    return bool(np.linalg.norm(np.asarray(target.center) - np.asarray(start.center)) > moved)


def staged_progress(place: float, reach: float, weight: float = REACH_WEIGHT) -> float:
    """Progress of a pick-and-place goal in two stages: ``weight`` for the reach (tool to
    target, in [0, 1]) and the rest for the goal region (``place`` in [0, 1])."""
    return float(weight * reach + (1.0 - weight) * place)
