"""Reward annotator node over real DDS (ground-truth grounding: no model needed), plus its
config file and launch file.

Checks: exactly one RewardLabel per synchronized frame, stamped with the source image's stamp,
with the simulator's truth progress; the goal via service (objective in the reply, bad goals
rejected with a reason), topic and parameter, each starting a new episode; the active goal
latched; config/reward.yaml generated from RewardAnnotatorConfig; the launch file starts the
installed executable.
"""

from __future__ import annotations

import dataclasses
import re
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from spatial_ros.config import from_dict, load_node_yaml
from spatial_ros.reward.annotator import (
    CONFIG_FILE,
    NODE_NAME,
    RewardAnnotatorConfig,
    config_yaml,
)

ROOT = Path(__file__).resolve().parents[1]
FIELDS = [f.name for f in dataclasses.fields(RewardAnnotatorConfig)]
GOAL = "put the red cube next to the blue bowl"


# ---- config and launch files (no ROS needed) ----------------------------------------------------


def test_config_file_is_the_generators_output():
    assert CONFIG_FILE == ROOT / "config" / "reward.yaml"
    assert CONFIG_FILE.read_text() == config_yaml(), (
        "config/reward.yaml is stale: run `python -m spatial_ros.reward.annotator > "
        "config/reward.yaml`"
    )
    params = load_node_yaml(CONFIG_FILE, NODE_NAME)
    commented = set(re.findall(r"^    # (\w+): \[\]", CONFIG_FILE.read_text(), re.M))
    assert set(params) | commented == set(FIELDS) and not set(params) & commented
    from_yaml, defaults = from_dict(RewardAnnotatorConfig, params), RewardAnnotatorConfig()
    assert all(getattr(from_yaml, n) == getattr(defaults, n) for n in FIELDS)
    assert all(isinstance(params[n], float) for n in FIELDS
               if isinstance(getattr(defaults, n), float))


def test_node_declares_exactly_the_config_fields_and_launch_file_matches():
    """The node declares one parameter per field (generically, from the dataclass); the launch
    file is the shared helper's description of this node (test_launch.py checks the helper)."""
    from spatial_ros.node_launch import NODES

    src = (ROOT / "spatial_ros" / "nodes" / "reward_annotator.py").read_text()
    assert re.findall(r"declare_parameter\(\s*\"(\w+)\"", src) == []
    spec = NODES["reward"]
    assert spec.node_name == NODE_NAME and spec.config_cls is RewardAnnotatorConfig
    launch = (ROOT / "launch" / "reward.launch.py").read_text()
    assert 'launch_description("reward")' in launch
    rclpy = pytest.importorskip("rclpy")
    from rclpy.parameter import Parameter

    from spatial_ros.nodes.reward_annotator import RewardAnnotatorNode

    ctx = rclpy.context.Context()
    rclpy.init(context=ctx, domain_id=89)
    try:
        node = RewardAnnotatorNode(context=ctx,
                                   parameter_overrides=[Parameter("autostart", value=False)])
        declared = set(node._parameters) - {"use_sim_time", "start_type_description_service"}
        assert declared == set(FIELDS)
        node.destroy_node()
    finally:
        rclpy.try_shutdown(context=ctx)


def test_config_errors_name_the_values():
    from spatial_ros.errors import ConfigError, ParseError

    with pytest.raises(ConfigError, match="grounding"):
        RewardAnnotatorConfig(grounding="oracle")
    with pytest.raises(ConfigError, match="max_pending"):
        RewardAnnotatorConfig(max_pending=0)
    with pytest.raises(ConfigError, match="cloud_topic or depth_topic"):
        RewardAnnotatorConfig(cloud_topic="")
    RewardAnnotatorConfig(grounding="truth", cloud_topic="")  # truth needs no 3D data
    with pytest.raises(ParseError, match="cannot parse goal"):
        RewardAnnotatorConfig(goal="do something useful")


# ---- the node over DDS --------------------------------------------------------------------------

rclpy = pytest.importorskip("rclpy")


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    """8 frames of a successful episode, a LiDAR scan with each; truth.jsonl written."""
    from spatial_ros.boxfile import write_box_file
    from spatial_ros.sim import CameraConfig, SimConfig, iter_frames

    cfg = SimConfig(camera=CameraConfig(width=96, height=72), goal=GOAL, trajectory="success",
                    seed=21, frames=8, lidar_rate_hz=30.0)
    frames = list(iter_frames(cfg))
    path = tmp_path_factory.mktemp("truth") / "truth.jsonl"
    write_box_file(path, [f.truth.box_frame() for f in frames])
    return frames, path


@pytest.fixture
def ros():
    ctx = rclpy.context.Context()
    rclpy.init(context=ctx, domain_id=83)
    yield ctx
    rclpy.try_shutdown(context=ctx)


class Harness:
    def __init__(self, ctx, frames, **params):
        from rclpy.executors import MultiThreadedExecutor
        from rclpy.parameter import Parameter
        from rclpy.qos import QoSDurabilityPolicy, QoSProfile, QoSReliabilityPolicy
        from sensor_msgs.msg import CameraInfo, Image, PointCloud2
        from spatial_ros.msg import RewardLabel
        from std_msgs.msg import String
        from tf2_msgs.msg import TFMessage

        from spatial_ros.io.msgs import MessageFactory
        from spatial_ros.nodes.reward_annotator import RewardAnnotatorNode
        from spatial_ros.ros_conversions import tree_to_tf_message

        reliable = QoSProfile(depth=50, reliability=QoSReliabilityPolicy.RELIABLE)
        latched = QoSProfile(depth=1, reliability=QoSReliabilityPolicy.RELIABLE,
                             durability=QoSDurabilityPolicy.TRANSIENT_LOCAL)
        self.f = MessageFactory.rclpy()
        base = {"grounding": "truth", "qos_reliability": "reliable", "qos_depth": 50,
                "smoothing": "none", "success_tolerance": 0.0, "stats_period": 0.2}
        base.update(params)
        self.node = RewardAnnotatorNode(
            context=ctx, parameter_overrides=[Parameter(k, value=v) for k, v in base.items()]
        )
        self.io = rclpy.create_node("reward_test_io", context=ctx)
        self.pub_img = self.io.create_publisher(Image, "/camera/image_raw", reliable)
        self.pub_cloud = self.io.create_publisher(PointCloud2, "/lidar/points", reliable)
        self.pub_info = self.io.create_publisher(CameraInfo, "/camera/camera_info", reliable)
        self.pub_goal = self.io.create_publisher(String, "/reward_annotator/goal", 10)
        pub_tf = self.io.create_publisher(TFMessage, "/tf_static", latched)
        self.pub_tf_dynamic = self.io.create_publisher(TFMessage, "/tf", QoSProfile(
            depth=100, reliability=QoSReliabilityPolicy.RELIABLE))
        self.labels: list = []
        self.active: list = []
        self.io.create_subscription(RewardLabel, "/reward_annotator/reward",
                                    self.labels.append, reliable)
        self.io.create_subscription(String, "/reward_annotator/active_goal",
                                    self.active.append, latched)
        self.ex = MultiThreadedExecutor(context=ctx)
        self.ex.add_node(self.node)
        self.ex.add_node(self.io)
        threading.Thread(target=self.ex.spin, daemon=True).start()
        rig = frames[0].scene.rig  # /tf_static: the rig only (the gripper moves: /tf)
        self.tree, self.camera = rig.transform_tree(), rig.intrinsics
        pub_tf.publish(tree_to_tf_message(self.tree, frames[0].stamp_ns, self.f))
        assert self.wait(lambda: self.node._active), "node did not activate"
        # every sensor publisher matched before the first frame: no frame is lost or repeated
        assert self.wait(lambda: min(p.get_subscription_count() for p in (
            self.pub_img, self.pub_cloud, self.pub_info, self.pub_tf_dynamic)) > 0)
        assert self.wait(lambda: self.pub_goal.get_subscription_count() > 0)
        assert self.wait(lambda: self.node.pub_reward.get_subscription_count() > 0)

    def wait(self, cond, timeout=20.0):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if cond():
                return True
            time.sleep(0.02)
        return False

    def send(self, fr, dt_s: float = 0.0):
        """Publish frame ``fr`` (/tf gripper pose, CameraInfo, image, cloud), stamps moved by
        ``dt_s``."""
        from spatial_ros.io.camera_info import intrinsics_to_camera_info
        from spatial_ros.io.image import encode_image
        from spatial_ros.io.pointcloud import array_to_pointcloud2
        from spatial_ros.ros_conversions import tree_to_tf_message

        stamp = fr.stamp_ns + int(dt_s * 1e9)
        lidar = fr.lidar_stamp_ns + int(dt_s * 1e9)
        self.pub_tf_dynamic.publish(
            tree_to_tf_message(fr.scene.dynamic_transform_tree(), stamp, self.f))
        self.pub_info.publish(intrinsics_to_camera_info(self.camera, stamp, self.f))
        self.pub_img.publish(encode_image(fr.image, "rgb8", stamp, self.camera.frame_id, self.f))
        self.pub_cloud.publish(array_to_pointcloud2(fr.points, lidar, "lidar", self.f))
        return stamp

    def stream(self, frames, dt_s: float = 0.0) -> list[int]:
        stamps = []
        for fr in frames:
            stamps.append(self.send(fr, dt_s))
            time.sleep(0.1)
        self.send(frames[-1], dt_s + 0.5)  # a later message releases the last set
        return stamps

    def close(self):
        self.ex.shutdown()
        self.node.on_shutdown(None)
        self.node.destroy_node()
        self.io.destroy_node()


@pytest.mark.ros
def test_one_label_per_frame_with_source_stamps_and_truth_progress(ros, sim):
    from spatial_ros.io.msgs import stamp_to_ns

    frames, truth = sim
    h = Harness(ros, frames, goal=GOAL, truth_path=str(truth))
    try:
        assert h.wait(lambda: h.active and h.active[-1].data == GOAL)
        stamps = h.stream(frames)
        assert h.wait(lambda: len(h.labels) >= len(frames)), f"{len(h.labels)} labels"
        time.sleep(0.3)  # nothing more may arrive
        got = [stamp_to_ns(m.header) for m in h.labels]
        assert got == stamps  # one per synchronized frame, in order, source stamps
        assert [m.frame_index for m in h.labels] == list(range(len(frames)))
        assert all(m.header.frame_id == "base_link" and m.goal == GOAL for m in h.labels)
        want = [fr.truth.trajectory.progress for fr in frames]
        np.testing.assert_allclose([m.progress for m in h.labels], want, atol=1e-6)
        assert h.labels[-1].progress == pytest.approx(1.0) and h.labels[0].progress == 0.0
        assert sum(m.reward for m in h.labels) == pytest.approx(1.0, abs=1e-5)
        assert "gap(red cube, blue bowl)" in h.labels[0].explanation
        assert h.node.counters["frames"] == len(frames) and h.node.counters["errors"] == 0
    finally:
        h.close()


@pytest.mark.ros
def test_goal_service_topic_and_parameter(ros, sim):
    from rclpy.parameter import Parameter
    from spatial_ros.srv import SetGoal
    from std_msgs.msg import String

    from spatial_ros.io.msgs import stamp_to_ns

    frames, truth = sim
    h = Harness(ros, frames, truth_path=str(truth))  # no goal yet

    def labelled(stamps):
        return set(stamps) <= {stamp_to_ns(m.header) for m in h.labels}

    try:
        h.stream(frames[:2])
        assert h.wait(lambda: h.node.counters["no_goal"] >= 2)
        assert h.labels == []  # no goal: nothing is labelled, nothing made up
        cli = h.io.create_client(SetGoal, "/reward_annotator/set_goal")
        assert cli.wait_for_service(timeout_sec=20)
        bad = cli.call_async(SetGoal.Request(goal="dance"))
        assert h.wait(bad.done) and not bad.result().success
        assert "cannot parse goal" in bad.result().message
        ok = cli.call_async(SetGoal.Request(goal=GOAL))
        assert h.wait(ok.done) and ok.result().success
        assert ok.result().message.startswith("gap(red cube, blue bowl) <= 0.10 m")
        assert h.wait(lambda: h.active and h.active[-1].data == GOAL)
        # words the parser cannot place are named in the reply (and warned), never grounded
        noisy = cli.call_async(SetGoal.Request(goal=GOAL + " with care"))
        assert h.wait(noisy.done) and noisy.result().success
        assert noisy.result().message.endswith("; words not understood (ignored): 'with care'")
        assert h.node.annotator.goal.phrases == ["the red cube", "the blue bowl"]
        ok = cli.call_async(SetGoal.Request(goal=GOAL))
        assert h.wait(ok.done) and "ignored" not in ok.result().message
        assert h.wait(lambda: h.active and h.active[-1].data == GOAL)
        a = h.stream(frames[:4], dt_s=1.0)
        assert h.wait(lambda: labelled(a))
        assert [m.frame_index for m in h.labels] == list(range(len(h.labels)))
        # a new goal on the topic starts a new episode: frame_index from 0 again
        n = len(h.labels)
        h.pub_goal.publish(String(data="put the red cube beside the blue bowl"))
        assert h.wait(lambda: h.active[-1].data == "put the red cube beside the blue bowl")
        b = h.stream(frames[4:6], dt_s=2.0)
        assert h.wait(lambda: labelled(b))
        new = h.labels[n:]
        assert [m.frame_index for m in new] == list(range(len(new))) and len(new) >= 2
        assert all(m.goal == "put the red cube beside the blue bowl" for m in new)
        res = h.node.set_parameters([Parameter("goal", value="lift the red cube 10 cm above "
                                               "the table")])
        assert res[0].successful
        assert h.wait(lambda: h.active[-1].data.startswith("lift the red cube"))
        res = h.node.set_parameters([Parameter("goal", value="juggle")])
        assert not res[0].successful and "cannot parse" in res[0].reason
        assert h.active[-1].data.startswith("lift the red cube")  # the old goal stays
    finally:
        h.close()


@pytest.mark.ros
def test_frames_carry_the_gripper_tcp_from_tf_and_bad_tf_is_skipped(ros, sim):
    """/tf (base_link -> gripper_tcp per frame) reaches the annotator's frames at each image
    stamp, equal to the truth gripper box's fingertip centre, and with ``tool_frame`` the labels
    follow the staged truth progress; a bad /tf message is counted."""
    from geometry_msgs.msg import TransformStamped
    from tf2_msgs.msg import TFMessage

    from spatial_ros.errors import CalibrationError
    from spatial_ros.sim import GRIPPER_TCP_FRAME

    frames, truth = sim
    h = Harness(ros, frames, goal=GOAL, truth_path=str(truth), tool_frame=GRIPPER_TCP_FRAME)
    seen: dict[int, object] = {}
    label = h.node.annotator.label

    def spy(frame, *args, **kwargs):
        try:
            seen[frame.stamp_ns] = frame.transforms.lookup("base_link", GRIPPER_TCP_FRAME)
        except CalibrationError as e:
            seen[frame.stamp_ns] = e
        return label(frame, *args, **kwargs)

    h.node.annotator.label = spy
    try:
        stamps = h.stream(frames)
        assert h.wait(lambda: set(stamps) <= set(seen)), f"{len(seen)} frames seen"
        for fr, stamp in zip(frames, stamps, strict=True):
            (g,) = [o for o in fr.truth.objects if o.category == "gripper"]
            tcp = g.box.center - np.array([0.0, 0.0, g.box.size[2] / 2])
            T = seen[stamp]
            assert isinstance(T, np.ndarray), T
            np.testing.assert_allclose(T[:3, 3], tcp, atol=1e-6, rtol=0)
        # with tool_frame set the labels carry the reach stage: the simulator's staged truth
        assert h.wait(lambda: len(h.labels) >= len(frames)), f"{len(h.labels)} labels"
        want = [fr.truth.trajectory.staged_progress() for fr in frames]
        gains = [w - fr.truth.trajectory.progress for w, fr in zip(want, frames, strict=True)]
        assert max(gains) > 0.1
        np.testing.assert_allclose([m.progress for m in h.labels], want, atol=1e-6)
        bad = TransformStamped(child_frame_id=GRIPPER_TCP_FRAME)
        bad.header.frame_id = "base_link"
        bad.transform.rotation.w = 0.0  # all-zero quaternion
        h.pub_tf_dynamic.publish(TFMessage(transforms=[bad]))
        assert h.wait(lambda: h.node.counters["bad_tf"] >= 1)
        assert h.node.counters["errors"] == 0
    finally:
        h.close()
