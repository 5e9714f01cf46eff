"""Perception node over real DDS: simulated frames in, grounded arrays out (specialists-only mode).

Checks: output stamps equal the source image stamps; boxes match the simulator's exact truth;
the query service changes the active list (latched topic) within one call; bad input (missing
CameraInfo, malformed cloud) never kills the node and never produces a wrong message.

``Harness`` (a publisher/subscriber node beside the perception node on one executor) is shared
by test_perception_robustness.py and test_perception_vlm.py.
"""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy")
pytestmark = pytest.mark.ros

from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from rclpy.executors import MultiThreadedExecutor  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from rclpy.qos import QoSDurabilityPolicy, QoSProfile, QoSReliabilityPolicy  # noqa: E402
from sensor_msgs.msg import CameraInfo, Image, PointCloud2  # noqa: E402
from spatial_ros.msg import ActiveQueries, GroundedObject3DArray, SpatialRelation  # noqa: E402
from spatial_ros.srv import SetQueries  # noqa: E402

from spatial_ros.geometry.iou import iou_3d  # noqa: E402
from spatial_ros.io.camera_info import intrinsics_to_camera_info  # noqa: E402
from spatial_ros.io.image import encode_image  # noqa: E402
from spatial_ros.io.msgs import MessageFactory, stamp_to_ns  # noqa: E402
from spatial_ros.io.pointcloud import array_to_pointcloud2  # noqa: E402
from spatial_ros.nodes.perception_node import PerceptionNode  # noqa: E402
from spatial_ros.ros_conversions import msg_to_grounded_objects, tree_to_tf_message  # noqa: E402
from spatial_ros.sim import SimConfig, iter_frames  # noqa: E402

RELIABLE = QoSProfile(depth=10, reliability=QoSReliabilityPolicy.RELIABLE)
LATCHED = QoSProfile(depth=1, reliability=QoSReliabilityPolicy.RELIABLE,
                     durability=QoSDurabilityPolicy.TRANSIENT_LOCAL)


@pytest.fixture(scope="module")
def sim_frames():
    frames = [f for f in iter_frames(SimConfig("tabletop", seed=101, frames=9))
              if f.points is not None]
    assert len(frames) >= 2
    return frames


def ros_context(domain_id: int):
    """A fresh rclpy context on its own DDS domain (test files use different domains)."""
    ctx = rclpy.context.Context()
    rclpy.init(context=ctx, domain_id=domain_id)
    return ctx


@pytest.fixture
def ros():
    ctx = ros_context(78)
    yield ctx
    rclpy.try_shutdown(context=ctx)


class Harness:
    """The perception node plus an io node that publishes simulated frames and records every
    output (objects, relations, active queries, diagnostics), spun on one executor thread."""

    def __init__(self, ctx, frames, backend=None, **params):
        self.f = MessageFactory.rclpy()
        base = {"use_vlm": False, "qos_reliability": "reliable", "output_frame": "base_link",
                "lidar_preset": "tabletop", "queries": ["the red mug"], "stats_period": 0.2}
        base.update(params)
        self.node = PerceptionNode(
            context=ctx, backend=backend,
            parameter_overrides=[Parameter(k, value=v) for k, v in base.items()],
        )
        self.io = rclpy.create_node("perception_test_io", context=ctx)
        self.pub_img = self.io.create_publisher(Image, "/camera/image_raw", RELIABLE)
        self.pub_cloud = self.io.create_publisher(PointCloud2, "/lidar/points", RELIABLE)
        self.pub_info = self.io.create_publisher(CameraInfo, "/camera/camera_info", RELIABLE)
        from tf2_msgs.msg import TFMessage

        self.pub_tf = self.io.create_publisher(TFMessage, "/tf_static", LATCHED)
        self.outputs: list = []
        self.relations: list = []
        self.active: list = []
        self.diagnostics: list = []
        self.io.create_subscription(GroundedObject3DArray, "/perception_node/objects",
                                    self.outputs.append, 10)
        self.io.create_subscription(SpatialRelation, "/perception_node/relations",
                                    self.relations.append, 100)
        self.io.create_subscription(ActiveQueries, "/perception_node/active_queries",
                                    self.active.append, LATCHED)
        self.io.create_subscription(DiagnosticArray, "/diagnostics", self.diagnostics.append, 10)
        self.ex = MultiThreadedExecutor(context=ctx)
        self.ex.add_node(self.node)
        self.ex.add_node(self.io)
        threading.Thread(target=self.ex.spin, daemon=True).start()
        self.frames = frames
        rig = frames[0].scene.rig  # /tf_static: the rig only (the gripper moves: /tf)
        self.tree, self.camera = rig.transform_tree(), rig.intrinsics
        self.pub_tf.publish(tree_to_tf_message(self.tree, frames[0].stamp_ns, self.f))
        assert self.wait(lambda: self.node._active, 60), "node did not activate"

    def wait(self, cond, timeout=20.0):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if cond():
                return True
            time.sleep(0.02)
        return False

    def send(self, fr, info=True, cloud=None, image=None):
        """Publish CameraInfo, image and cloud of sim frame ``fr`` (or the given messages)."""
        if info:
            self.pub_info.publish(intrinsics_to_camera_info(self.camera, fr.stamp_ns, self.f))
        if image is None:
            image = encode_image(fr.image, "rgb8", fr.stamp_ns, self.camera.frame_id, self.f)
        self.pub_img.publish(image)
        if cloud is None:
            cloud = array_to_pointcloud2(fr.points, fr.lidar_stamp_ns, "lidar", self.f)
        self.pub_cloud.publish(cloud)

    def stream(self, frames, gap_s=0.5):
        """Send frames like a sensor does, then one trailing frame (1 s after the last) that
        releases the last real frame from the synchronizer (message_filters' rule: a set is
        held until a later message shows no better match can come). Returns the stamps sent."""
        for fr in frames:
            self.send(fr)
            time.sleep(gap_s)
        self.send(self.shifted(frames[-1], 1.0))
        return [fr.stamp_ns for fr in frames]

    def stamps(self) -> set[int]:
        return {stamp_to_ns(m.header) for m in self.outputs}

    def wait_for_stamps(self, stamps, timeout=30.0) -> bool:
        return self.wait(lambda: set(stamps) <= self.stamps(), timeout)

    def last_diagnostics(self) -> dict[str, str]:
        """Key/values and level/message of the newest /diagnostics status of the node."""
        st = self.diagnostics[-1].status[0]
        out = {kv.key: kv.value for kv in st.values}
        out.update(level=int.from_bytes(st.level, "little") if isinstance(st.level, bytes)
                   else int(st.level), message=st.message)
        return out

    def shifted(self, fr, dt_s):
        """A copy of frame ``fr`` with every stamp moved by ``dt_s`` seconds."""
        import copy

        out = copy.copy(fr)
        out.stamp_ns = fr.stamp_ns + int(dt_s * 1e9)
        out.lidar_stamp_ns = fr.lidar_stamp_ns + int(dt_s * 1e9)
        return out

    def close(self):
        self.ex.shutdown()
        self.node.on_shutdown(None)
        self.node.destroy_node()
        self.io.destroy_node()



def test_specialists_only_matches_truth_and_keeps_stamps(ros, sim_frames):
    h = Harness(ros, sim_frames)
    try:
        # The synchronizer (message_filters' ApproximateTime rule) releases a set once a later
        # message shows no better match can come, so frames are streamed like a sensor does.
        h.send(sim_frames[0])  # DDS discovery may eat the first messages; sent again below
        time.sleep(1.0)
        for fr in sim_frames:
            h.send(fr)
            time.sleep(0.8)
        h.send(h.shifted(sim_frames[-1], 1.0))  # releases the last real frame
        want = {fr.stamp_ns for fr in sim_frames}
        assert h.wait(lambda: want <= {stamp_to_ns(m.header) for m in h.outputs}, 30), (
            f"outputs for {sorted(h.stamps())}, want {sorted(want)}"
        )
        by_stamp = {stamp_to_ns(m.header): m for m in h.outputs}
        matched = total = 0
        for fr in sim_frames:
            stamp, frame_id, objs = msg_to_grounded_objects(by_stamp[fr.stamp_ns])
            assert stamp == fr.stamp_ns and frame_id == "base_link"
            assert all(o.source == "lidar" and np.isfinite(o.distance) for o in objs)
            # distance is from the LiDAR origin, not from base_link
            T_lidar_base = h.tree.lookup("lidar", "base_link")
            for o in objs:
                c = T_lidar_base @ np.append(o.box.center, 1.0)
                assert o.distance == pytest.approx(np.linalg.norm(c[:3]), abs=1e-3)
            for t in fr.truth.objects:
                if (t.lidar_points or 0) < 30:
                    continue
                total += 1
                matched += any(iou_3d(t.box, o.box) >= 0.5 for o in objs)
        assert total > 0
        recall = matched / total
        print(f"node specialists-only recall@IoU0.5: {recall:.2f} over {total} objects")
        assert recall >= 0.9
    finally:
        h.close()


def test_query_service_and_bad_input(ros, sim_frames):
    h = Harness(ros, sim_frames)
    try:
        assert h.wait(lambda: h.active and list(h.active[-1].queries) == ["the red mug"])
        cli = h.io.create_client(SetQueries, "/perception_node/set_queries")
        assert cli.wait_for_service(timeout_sec=20)
        fut = cli.call_async(SetQueries.Request(queries=["the blue bowl", " the blue bowl ", ""]))
        assert h.wait(fut.done)
        assert fut.result().success and list(fut.result().active_queries) == ["the blue bowl"]
        assert h.wait(lambda: list(h.active[-1].queries) == ["the blue bowl"])
        bad = cli.call_async(SetQueries.Request(queries=["x" * 500]))
        assert h.wait(bad.done) and not bad.result().success
        assert "too long" in bad.result().message

        # Malformed cloud (data cut in half), then clouds with no finite point (all NaN, all
        # Inf, no point at all), then a good frame, then a trailing frame that releases the good
        # one from the synchronizer.
        f0, f1, f2, f3, f4 = (h.shifted(sim_frames[0], k) for k in (10.0, 11.0, 12.0, 13.0, 14.0))
        cloud = array_to_pointcloud2(f0.points, f0.lidar_stamp_ns, "lidar", h.f)
        cloud.data = cloud.data[: len(cloud.data) // 2]
        nan_cloud = array_to_pointcloud2(np.full_like(f1.points, np.nan), f1.lidar_stamp_ns,
                                         "lidar", h.f)
        inf_cloud = array_to_pointcloud2(np.full_like(f2.points, np.inf), f2.lidar_stamp_ns,
                                         "lidar", h.f)
        empty_cloud = array_to_pointcloud2(f3.points[:0], f3.lidar_stamp_ns, "lidar", h.f)
        for fr, bad_cloud in ((f0, cloud), (f1, nan_cloud), (f2, inf_cloud), (f3, empty_cloud)):
            h.send(fr, cloud=bad_cloud)
            time.sleep(0.5)
        h.send(f4)
        time.sleep(0.5)
        h.send(h.shifted(sim_frames[0], 15.0))
        assert h.wait(lambda: f4.stamp_ns in {stamp_to_ns(m.header) for m in h.outputs}, 20)
        by_stamp = {stamp_to_ns(m.header): m for m in h.outputs}
        assert f0.stamp_ns not in by_stamp, "a malformed cloud must not produce a message"
        assert h.node.counters["skipped_frames"] == 1 and h.node.counters["errors"] == 0
        # A cloud with no finite point is skipped (README: log line + counter), not processed
        # as a frame where nothing was found.
        for fr in (f1, f2, f3):
            assert fr.stamp_ns not in by_stamp, "a cloud without points must not be published"
        assert h.node.counters["empty_cloud"] == 3
        assert len(by_stamp[f4.stamp_ns].objects) > 0
        assert h.wait(lambda: h.diagnostics and h.last_diagnostics()["empty_cloud"] == "3.000")
        assert "empty_cloud=3" in h.last_diagnostics()["message"]
    finally:
        h.close()


def test_missing_camera_info_is_skipped(ros, sim_frames):
    h = Harness(ros, sim_frames)
    try:
        h.send(sim_frames[0], info=False)
        time.sleep(0.5)
        h.send(sim_frames[1], info=False)
        assert h.wait(lambda: h.node.counters["skipped_frames"] > 0, 10)
        assert h.node._active
        assert h.outputs == []
    finally:
        h.close()
