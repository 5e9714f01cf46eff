"""Goal-directed trajectories with exact per-frame progress (ground truth for reward work).

A goal in words names a *target* object (and a *reference* object) of a tabletop scene. The gripper
picks up one object and carries it; a successful trajectory ends inside the goal region, a failed
one stalls, goes the wrong way or moves the wrong object.

Goal regions (base_link, metres; "resting" = bottom within 1 cm of the table top), defined once
in ``spatial_ros.reward.goal`` (the parser is shared with the reward annotator; the truth is
computed independently from the simulator's own geometry, ``spatial_ros.sim.goal_truth``):

* ``next_to`` — "put the red cube next to the blue bowl": the bird's-eye-view (BEV) surface gap
  between the two footprints is in (0, 0.10] m and the target rests on the table.
  remaining = max(0, gap - 0.10).
* ``left_of`` / ``right_of`` — "move the mug to the left of the can", left/right *as seen from the
  camera*: with the camera's horizontal left axis l (= -right, the heading of the optical z axis
  crossed as in ``spatial_ros.spatial``) and heading f, the offset r = c_target - c_reference
  must satisfy r.l >= L_min (right_of: -r.l >= L_min) and |r.f| <= 0.15, where
  L_min = (extent_target(l) + extent_reference(l)) / 2 + 0.02 (footprints clearly apart), and the
  target rests on the table. remaining = Euclidean distance of (r.l, r.f) to that region.
* ``lift`` — "lift the ball 20 cm above the table": the target's bottom is h +- 0.03 m above the
  table top. remaining = distance of (bottom - table_top) to [h - 0.03, h + 0.03].

Progress of frame t: ``clip(1 - remaining_t / remaining_0, 0, 1)`` with remaining_0 the value at
the first frame of the episode (always >= 0.05 m by construction); ``in_goal`` = remaining == 0
and the resting condition; ``success`` (per episode) = ``in_goal`` at the last frame.
``reach`` is the reach stage's progress (tool centre point = the gripper's fingertip centre,
published as the ``gripper_tcp`` frame): 1 once the target has moved 3 cm from its start, else
1 - d_t / d_0 with d the tool's distance to the target's box; ``staged_progress()`` combines
the two as the reward annotator does when it knows the tool point.

Timeline (u = 0..1 over the episode): still until 0.05, the gripper approaches and grasps until
0.30, carries (lift, traverse at a clearance above every object, set down) until 0.85, then
releases and rises. Each segment follows a minimum-jerk profile.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from shapely.geometry import Polygon

from spatial_ros.errors import DataError
from spatial_ros.reward.goal import (  # noqa: F401 - re-exported for the simulator's users
    BESIDE_DEPTH,
    GOAL_EXAMPLES,
    LIFT_TOL,
    NEXT_TO_GAP,
    REACH_WEIGHT,
    REST_TOL,
    Goal,
    GoalError,
    Vocabulary,
)
from spatial_ros.reward.goal import parse_goal as _parse_goal
from spatial_ros.reward.goal_measure import (  # noqa: F401 - re-exported for the simulator's users
    SceneState,
    measure,
    staged_progress,
    target_moved,
    tool_distance,
)
from spatial_ros.sim import catalog
from spatial_ros.sim.goal_truth import goal_truth
from spatial_ros.sim.meshes import ObjectMesh, merge
from spatial_ros.sim.scene import Scene, SimObject, box_in_image
from spatial_ros.types import Box3D

# The goal parser is shared with the reward annotator (spatial_ros/reward/goal.py); the goal
# truth is the simulator's own (sim/goal_truth.py). It plans these kinds, over its catalog.
GOAL_KINDS = ("next_to", "left_of", "right_of", "lift")
T_START, T_GRASP, T_RELEASE = 0.05, 0.30, 0.85
VOCABULARY = Vocabulary(
    colours=tuple(catalog.TABLETOP_COLOURS),
    categories=tuple(catalog.TABLETOP_CATEGORIES),
    kinds=GOAL_KINDS,
    lift_range=(0.05, 0.4),
)


def parse_goal(text: str) -> Goal:
    """Parse a goal sentence the simulator can plan (``spatial_ros.reward.goal.parse_goal``
    restricted to the tabletop catalog's colours/objects and to ``GOAL_KINDS``).

    Raises:
        GoalError: (a ParseError) no template matches, or an unknown colour/object/kind.
    """
    return _parse_goal(text, VOCABULARY)


# ----------------------------------------------------------------------------------------------
# Goal geometry
# ----------------------------------------------------------------------------------------------


def view_axes(scene: Scene) -> tuple[np.ndarray, np.ndarray]:
    """(left, heading): unit horizontal axes (base_link) as seen from the camera."""
    T = scene.rig.T_base_from_optical
    f = np.array([T[0, 2], T[1, 2], 0.0])
    f /= np.linalg.norm(f)
    right = np.cross(f, [0.0, 0.0, 1.0])
    return -right[:2], f[:2]


def _extent_along(obj: SimObject, yaw: float, axis2: np.ndarray) -> float:
    c, s = math.cos(yaw), math.sin(yaw)
    local = np.array([c * axis2[0] + s * axis2[1], -s * axis2[0] + c * axis2[1]])
    return float(np.abs(local) @ obj.size[:2])


@dataclass
class GoalState:
    """Where a scene state stands with respect to a goal."""

    remaining: float
    in_goal: bool


def evaluate_goal(goal: Goal, scene: Scene, target_id: str, reference_id: str | None) -> GoalState:
    """Remaining distance (metres) to the goal region and whether the state is in it, from the
    simulator's own geometry (``spatial_ros.sim.goal_truth``; deliberately NOT the reward
    annotator's ``measure``, so that tests comparing the two can catch a bug in either)."""
    ref = scene.get(reference_id) if reference_id else None
    t = goal_truth(goal.kind, scene.get(target_id), ref, scene, goal.height, goal.distance)
    return GoalState(t.remaining, t.in_goal)


# ----------------------------------------------------------------------------------------------
# Motion
# ----------------------------------------------------------------------------------------------


def min_jerk(s: np.ndarray | float) -> np.ndarray | float:
    """Minimum-jerk profile 10 s^3 - 15 s^4 + 6 s^5 on [0, 1]."""
    s = np.clip(s, 0.0, 1.0)
    return s**3 * (10 - 15 * s + 6 * s * s)


@dataclass
class _Segment:
    u0: float
    u1: float
    obj0: np.ndarray  # moved object's centre at u0
    obj1: np.ndarray
    grip0: np.ndarray  # gripper centre at u0
    grip1: np.ndarray
    gyaw0: float
    gyaw1: float


@dataclass(eq=False)
class TrajectoryState:
    """Ground truth of one frame of a trajectory."""

    goal: str
    kind: str
    mode: str
    fail_mode: str | None
    target_id: str
    reference_id: str | None
    moved_id: str
    phase: str
    remaining: float
    progress: float
    in_goal: bool
    success: bool
    reach: float = 0.0

    def staged_progress(self, weight: float = REACH_WEIGHT) -> float:
        """Progress with the reach stage (``reward.goal_measure.staged_progress``): what
        the reward annotator reports when it knows the gripper's tool point."""
        return staged_progress(self.progress, self.reach, weight)

    def to_json(self) -> dict:
        return {
            "goal": self.goal,
            "kind": self.kind,
            "mode": self.mode,
            "fail_mode": self.fail_mode,
            "target_id": self.target_id,
            "reference_id": self.reference_id,
            "moved_id": self.moved_id,
            "phase": self.phase,
            "remaining_m": round(float(self.remaining), 6),
            "progress": round(float(self.progress), 6),
            "in_goal": bool(self.in_goal),
            "success": bool(self.success),
            "reach": round(float(self.reach), 6),
        }


@dataclass(eq=False)
class Trajectory:
    """A planned episode: which object moves how, and the goal it is scored against.

    Use :meth:`scene_at` for the scene state at normalised time u in [0, 1] and :meth:`state`
    for its ground truth (goal, progress, success).
    """

    goal: Goal
    mode: str  # "success" | "fail"
    fail_mode: str | None
    target_id: str
    reference_id: str | None
    moved_id: str
    gripper_mesh: ObjectMesh
    segments: list[_Segment]
    remaining0: float = 0.0
    success: bool = False
    target_start: Box3D | None = None  # the target's box at u = 0 (ends the reach stage)
    tool_distance0: float = 0.0  # metres from the tool point to the target at u = 0
    _cache: dict = field(default_factory=dict, repr=False)

    def poses(self, u: float) -> tuple[np.ndarray, np.ndarray, float]:
        """(moved object centre, gripper centre, gripper yaw) at time u."""
        u = float(np.clip(u, 0.0, 1.0))
        seg = self.segments[-1]
        for s in self.segments:
            if u <= s.u1:
                seg = s
                break
        a = 1.0 if seg.u1 <= seg.u0 else float(min_jerk((u - seg.u0) / (seg.u1 - seg.u0)))
        return (
            seg.obj0 + a * (seg.obj1 - seg.obj0),
            seg.grip0 + a * (seg.grip1 - seg.grip0),
            seg.gyaw0 + a * (seg.gyaw1 - seg.gyaw0),
        )

    def reach(self, scene_u: Scene) -> float:
        """Reach-stage progress in [0, 1] of ``scene_u`` (``spatial_ros.reward.goal``): 1 once
        the target has moved ``REACH_MOVED`` from its start, else how much of the tool centre
        point's first distance to the target is covered."""
        box = scene_u.get(self.target_id).box
        if self.target_start is None or target_moved(box, self.target_start):
            return 1.0
        d = tool_distance(scene_u.T_base_from_gripper_tcp()[:3, 3], box)
        return float(np.clip(1.0 - d / max(self.tool_distance0, 1e-9), 0.0, 1.0))

    def phase(self, u: float) -> str:
        if u < T_START:
            return "idle"
        if u < T_GRASP:
            return "approach"
        if u < T_RELEASE:
            return "carry"
        return "release"

    def scene_at(self, scene: Scene, u: float) -> Scene:
        """The scene with the moved object and the gripper at their poses at time u."""
        obj_c, grip_c, grip_yaw = self.poses(u)
        objs = []
        for o in scene.objects:
            if o.id == self.moved_id:
                o = o.moved(obj_c)
            elif o.category == "gripper":
                o = SimObject(
                    o.id,
                    o.category,
                    o.colour,
                    o.rgb,
                    o.caption,
                    self.gripper_mesh,
                    grip_c,
                    grip_yaw,
                )
            objs.append(o)
        return scene.with_objects(objs)

    def state(self, scene_u: Scene, u: float) -> TrajectoryState:
        """Ground truth at time u (``scene_u`` = ``scene_at(scene, u)``)."""
        g = evaluate_goal(self.goal, scene_u, self.target_id, self.reference_id)
        prog = float(np.clip(1.0 - g.remaining / self.remaining0, 0.0, 1.0))
        return TrajectoryState(
            self.goal.text,
            self.goal.kind,
            self.mode,
            self.fail_mode,
            self.target_id,
            self.reference_id,
            self.moved_id,
            self.phase(u),
            g.remaining,
            prog,
            g.in_goal,
            self.success,
            self.reach(scene_u),
        )

    def to_json(self) -> dict:
        return {
            "goal": self.goal.text,
            "kind": self.goal.kind,
            "mode": self.mode,
            "fail_mode": self.fail_mode,
            "target_id": self.target_id,
            "reference_id": self.reference_id,
            "moved_id": self.moved_id,
            "remaining0_m": self.remaining0,
            "success": self.success,
        }


# ----------------------------------------------------------------------------------------------
# Planning
# ----------------------------------------------------------------------------------------------


def _unique_objects(scene: Scene) -> list[SimObject]:
    """Objects whose caption is unique in the scene (never the gripper)."""
    caps = [o.caption for o in scene.objects]
    return [o for o in scene.objects if o.category != "gripper" and caps.count(o.caption) == 1]


def _placement_ok(
    scene: Scene, obj: SimObject, center: np.ndarray, ignore: set[str], min_gap: float = 0.02
) -> bool:
    """Target pose on the table, inside the image and clear of the other objects."""
    x0, x1, y0, y1 = scene.table_bounds
    fp = obj.footprint(center)
    table = Polygon(
        [
            (x0 + 0.02, y0 + 0.02),
            (x1 - 0.02, y0 + 0.02),
            (x1 - 0.02, y1 - 0.02),
            (x0 + 0.02, y1 - 0.02),
        ]
    )
    if not table.contains(fp):
        return False
    if not box_in_image(Box3D.from_yaw(center, obj.size, obj.yaw), scene.rig, 2.0):
        return False
    for o in scene.objects:
        if o.id == obj.id or o.id in ignore or o.category == "gripper":
            continue
        if fp.distance(o.footprint()) < min_gap:
            return False
    return True


def _goal_pose(
    goal: Goal, scene: Scene, obj: SimObject, ref: SimObject | None, rng: np.random.Generator
) -> np.ndarray | None:
    """A pose for ``obj`` well inside the goal region (relative to ``ref``), or None."""
    if goal.kind == "lift":
        c = obj.center + np.array([0.0, 0.0, goal.height])
        return c if box_in_image(Box3D.from_yaw(c, obj.size, obj.yaw), scene.rig, 2.0) else None
    if goal.kind == "next_to":
        for phi in rng.permutation(24) * (2 * math.pi / 24):
            d = np.array([math.cos(phi), math.sin(phi), 0.0])
            want = rng.uniform(0.03, 0.06)
            lo, hi = 0.0, 1.0
            for _ in range(30):  # bisection on the footprint gap along d
                mid = (lo + hi) / 2
                c = ref.center + d * mid
                c[2] = obj.center[2]
                gap = obj.footprint(c).distance(ref.footprint())
                lo, hi = (mid, hi) if gap < want else (lo, mid)
            c = ref.center + d * hi
            c[2] = obj.center[2]
            if _placement_ok(scene, obj, c, {ref.id}):
                return c
        return None
    left, fwd = view_axes(scene)
    sign = 1.0 if goal.kind == "left_of" else -1.0
    lmin = (_extent_along(obj, obj.yaw, left) + _extent_along(ref, ref.yaw, left)) / 2 + 0.02
    for k in range(80):  # close beside the reference first, then further out
        lat = lmin + rng.uniform(0.02, 0.08 + 0.2 * k / 80)
        dep = rng.uniform(-0.12, 0.12) * min(1.0, 0.5 + k / 80)
        c = ref.center.copy()
        c[:2] += sign * lat * left + dep * fwd
        c[2] = obj.center[2]
        if _placement_ok(scene, obj, c, set()):
            return c
    return None


def _random_goal(scene: Scene, rng: np.random.Generator) -> list[tuple[Goal, str, str | None]]:
    """Candidate (goal, target_id, reference_id) triples in random order."""
    objs = _unique_objects(scene)
    out = []
    for a in objs:
        for b in objs:
            if a is b:
                continue
            for kind in ("next_to", "left_of", "right_of"):
                out.append(
                    (Goal(kind, (a.colour, a.category), (b.colour, b.category)), a.id, b.id)
                )
        h = float(rng.choice([0.1, 0.15, 0.2, 0.25]))
        out.append((Goal("lift", (a.colour, a.category), None, h), a.id, None))
    weights = np.array([0.25 if g.kind == "lift" else 1.0 for g, _, _ in out])
    weights[[g.kind == "lift" for g, _, _ in out]] *= max(1, len(objs) - 1)
    order = rng.choice(len(out), size=len(out), replace=False, p=weights / weights.sum())
    return [out[i] for i in order]


def _bind(goal: Goal, scene: Scene) -> tuple[str, str | None]:
    def pick(cc):
        found = scene.find(*cc)
        if not found:
            raise DataError(f"the scene has no {cc[0]} {cc[1]} for goal '{goal.text}'")
        return found[0].id

    return pick(goal.target), (pick(goal.reference) if goal.reference else None)


def _carry_path(scene: Scene, obj: SimObject, end: np.ndarray, lift: bool) -> list[np.ndarray]:
    """Waypoints of the moved object's centre: up to the clearance, across, down."""
    start = obj.center.copy()
    if lift:
        return [start, end.copy()]
    tallest = max((o.size[2] for o in scene.objects if o.category != "gripper"), default=0.1)
    z = scene.table_top_z + tallest + 0.04 + obj.size[2] / 2
    up = start.copy()
    up[2] = max(z, start[2])
    over = end.copy()
    over[2] = up[2]
    return [start, up, over, end.copy()]


def _truncate(path: list[np.ndarray], frac: float) -> list[np.ndarray]:
    """The first ``frac`` of a polyline (by length)."""
    lengths = [float(np.linalg.norm(b - a)) for a, b in zip(path[:-1], path[1:], strict=False)]
    want = frac * sum(lengths)
    out = [path[0]]
    for (a, b), seg in zip(zip(path[:-1], path[1:], strict=False), lengths, strict=True):
        if want <= seg:
            out.append(a + (b - a) * (want / seg if seg > 0 else 0.0))
            return out
        want -= seg
        out.append(b)
    return out


def _gripper_for(obj: SimObject) -> tuple[ObjectMesh, float]:
    """Gripper mesh opened to the object's narrower horizontal side, and its yaw."""
    if obj.size[1] <= obj.size[0]:
        yaw, width = obj.yaw, obj.size[1]
    else:
        yaw, width = obj.yaw + math.pi / 2, obj.size[0]
    return merge(catalog.gripper_parts(float(width) + 0.02)), yaw


def _build_segments(
    scene: Scene,
    moved: SimObject,
    path: list[np.ndarray],
    release: bool,
    gmesh: ObjectMesh,
    gyaw: float,
) -> list[_Segment]:
    grip = scene.gripper
    home = grip.center.copy()
    top = moved.center[2] + moved.size[2] / 2
    tip = max(moved.bottom_z + 0.005, top - 0.05)
    hold = np.array([0.0, 0.0, tip + gmesh.size[2] / 2 - moved.center[2]])  # gripper - object
    hover = moved.center + hold + np.array([0.0, 0.0, 0.08])
    grasp = moved.center + hold
    c0 = moved.center.copy()
    segs = [_Segment(0.0, T_START, c0, c0, home, home, 0.0, 0.0)]
    # approach: over the object, then down
    d1, d2 = float(np.linalg.norm(hover - home)), 0.08
    um = T_START + (T_GRASP - T_START) * d1 / (d1 + d2)
    segs.append(_Segment(T_START, um, c0, c0, home, hover, 0.0, gyaw))
    segs.append(_Segment(um, T_GRASP, c0, c0, hover, grasp, gyaw, gyaw))
    # carry along the path; a truncated (stalled) path ends at its length fraction of the time
    lengths = [float(np.linalg.norm(b - a)) for a, b in zip(path[:-1], path[1:], strict=False)]
    total = sum(lengths) or 1.0
    u = T_GRASP
    for (a, b), seg_len in zip(zip(path[:-1], path[1:], strict=False), lengths, strict=True):
        du = (T_RELEASE - T_GRASP) * seg_len / total
        segs.append(_Segment(u, u + du, a, b, a + hold, b + hold, gyaw, gyaw))
        u += du
    end = path[-1]
    if release:
        segs.append(
            _Segment(u, 1.0, end, end, end + hold, end + hold + [0.0, 0.0, 0.1], gyaw, gyaw)
        )
    else:
        segs.append(_Segment(u, 1.0, end, end, end + hold, end + hold, gyaw, gyaw))
    return segs


def plan_trajectory(
    scene: Scene,
    mode: str,
    seed: int,
    goal: Goal | str | None = None,
    fail_mode: str | None = None,
) -> Trajectory:
    """Plan a successful or failed trajectory for a tabletop scene (deterministic for a seed).

    Args:
        scene: a tabletop scene with a gripper.
        mode: "success" or "fail".
        seed: seeds the goal choice, the end pose and the failure.
        goal: a :class:`Goal`, a sentence (parsed with :func:`parse_goal`), or None to draw one.
        fail_mode: "stall", "wrong_way", "wrong_object" or None (drawn).

    Raises:
        DataError: no feasible plan (e.g. no room next to the reference); try another seed.
    """
    if scene.scenario != "tabletop" or scene.gripper is None:
        raise DataError("trajectories need a tabletop scene with a gripper")
    if mode not in ("success", "fail"):
        raise DataError(f"trajectory mode must be 'success' or 'fail', got {mode!r}")
    rng = np.random.default_rng([seed, 0x7A3])
    if isinstance(goal, str):
        goal = parse_goal(goal)
    if mode == "fail" and fail_mode is None:
        fail_mode = ("stall", "wrong_way", "wrong_object")[int(rng.integers(3))]
    if goal is not None:
        candidates = [(goal, *_bind(goal, scene))]
    else:
        candidates = _random_goal(scene, rng)
    for g, tid, rid in candidates[:60]:
        traj = _plan_one(scene, g, tid, rid, mode, fail_mode, rng)
        if traj is not None:
            return traj
    what = f"goal '{goal.text}'" if goal else "any goal"
    raise DataError(
        f"no feasible {mode} trajectory for {what} in tabletop scene {scene.seed}; "
        "try another seed"
    )


def _plan_one(
    scene: Scene,
    goal: Goal,
    tid: str,
    rid: str | None,
    mode: str,
    fail_mode: str | None,
    rng: np.random.Generator,
) -> Trajectory | None:
    target = scene.get(tid)
    ref = scene.get(rid) if rid else None
    g0 = evaluate_goal(goal, scene, tid, rid)
    if g0.remaining < 0.05:
        return None
    moved = target
    release = goal.kind != "lift"
    end = _goal_pose(goal, scene, target, ref, rng)
    if end is None:
        return None
    path = _carry_path(scene, target, end, goal.kind == "lift")
    if mode == "fail":
        if fail_mode == "stall":
            path = _truncate(path, float(rng.uniform(0.3, 0.55)))
            release = False
        elif fail_mode == "wrong_way":
            if goal.kind == "lift":
                d = rng.normal(size=2)
                d /= np.linalg.norm(d)
                end = target.center.copy()
                end[:2] += d * rng.uniform(0.12, 0.2)
            else:
                away = target.center[:2] - end[:2]
                away /= max(np.linalg.norm(away), 1e-9)
                end = target.center.copy()
                end[:2] += away * rng.uniform(0.12, 0.25)
            if not _placement_ok(scene, target, end, set()):
                return None
            path = _carry_path(scene, target, end, False)
            release = True
        else:  # wrong_object: do the motion with another object
            others = [
                o for o in scene.objects if o.id not in (tid, rid) and o.category != "gripper"
            ]
            if not others:
                return None
            rank = [(o.category != target.category) + (o.colour != target.colour) for o in others]
            moved = others[int(np.argmin(rank))]
            end = _goal_pose(goal, scene, moved, ref, rng)
            if end is None:
                return None
            path = _carry_path(scene, moved, end, goal.kind == "lift")
    gmesh, gyaw = _gripper_for(moved)
    segs = _build_segments(scene, moved, path, release, gmesh, gyaw)
    traj = Trajectory(
        goal,
        mode,
        fail_mode if mode == "fail" else None,
        tid,
        rid,
        moved.id,
        gmesh,
        segs,
        remaining0=g0.remaining,
        target_start=scene.get(tid).box,
    )
    tcp0 = traj.scene_at(scene, 0.0).T_base_from_gripper_tcp()[:3, 3]
    traj.tool_distance0 = tool_distance(tcp0, scene.get(tid).box)
    final = traj.state(traj.scene_at(scene, 1.0), 1.0)
    if mode == "success" and not final.in_goal:
        return None
    if mode == "fail" and (final.in_goal or final.progress > 0.8):
        return None
    traj.success = bool(final.in_goal)
    return traj
