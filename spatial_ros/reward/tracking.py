"""Goal-object tracking across an episode's frames (perception grounding of the reward annotator).

Why: the VLM grounds every frame on its own. Once the gripper reaches an object, the LiDAR
specialist sees the object and the gripper (and, passing by, a neighbour) as one cluster, the
candidate tags no longer describe the object, and the model names another object or draws a box
of its own: progress jumps or stalls. Objects move continuously, so each of the goal's objects is
followed from frame to frame instead (boxes in the scoring frame, z up, metres; velocities in
metres per labelled frame):

1. A track starts at the model's answer when that answer is one of the specialist candidates. A
   box the model drew itself is used only in a frame without candidates (no LiDAR or depth
   specialist, or an empty scan), where it also replaces the track's box.
2. Containment: an object whose predicted box (last box moved by its last velocity; moved with
   the robot's tool instead while the tool point, when known, was inside the object's own
   extents the frame before: it is held, and a lift can outrun any resting object) lies mostly
   inside a candidate takes that candidate: its own cluster while it rests, or the bigger
   cluster it merged into (grasped: object + gripper), which it then follows while carried.
   A *landmark* (the goal's reference object, which the task does not move) inside a bigger
   cluster keeps its own box instead: something passed close to it. When two objects lie in one
   candidate, the faster (then the nearer) takes it and the other keeps its last box.
3. Objects whose cluster vanished (moved away) are assigned one-to-one to the candidates that
   no resting cluster explains: clusters seen recently at the same place with the same size
   (remembered for ``memory_frames``, so a neighbour that merged into a passing cluster is still
   known) are not theirs. The cost is the distance from the predicted centre plus
   ``size_weight`` times the change of extents from the object's first box, minus
   ``answer_bonus`` for the candidate the model named; leaving an object or a candidate out
   costs ``unmatched`` each. An object in its own-size box (resting, not carried) moves at most
   ``rest_move`` plus its speed: its cluster missing more likely means it is hidden than that
   it jumped onto a passing cluster.
4. An object no candidate continues keeps its last box ("held") for at most ``coast_frames``
   frames, then it is lost and the model's next answer restarts it (an object inside a cluster
   it does not take, step 2, is seen and held without limit). Velocities come only from
   two boxes of the same size (a merge or split moves the centre, not the object).
5. The reported box is the matched cluster while it has the object's size; inside a bigger
   cluster (carried with the gripper above it) it is the object's first box standing on the
   cluster's bottom at the cluster's horizontal centre, so the gripper's extents do not enter
   the goal's measure (lift heights, gaps, side offsets).

Why not a library tracker: SORT-style trackers (Kalman filter + Hungarian assignment of
detections) assume one detection per object; here the specialists merge and split clusters as
the gripper touches objects, and only the goal's one or two objects need following, with the
model's answer as evidence. The assignment itself is scipy's ``linear_sum_assignment``.

The default model's answers on 40 + 40 simulated development episodes (success seeds from
920000, 930000 and 940000, failures 50000 above; not the bench's), scored without -> with
tracking: mean |progress - true progress| per frame 0.26 -> 0.10, AUROC of the final progress
(success vs failure) 0.62 -> 0.95.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from spatial_ros.errors import ConfigError
from spatial_ros.geometry.iou import iou_3d_matrix
from spatial_ros.types import Box3D

_SAME_BOX_M = 1e-3  # an answer box within this of a candidate's centre (m) is that candidate


@dataclass(frozen=True)
class TrackerConfig:
    """Costs and gates of the goal-object tracker (metres per labelled frame; see the module
    docstring for the steps they belong to).

    Attributes:
        unmatched: cost of leaving an object or a candidate unmatched (m); boxes further apart
            than twice this between two labelled frames are never the same object.
        size_weight: metres of cost per metre of change of the sorted extents from the
            object's first box (after a carry, the object's own cluster wins over the
            gripper's).
        answer_bonus: the candidate the model named counts this much nearer (m).
        merge_inside: an object whose predicted box lies at least this fraction inside a
            candidate takes that candidate (containment).
        gate: a remembered resting cluster explains a candidate within this distance (m)...
        own_size: ...whose sorted extents differ by at most this (L1, m); also the largest
            size change between two boxes of one rigid thing (velocity, resting test).
        memory_frames: frames a resting cluster no object took is remembered.
        rest_move: largest jump of an object in its own-size box, plus its speed (m).
        coast_frames: frames an unseen object keeps its last box before it is lost.
        grasp_margin: the tool point within this of an object's own box (m) holds it: the
            object's next box is predicted to move with the tool.
    """

    unmatched: float = 0.35
    size_weight: float = 0.5
    answer_bonus: float = 0.05
    merge_inside: float = 0.5
    gate: float = 0.05
    own_size: float = 0.06
    memory_frames: int = 15
    rest_move: float = 0.15
    coast_frames: int = 10
    grasp_margin: float = 0.02

    def __post_init__(self) -> None:
        bad = []
        for name in ("unmatched", "gate", "own_size", "rest_move", "grasp_margin"):
            v = getattr(self, name)
            if not (math.isfinite(v) and v > 0):
                bad.append(f"{name}={v} (must be > 0 m)")
        for name in ("size_weight", "answer_bonus"):
            v = getattr(self, name)
            if not (math.isfinite(v) and v >= 0):
                bad.append(f"{name}={v} (must be >= 0)")
        if not 0.0 < self.merge_inside <= 1.0:
            bad.append(f"merge_inside={self.merge_inside} (must be in (0, 1])")
        for name in ("memory_frames", "coast_frames"):
            if getattr(self, name) < 0:
                bad.append(f"{name}={getattr(self, name)} (must be >= 0)")
        if bad:
            raise ConfigError("tracker: invalid " + "; ".join(bad))


@dataclass(frozen=True)
class Tracked:
    """Where a goal object is in this frame.

    Attributes:
        box: its box (scoring frame).
        status: "answer" (a track started at the model's answer), "tracked" (the candidate
            that continues its track), "held" (its last box: not seen, or inside a cluster it
            does not take).
    """

    box: Box3D
    status: str


@dataclass
class _Track:
    box: Box3D  # the cluster it was last matched to
    velocity: np.ndarray  # metres per frame
    first: Box3D  # its box when the track started (its own extents)
    missed: int = 0

    @property
    def size0(self) -> np.ndarray:
        return self.first.size

    def in_own_box(self, cfg: TrackerConfig) -> bool:
        """Its cluster has its own size (resting or moved alone), not a merged one."""
        return _size_change(self.box.size, self.size0) <= cfg.own_size

    def reported(self, cfg: TrackerConfig) -> Box3D:
        """The object's box: its cluster, or inside a bigger (merged) cluster its own first
        box standing on the cluster's bottom at the cluster's horizontal centre (carried: the
        gripper is above it)."""
        b = self.box
        if self.in_own_box(cfg):
            return b
        bottom = b.center[2] - b.size[2] / 2
        centre = np.array([b.center[0], b.center[1], bottom + self.first.size[2] / 2])
        return Box3D(centre, self.first.size, self.first.rotation, b.frame_id)


def _size_change(a: np.ndarray, b: np.ndarray) -> float:
    """L1 change of the sorted extents (yaw-independent), metres."""
    return float(np.abs(np.sort(a) - np.sort(b)).sum())


def _same_box(answer: Box3D | None, candidates: list[Box3D]) -> int | None:
    """The candidate an answer box is (the engine returns the chosen candidate's box), or
    None (no answer, or a box the model drew itself)."""
    if answer is None:
        return None
    return next((j for j, c in enumerate(candidates)
                 if np.linalg.norm(c.center - answer.center) <= _SAME_BOX_M), None)


def _same_cluster(a: Box3D, b: Box3D, cfg: TrackerConfig) -> bool:
    """Two frames' boxes of one resting cluster: the same place and size."""
    return (float(np.linalg.norm(a.center - b.center)) <= cfg.gate
            and _size_change(a.size, b.size) <= cfg.own_size)


def _inside_fraction(box: Box3D, candidates: list[Box3D]) -> np.ndarray:
    """Fraction of ``box``'s volume inside each candidate (0 for a flat box)."""
    iou = iou_3d_matrix([box], candidates)[0]
    vol = np.array([c.volume for c in candidates])
    inter = iou * (box.volume + vol) / (1.0 + iou)
    return inter / box.volume if box.volume > 0 else np.zeros(len(candidates))


def _assign(cost: np.ndarray, unmatched: float) -> dict[int, int]:
    """Row -> column of the cheapest one-to-one matching where leaving a row or a column out
    costs ``unmatched`` each (pairs costing more than two of those stay apart)."""
    from scipy.optimize import linear_sum_assignment

    n, m = cost.shape
    big = 1e9
    full = np.full((n + m, m + n), big)
    full[:n, :m] = np.where(np.isfinite(cost) & (cost <= 2 * unmatched), cost, big)
    full[:n, m:][np.arange(n), np.arange(n)] = unmatched
    full[n:, :m][np.arange(m), np.arange(m)] = unmatched
    full[n:, m:] = 0.0
    r, c = linear_sum_assignment(full)
    return {int(i): int(j) for i, j in zip(r, c, strict=True) if i < n and j < m
            and full[i, j] < big}


class GoalTracker:
    """Follows named objects through an episode (``reset()`` starts the next one).

    Args:
        names: the objects to follow (the goal's object names).
        config: gates.
        landmarks: names of objects expected to stay put (the goal's reference object).
    """

    def __init__(self, names: list[str], config: TrackerConfig | None = None,
                 landmarks: list[str] | tuple[str, ...] = ()) -> None:
        self.names = list(dict.fromkeys(names))
        self.landmarks = set(landmarks)
        self.config = config or TrackerConfig()
        self._tracks: dict[str, _Track] = {}
        # clusters no goal object took, as last seen, with the frames since (resting
        # neighbours: remembered while merged into a passing cluster)
        self._others: list[tuple[Box3D, int]] = []
        self._tool: np.ndarray | None = None  # the tool point in the last frame
        self._shift: dict[str, np.ndarray] = {}  # this frame: grasped objects' tool motion

    def reset(self) -> None:
        self._tracks = {}
        self._others = []
        self._tool = None

    def drop(self, name: str) -> None:
        """Forget an object's track (its box this frame was refused, e.g. it was the robot's
        gripper): the model's next answer starts it afresh."""
        self._tracks.pop(name, None)

    def update(
        self, answers: dict[str, Box3D | None], candidates: list[Box3D],
        tool: np.ndarray | None = None,
    ) -> dict[str, Tracked]:
        """One frame: the model's answer per name (None = no answer), the frame's specialist
        candidates and the robot's tool point when known (all in one frame). Returns the names
        that have a box now."""
        cfg = self.config
        chosen = {name: _same_box(answers.get(name), candidates) for name in self.names}
        followed = [n for n in self.names if n in self._tracks]
        self._shift = {}
        if tool is not None and self._tool is not None:
            # the tool was in an object's box (its own extents) last frame: the object is held
            # and moves with the tool (a lift can be faster than a resting object may jump)
            tool = np.asarray(tool, float)
            for name in followed:
                t = self._tracks[name]
                if name not in self.landmarks and bool(
                        t.reported(cfg).contains(self._tool[None], cfg.grasp_margin)[0]):
                    self._shift[name] = tool - self._tool
        self._tool = None if tool is None else np.asarray(tool, float).copy()
        match = self._containing(followed, candidates)
        held = {i for i, j in match.items() if j is None}
        match = {i: j for i, j in match.items() if j is not None}
        taken = set(match.values())
        # The rest (objects whose cluster vanished: merged, or moved away): candidates that a
        # recently seen resting cluster explains (the same place and size: a neighbour) are
        # not theirs; of the others, a one-to-one assignment by centre
        # distance from the predicted centre plus the size change from the object's first box,
        # minus the answer bonus; a pair costing more than ``2 * unmatched`` stays apart.
        loose = [i for i in range(len(followed)) if i not in match and i not in held]
        free = [j for j in range(len(candidates))
                if j not in taken and not self._explained(candidates[j])]
        if loose and free:
            tracks = [self._tracks[followed[i]] for i in loose]
            preds = [self._predicted(followed[i]).center for i in loose]
            dist = np.array([[float(np.linalg.norm(candidates[j].center - p)) for j in free]
                             for p in preds])
            cost = dist + cfg.size_weight * np.array(
                [[_size_change(t.size0, candidates[j].size) for j in free] for t in tracks])
            for r, (i, t) in enumerate(zip(loose, tracks, strict=True)):
                if chosen[followed[i]] in free:
                    cost[r, free.index(chosen[followed[i]])] -= cfg.answer_bonus
                # an object in its own box (not merged into a carried cluster) moves at most
                # ``rest_move`` plus its speed: its cluster missing more likely means it is
                # hidden than that it jumped to a passing cluster
                if t.in_own_box(cfg) and followed[i] not in self._shift:
                    reach = cfg.rest_move + float(np.linalg.norm(t.velocity))
                    cost[r, dist[r] > reach] = np.inf
            for r, c in _assign(cost, cfg.unmatched).items():
                match[loose[r]] = free[c]
        out: dict[str, Tracked] = {}
        for i, name in enumerate(followed):
            t = self._tracks[name]
            j = match.get(i)
            if not candidates and answers.get(name) is not None:
                # no specialist output (no LiDAR/depth, or an empty scan): the model's own box
                # is all there is this frame
                t.box, t.first, t.velocity, t.missed = answers[name], answers[name], np.zeros(3), 0
                out[name] = Tracked(t.box, "answer")
                continue
            if i in held:  # inside a cluster it does not own: seen, keeps its box
                out[name] = Tracked(t.reported(cfg), "held")
                continue
            if j is None:
                t.missed += 1
                if t.missed > cfg.coast_frames:
                    del self._tracks[name]
                    continue
                out[name] = Tracked(t.reported(cfg), "held")
                continue
            new = candidates[j]
            # velocity only between boxes of one rigid thing: a merge or split moves the centre
            # without moving the object
            same = _size_change(new.size, t.box.size) <= cfg.own_size
            t.velocity = (new.center - t.box.center) / (1 + t.missed) if same else np.zeros(3)
            t.box, t.missed = new, 0
            out[name] = Tracked(t.reported(cfg), "tracked")
        claimed = set(match.values())
        # New tracks start at the model's answer: a candidate nobody took, or (in a frame
        # without candidates) the model's own box.
        for name in self.names:
            if name in self._tracks:
                continue
            j, a = chosen[name], answers.get(name)
            if j is not None and j not in claimed:
                box = candidates[j]
                claimed.add(j)
            elif a is not None and not candidates:
                box = a
            else:
                continue
            self._tracks[name] = _Track(box, np.zeros(3), box)
            out[name] = Tracked(box, "answer")
        seen = [c for j, c in enumerate(candidates) if j not in claimed]
        kept = [(b, age + 1) for b, age in self._others
                if age + 1 <= cfg.memory_frames and not any(_same_cluster(b, c, cfg)
                                                            for c in candidates)]
        self._others = [(c, 0) for c in seen] + kept
        return out

    def _explained(self, cand: Box3D) -> bool:
        """A recently seen cluster no goal object took had this size at this place (a resting
        object)."""
        return any(_same_cluster(o, cand, self.config) for o, _ in self._others)

    def _predicted(self, name: str) -> Box3D:
        t = self._tracks[name]
        step = self._shift.get(name, t.velocity)
        return Box3D(t.box.center + step, t.box.size, t.box.rotation, t.box.frame_id)

    def _containing(self, followed: list[str], candidates: list[Box3D]) -> dict[int, int | None]:
        """Followed objects whose predicted box lies mostly (``merge_inside``) inside a
        candidate: a resting object's own cluster, or the cluster it merged into (grasped with
        the gripper). Index -> candidate, or None (held) when another followed object takes that
        candidate: the one moving faster (then the nearer) wins, a resting one keeps its box."""
        if not candidates:
            return {}
        best: dict[int, tuple[int, float]] = {}
        held: set[int] = set()
        for i, name in enumerate(followed):
            pred = self._predicted(name)
            inside = _inside_fraction(pred, candidates)
            j = int(np.argmax(inside))
            if inside[j] < self.config.merge_inside:
                continue
            size0 = self._tracks[name].size0
            if name in self.landmarks and _size_change(candidates[j].size, size0) > \
                    self.config.own_size:
                held.add(i)  # a landmark inside a bigger cluster: something came close to it
                continue
            best[i] = (j, float(np.linalg.norm(candidates[j].center - pred.center)))

        def rank(i: int) -> tuple:
            return (-float(np.linalg.norm(self._tracks[followed[i]].velocity)), best[i][1], i)

        out: dict[int, int | None] = dict.fromkeys(held)
        for i, (j, _) in best.items():
            winner = min((k for k in best if best[k][0] == j), key=rank)
            out[i] = j if winner == i else None
        return out

    # ---- state for resumable offline jobs (JSON-able, exact floats) ---------------------------
    def state_dict(self) -> dict:
        return {
            "tracks": {n: {"box": t.box.state_dict(), "velocity": t.velocity.tolist(),
                           "first": t.first.state_dict(), "missed": t.missed}
                       for n, t in self._tracks.items()},
            "others": [[b.state_dict(), age] for b, age in self._others],
            "tool": None if self._tool is None else self._tool.tolist(),
        }

    def load_state_dict(self, d: dict) -> None:
        self._tracks = {
            n: _Track(Box3D.from_state_dict(v["box"]), np.asarray(v["velocity"], float),
                      Box3D.from_state_dict(v["first"]), int(v["missed"]))
            for n, v in d["tracks"].items()
        }
        self._others = [(Box3D.from_state_dict(b), int(age)) for b, age in d["others"]]
        self._tool = None if d.get("tool") is None else np.asarray(d["tool"], float)
