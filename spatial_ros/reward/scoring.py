"""Per-frame scoring: grounded 3D state -> progress in [0, 1], reward, success and an explanation.

Progress follows the simulator's truth definition (``spatial_ros.sim.trajectory``)::

    progress_t = clip(1 - remaining_t / remaining_0, 0, 1)

with ``remaining`` the metres to the goal region (:func:`reward.goal_measure.measure`) and
``remaining_0`` its value at the episode's first grounded frame (floored at ``min_remaining0`` so
that a goal that starts satisfied does not divide by zero). With ground-truth boxes and no
smoothing, progress equals the simulator's truth progress exactly (with the tool point, its
``staged_progress()``).

With the robot's tool point in the state (``SceneState.tool``, e.g. the gripper's TCP from /tf)
and ``reach_weight`` > 0, progress is staged (:func:`reward.goal_measure.staged_progress`):
``reach_weight`` of it for bringing the tool to the target, the rest for the goal region. The
reach stage ends for good once the robot has taken the target: the target is more than
``reach_moved`` from its start after the tool touched it (came within ``reach_touch`` of its box)
where it rested, or in two grounded frames in a row while the tool touches it (a grasp and lift
between two frames). A grounded box that jitters by a few centimetres while the gripper is
elsewhere (perception noise, a neighbour's points), or that jumps for one frame onto the cluster
of the gripper carrying another object, therefore never ends it: an episode where the robot
never takes the target gets no reach share for it. With ground-truth boxes the progress is the
simulator's (a target moves only in the gripper, with the tool point inside its box: reach is
1 from either rule). Whether an episode is staged is decided at its first grounded
frame (a tool point there); a later frame without one keeps the last tool distance.

A frame can be *refused* (:meth:`EpisodeScorer.refuse`, e.g. its target resolves to the robot's
own gripper): it is labelled like an ungrounded frame (progress held, reward 0) with success
false, and nothing of it enters the episode's state.

Smoothing is causal: a frame's output depends only on that frame and earlier ones, so online and
offline labels are identical and no future frame leaks into the past. ``remaining`` is smoothed;
progress and success come from the smoothed value (success also needs this frame's side
conditions, e.g. the target resting on the table, unsmoothed so that a goal reached on an
episode's last frames is not reported late). Methods: ``median`` (median of the last
``median_window`` frames; preserves monotone sequences up to a lag of ``(window - 1) / 2`` frames
and removes single-frame outliers), ``ema`` (exponential moving average, weight ``ema_alpha`` on
the newest frame) or ``none``.

Reward of frame t (the transition from frame t-1 into frame t; frame 0 gets 0 in the difference
modes):

* ``delta``: progress_t - progress_{t-1} (sums to the episode's net progress);
* ``potential``: gamma * progress_t - progress_{t-1} (potential-based shaping with phi =
  progress, Ng et al. 1999: keeps the optimal policy of any task reward it is added to);
* ``progress``: progress_t (dense, SpatialVLM-style).

plus ``success_bonus`` on frames that are in the goal region. A frame whose objects were not
grounded keeps the last smoothed state (progress held, reward 0, ``grounded`` false, the
explanation says what was missing) - never a silent zero.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

import numpy as np

from spatial_ros.config import param
from spatial_ros.errors import ConfigError
from spatial_ros.reward.goal import (
    REACH_MOVED,
    REACH_WEIGHT,
    Goal,
    Tolerances,
)
from spatial_ros.reward.goal_measure import (
    SceneState,
    measure,
    staged_progress,
    target_moved,
    tool_distance,
)

REWARD_MODES = ("delta", "potential", "progress")
REACH_TOUCH = 0.05  # metres: the tool this close to the target's box touches it
SMOOTHING = ("none", "ema", "median")


@dataclass
class ScoringConfig:
    """How progress, reward and success are computed (units: metres, frames)."""

    reward_mode: str = param("delta", "reward per frame: delta (progress difference) | "
                             "potential (gamma * progress_t - progress_t-1) | progress")
    gamma: float = param(0.99, "discount of the potential-based shaping, (0, 1]")
    success_bonus: float = param(0.0, "added to the reward of frames in the goal region")
    smoothing: str = param("median", "causal smoothing of the measured state: none | ema | median")
    ema_alpha: float = param(0.5, "ema: weight of the newest frame, (0, 1]")
    median_window: int = param(3, "median: frames in the causal window (odd, >= 1)")
    success_tolerance: float = param(0.01, "remaining distance to the goal region that still "
                                     "counts as success (m)")
    rest_tolerance: float = param(0.02, "target bottom within this of the table top counts as "
                                  "resting (m)")
    next_to_gap: float = param(0.10, "'next to': largest footprint gap (m)")
    side_clearance: float = param(0.02, "left/right/front/behind: footprints at least this far "
                                  "apart (m)")
    side_depth: float = param(0.15, "left/right/front/behind: largest offset along the other "
                              "horizontal axis (m)")
    lift_tolerance: float = param(0.03, "lift: half-width of the height band (m)")
    move_amount: float = param(0.15, "away from / towards: default distance change (m)")
    min_remaining0: float = param(0.02, "floor of the first frame's remaining distance used to "
                                  "normalise progress (m)")
    reach_weight: float = param(REACH_WEIGHT, "share of progress for bringing the robot's tool "
                                "to the target, [0, 1) (used when the tool point is known)")
    reach_moved: float = param(REACH_MOVED, "the target moving this far from its start, once "
                               "the tool has touched it, ends the reach stage (m)")
    reach_touch: float = param(REACH_TOUCH, "the tool within this of the target's box counts as "
                               "touching it (m): only a target the robot touched ends the reach "
                               "stage by moving (box jitter does not)")

    def __post_init__(self) -> None:
        bad = []
        if self.reward_mode not in REWARD_MODES:
            bad.append(f"reward_mode={self.reward_mode!r} (one of {', '.join(REWARD_MODES)})")
        if self.smoothing not in SMOOTHING:
            bad.append(f"smoothing={self.smoothing!r} (one of {', '.join(SMOOTHING)})")
        if not 0.0 < self.gamma <= 1.0:
            bad.append(f"gamma={self.gamma} (must be in (0, 1])")
        if not 0.0 < self.ema_alpha <= 1.0:
            bad.append(f"ema_alpha={self.ema_alpha} (must be in (0, 1])")
        if self.median_window < 1 or self.median_window % 2 == 0:
            bad.append(f"median_window={self.median_window} (must be odd and >= 1)")
        if not math.isfinite(self.success_bonus):
            bad.append(f"success_bonus={self.success_bonus} (must be finite)")
        if not 0.0 <= self.reach_weight < 1.0:
            bad.append(f"reach_weight={self.reach_weight} (must be in [0, 1))")
        if not self.reach_moved > 0:
            bad.append(f"reach_moved={self.reach_moved} (must be > 0 m)")
        if not (math.isfinite(self.reach_touch) and self.reach_touch >= 0):
            bad.append(f"reach_touch={self.reach_touch} (must be >= 0 m)")
        if not self.min_remaining0 > 0:
            bad.append(f"min_remaining0={self.min_remaining0} (must be > 0 m)")
        if bad:
            raise ConfigError("ScoringConfig: invalid " + "; ".join(bad))
        self.tolerances  # noqa: B018 - validates the metre tolerances (ConfigError)

    @property
    def tolerances(self) -> Tolerances:
        return Tolerances(
            next_to_gap=self.next_to_gap,
            side_clearance=self.side_clearance,
            side_depth=self.side_depth,
            lift=self.lift_tolerance,
            rest=self.rest_tolerance,
            move_amount=self.move_amount,
            success=self.success_tolerance,
        )


class CausalSmoother:
    """Causal smoothing of a vector per frame (median of the last N, EMA, or none)."""

    def __init__(self, method: str, alpha: float = 0.5, window: int = 3) -> None:
        if method not in SMOOTHING:
            raise ConfigError(f"smoothing must be one of {SMOOTHING}, got {method!r}")
        self.method, self.alpha, self.window = method, alpha, window
        self._hist: deque[np.ndarray] = deque(maxlen=window)
        self._ema: np.ndarray | None = None

    def reset(self) -> None:
        self._hist.clear()
        self._ema = None

    def update(self, x: np.ndarray) -> np.ndarray:
        """Add the newest frame's values; return their smoothed values (same shape)."""
        x = np.asarray(x, dtype=np.float64)
        if self.method == "none":
            return x.copy()
        if self.method == "ema":
            self._ema = x.copy() if self._ema is None else (
                self.alpha * x + (1.0 - self.alpha) * self._ema
            )
            return self._ema.copy()
        self._hist.append(x.copy())
        return np.median(np.stack(self._hist), axis=0)

    def state_dict(self) -> dict:
        return {
            "hist": [h.tolist() for h in self._hist],
            "ema": None if self._ema is None else self._ema.tolist(),
        }

    def load_state_dict(self, d: dict) -> None:
        self._hist = deque((np.asarray(h, float) for h in d["hist"]), maxlen=self.window)
        self._ema = None if d["ema"] is None else np.asarray(d["ema"], float)


@dataclass(frozen=True)
class FrameScore:
    """The score of one frame.

    Attributes:
        progress: [0, 1] towards the goal.
        reward: see the module docstring (dimensionless).
        success: the (smoothed) state is in the goal region within the tolerances.
        remaining: smoothed metres to the goal region (NaN before the first grounded frame).
        raw_remaining: this frame's unsmoothed metres (NaN when not grounded).
        value: this frame's goal quantity (metres; NaN when not grounded).
        grounded: the goal's objects were found in this frame.
        explanation: short text, e.g. "gap(red cube, blue bowl) = 0.31 m (goal <= 0.10 m);
            progress 0.42".
    """

    progress: float
    reward: float
    success: bool
    remaining: float
    raw_remaining: float
    value: float
    grounded: bool
    explanation: str


class EpisodeScorer:
    """Scores the frames of one episode in order (causal; ``reset()`` starts a new episode).

    Args:
        goal: the parsed goal.
        config: scoring configuration.
    """

    def __init__(self, goal: Goal, config: ScoringConfig | None = None) -> None:
        self.goal = goal
        self.config = config or ScoringConfig()
        self._tol = self.config.tolerances
        self._smoother = CausalSmoother(
            self.config.smoothing, self.config.ema_alpha, self.config.median_window
        )
        self.reset()

    def reset(self) -> None:
        """Start a new episode (no frame seen)."""
        self._smoother.reset()
        self._start: SceneState | None = None
        self._rem0: float | None = None
        self._prev_progress: float | None = None
        self._progress = 0.0
        self._remaining = math.nan
        self._success = False
        self._staged: bool | None = None  # decided at the first grounded frame
        self._reach0: float | None = None
        self._reach = math.nan  # latest tool-to-target metres (held when the tool is unknown)
        self._reached = False
        self._touched = False  # the tool came within reach_touch of the target at its start
        self._pending = False  # last frame: moved while the tool touched it for the first time

    def score(self, state: SceneState | None, missing_reason: str = "") -> FrameScore:
        """Score the next frame of the episode.

        Args:
            state: the goal's objects in this frame, or None when grounding failed.
            missing_reason: why ``state`` is None / incomplete (goes into the explanation).
        """
        missing = ["objects"] if state is None else state.missing(self.goal)
        if missing:
            why = missing_reason or f"not found: {', '.join(missing)}"
            return self._emit(math.nan, math.nan, False, f"{why}; progress held")
        if self._start is None:
            self._start = state
        cfg = self.config
        m = measure(self.goal, state, self._start, self._tol)
        if self._rem0 is None:
            self._rem0 = max(m.remaining, cfg.min_remaining0)
        if self._staged is None:
            self._staged = state.tool is not None and cfg.reach_weight > 0
        reach_text = ""
        if self._staged:
            touching = False
            if state.tool is not None:
                self._reach = tool_distance(state.tool, state.target)
                touching = self._reach <= cfg.reach_touch
            self._take(target_moved(state.target, self._start.target, cfg.reach_moved),
                       touching)
            if self._reach0 is None:
                self._reach0 = max(self._reach, cfg.min_remaining0)
            reach_text = ("; reach done" if self._reached
                          else f"; tool {self._reach:.2f} m from {self.goal.target.name}")
        smoothed = self._smoother.update([m.remaining, self._reach if self._staged else 0.0])
        self._remaining = float(smoothed[0])
        self._progress = float(np.clip(1.0 - self._remaining / self._rem0, 0.0, 1.0))
        if self._staged:
            reach = 1.0 if self._reached else float(
                np.clip(1.0 - smoothed[1] / self._reach0, 0.0, 1.0))
            self._progress = staged_progress(self._progress, reach, cfg.reach_weight)
        self._success = bool(self._remaining <= self._tol.success and m.conditions)
        text = (f"{m.text}{reach_text}; progress {self._progress:.2f}"
                + (" (success)" if self._success else ""))
        return self._emit(m.remaining, m.value, True, text)

    def _take(self, moved: bool, touching: bool) -> None:
        """Whether the robot has taken the target (ends the reach stage for good): it moved
        after the tool touched it where it rested, or it moved while the tool touched it for the
        first time and is still moved and touched in the next grounded frame (a grasp and lift
        between two frames; a box that jumps onto the gripper for one frame is not one)."""
        if self._reached:
            return
        if moved and (self._touched or (self._pending and touching)):
            self._reached = True
        self._pending = moved and touching and not self._reached
        self._touched = self._touched or (touching and not moved)

    def refuse(self, reason: str) -> FrameScore:
        """Label the next frame without using its state (e.g. the target resolved to the
        robot's gripper): progress held, reward 0, success false, not grounded; ``reason`` goes
        into the explanation. The episode's state (start, smoothing, reach) is untouched."""
        return self._emit(math.nan, math.nan, False, f"{reason}; frame refused, progress held",
                          success=False)

    def _emit(self, raw: float, value: float, grounded: bool, text: str,
              success: bool | None = None) -> FrameScore:
        cfg = self.config
        success = self._success if success is None else success
        p, prev = self._progress, self._prev_progress
        if cfg.reward_mode == "progress":
            reward = p
        elif prev is None or not grounded:
            reward = 0.0
        elif cfg.reward_mode == "delta":
            reward = p - prev
        else:
            reward = cfg.gamma * p - prev
        if success:
            reward += cfg.success_bonus
        if grounded:
            self._prev_progress = p
        return FrameScore(float(p), float(reward), success, self._remaining, float(raw),
                          float(value), grounded, text)

    # ---- state for resumable offline jobs (JSON-able, exact floats) ---------------------------
    def state_dict(self) -> dict:
        return {
            "start": None if self._start is None else self._start.to_json(),
            "rem0": self._rem0,
            "prev_progress": self._prev_progress,
            "progress": self._progress,
            "remaining": None if math.isnan(self._remaining) else self._remaining,
            "success": self._success,
            "smoother": self._smoother.state_dict(),
            "staged": self._staged,
            "reach0": self._reach0,
            "reach": None if math.isnan(self._reach) else self._reach,
            "reached": self._reached,
            "touched": self._touched,
            "pending": self._pending,
        }

    def load_state_dict(self, d: dict) -> None:
        self._start = None if d["start"] is None else SceneState.from_json(d["start"])
        self._rem0 = d["rem0"]
        self._prev_progress = d["prev_progress"]
        self._progress = d["progress"]
        self._remaining = math.nan if d["remaining"] is None else d["remaining"]
        self._success = d["success"]
        self._smoother.load_state_dict(d["smoother"])
        self._staged = d.get("staged")
        self._reach0 = d.get("reach0")
        self._reach = math.nan if d.get("reach") is None else d["reach"]
        self._reached = bool(d.get("reached", False))
        # a state saved before reach_touch existed ended the stage on the move alone
        self._touched = bool(d.get("touched", self._reached))
        self._pending = bool(d.get("pending", False))


def score_episode(
    goal: Goal, states: list[SceneState | None], config: ScoringConfig | None = None
) -> list[FrameScore]:
    """Score a whole episode (the same causal computation as frame-by-frame online scoring)."""
    scorer = EpisodeScorer(goal, config)
    return [scorer.score(s) for s in states]
