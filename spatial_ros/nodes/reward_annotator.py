"""Reward annotator node: synchronized sensor frames + a goal in words -> a RewardLabel per frame.

A thin rclpy adapter over ``spatial_ros.reward.annotator.RewardAnnotator`` (grounding by the
perception pipeline, or by a ground-truth box file with ``grounding: truth``), on the same
lifecycle sensor-node base as the perception node (``spatial_ros.nodes.sensor_node``:
parameters from RewardAnnotatorConfig, lifecycle, QoS, inputs, synchronization, worker,
counters, diagnostics, /tf_static and /tf):

* managed (lifecycle) node: configure -> parameters validated into RewardAnnotatorConfig,
  topics/services made; activate -> the VLM loaded; deactivate -> model freed; autostart
  (default) configures and activates it without a lifecycle manager;
* callbacks only read headers and feed the synchronizer; complete sets go to a FIFO of
  ``max_pending`` frames and ONE worker thread labels them in order, so every synchronized frame
  gets a label (reward needs every frame; when the FIFO is full the oldest frame is dropped and
  counted ``dropped_full``);
* every label copies the source image's header stamp; its frame_id is the boxes' frame.

Goal: the ``goal`` parameter (also settable at run time), the ``~/set_goal`` service (SetGoal:
replies with the parsed objective or why the goal was rejected; words the parser could not
place are named in the reply, in a warning and in the episode's first label) and the
``~/goal`` topic (std_msgs/String). A goal longer than ``max_goal_chars`` is refused at once,
before any parser reads it (the reply quotes a short prefix and the length); control characters
are removed. The service and the goal topic run in their own callback group: frames keep
arriving meanwhile. A new goal starts a new episode (frame_index 0, progress from 0); so does a
jump back in time (bag loop, simulator restart). The active goal is republished on
``~/active_goal`` (std_msgs/String, transient local). Without a goal, frames are counted
(``no_goal``) and not labelled. Frames whose target resolves to the robot's own gripper are
refused (``refuse_gripper``; counted as ``gripper_refused``).

Topics (relative to the node namespace): ~/reward (spatial_ros/RewardLabel), ~/active_goal,
/diagnostics. Subscriptions: image, camera_info, cloud/depth (as configured), /tf_static, /tf,
~/goal. Each frame's transforms are the static ones plus the /tf edges evaluated at the image stamp
(``TransformHistory.tree_at``, as bag replay does), so the annotator can look up e.g.
base_link -> gripper_tcp.
"""

from __future__ import annotations

import rclpy
from rcl_interfaces.msg import SetParametersResult
from std_msgs.msg import String

from spatial_ros.errors import SpatialRosError
from spatial_ros.msg import RewardLabel
from spatial_ros.nodes import spin_node
from spatial_ros.nodes.sensor_node import LATCHED, SensorNode
from spatial_ros.reward.annotator import NODE_NAME, RewardAnnotator, RewardAnnotatorConfig
from spatial_ros.ros_conversions import reward_label_to_msg
from spatial_ros.srv import SetGoal
from spatial_ros.types import SensorFrame
from spatial_ros.user_text import bounded_text


class RewardAnnotatorNode(SensorNode):
    """See the module docstring.

    Args:
        node_name: ROS node name.
        backend: a VLMBackend to use instead of loading ``model_path`` (tests).
        truth: a ``TruthGrounding`` to use instead of reading ``truth_path`` (tests).
    """

    config_cls = RewardAnnotatorConfig
    kind = "reward"
    overflow_counter = "dropped_full"
    extra_counters = ("ungrounded", "no_goal", "episodes", "gripper_refused")

    def __init__(self, node_name: str = NODE_NAME, backend=None, truth=None, **kwargs) -> None:
        self._backend, self._truth = backend, truth
        self.annotator: RewardAnnotator | None = None
        super().__init__(node_name, **kwargs)
        self.add_on_set_parameters_callback(self._on_set_parameters)

    # ---- SensorNode hooks ----------------------------------------------------------------------
    def configure_core(self, cfg: RewardAnnotatorConfig) -> None:
        self.annotator = RewardAnnotator(cfg, backend=self._backend, truth=self._truth)

    def create_interfaces(self, cfg: RewardAnnotatorConfig) -> list:
        self.pub_reward = self.create_lifecycle_publisher(RewardLabel, "~/reward", 50)
        self.pub_goal = self.create_publisher(String, "~/active_goal", LATCHED)
        self._publish_goal()
        return [
            self.create_subscription(String, "~/goal", self._on_goal_topic, 10,
                                     callback_group=self.request_group),
            self.create_request_service(SetGoal, "~/set_goal", self._srv_set_goal),
        ]

    def load_core(self) -> None:
        self.annotator.load()

    def unload_core(self) -> None:
        if self.annotator is not None:
            self.annotator.unload()

    def describe(self) -> str:
        return (f"inputs {self._inputs}, grounding={self.cfg.grounding}, goal "
                f"'{self.annotator.goal_text}' -> {self.annotator.objective or 'none yet'}, "
                f"QoS {self.cfg.qos_reliability} depth {self.cfg.qos_depth}")

    def needs_points(self) -> bool:
        return self.cfg.grounding == "perception"  # truth grounding reads no sensor data

    def skip_reason(self) -> tuple[str, str] | None:
        if self.annotator.goal is None:
            return ("no_goal", "no goal set (parameter goal, ~/set_goal or ~/goal): frame not "
                    "labelled")
        return None

    def on_time_jump(self) -> None:
        """A new episode, after the frames already queued (they belong to the old one)."""
        self._frames.put_control(self._new_episode)

    def _new_episode(self) -> None:
        self.annotator.reset()
        self._count("episodes")

    def handle_frame(self, frame: SensorFrame) -> None:
        lab = self.annotator.label(frame)
        self.pub_reward.publish(reward_label_to_msg(
            lab.stamp_ns, lab.frame_id, lab.goal, lab.frame_index, lab.reward, lab.progress,
            lab.success, lab.explanation, self.f,
        ))
        self._count("ungrounded", int(not lab.grounded))
        self._count("gripper_refused", int(lab.refused))

    # ---- goal -----------------------------------------------------------------------------------
    def set_goal(self, text: str) -> str:
        """Activate a goal (new episode); returns the objective, followed by the words the
        parser could not place when there are any (also logged as a warning). Raises TextTooLong
        at once for a goal over ``max_goal_chars``, GoalError/ConfigError when it does not parse
        (the previous goal stays active)."""
        if self.annotator is None:
            raise SpatialRosError("the node is not configured yet")
        text = bounded_text(text, "goal", self.cfg.max_goal_chars)  # before waiting or parsing
        with self._busy:  # the frame in progress finishes with the old goal
            self.annotator.set_goal(text, warn=False)
            objective, note = self.annotator.objective, self.annotator.goal_note
        self._count("episodes")
        self._publish_goal()
        if note:
            self.get_logger().warning(f"goal '{text}': {note}")
        self.get_logger().info(f"goal set: '{text}' -> {objective}")
        return f"{objective}; {note}" if note else objective

    def _publish_goal(self) -> None:
        self.pub_goal.publish(String(data=self.annotator.goal_text if self.annotator else ""))

    def _srv_set_goal(self, req, resp):
        try:
            resp.message = self.set_goal(req.goal)
            resp.success = True
        except SpatialRosError as e:
            resp.success, resp.message = False, self.reject("SetGoal", e)
        return resp

    def _on_goal_topic(self, msg: String) -> None:
        try:
            self.set_goal(msg.data)
        except SpatialRosError as e:
            self.reject("goal on ~/goal", e)

    def _on_set_parameters(self, params) -> SetParametersResult:
        for p in params:
            if p.name == "goal" and self.annotator is not None and p.value:
                try:
                    self.set_goal(str(p.value))
                except SpatialRosError as e:
                    return SetParametersResult(successful=False, reason=self.reject("goal", e))
        return SetParametersResult(successful=True)


def main(args=None) -> None:
    rclpy.init(args=args)
    spin_node(RewardAnnotatorNode())


if __name__ == "__main__":
    main()
