"""Both sensor nodes over real DDS while oversized requests arrive.

A perception node (specialists only) and a reward annotator node (ground-truth grounding) take
the same 10 Hz stream of simulated frames (image + CameraInfo + a 0.5 MB LiDAR cloud). In the
middle of it a 2 MB AskSpatial question and a 1 MB SetGoal goal (one that the goal templates
would parse: "put the red red ... cube next to the blue bowl") are sent. Checks:

- both are refused in < 100 ms (request sent -> reply received), quoting a short prefix and the
  length, never the whole input; the active goal is unchanged;
- the frames keep flowing meanwhile: the reward node labels EVERY frame (its FIFO is never
  full), the perception node accounts for every synchronized frame (processed or counted under a
  named reason: ``sync_fired == frames + dropped_* + skips``), and frames sent while the
  requests were served are processed;
- control characters (BEL, an ESC colour sequence, DEL, a C1 control, an OSC title sequence) in
  SetQueries never reach ``active_queries`` (the list the published ``query`` fields come from).
"""

from __future__ import annotations

import threading
import time

import pytest

rclpy = pytest.importorskip("rclpy")
pytestmark = pytest.mark.ros

from rclpy.executors import MultiThreadedExecutor  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from rclpy.qos import QoSDurabilityPolicy, QoSProfile, QoSReliabilityPolicy  # noqa: E402
from sensor_msgs.msg import CameraInfo, Image, PointCloud2  # noqa: E402
from spatial_ros.msg import ActiveQueries, GroundedObject3DArray, RewardLabel  # noqa: E402
from spatial_ros.srv import AskSpatial, SetGoal, SetQueries  # noqa: E402
from std_msgs.msg import String  # noqa: E402
from tf2_msgs.msg import TFMessage  # noqa: E402

from spatial_ros.io.camera_info import intrinsics_to_camera_info  # noqa: E402
from spatial_ros.io.image import encode_image  # noqa: E402
from spatial_ros.io.msgs import MessageFactory, stamp_to_ns  # noqa: E402
from spatial_ros.io.pointcloud import array_to_pointcloud2  # noqa: E402
from spatial_ros.nodes.perception_node import PerceptionNode  # noqa: E402
from spatial_ros.nodes.reward_annotator import RewardAnnotatorNode  # noqa: E402
from spatial_ros.ros_conversions import tree_to_tf_message  # noqa: E402

DOMAIN = 84  # unique among the DDS tests
GOAL = "put the red cube next to the blue bowl"
RELIABLE = QoSProfile(depth=50, reliability=QoSReliabilityPolicy.RELIABLE)
LATCHED = QoSProfile(depth=1, reliability=QoSReliabilityPolicy.RELIABLE,
                     durability=QoSDurabilityPolicy.TRANSIENT_LOCAL)
# perception: frames lost under one of these names are counted (none may be lost uncounted)
PERCEPTION_LOSSES = ("dropped_stale", "dropped_old", "dropped_inactive", "skipped_frames",
                     "empty_cloud", "model_errors", "errors")


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    """30 frames of a successful episode, a 0.5 MB LiDAR scan with each; truth.jsonl."""
    from spatial_ros.boxfile import write_box_file
    from spatial_ros.sim import CameraConfig, SimConfig, iter_frames

    cfg = SimConfig(camera=CameraConfig(width=96, height=72), goal=GOAL, trajectory="success",
                    seed=21, frames=30, lidar_rate_hz=30.0)
    frames = list(iter_frames(cfg))
    assert all(f.points is not None for f in frames)
    path = tmp_path_factory.mktemp("truth") / "truth.jsonl"
    write_box_file(path, [f.truth.box_frame() for f in frames])
    return frames, path


@pytest.fixture
def rig(sim):
    frames, truth = sim
    ctx = rclpy.context.Context()
    rclpy.init(context=ctx, domain_id=DOMAIN)
    common = {"qos_reliability": "reliable", "stats_period": 0.5}
    perception = PerceptionNode(context=ctx, parameter_overrides=[
        Parameter(k, value=v) for k, v in dict(
            common, use_vlm=False, queries=["the red cube"], relation_pairs=[],
            lidar_preset="tabletop", max_frame_age=5.0).items()])
    reward = RewardAnnotatorNode(context=ctx, parameter_overrides=[
        Parameter(k, value=v) for k, v in dict(
            common, grounding="truth", truth_path=str(truth), goal=GOAL, qos_depth=50,
            smoothing="none").items()])
    io = rclpy.create_node("requests_test_io", context=ctx)
    ex = MultiThreadedExecutor(num_threads=6, context=ctx)  # as spin_node: >= 4 threads
    for n in (perception, reward, io):
        ex.add_node(n)
    threading.Thread(target=ex.spin, daemon=True).start()
    yield ctx, perception, reward, io, frames
    ex.shutdown()
    for n in (perception, reward):
        n.on_shutdown(None)
        n.destroy_node()
    io.destroy_node()
    rclpy.try_shutdown(context=ctx)


def wait(cond, timeout=20.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.01)
    return False


def timed_call(client, request) -> dict:
    """Send ``request``; the returned dict gets the reply and its round-trip time (s)."""
    out: dict = {"t0": time.perf_counter()}

    def done(fut):
        out["dt"] = time.perf_counter() - out["t0"]
        out["reply"] = fut.result()

    client.call_async(request).add_done_callback(done)
    return out


def test_oversized_requests_are_refused_fast_while_frames_flow(rig):
    ctx, perception, reward, io, frames = rig
    f = MessageFactory.rclpy()
    pub_img = io.create_publisher(Image, "/camera/image_raw", RELIABLE)
    pub_cloud = io.create_publisher(PointCloud2, "/lidar/points", RELIABLE)
    pub_info = io.create_publisher(CameraInfo, "/camera/camera_info", RELIABLE)
    pub_tf = io.create_publisher(TFMessage, "/tf_static", LATCHED)
    objects, labels, active, goals = [], [], [], []
    io.create_subscription(GroundedObject3DArray, "/perception_node/objects", objects.append,
                           RELIABLE)
    io.create_subscription(RewardLabel, "/reward_annotator/reward", labels.append, RELIABLE)
    io.create_subscription(ActiveQueries, "/perception_node/active_queries", active.append,
                           LATCHED)
    io.create_subscription(String, "/reward_annotator/active_goal", goals.append, LATCHED)
    ask = io.create_client(AskSpatial, "/perception_node/ask")
    set_goal = io.create_client(SetGoal, "/reward_annotator/set_goal")
    set_queries = io.create_client(SetQueries, "/perception_node/set_queries")
    rig_ = frames[0].scene.rig
    camera = rig_.intrinsics
    pub_tf.publish(tree_to_tf_message(rig_.transform_tree(), frames[0].stamp_ns, f))
    assert wait(lambda: perception._active and reward._active, 60)
    assert wait(lambda: min(p.get_subscription_count() for p in (pub_img, pub_cloud, pub_info))
                >= 2)
    assert ask.wait_for_service(timeout_sec=20) and set_goal.wait_for_service(timeout_sec=20)
    assert set_queries.wait_for_service(timeout_sec=20)
    assert wait(lambda: goals and goals[-1].data == GOAL)

    # control characters never reach the active list or the published query field
    dirty = "\x07the \x1b[31mred\x1b[0m\x7f cube\x9b\x00"
    ok = timed_call(set_queries, SetQueries.Request(queries=[dirty, "the blue\tbowl\x1b]0;x\x07"]))
    assert wait(lambda: "reply" in ok)
    assert ok["reply"].success and list(ok["reply"].active_queries) == [
        "the red cube", "the blue bowl"]
    assert wait(lambda: active and list(active[-1].queries) == ["the red cube", "the blue bowl"])

    question = "how far is the red cube from " + "the blue bowl " * 150_000  # 2.1 MB
    goal = "put the red " + "red " * 250_000 + "cube next to the blue bowl"  # 1.0 MB
    assert len(question) > 2_000_000 and len(goal) > 1_000_000
    sent, replies, during = [], {}, []
    for k, fr in enumerate(frames):
        t_send = time.perf_counter()
        pub_info.publish(intrinsics_to_camera_info(camera, fr.stamp_ns, f))
        pub_img.publish(encode_image(fr.image, "rgb8", fr.stamp_ns, camera.frame_id, f))
        pub_cloud.publish(array_to_pointcloud2(fr.points, fr.lidar_stamp_ns, "lidar", f))
        sent.append(fr.stamp_ns)
        if k == 10:
            replies["ask"] = timed_call(ask, AskSpatial.Request(question=question))
            replies["goal"] = timed_call(set_goal, SetGoal.Request(goal=goal))
        if 10 <= k <= 14:
            during.append(fr.stamp_ns)
        time.sleep(max(0.0, 0.1 - (time.perf_counter() - t_send)))  # 10 Hz
    # a later frame releases the last one from the synchronizers
    last = frames[-1]
    late = last.stamp_ns + 500_000_000
    pub_info.publish(intrinsics_to_camera_info(camera, late, f))
    pub_img.publish(encode_image(last.image, "rgb8", late, camera.frame_id, f))
    pub_cloud.publish(array_to_pointcloud2(last.points, last.lidar_stamp_ns + 500_000_000,
                                           "lidar", f))

    assert wait(lambda: "reply" in replies["ask"] and "reply" in replies["goal"], 10)
    a, g = replies["ask"], replies["goal"]
    print(f"2 MB question refused in {a['dt'] * 1e3:.1f} ms, 1 MB goal in "
          f"{g['dt'] * 1e3:.1f} ms")
    for r, limit in ((a, 1000), (g, 1000)):
        assert not r["reply"].success
        msg = r["reply"].message
        assert "too long" in msg and f"> {limit}" in msg and len(msg) < 300, msg
    assert f"{len(question)} characters" in a["reply"].message
    assert f"{len(goal)} characters" in g["reply"].message
    assert a["dt"] < 0.1 and g["dt"] < 0.1, (a["dt"], g["dt"])
    assert goals[-1].data == GOAL  # the refused goal changed nothing

    # reward: one label per frame, none lost (its FIFO never overflowed)
    assert wait(lambda: len(labels) >= len(sent), 30), f"{len(labels)} of {len(sent)} labels"
    assert [stamp_to_ns(m.header) for m in labels] == sent
    assert reward.counters["dropped_full"] == 0 and reward.counters["errors"] == 0

    # perception: every synchronized frame processed or counted; the frames sent while the
    # requests were served were processed
    assert wait(lambda: sent[-1] in {stamp_to_ns(m.header) for m in objects}, 30)
    assert wait(lambda: len(perception._frames) == 0 and not perception._busy.locked(), 10)
    st = perception.stats()
    losses = sum(st[k] for k in PERCEPTION_LOSSES)
    print({k: st[k] for k in ("sync_fired", "frames", *PERCEPTION_LOSSES, "sync_dropped")})
    assert st["sync_fired"] == st["frames"] + losses
    got = {stamp_to_ns(m.header) for m in objects}
    assert len(set(sent) - got) == losses  # every frame not published is counted
    assert set(during) <= got, "frames sent while the requests were served were lost"
    assert st["rejected_requests"] == 1 and reward.counters["rejected_requests"] == 1
