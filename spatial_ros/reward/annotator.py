"""RewardAnnotator: sensor frames + a goal in words -> one RewardLabel per frame (ROS-free).

Grounding (where the goal's objects are) comes from one of:

* ``perception``: the ``PerceptionPipeline`` (specialist candidates -> VLM engine with specialist
  box prompts), queried with the goal's object phrases ("the red cube", "the blue bowl");
* ``truth``: a ground-truth box file (``truth.jsonl`` written by ``spatial-ros sim``), matched by
  image stamp and by label + colour; separates the reward logic from perception;
* objects passed to :meth:`RewardAnnotator.label` by the caller (any grounding source).

With perception grounding, the goal's objects are followed from frame to frame
(``spatial_ros.reward.tracking``, ``track_objects``): the model's answer starts a track, later
frames continue it with the specialist cluster that contains it or, after a move, the nearest
cluster no resting object explains. An object carried in the gripper (one LiDAR cluster with the
gripper, which the model rarely names) is still measured, and a frame where the model names a
neighbour does not make progress jump.

Boxes are in the z-up ``output_frame`` (base_link); "the robot" is that frame's origin. The
camera viewpoint (for left/right/front/behind) comes from the frame's transforms. Scoring is
``spatial_ros.reward.scoring`` (causal: online and offline labels are identical).

Words of the goal its parser could not place are reported (a warning, :attr:`goal_note`, the
episode's first label); a frame whose target resolves to the robot's own gripper is refused
(``spatial_ros.reward.gripper``).

``config/reward.yaml`` is GENERATED from :class:`RewardAnnotatorConfig` (the node's parameters,
``spatial_ros.reward.annotator_config``): ``python -m spatial_ros.reward.annotator >
config/reward.yaml``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from spatial_ros.boxfile import BoxRecord
from spatial_ros.errors import CalibrationError, ConfigError
from spatial_ros.reward.annotator_config import (  # noqa: F401 - re-exported (their old home)
    CONFIG_FILE,
    GOAL_PARSERS,
    GROUNDING_MODES,
    NODE_NAME,
    RewardAnnotatorConfig,
    config_yaml,
)
from spatial_ros.reward.goal import Goal, ObjectRef, parse_goal
from spatial_ros.reward.goal_measure import SceneState
from spatial_ros.reward.goal_vlm import parse_goal_with_vlm
from spatial_ros.reward.gripper import GripperGuard
from spatial_ros.reward.scoring import EpisodeScorer, FrameScore
from spatial_ros.reward.tracking import GoalTracker
from spatial_ros.reward.truth import (  # noqa: F401 - re-exported (their old home)
    TruthGrounding,
    _norm,
    match_records,
)
from spatial_ros.spatial.predicates import Viewpoint
from spatial_ros.types import Box3D, Candidate, GroundedObject, SensorFrame
from spatial_ros.user_text import bounded_text

log = logging.getLogger(__name__)


@dataclass
class RewardLabel:
    """The reward label of one frame (core twin of msg/RewardLabel, plus offline columns).

    Attributes:
        stamp_ns: the source image's stamp.
        frame_id: frame of the boxes the label was computed from (z up).
        goal: the goal in words, as given.
        episode_index: episode number (offline datasets).
        frame_index: 0-based index of the frame within the episode.
        timestamp: seconds since the episode's first frame.
        reward, progress, success, explanation: see ``spatial_ros.reward.scoring``.
        remaining: smoothed metres to the goal region (NaN before the first grounded frame).
        grounded: the goal's objects were found in this frame.
        refused: the frame was refused (its target resolved to the robot's gripper).
    """

    stamp_ns: int
    frame_id: str
    goal: str
    episode_index: int
    frame_index: int
    timestamp: float
    reward: float
    progress: float
    success: bool
    explanation: str
    remaining: float
    grounded: bool
    refused: bool = False


# ----------------------------------------------------------------------------------------------
# The annotator
# ----------------------------------------------------------------------------------------------


class RewardAnnotator:
    """Labels the frames of episodes against a goal.

    Args:
        config: the configuration (also the node's parameters).
        backend: a VLMBackend for perception grounding (tests, a shared model); default: load
            ``config.model_path`` on :meth:`load`.
        truth: ground-truth grounding; default: ``config.truth_path`` when grounding=truth.
        truth_episodes: with truth grounding, start a new episode whenever the truth frame's
            episode number changes (one bag holding several simulated episodes).

    Raises:
        ConfigError: truth grounding without a truth source.
    """

    def __init__(
        self,
        config: RewardAnnotatorConfig | None = None,
        *,
        backend=None,
        truth: TruthGrounding | None = None,
        truth_episodes: bool = False,
    ) -> None:
        self.config = config or RewardAnnotatorConfig()
        cfg = self.config
        if cfg.grounding == "truth" and truth is None:
            if not cfg.truth_path:
                raise ConfigError("grounding=truth needs truth_path (a truth.jsonl box file)")
            truth = TruthGrounding.from_file(cfg.truth_path)
        self.truth = truth
        self.truth_episodes = truth_episodes
        self._backend = backend
        self.pipeline = None
        self.goal: Goal | None = None
        self.goal_text = ""
        self.scorer: EpisodeScorer | None = None
        self.tracker: GoalTracker | None = None
        self.episode_index = 0
        self._frame_index = 0
        self._t0_ns = 0
        self._truth_episode: int | None = None
        self._tool_missing = 0  # frames without the tool frame's transform (warned, counted)
        self.guard = GripperGuard(cfg.gripper_guard)
        self.gripper_refused = 0  # frames refused because the target was the gripper
        self.last_state: SceneState | None = None  # the last labelled frame's state
        self.goal_note = ""  # words of the active goal the parser could not place, for users
        self.goal_source = ""  # how the active goal was parsed: vlm | templates (...)
        self._goal_pending = ""  # goal_parser=vlm: the configured goal, parsed in load()
        if cfg.goal.strip():
            if cfg.goal_parser == "vlm" and cfg.grounding == "perception":
                self._goal_pending = cfg.goal
            else:
                self.set_goal(cfg.goal)

    # ---- lifecycle ---------------------------------------------------------------------------
    def load(self) -> None:
        """Perception grounding: build the specialists and load the VLM (ModelError when the
        model directory is missing). Truth grounding: nothing to load."""
        if self.config.grounding != "perception" or self.pipeline is not None:
            return
        from spatial_ros.perception import PerceptionPipeline

        pipe = PerceptionPipeline(self.config.perception(), backend=self._backend)
        pipe.load()
        self.pipeline = pipe
        if self._goal_pending:
            text, self._goal_pending = self._goal_pending, ""
            self.set_goal(text)

    def unload(self) -> None:
        if self.pipeline is not None:
            self.pipeline.unload()
            self.pipeline = None

    # ---- goal and episodes -------------------------------------------------------------------
    def set_goal(self, text: str, warn: bool = True) -> Goal:
        """Parse and activate a goal; starts a new episode (the next episode number once the
        current one has frames). GoalError when unparseable, TextTooLong over
        ``max_goal_chars`` (checked first): the previous goal stays active. Control characters
        are removed (``user_text.strip_controls``). Words the parser could not place are in
        :attr:`goal_note` (also on the episode's first label) and, with ``warn``, logged as a
        warning."""
        text = bounded_text(text, "goal", self.config.max_goal_chars)
        engine = getattr(self.pipeline, "engine", None)
        if self.config.goal_parser == "vlm" and engine is not None:
            goal, self.goal_source = parse_goal_with_vlm(text, engine.backend)
            log.info("goal %r -> %s (%s)", text, goal.text, self.goal_source)
        else:
            goal, self.goal_source = parse_goal(text), "templates"
        self.goal, self.goal_text = goal, " ".join(str(text).split())
        self.goal_note = ignored_note(goal)
        if self.goal_note and warn:
            log.warning("goal %r: %s; objective: %s", _short(self.goal_text), self.goal_note,
                        self.objective)
        self.scorer = EpisodeScorer(goal, self.config.scoring)
        # the reference is a landmark: it keeps its box while something passes close to it
        self.tracker = GoalTracker([r.name for r in goal.required], self.config.tracker,
                                   landmarks=[r.name for r in goal.required if r != goal.target])
        self.reset(None if self._frame_index > 0 else self.episode_index)
        return goal

    @property
    def objective(self) -> str:
        """The active objective in words ('' without a goal)."""
        return self.goal.objective(self.config.tolerances).describe() if self.goal else ""

    def reset(self, episode_index: int | None = None) -> None:
        """Start a new episode (``episode_index`` default: the next number)."""
        self.episode_index = self.episode_index + 1 if episode_index is None else episode_index
        self._frame_index = 0
        self._t0_ns = 0
        if self.scorer is not None:
            self.scorer.reset()
        if self.tracker is not None:
            self.tracker.reset()
        self.guard.reset()
        self.last_state = None

    # ---- labelling ---------------------------------------------------------------------------
    def label(
        self, frame: SensorFrame, objects: list[GroundedObject] | None = None
    ) -> RewardLabel:
        """Label the next frame of the current episode.

        Args:
            frame: the synchronized sensor frame (its stamp and transforms are used; the image
                and clouds only by perception grounding).
            objects: grounded objects in ``output_frame`` (matched to the goal by query phrase,
                else by a unique label; not tracked); None = use the configured grounding.

        Raises:
            ConfigError: no goal set, or perception grounding before :meth:`load`.
            CalibrationError: the goal needs the camera viewpoint and the frame's transforms do
                not connect the camera to ``output_frame``.
            ModelError: the VLM failed on this frame.
        """
        if self.goal is None:
            raise ConfigError("no goal set: pass goal in the config or call set_goal()")
        state, reason, frame_id, held, cand = self._ground(frame, objects)
        if self._frame_index == 0:
            self._t0_ns = frame.stamp_ns
        refusal = self._refusal(state, cand)
        if refusal:
            sc: FrameScore = self.scorer.refuse(refusal)
            self.gripper_refused += 1
            if self.tracker is not None:
                self.tracker.drop(self.goal.target.name)  # ground it afresh next frame
            if self.gripper_refused in (1, 100) or self.gripper_refused % 1000 == 0:
                log.warning("goal '%s': %s at stamp %d (%d frames refused so far)",
                            _short(self.goal_text), refusal, frame.stamp_ns,
                            self.gripper_refused)
        else:
            sc = self.scorer.score(state, reason)
            if sc.grounded:
                self.guard.accept(state.target, state.tool)
        self.last_state = state
        explanation = sc.explanation
        if held and sc.grounded:
            explanation += f"; last box kept (hidden or merged): {', '.join(held)}"
        if self._frame_index == 0 and self.goal_note:
            explanation += f"; {self.goal_note}"
        out = RewardLabel(
            stamp_ns=int(frame.stamp_ns),
            frame_id=frame_id,
            goal=self.goal_text,
            episode_index=self.episode_index,
            frame_index=self._frame_index,
            timestamp=(frame.stamp_ns - self._t0_ns) / 1e9,
            reward=sc.reward,
            progress=sc.progress,
            success=sc.success,
            explanation=explanation,
            remaining=sc.remaining,
            grounded=sc.grounded,
            refused=bool(refusal),
        )
        self._frame_index += 1
        return out

    def _refusal(self, state: SceneState | None, cand: Candidate | None) -> str:
        """Why this frame's target cannot be scored ('' = it can): it is the robot's gripper
        (``spatial_ros.reward.gripper``)."""
        if not self.config.refuse_gripper or state is None or state.target is None:
            return ""
        p = None
        if state.tool is None and cand is not None and self.guard.config.shape_p <= 1:
            from spatial_ros.language.shape import tabletop_posterior

            post = tabletop_posterior(cand.box, cand.points)
            p = None if post is None else post.get("gripper")
        return self.guard.check(state.target, state.tool, p)

    def label_frames(
        self,
        frames: Iterable[SensorFrame],
        objects: Iterable[list[GroundedObject] | None] | None = None,
    ) -> list[RewardLabel]:
        """Label frames of the current episode in order (the same causal computation as
        :meth:`label`; ``objects``: one list per frame, or None for the configured grounding)."""
        frames = list(frames)
        objs = list(objects) if objects is not None else [None] * len(frames)
        if len(objs) != len(frames):
            raise ConfigError(f"{len(frames)} frames but {len(objs)} object lists")
        return [self.label(f, o) for f, o in zip(frames, objs, strict=True)]

    # ---- grounding ---------------------------------------------------------------------------
    def _viewpoint(self, frame: SensorFrame, frame_id: str) -> Viewpoint | None:
        tf = frame.transforms
        cam = frame.camera.frame_id if frame.camera is not None else ""
        if tf is not None and cam and tf.can_transform(frame_id, cam):
            return Viewpoint.from_camera_pose(tf.lookup(frame_id, cam))
        if self.goal.needs_view:
            raise CalibrationError(
                f"goal '{self.goal_text}' is seen from the camera, but no transform connects "
                f"'{cam}' to '{frame_id}': publish /tf_static or set static_transforms"
            )
        return None

    def _ground(
        self, frame: SensorFrame, objects: list[GroundedObject] | None
    ) -> tuple[SceneState | None, str, str, list[str], Candidate | None]:
        """This frame's state, why objects are missing, the boxes' frame, the names of tracked
        objects that kept an earlier box, and the specialist candidate that is the target's box
        (None when unknown or the box is not one candidate's)."""
        goal = self.goal
        frame_id = self.config.output_frame
        support = None
        held: list[str] = []
        cands: list[Candidate] = []
        if objects is None and self.config.grounding == "truth":
            tf = self.truth.lookup(frame.stamp_ns)
            if tf is None:
                return None, f"no truth frame at stamp {frame.stamp_ns}", frame_id, held, None
            if self.truth_episodes:
                ep = TruthGrounding.episode_of(tf)
                if ep is not None and ep != self._truth_episode:
                    if self._truth_episode is not None:
                        self.reset(ep)
                    else:
                        self.episode_index = ep
                    self._truth_episode = ep
            frame_id = tf.frame_id or frame_id
            support = self.truth.support_z(tf)
            boxes, reason = self._from_records(tf.objects)
            tool = self._tool(frame, frame_id)
        else:
            candidates = None
            if objects is None:
                if self.pipeline is None:
                    raise ConfigError("perception grounding: call load() before label()")
                # the target and the reference are different objects
                res = self.pipeline.process(frame, goal.phrases, distinct=True)
                cands = list(res.candidates)
                objects, candidates = res.objects, [c.box for c in cands]
            objects = [o for o in objects if o.score >= self.config.min_score]
            frame_id = next((o.box.frame_id for o in objects if o.box.frame_id), frame_id)
            boxes, reason = self._from_objects(objects)
            tool = self._tool(frame, frame_id)
            if candidates is not None and self.config.track_objects:
                boxes, reason, held = self._track(boxes, candidates, tool)
        vp = self._viewpoint(frame, frame_id)
        target = boxes.get(goal.target)
        ref = boxes.get(goal.reference) if goal.reference is not None else None
        cand = None if target is None else next(
            (c for c in cands if np.linalg.norm(c.box.center - target.center) < 1e-6), None)
        return SceneState(target, ref, vp, support, tool), reason, frame_id, held, cand

    def _tool(self, frame: SensorFrame, frame_id: str) -> np.ndarray | None:
        """The tool centre point in ``frame_id`` from the frame's transforms (None when
        ``tool_frame`` is off or not in this frame's transforms: the scorer then keeps the
        last tool distance)."""
        name, tf = self.config.tool_frame, frame.transforms
        if not name:
            return None
        if tf is None or not tf.can_transform(frame_id, name):
            self._tool_missing += 1
            if self._tool_missing in (1, 100) or self._tool_missing % 1000 == 0:
                log.warning("no transform from tool_frame '%s' to '%s' at stamp %d (%d frames "
                            "so far): the reach stage keeps its last value; publish it on /tf",
                            name, frame_id, frame.stamp_ns, self._tool_missing)
            return None
        return tf.lookup(frame_id, name)[:3, 3].copy()

    def _track(
        self, answers: dict[ObjectRef, Box3D], candidates: list[Box3D],
        tool: np.ndarray | None = None,
    ) -> tuple[dict[ObjectRef, Box3D], str, list[str]]:
        """The tracked boxes of the goal's objects (see ``spatial_ros.reward.tracking``), why
        some are missing, and which kept an earlier box."""
        refs = self.goal.required
        got = self.tracker.update({r.name: answers.get(r) for r in refs}, candidates, tool)
        boxes = {r: got[r.name].box for r in refs if r.name in got}
        held = [r.name for r in refs if r.name in got and got[r.name].status == "held"]
        why = [f"{r.name}: not grounded" for r in refs if r.name not in got]
        return boxes, "; ".join(why), held

    def _from_records(self, records: list[BoxRecord]) -> tuple[dict[ObjectRef, Box3D], str]:
        out, why = {}, []
        for ref in self.goal.required:
            found = match_records(records, ref)
            if len(found) == 1:
                out[ref] = found[0].box
            else:
                why.append(f"{ref.name}: {'ambiguous' if found else 'not in the truth frame'}")
        return out, "; ".join(why)

    def _from_objects(self, objects: list[GroundedObject]) -> tuple[dict[ObjectRef, Box3D], str]:
        out, why = {}, []
        for ref in self.goal.required:
            found = [o for o in objects if _norm(o.query) == ref.phrase]
            if not found:
                found = [o for o in objects if o.label == ref.category]
                if len(found) > 1:
                    why.append(f"{ref.name}: ambiguous")
                    continue
            if found:
                out[ref] = max(found, key=lambda o: o.score).box
            else:
                why.append(f"{ref.name}: not grounded")
        return out, "; ".join(why)

    # ---- state for resumable offline jobs ----------------------------------------------------
    def state_dict(self) -> dict:
        return {
            "episode_index": self.episode_index,
            "frame_index": self._frame_index,
            "t0_ns": self._t0_ns,
            "truth_episode": self._truth_episode,
            "scorer": self.scorer.state_dict() if self.scorer else None,
            "tracker": self.tracker.state_dict() if self.tracker else None,
            "gripper_guard": self.guard.state_dict(),
        }

    def load_state_dict(self, d: dict) -> None:
        self.episode_index = d["episode_index"]
        self._frame_index = d["frame_index"]
        self._t0_ns = d["t0_ns"]
        self._truth_episode = d["truth_episode"]
        if self.scorer is not None and d["scorer"] is not None:
            self.scorer.load_state_dict(d["scorer"])
        if self.tracker is not None:
            if d.get("tracker") is not None:
                self.tracker.load_state_dict(d["tracker"])
            else:
                self.tracker.reset()
        self.guard.load_state_dict(d.get("gripper_guard"))


def ignored_note(goal: Goal) -> str:
    """A short note naming the words of a goal its parser could not place ('' when none), e.g.
    "words not understood (ignored): 'with care'"."""
    words = " ".join(goal.ignored)
    return f"words not understood (ignored): '{_short(words, 60)}'" if words else ""


def _short(text: str, n: int = 120) -> str:
    return text if len(text) <= n else f"{text[:n]}..."


if __name__ == "__main__":
    print(config_yaml(), end="")
