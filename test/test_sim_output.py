"""`simulate` / `spatial-ros sim`: bag contents, stamps, independent readers, determinism."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from spatial_ros.bagio import bag_topics, frames_from_bag, read_messages
from spatial_ros.boxfile import read_box_file
from spatial_ros.cli import main as cli_main
from spatial_ros.errors import DataError
from spatial_ros.io.camera_info import camera_info_to_intrinsics
from spatial_ros.io.image import depth_to_metres, image_to_rgb8
from spatial_ros.io.msgs import stamp_to_ns
from spatial_ros.io.pointcloud import pointcloud2_to_xyzi
from spatial_ros.sim import (
    GRIPPER_TCP_FRAME,
    TOPICS,
    CameraConfig,
    SimConfig,
    iter_frames,
    simulate,
)
from spatial_ros.types import yaw_to_matrix

CAM = CameraConfig(width=96, height=72, hfov_deg=50.0)
FRAMES = 7  # camera frames 0..6 -> LiDAR scans at frames 0, 3, 6
START = 1_700_000_000_000_000_000


def _cfg(**kw) -> SimConfig:
    base = dict(seed=3, frames=FRAMES, camera=CAM, trajectory="success")
    base.update(kw)
    return SimConfig(**base)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("sim") / "a"
    t0 = time.perf_counter()
    result = simulate(_cfg(), out)
    result.wall_s_measured_by_test = time.perf_counter() - t0
    return result


def test_bag_contents_and_stamps(run):
    msgs = list(read_messages(run.bag_path))
    by = {}
    for m in msgs:
        by.setdefault(m.topic, []).append(m)
    counts = {t: len(v) for t, v in by.items()}
    assert counts == {
        TOPICS["tf_static"]: 1,
        TOPICS["tf"]: FRAMES,
        TOPICS["image"]: FRAMES,
        TOPICS["camera_info"]: FRAMES,
        TOPICS["depth"]: FRAMES,
        TOPICS["points"]: 3,
    }
    assert [m.log_time_ns for m in msgs] == sorted(m.log_time_ns for m in msgs)
    for i, m in enumerate(by[TOPICS["image"]]):
        nominal = START + round(i * 1e9 / 30)
        assert abs(stamp_to_ns(m.msg) - nominal) <= 1_000_000  # +- 1 ms jitter
        assert stamp_to_ns(m.msg) == m.log_time_ns
        assert m.msg.encoding == "rgb8" and m.msg.header.frame_id == "camera_optical_frame"
    for k, m in enumerate(by[TOPICS["points"]]):
        assert abs(stamp_to_ns(m.msg) - (START + k * 100_000_000)) <= 1_000_000
        assert [f.name for f in m.msg.fields] == ["x", "y", "z", "intensity"]
        assert m.msg.header.frame_id == "lidar"
    jit = [
        stamp_to_ns(m.msg) - START - round(i * 1e9 / 30) for i, m in enumerate(by[TOPICS["image"]])
    ]
    assert len(set(jit)) == FRAMES  # seeded jitter, not a constant offset
    frames = {
        t.child_frame_id: t.header.frame_id for t in by[TOPICS["tf_static"]][0].msg.transforms
    }
    assert frames == {
        "camera_link": "base_link",
        "camera_optical_frame": "camera_link",
        "lidar": "base_link",
    }
    meta = yaml.safe_load((run.bag_path / "metadata.yaml").read_text())
    info = meta["rosbag2_bagfile_information"]
    assert info["storage_identifier"] == "mcap" and info["message_count"] == len(msgs)
    qos = {
        t["topic_metadata"]["name"]: t["topic_metadata"]["offered_qos_profiles"]
        for t in info["topics_with_message_count"]
    }
    assert "transient_local" in str(qos[TOPICS["tf_static"]]).lower()
    assert "volatile" in str(qos[TOPICS["tf"]]).lower()
    # /tf: base_link -> gripper_tcp at each image stamp, logged before that image
    pos = {(m.topic, m.log_time_ns): k for k, m in enumerate(msgs)}
    for tf, img in zip(by[TOPICS["tf"]], by[TOPICS["image"]], strict=True):
        (ts,) = tf.msg.transforms
        assert (ts.header.frame_id, ts.child_frame_id) == ("base_link", GRIPPER_TCP_FRAME)
        assert stamp_to_ns(ts.header) == tf.log_time_ns == img.log_time_ns
        assert pos[(TOPICS["tf"], tf.log_time_ns)] < pos[(TOPICS["image"], img.log_time_ns)]


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # mcap's own mcap_ros1 import
def test_independent_mcap_reader_agrees(run):
    from mcap_ros2.reader import read_ros2_messages

    mcap = next(run.bag_path.glob("*.mcap"))
    theirs = list(read_ros2_messages(str(mcap)))
    ours = list(read_messages(run.bag_path))
    assert [(m.channel.topic, m.log_time_ns) for m in theirs] == [
        (m.topic, m.log_time_ns) for m in ours
    ]
    img_theirs = next(m.ros_msg for m in theirs if m.channel.topic == TOPICS["image"])
    img_ours = next(m.msg for m in ours if m.topic == TOPICS["image"])
    assert bytes(img_theirs.data) == bytes(img_ours.data)
    pc = next(m.ros_msg for m in theirs if m.channel.topic == TOPICS["points"])
    xyzi = np.frombuffer(bytes(pc.data), np.float32).reshape(-1, 4)
    assert np.array_equal(
        xyzi, pointcloud2_to_xyzi(next(m.msg for m in ours if m.topic == TOPICS["points"]))
    )


def test_bag_matches_in_memory_frames_and_truth(run):
    frames = list(iter_frames(_cfg()))
    imgs = [m.msg for m in read_messages(run.bag_path, [TOPICS["image"]])]
    depths = [m.msg for m in read_messages(run.bag_path, [TOPICS["depth"]])]
    clouds = [m.msg for m in read_messages(run.bag_path, [TOPICS["points"]])]
    info = next(read_messages(run.bag_path, [TOPICS["camera_info"]])).msg
    intr = camera_info_to_intrinsics(info)
    assert np.allclose(intr.K, frames[0].scene.rig.intrinsics.K)
    for fr, im, dp in zip(frames, imgs, depths, strict=True):
        assert np.array_equal(image_to_rgb8(im), fr.image)
        assert np.array_equal(depth_to_metres(dp), fr.depth, equal_nan=True)
    scans = [fr for fr in frames if fr.points is not None]
    assert [f.index for f in scans] == [0, 3, 6]
    for fr, pc in zip(scans, clouds, strict=True):
        assert np.array_equal(pointcloud2_to_xyzi(pc), fr.points)
    # truth: one box-file line per camera frame with that image's stamp, boxes in base_link
    truth = read_box_file(run.truth_path)
    assert [t.stamp_ns for t in truth] == [stamp_to_ns(m) for m in imgs]
    assert all(t.frame_id == "base_link" for t in truth)
    for t, fr in zip(truth, frames, strict=True):
        assert [o.id for o in t.objects] == [o.id for o in fr.truth.objects]
        for rec, ot in zip(t.objects, fr.truth.objects, strict=True):
            assert np.allclose(rec.box.center, ot.box.center, atol=1e-9)
            assert rec.query == ot.caption and rec.label == ot.category
    detail = [json.loads(x) for x in run.detail_path.read_text().splitlines()]
    assert len(detail) == FRAMES
    prog = [d["trajectory"]["progress"] for d in detail]
    assert prog[0] == 0.0 and prog[-1] == 1.0 and detail[-1]["trajectory"]["in_goal"]
    assert [d["lidar_stamp_ns"] is not None for d in detail] == [i % 3 == 0 for i in range(7)]
    scene = json.loads(run.scene_path.read_text())
    assert scene["seed"] == 3 and scene["camera"]["K"] == intr.K.tolist()
    T = np.array(scene["extrinsics"]["T_camera_optical_from_lidar"])
    assert np.allclose(T, frames[0].scene.rig.T_optical_from_lidar)


def test_frames_from_bag_uses_sync_and_tf(run):
    frames = list(iter_frames(_cfg()))
    got = list(frames_from_bag(run.bag_path, depth_topic=TOPICS["depth"]))
    # 30 Hz camera + 10 Hz LiDAR: one synchronized frame per scan, paired with its image
    assert [f.stamp_ns for f in got] == [frames[i].stamp_ns for i in (0, 3, 6)]
    for f, ref in zip(got, (frames[0], frames[3], frames[6]), strict=True):
        assert np.array_equal(f.image, ref.image) and np.array_equal(f.points, ref.points)
        assert np.array_equal(f.depth, ref.depth, equal_nan=True)
        assert f.points_frame == "lidar"
        T = f.transforms.lookup("camera_optical_frame", "lidar")
        assert np.allclose(T, ref.scene.rig.T_optical_from_lidar, atol=1e-9)
    cam_only = list(frames_from_bag(run.bag_path, cloud_topic=None))
    assert len(cam_only) == FRAMES and cam_only[0].points is None


def _truth_tcp(truth) -> tuple[np.ndarray, float]:
    """Gripper tool centre point from a frame's truth box: centre - height / 2 along z; yaw."""
    (g,) = [o for o in truth.objects if o.category == "gripper"]
    return g.box.center - np.array([0.0, 0.0, g.box.size[2] / 2]), g.box.yaw


def test_gripper_tcp_in_bag_replay_and_in_memory(run):
    frames = list(iter_frames(_cfg()))
    tcps = [_truth_tcp(f.truth) for f in frames]
    assert np.ptp([t[0] for t in tcps], axis=0).max() > 0.01  # the gripper moves in this run
    by_stamp = {f.stamp_ns: tcp for f, tcp in zip(frames, tcps, strict=True)}
    replayed = list(frames_from_bag(run.bag_path, cloud_topic=None))
    synced = list(frames_from_bag(run.bag_path))  # image + LiDAR sets
    assert len(replayed) == FRAMES and len(synced) == 3
    in_memory = [f.sensor_frame() for f in frames]
    for fr in replayed + synced + in_memory:
        centre, yaw = by_stamp[fr.stamp_ns]
        T = fr.transforms.lookup("base_link", GRIPPER_TCP_FRAME)
        assert np.allclose(T[:3, 3], centre, atol=1e-6, rtol=0)
        assert np.allclose(T[:3, :3], yaw_to_matrix(yaw), atol=1e-9, rtol=0)
        # the static rig is still there, and chains through to the moving frame
        assert fr.transforms.can_transform("camera_optical_frame", GRIPPER_TCP_FRAME)
    for a, b in zip(replayed, in_memory, strict=True):
        assert np.allclose(
            a.transforms.lookup("camera_optical_frame", GRIPPER_TCP_FRAME),
            b.transforms.lookup("camera_optical_frame", GRIPPER_TCP_FRAME),
            atol=1e-9,
        )
    # without /tf (dynamic_tf_topic=None) frames carry the static rig only
    static_only = next(iter(frames_from_bag(run.bag_path, dynamic_tf_topic=None)))
    assert GRIPPER_TCP_FRAME not in static_only.transforms.frames


def test_same_seed_byte_identical_other_seed_differs(run, tmp_path):
    again = simulate(_cfg(), tmp_path / "b")
    for rel in ("bag/metadata.yaml", "truth.jsonl", "truth_detail.jsonl", "scene.json"):
        assert (run.out_dir / rel).read_bytes() == (again.out_dir / rel).read_bytes(), rel
    (a,), (b,) = run.bag_path.glob("*.mcap"), again.bag_path.glob("*.mcap")
    assert a.read_bytes() == b.read_bytes()
    other = simulate(_cfg(seed=4), tmp_path / "c")
    assert other.truth_path.read_bytes() != run.truth_path.read_bytes()
    (c,) = other.bag_path.glob("*.mcap")
    assert c.read_bytes() != a.read_bytes()


def test_sqlite3_storage_and_16uc1_depth(tmp_path):
    cfg = _cfg(
        storage="sqlite3",
        trajectory="none",
        frames=4,
        camera=CameraConfig(width=64, height=48, depth_encoding="16UC1", max_depth=20),
    )
    res = simulate(cfg, tmp_path / "s")
    (db,) = res.bag_path.glob("*.db3")
    again = simulate(cfg, tmp_path / "s2")
    assert db.read_bytes() == next(again.bag_path.glob("*.db3")).read_bytes()  # deterministic
    depth = [m.msg for m in read_messages(res.bag_path, [TOPICS["depth"]])]
    assert len(depth) == 4 and depth[0].encoding == "16UC1"
    fr = next(iter_frames(cfg))
    d = depth_to_metres(depth[0])
    ok = np.isfinite(fr.depth)
    assert np.array_equal(np.isfinite(d), ok)
    assert np.abs(d[ok] - fr.depth[ok]).max() <= 0.0005 + 1e-6  # millimetre rounding


def test_existing_output_is_refused(run):
    with pytest.raises(DataError, match="exists"):
        simulate(_cfg(), run.out_dir)


def test_cli(tmp_path, capsys):
    out = tmp_path / "cli"
    rc = cli_main(
        [
            "sim",
            "--scenario",
            "street",
            "--seed",
            "2",
            "--frames",
            "4",
            "--out",
            str(out),
            "--width",
            "96",
            "--height",
            "32",
            "--no-progress",
            "--crop-lidar-to-camera",
        ]
    )
    assert rc == 0
    text = capsys.readouterr().out
    assert "frames/s" in text and "4 camera frames + 2 LiDAR scans" in text
    assert (out / "bag" / "metadata.yaml").is_file() and (out / "scene.json").is_file()
    scene = json.loads((out / "scene.json").read_text())
    assert scene["scenario"] == "street" and scene["lidar"]["azimuth_fov_deg"] == 85.0
    # no gripper in a street: no /tf, and the bag still replays (static transforms only)
    assert TOPICS["tf"] not in bag_topics(out / "bag") and "tf" not in scene["topics"]
    street = list(frames_from_bag(out / "bag", cloud_topic=None))
    assert len(street) == 4 and GRIPPER_TCP_FRAME not in street[0].transforms.frames
    assert street[0].transforms.can_transform("camera_optical_frame", "lidar")
    assert cli_main(["sim", "--frames", "2", "--out", str(out), "--no-progress"]) == 1
    assert "exists" in capsys.readouterr().err
    rc = cli_main(
        [
            "sim",
            "--frames",
            "2",
            "--out",
            str(tmp_path / "g"),
            "--no-progress",
            "--trajectory",
            "success",
            "--goal",
            "juggle the cube",
        ]
    )
    assert rc == 1 and "cannot parse goal" in capsys.readouterr().err


def test_frames_per_scene_makes_episodes(tmp_path):
    cfg = _cfg(frames=6, frames_per_scene=3, trajectory="fail", fail_mode="stall")
    frames = list(iter_frames(cfg))
    eps = [f.truth.episode for f in frames]
    assert eps == [0, 0, 0, 1, 1, 1]
    assert frames[0].truth.scene_seed != frames[3].truth.scene_seed
    # one rig for the whole bag
    assert np.array_equal(
        frames[0].scene.rig.T_base_from_camera_link, frames[5].scene.rig.T_base_from_camera_link
    )
    assert [f.truth.trajectory.phase for f in frames[:3]] == ["idle", "carry", "release"]


def test_outputs_do_not_depend_on_the_wall_clock(run):
    text = (run.bag_path / "metadata.yaml").read_text() + run.scene_path.read_text()
    assert str(START)[:10] in text  # the configured start time
    assert "2026" not in text and "2025" not in text


def test_paths(run):
    assert isinstance(run.bag_path, Path) and run.frames == FRAMES and run.scans == 3
    # fps is frames over the simulation's own wall time, which lies within the call's
    assert 0 < run.elapsed_s <= run.wall_s_measured_by_test
    assert run.fps == pytest.approx(FRAMES / run.elapsed_s)
    assert run.fps >= FRAMES / run.wall_s_measured_by_test


def test_vary_rig_episodes_carry_their_own_transforms(tmp_path):
    cfg = _cfg(frames=6, frames_per_scene=3, trajectory="none", vary_rig=True)
    frames = list(iter_frames(cfg))
    rig0, rig1 = frames[0].scene.rig, frames[3].scene.rig
    assert not np.allclose(rig0.T_base_from_camera_link, rig1.T_base_from_camera_link)
    res = simulate(cfg, tmp_path / "v")
    tfs = list(read_messages(res.bag_path, [TOPICS["tf_static"]]))
    assert len(tfs) == 2
    got = list(frames_from_bag(res.bag_path))
    assert [f.stamp_ns for f in got] == [frames[0].stamp_ns, frames[3].stamp_ns]
    for f, rig in zip(got, (rig0, rig1), strict=True):
        T = f.transforms.lookup("base_link", "camera_optical_frame")
        assert np.allclose(T, rig.T_base_from_optical, atol=1e-9)
