"""Replay == live, over real DDS: ``spatial-ros play`` publishes a simulated bag into a live
perception node (specialists only) and records its ~/objects; the offline replay of the same bag
must give the same boxes for the same frames (same stamps -> same synchronized sets -> same
outputs), and ``spatial-ros eval --pred-bag`` must score the recording like the replay.
"""

from __future__ import annotations

import json
import threading
import time

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy")
pytestmark = pytest.mark.ros

from rclpy.executors import MultiThreadedExecutor  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402

from spatial_ros.cli import main  # noqa: E402
from spatial_ros.commands.play import play  # noqa: E402
from spatial_ros.evaluation.replay import predictions_from_bag, replay_bag  # noqa: E402
from spatial_ros.nodes.perception_node import PerceptionNode  # noqa: E402
from spatial_ros.perception import PerceptionConfig  # noqa: E402
from spatial_ros.sim import SimConfig, simulate  # noqa: E402

DOMAIN = 79  # test_perception_node uses 78


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    out = tmp_path_factory.mktemp("sim_live")
    simulate(SimConfig("tabletop", seed=5, frames=15), out)
    return out


@pytest.fixture
def live_node():
    ctx = rclpy.context.Context()
    rclpy.init(context=ctx, domain_id=DOMAIN)
    params = {"use_vlm": False, "qos_reliability": "reliable", "output_frame": "base_link",
              "lidar_preset": "tabletop", "queries": [], "stats_period": 1.0}
    node = PerceptionNode(context=ctx,
                          parameter_overrides=[Parameter(k, value=v) for k, v in params.items()])
    ex = MultiThreadedExecutor(context=ctx)
    ex.add_node(node)
    threading.Thread(target=ex.spin, daemon=True).start()
    end = time.monotonic() + 20
    while not node._active and time.monotonic() < end:
        time.sleep(0.02)
    assert node._active, "perception node did not activate"
    yield node
    ex.shutdown()
    node.on_shutdown(None)
    node.destroy_node()
    rclpy.try_shutdown(context=ctx)


def _same(a, b) -> None:
    """Two box frames of the same stamp hold the same objects (float32 fields to float32)."""
    assert a.frame_id == b.frame_id == "base_link"
    assert [o.id for o in a.objects] == [o.id for o in b.objects]
    for x, y in zip(a.objects, b.objects, strict=True):
        assert x.label == y.label and x.extra["source"] == y.extra["source"]
        np.testing.assert_allclose(x.box.center, y.box.center, atol=1e-9)
        np.testing.assert_allclose(x.box.size, y.box.size, atol=1e-9)
        np.testing.assert_allclose(x.box.rotation, y.box.rotation, atol=1e-9)
        assert x.score == pytest.approx(y.score, abs=1e-6)  # float32 on the wire
        assert x.extra["distance"] == pytest.approx(y.extra["distance"], abs=1e-5)
        np.testing.assert_allclose(x.extra["box_2d"], y.extra["box_2d"], atol=1e-3)


def test_play_into_live_node_records_the_replay_boxes(sim, live_node, tmp_path):
    rec = tmp_path / "live"
    stats = play(sim / "bag", rate=0.5, record=rec, domain_id=DOMAIN, start_delay=1.0,
                 record_grace=1.5)
    assert stats.published["/camera/image_raw"] == 15
    assert stats.published["/tf_static"] == 1
    live = predictions_from_bag(rec)
    replay = replay_bag(sim / "bag", PerceptionConfig(use_vlm=False, queries=[]), snapshots=0)
    by_stamp = {f.stamp_ns: f for f in replay.predictions}
    assert len(replay.predictions) == 5  # 15 camera frames, 10 Hz LiDAR
    # Every frame the node published is a replay frame with the same boxes; at half speed and
    # ~50 ms per frame the node drops none.
    assert sorted(f.stamp_ns for f in live) == sorted(by_stamp)
    for f in live:
        assert f.objects, "the node published an empty array for a scene with objects"
        _same(by_stamp[f.stamp_ns], f)
    assert live_node.counters["frames"] == 5

    # The recording scores like the replay (eval --pred-bag reads the same truth).
    out_live, out_replay = tmp_path / "eval_live", tmp_path / "eval_replay"
    assert main(["eval", "--bag", str(sim / "bag"), "--pred-bag", str(rec), "--no-report",
                 "--out", str(out_live)]) == 0
    assert main(["eval", "--bag", str(sim / "bag"), "--specialists-only", "--no-report",
                 "--out", str(out_replay)]) == 0
    ml = json.loads((out_live / "metrics.json").read_text())
    mr = json.loads((out_replay / "metrics.json").read_text())
    assert ml["source"]["mode"] == "recorded live outputs"
    assert ml["detection_bev"] == mr["detection_bev"]
    assert ml["distance"]["sensor_to_candidate"] == pytest.approx(
        mr["distance"]["sensor_to_candidate"], abs=1e-4)
