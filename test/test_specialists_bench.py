"""`spatial-ros bench lidar` runs end to end (small settings) and reports what it claims."""

from __future__ import annotations

import argparse
import json

from spatial_ros.bench import lidar as bench


def test_bench_lidar_small(tmp_path, capsys):
    p = argparse.ArgumentParser()
    bench.add_arguments(p)
    out = tmp_path / "lidar.json"
    args = p.parse_args(["--points", "30000", "--repeat", "3", "--baseline-repeat", "1",
                         "--huge", "0", "--json", str(out)])
    assert bench.run(args) == 0  # spawns the pinned, single-threaded child
    r = json.loads(out.read_text())
    assert r["points"] == 30000 and r["threads_env"]["OMP_NUM_THREADS"] == "1"
    assert r["candidates"] > 0 and r["recall_iou50_ge30pts"] >= 0.8
    assert r["speedup"] > 1.0  # ours beats DBSCAN on the raw cloud even at 30 k points
    assert set(r["stages_ms"]) >= {"planes", "cluster", "boxes", "total"}
