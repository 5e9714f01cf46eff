"""`spatial-ros bench load`: its configuration and node command line (fast), and a 5 s load run
of the real node process (slow): bounded latency, no memory growth, outputs still right."""

from __future__ import annotations

import json

import pytest

from spatial_ros.bench.load import LoadConfig, _node_command
from spatial_ros.errors import ConfigError


def test_load_config_validates_and_picks_a_private_domain():
    cfg = LoadConfig()
    assert 100 <= cfg.domain_id < 200 and cfg.image_hz == 30 and cfg.cloud_hz == 10
    with pytest.raises(ConfigError, match=r"image_hz=25.0 must be a whole multiple of "
                                          r"cloud_hz=10.0"):
        LoadConfig(image_hz=25.0)
    with pytest.raises(ConfigError, match="duration=0"):
        LoadConfig(duration=0)
    with pytest.raises(ConfigError, match="qos_reliability='fast'"):
        LoadConfig(qos_reliability="fast")


def test_node_command_is_spatial_ros_run_with_overrides(tmp_path):
    cmd = _node_command(LoadConfig(model=str(tmp_path), qos_reliability="reliable"),
                        ["the red mug"], 99.0)
    assert cmd[3:7] == ["run", "perception", "--duration", "99"]
    params = dict(cmd[i + 1].split(":=", 1) for i, a in enumerate(cmd) if a == "-p")
    assert json.loads(params["use_vlm"]) is True
    assert json.loads(params["model_path"]) == str(tmp_path.resolve())
    assert json.loads(params["queries"]) == ["the red mug"]
    assert json.loads(params["qos_reliability"]) == "reliable"
    # every override is a parameter the node declares
    from spatial_ros.perception import PerceptionConfig

    assert set(params) <= set(PerceptionConfig.__dataclass_fields__)
    plain = _node_command(LoadConfig(), [], 1.0)
    plain_params = dict(plain[i + 1].split(":=", 1) for i, a in enumerate(plain) if a == "-p")
    assert json.loads(plain_params["use_vlm"]) is False and "model_path" not in plain_params


@pytest.mark.slow
@pytest.mark.ros
def test_five_seconds_of_load_keep_latency_and_memory_bounded():
    pytest.importorskip("rclpy")
    from spatial_ros.bench.load import run_load

    r = run_load(LoadConfig(duration=5.0, warmup=5.0, qos_reliability="reliable"))
    c = r.node_counters
    print({k: v for k, v in r.to_dict().items() if k != "node_log_tail"})
    assert r.images_published >= 100 and r.clouds_published >= 35
    assert r.outputs >= 15, r.node_log_tail  # 10 Hz sets; a busy machine may process fewer
    assert c["errors"] == c["skipped_frames"] == 0
    # every synchronized set is processed or counted as dropped; none silently lost
    assert c["frames"] + c["dropped_stale"] + c["dropped_old"] >= c["sync_fired"] - 2
    assert r.latency_ms["p95"] < 1000.0  # stale frames are dropped, never queued
    assert r.rss_growth_pct < 5.0
    assert r.accuracy["candidate_bev_recall_iou50"] >= 0.9
