"""Parameters of the reward annotator node and of ``spatial-ros reward``
(:class:`RewardAnnotatorConfig`), and the text of ``config/reward.yaml`` generated from them
(``python -m spatial_ros.reward.annotator > config/reward.yaml``)."""

from __future__ import annotations

import dataclasses
import json
import math
import textwrap
from dataclasses import dataclass
from pathlib import Path

from spatial_ros.config import field_help, param
from spatial_ros.errors import ConfigError
from spatial_ros.perception import PerceptionConfig
from spatial_ros.reward.goal import parse_goal
from spatial_ros.reward.gripper import GripperGuardConfig
from spatial_ros.reward.scoring import ScoringConfig
from spatial_ros.reward.tracking import TrackerConfig
from spatial_ros.user_text import bounded_text

GROUNDING_MODES = ("perception", "truth")
GOAL_PARSERS = ("templates", "vlm")
NODE_NAME = "reward_annotator"
CONFIG_FILE = Path(__file__).resolve().parents[2] / "config" / "reward.yaml"

_PERCEPTION_FIELDS = {f.name: f for f in dataclasses.fields(PerceptionConfig)}


def _shared(name: str, help: str | None = None):  # noqa: A002 - mirrors config.param
    """A field with the same name and default as PerceptionConfig's (one definition), and its
    help unless the meaning differs here."""
    f = _PERCEPTION_FIELDS[name]
    default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
    return param(default, help or f.metadata["help"])


@dataclass
class RewardAnnotatorConfig(ScoringConfig):
    """Parameters of the reward annotator node and of ``spatial-ros reward`` (scoring fields are
    inherited from ScoringConfig; config/reward.yaml documents each one)."""

    # --- goal and grounding ------------------------------------------------------------------
    goal: str = param("", "initial goal in words, e.g. 'put the red cube next to the blue bowl' "
                      "('' = none until ~/set_goal or ~/goal sets one)")
    max_goal_chars: int = param(1000, "longest goal (characters); longer ones are refused "
                                "before any parsing")
    grounding: str = param("perception", "where object boxes come from: perception "
                           "(specialists + VLM) | truth (ground-truth box file truth_path)")
    truth_path: str = param("", "grounding=truth: truth.jsonl box file (spatial-ros sim); the "
                            "scene.json next to it gives the table height")
    output_frame: str = _shared("output_frame", "z-up frame the goal is scored in (boxes, "
                                "'the robot' = its origin)")
    goal_parser: str = param("templates", "how goals become objectives: templates "
                             "(deterministic sentence templates) | vlm (the model restates the "
                             "goal as JSON, checked; the templates are the fallback: for an "
                             "instruction-tuned VLM, the embedded model was not trained for it)")
    tool_frame: str = param("", "the robot's tool centre point frame (gripper fingertips) in "
                            "/tf, e.g. 'tool0'; progress then also rewards bringing it to the "
                            "target (reach_weight); '' = goal region only")
    model_path: str = _shared("model_path")
    device: str = _shared("device")
    backend: str = _shared("backend")
    server_url: str = _shared("server_url")
    served_model: str = _shared("served_model")
    api_key_env: str = _shared("api_key_env")
    image_max_side: int = _shared("image_max_side")
    image_format: str = _shared("image_format")
    jpeg_quality: int = _shared("jpeg_quality")
    timeout_s: float = _shared("timeout_s")
    retries: int = _shared("retries")
    concurrency: int = _shared("concurrency")
    top_logprobs: int = _shared("top_logprobs")
    max_new_tokens: int = _shared("max_new_tokens")
    family: str = _shared("family")
    dtype: str = _shared("dtype")
    attn_implementation: str = _shared("attn_implementation")
    trust_remote_code: bool = _shared("trust_remote_code")
    threads: int = _shared("threads")
    specialist_prompts: bool = _shared("specialist_prompts")
    vcot: bool = _shared("vcot")
    referring: str = _shared("referring")
    lidar_preset: str = _shared("lidar_preset")
    use_depth_specialist: bool = _shared("use_depth_specialist")
    min_score: float = _shared("min_score", "grounded objects scoring below this are ignored "
                               "[0, 1]")
    track_objects: bool = param(True, "perception: follow the goal's objects from frame to "
                                "frame (the model's answer starts a track, the nearest "
                                "specialist candidate continues it); false = every frame "
                                "grounded on its own")
    track_unmatched: float = param(0.35, "tracking: cost of leaving an object or a candidate "
                                   "unmatched; boxes further apart than twice this between two "
                                   "labelled frames are never the same object (m)")
    track_rest_move: float = param(0.15, "tracking: largest jump of a resting object (in its own "
                                   "box, not carried with the gripper), plus its speed (m)")
    track_coast_frames: int = param(10, "tracking: frames an unseen object keeps its last box "
                                    "before it counts as not found")
    refuse_gripper: bool = param(True, "refuse (label as not grounded, success false, progress "
                                 "held) frames whose target resolves to the robot's own "
                                 "gripper: its box holds the tool point (tool_frame) and rises "
                                 "more than gripper_rise above it while the robot holds "
                                 "nothing; without a tool frame, its shape is the gripper's at "
                                 "the episode's start")
    gripper_rise: float = param(0.10, "refuse_gripper: a target box holding the tool point "
                                "whose top is more than this above it is the gripper (its body "
                                "rises above the fingertips; an object in them rises less) (m)")
    # --- inputs ------------------------------------------------------------------------------
    image_topic: str = _shared("image_topic")
    image_transport: str = _shared("image_transport")
    camera_info_topic: str = _shared("camera_info_topic")
    cloud_topic: str = _shared("cloud_topic")
    depth_topic: str = _shared("depth_topic")
    qos_reliability: str = _shared("qos_reliability")
    qos_depth: int = _shared("qos_depth")
    slop: float = _shared("slop")
    queue_size: int = _shared("queue_size")
    time_jump: float = _shared("time_jump", "image stamps this much older than the newest "
                               "(bag loop, simulator restart) start a new episode (s)")
    static_transforms: list = _shared("static_transforms")
    # --- node --------------------------------------------------------------------------------
    max_pending: int = param(30, "synchronized frames waiting for the worker (every frame gets a "
                             "label); when full, the oldest is dropped and counted")
    stats_period: float = _shared("stats_period")
    autostart: bool = _shared("autostart")

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.grounding not in GROUNDING_MODES:
            raise ConfigError(
                f"grounding must be one of {', '.join(GROUNDING_MODES)}, got {self.grounding!r}"
            )
        if self.max_pending < 1:
            raise ConfigError(f"max_pending must be >= 1, got {self.max_pending}")
        if self.grounding == "perception":
            self.perception()  # validates topics, QoS, model settings (ConfigError)
        self.tracker  # noqa: B018 - validates the tracking costs (ConfigError)
        self.gripper_guard  # noqa: B018 - validates gripper_rise (ConfigError)
        if self.goal_parser not in GOAL_PARSERS:
            raise ConfigError(f"goal_parser must be one of {', '.join(GOAL_PARSERS)}, got "
                              f"{self.goal_parser!r}")
        if self.max_goal_chars < 1:
            raise ConfigError(f"max_goal_chars must be >= 1, got {self.max_goal_chars}")
        self.goal = bounded_text(self.goal, "goal", self.max_goal_chars)
        if self.goal and self.goal_parser == "templates":
            parse_goal(self.goal)  # GoalError names what is wrong with it

    def perception(self, queries: list[str] | None = None) -> PerceptionConfig:
        """The PerceptionConfig of the grounding pipeline (VLM on, no relation outputs)."""
        shared = {k: getattr(self, k) for k in _PERCEPTION_FIELDS if hasattr(self, k)}
        shared.update(queries=list(queries or []), relation_pairs=[], sensor_distances=False,
                      use_vlm=True, publish_markers=False)
        return PerceptionConfig(**shared)

    @property
    def scoring(self) -> ScoringConfig:
        names = [f.name for f in dataclasses.fields(ScoringConfig)]
        return ScoringConfig(**{n: getattr(self, n) for n in names})

    @property
    def tracker(self) -> TrackerConfig:
        return TrackerConfig(unmatched=self.track_unmatched, rest_move=self.track_rest_move,
                             coast_frames=self.track_coast_frames)

    @property
    def gripper_guard(self) -> GripperGuardConfig:
        return GripperGuardConfig(rise=self.gripper_rise)


# ----------------------------------------------------------------------------------------------
# config/reward.yaml, generated from RewardAnnotatorConfig (its single source)
# ----------------------------------------------------------------------------------------------

_YAML_HEADER = """\
# Parameters of the reward annotator node, GENERATED from
# spatial_ros/reward/annotator_config.py (RewardAnnotatorConfig): edit the dataclass, then run
# `python -m spatial_ros.reward.annotator > config/reward.yaml`
# (test/test_reward_node.py fails when this file and the dataclass disagree).
# Used unchanged by `ros2 launch spatial_ros reward.launch.py` and by
# `spatial-ros run reward --config config/reward.yaml`."""


def _yaml_value(value) -> str:
    """A ROS 2 parameter-file literal (floats keep their decimal point, strings are quoted)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    return json.dumps(value)


def config_yaml(node_name: str = NODE_NAME) -> str:
    """The text of config/reward.yaml: every RewardAnnotatorConfig field with its default and
    its help as a comment (an empty-list default is written commented out: a ROS parameter
    file cannot hold [])."""
    helps = field_help(RewardAnnotatorConfig)
    defaults = RewardAnnotatorConfig()
    lines = [_YAML_HEADER, f"{node_name}:", "  ros__parameters:"]
    for f in dataclasses.fields(RewardAnnotatorConfig):
        value = getattr(defaults, f.name)
        lines += textwrap.wrap(helps[f.name], 95, initial_indent="    # ",
                               subsequent_indent="    #   ")
        if isinstance(value, list) and not value:
            lines.append(f"    # {f.name}: []   (default; a ROS parameter file cannot hold [])")
        elif isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"{f.name}: a non-finite default cannot go into a ROS YAML file")
        else:
            lines.append(f"    {f.name}: {_yaml_value(value)}")
    return "\n".join(lines) + "\n"
