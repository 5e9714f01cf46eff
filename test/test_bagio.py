"""bagio: rosbag2 writing/reading round trips and bag replay through the synchronizer."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from spatial_ros.bagio import BagWriter, bag_topics, frames_from_bag, read_messages
from spatial_ros.errors import CalibrationError, DataError
from spatial_ros.geometry.transforms import TransformTree, make_transform
from spatial_ros.io.camera_info import intrinsics_to_camera_info
from spatial_ros.io.image import encode_image
from spatial_ros.io.pointcloud import array_to_pointcloud2
from spatial_ros.ros_conversions import tree_to_tf_message
from spatial_ros.types import CameraIntrinsics

T0 = 5_000_000_000


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_write_read_roundtrip(tmp_path, storage):
    bag = tmp_path / "b"
    with BagWriter(bag, storage=storage) as w:
        f = w.factory
        w.add_topic("/chatter", "std_msgs/msg/String")
        w.add_topic("/pose", "geometry_msgs/msg/PoseStamped")
        for i in range(5):
            w.write("/chatter", f.new("std_msgs/msg/String", data=f"hello {i}"), T0 + i * 10)
        pose = f.new("geometry_msgs/msg/PoseStamped", header=f.header(T0 + 7, "map"))
        pose.pose.position.x = 1.5
        w.write("/pose", pose, T0 + 7)
    assert w.counts == {"/chatter": 5, "/pose": 1}
    assert bag_topics(bag) == {
        "/chatter": ("std_msgs/msg/String", 5),
        "/pose": ("geometry_msgs/msg/PoseStamped", 1),
    }
    msgs = list(read_messages(bag))
    assert [m.log_time_ns for m in msgs] == [T0, T0 + 7, T0 + 10, T0 + 20, T0 + 30, T0 + 40]
    assert msgs[1].topic == "/pose" and msgs[1].msg.pose.position.x == 1.5
    assert [m.msg.data for m in read_messages(bag, ["/chatter"])] == [
        f"hello {i}" for i in range(5)
    ]
    with pytest.raises(DataError, match="not in bag"):
        list(read_messages(bag, ["/nope"]))


def test_writer_errors_and_cleanup(tmp_path):
    with pytest.raises(DataError, match="storage"):
        BagWriter(tmp_path / "x", storage="rosbag1")
    (tmp_path / "exists").mkdir()
    with pytest.raises(DataError, match="exists"):
        BagWriter(tmp_path / "exists")
    bag = tmp_path / "partial"
    with pytest.raises(RuntimeError):
        with BagWriter(bag) as w:
            w.add_topic("/a", "std_msgs/msg/String")
            w.write("/a", w.factory.new("std_msgs/msg/String", data="x"), 1)
            raise RuntimeError("boom")
    assert not bag.exists()  # a partial bag is removed
    with BagWriter(tmp_path / "ok") as w:
        with pytest.raises(DataError, match="add_topic"):
            w.write("/missing", w.factory.new("std_msgs/msg/String", data="x"), 1)
    with pytest.raises(DataError, match="not found"):
        list(read_messages(tmp_path / "nothing"))


def _camera_bag(path, image_stamps, cloud_stamps, info=True, tf=True, tool=None):
    """``tool``: {stamp: x} samples of a dynamic base_link -> tool edge on /tf (x metres)."""
    intr = CameraIntrinsics.from_fov(8, 6, 60.0)
    with BagWriter(path) as w:
        f = w.factory
        if tool:
            w.add_topic("/tf", "tf2_msgs/msg/TFMessage", depth=100)
            for t, x in sorted(tool.items()):
                edge = TransformTree()
                edge.set("base_link", "tool", make_transform(translation=[x, 0, 0]))
                w.write("/tf", tree_to_tf_message(edge, t, f), t)
        if tf:
            w.add_topic("/tf_static", "tf2_msgs/msg/TFMessage", latched=True)
            tree = TransformTree()
            tree.set("base_link", "lidar", make_transform(translation=[0, 0, 1.7]))
            tree.set("base_link", "camera_optical_frame", make_transform(translation=[1, 0, 0]))
            w.write("/tf_static", tree_to_tf_message(tree, T0 - 1, f), T0 - 1)
        w.add_topic("/img", "sensor_msgs/msg/Image")
        w.add_topic("/info", "sensor_msgs/msg/CameraInfo")
        w.add_topic("/pts", "sensor_msgs/msg/PointCloud2")
        events = [(t, 0, i) for i, t in enumerate(image_stamps)]
        events += [(t, 1, i) for i, t in enumerate(cloud_stamps)]
        for t, kind, i in sorted(events):
            if kind == 0:
                img = np.full((6, 8, 3), i, np.uint8)
                w.write("/img", encode_image(img, "rgb8", t, "camera_optical_frame", f), t)
                if info:
                    w.write("/info", intrinsics_to_camera_info(intr, t, f), t)
            else:
                pts = np.full((3, 4), i, np.float32)
                w.write("/pts", array_to_pointcloud2(pts, t, "lidar", f), t)
    return intr


def test_frames_from_bag_pairs_within_slop(tmp_path):
    ms = 1_000_000
    # images every 33 ms; clouds 0, 2, 17 and 1 ms away from the nearest image
    img_t = [T0 + i * 33 * ms for i in range(10)]
    cld_t = [T0, T0 + 101 * ms, T0 + 182 * ms, T0 + 232 * ms]
    intr = _camera_bag(tmp_path / "b", img_t, cld_t)
    frames = list(frames_from_bag(tmp_path / "b", "/img", "/info", "/pts", slop_s=0.01))
    assert [f.stamp_ns for f in frames] == [img_t[0], img_t[3], img_t[7]]
    assert [int(f.image[0, 0, 0]) for f in frames] == [0, 3, 7]
    assert [float(f.points[0, 0]) for f in frames] == [0.0, 1.0, 3.0]
    assert np.allclose(frames[0].camera.K, intr.K)
    assert np.allclose(
        frames[0].transforms.lookup("camera_optical_frame", "lidar")[:3, 3], [-1, 0, 1.7]
    )
    assert [f.index for f in frames] == [0, 1, 2]
    # a slop below 2 ms drops the second pair
    tight = list(frames_from_bag(tmp_path / "b", "/img", "/info", "/pts", slop_s=0.0015))
    assert [f.stamp_ns for f in tight] == [img_t[0], img_t[7]]


def test_frames_from_bag_needs_camera_info(tmp_path):
    _camera_bag(tmp_path / "noinfo", [T0, T0 + 10], [], info=False)
    with pytest.raises(DataError, match="no CameraInfo on /info"):
        list(frames_from_bag(tmp_path / "noinfo", "/img", "/info", None))
    with pytest.raises(DataError, match=r"\['/camera_info'\] not in bag"):
        list(frames_from_bag(tmp_path / "noinfo", "/img", "/camera_info", None))
    _camera_bag(tmp_path / "notf", [T0, T0 + 10], [], tf=False)
    frames = list(frames_from_bag(tmp_path / "notf", "/img", "/info", None))
    assert len(frames) == 2 and frames[0].transforms.frames == []


def test_frames_from_bag_evaluates_dynamic_tf_at_each_frame(tmp_path, caplog):
    ms = 1_000_000
    img_t = [T0 + i * 30 * ms for i in range(7)]  # 0 .. 180 ms
    # /tf samples at 0 and 50 ms (x = 0, 0.5 m), nothing later
    _camera_bag(tmp_path / "dyn", img_t, [], tool={T0: 0.0, T0 + 50 * ms: 0.5})
    frames = list(frames_from_bag(tmp_path / "dyn", "/img", "/info", None))
    assert len(frames) == 7
    xs = [f.transforms.lookup("base_link", "tool")[0, 3] for f in frames[:6]]
    # 0; 30 ms interpolated; 60..150 ms: the last sample, held up to 100 ms after it
    assert np.allclose(xs, [0.0, 0.3, 0.5, 0.5, 0.5, 0.5], atol=1e-12, rtol=0)
    with pytest.raises(CalibrationError, match="no sample within 100 ms"):
        frames[6].transforms.lookup("base_link", "tool")  # 180 ms: 130 ms after the last
    assert frames[0].transforms.can_transform("camera_optical_frame", "lidar")  # static kept
    # a bag without /tf replays quietly: no dynamic edge, no warning about it
    _camera_bag(tmp_path / "plain", img_t[:2], [])
    with caplog.at_level("WARNING", logger="spatial_ros.bagio"):
        plain = list(frames_from_bag(tmp_path / "plain", "/img", "/info", None))
    assert len(plain) == 2 and "tool" not in plain[0].transforms.frames
    assert plain[0].transforms.can_transform("camera_optical_frame", "lidar")
    assert not caplog.records


def test_sim_and_bagio_import_without_rclpy():
    code = (
        "import sys; sys.modules['rclpy'] = None\n"
        "import spatial_ros.bagio, spatial_ros.sim, spatial_ros.commands.sim\n"
        "import spatial_ros.bench.sim\n"
        "assert sys.modules['rclpy'] is None\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
