"""`spatial-ros bench lidar` runs end to end (small settings) and reports what it claims: one
pinned single-threaded worker, our specialist and the open3d baseline timed on the same scans,
each with its recall against the scans' truth."""

from __future__ import annotations

import argparse
import json

import pytest

from spatial_ros.bench import lidar as bench


def _args(*extra):
    p = argparse.ArgumentParser()
    bench.add_arguments(p)
    return p.parse_args(list(extra))


def test_bench_lidar_small_synthetic(tmp_path):
    out = tmp_path / "lidar.json"
    args = _args("--synthetic", "--points", "30000", "--scans", "1", "--repeat", "2",
                 "--baseline-repeat", "1", "--huge", "0", "--json", str(out))
    assert bench.run(args) == 0  # spawns the pinned, single-threaded child
    r = json.loads(out.read_text())
    assert r["points"] == 30000 and r["scans"] == 1 and r["source"].startswith("synthetic")
    assert r["threads_env"]["OMP_NUM_THREADS"] == "1"
    assert r["per_scan"][0]["candidates"] > 0 and r["per_scan"][0]["baseline_boxes"] > 0
    rec = r["recall_bev50_ge50pts"]
    assert rec["objects"] > 0 and rec["ours"] >= 0.8
    assert rec["ours"] >= rec["baseline"]  # the baseline has no L-shape, no classes
    assert set(r["stages_ms"]) >= {"ground", "cluster", "boxes", "total"}
    assert r["ours_ms_median"] > 0 and r["baseline_ms_median"] > 0


def test_bench_lidar_on_real_scans(real_data, tmp_path):
    """The default source is the shared folder's 360-degree scans (skipped without them)."""
    if not list(real_data.glob("kitti_*/velodyne_360.bin")):
        pytest.skip("no velodyne_360.bin scans in the real data folder")
    out = tmp_path / "lidar.json"
    args = _args("--real", str(real_data), "--repeat", "1", "--baseline-repeat", "1",
                 "--huge", "0", "--json", str(out))
    assert bench.run(args) == 0
    r = json.loads(out.read_text())
    assert r["source"].startswith("real") and r["scans"] >= 3
    assert 100_000 <= r["points"] <= 140_000  # full 360-degree scans
    assert r["recall_bev50_ge50pts"]["objects"] >= 3
    assert r["recall_bev50_ge50pts"]["ours"] == 1.0
