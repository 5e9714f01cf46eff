"""`spatial-ros bench lidar`: LiDAR specialist latency on ONE core vs open3d DBSCAN, same run.

A synthetic 64-beam street scan (ray-cast, exact truth; ``--points`` returns, default 120 k) is
turned into candidates by ``LidarSpecialist`` (street preset) ``--repeat`` times; the median
wall time is compared with a straightforward baseline measured in the same process: open3d's
``cluster_dbscan`` on the raw cloud (eps 0.5 m, 10 points). The measurement runs in a child
process pinned to one CPU (``sched_setaffinity``) with OMP/BLAS threads set to 1 before numpy
and open3d are imported, so the numbers are single-core numbers.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

HELP = "LiDAR specialist ms/scan on one core (120 k-point street scan) vs open3d DBSCAN"
TARGET_MS = 50.0
_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                "NUMEXPR_NUM_THREADS", "VECLIB_MAXIMUM_THREADS")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--points", type=int, default=120_000, help="returns per scan")
    parser.add_argument("--repeat", type=int, default=30, help="timed runs of the specialist")
    parser.add_argument("--baseline-repeat", type=int, default=2,
                        help="timed runs of the DBSCAN baseline (slow)")
    parser.add_argument("--seed", type=int, default=0, help="scene seed")
    parser.add_argument("--huge", type=int, default=5_000_000,
                        help="also time one cloud this large (capped by subsampling); 0 = skip")
    parser.add_argument("--cpu", type=int, default=None,
                        help="CPU to pin the measurement to (default: the first allowed)")
    parser.add_argument("--json", default=None, help="also write the results to this file")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)


def run(args) -> int:
    if not args.worker:
        return _spawn(args)
    res = _measure(args)
    _report(res)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(res, f, indent=2)
    return 0


def _spawn(args) -> int:
    """Re-run this benchmark in a single-threaded child pinned to one CPU."""
    env = dict(os.environ)
    env.update({k: "1" for k in _THREAD_VARS})
    cmd = [sys.executable, "-m", "spatial_ros.bench.lidar", "--worker",
           "--points", str(args.points), "--repeat", str(args.repeat),
           "--baseline-repeat", str(args.baseline_repeat), "--seed", str(args.seed),
           "--huge", str(args.huge)]
    if args.cpu is not None:
        cmd += ["--cpu", str(args.cpu)]
    if args.json:
        cmd += ["--json", args.json]
    return subprocess.call(cmd, env=env)


def _median_ms(fn, repeat: int, warmup: int = 1) -> tuple[float, list[float]]:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(max(repeat, 1)):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1e3)
    times.sort()
    return times[len(times) // 2], times


def _measure(args) -> dict:
    cpu = None
    if hasattr(os, "sched_setaffinity"):
        allowed = sorted(os.sched_getaffinity(0))
        cpu = args.cpu if args.cpu is not None else allowed[0]
        os.sched_setaffinity(0, {cpu})
    import numpy as np
    import open3d as o3d

    from spatial_ros.geometry.iou import iou_3d_matrix
    from spatial_ros.specialists.lidar import LidarSpecialist, LidarSpecialistConfig
    from spatial_ros.specialists.synthetic import street_scan

    o3d.utility.set_verbosity_level(o3d.utility.VerbosityLevel.Error)
    steps = max(2048, int(np.ceil(args.points / (64 * 0.9))))
    scan = street_scan(args.seed, azimuth_steps=steps, target_points=args.points)
    pts = scan.points
    sp = LidarSpecialist(LidarSpecialistConfig.street())
    T = scan.T_base_from_lidar

    ours_ms, ours_all = _median_ms(lambda: sp.propose(pts, T_base_from_lidar=T), args.repeat, 2)
    stages = dict(sp.last_stats.timings_ms)
    cands = sp.propose(pts, T_base_from_lidar=T)
    M = iou_3d_matrix(scan.boxes, [c.box for c in cands]) if cands else None
    eligible = scan.point_counts >= 30
    recall = float((M.max(axis=1)[eligible] >= 0.5).mean()) if M is not None else 0.0

    def baseline():
        pc = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(pts[:, :3].astype(np.float64)))
        return np.asarray(pc.cluster_dbscan(eps=0.5, min_points=10))

    base_ms, _ = _median_ms(baseline, args.baseline_repeat, 0)
    n_base = int(baseline().max()) + 1

    huge = None
    if args.huge:
        rng = np.random.default_rng(1)
        big = pts[rng.integers(0, len(pts), args.huge)]
        big[:, :3] += rng.normal(0, 0.01, (len(big), 3)).astype(np.float32)
        huge_ms, _ = _median_ms(lambda: sp.propose(big, T_base_from_lidar=T), 1, 0)
        huge = {"points": int(args.huge), "ms": huge_ms, "used": sp.last_stats.n_used}

    return {
        "cpu": cpu, "threads_env": {k: os.environ.get(k) for k in _THREAD_VARS[:2]},
        "points": int(len(pts)), "repeat": args.repeat,
        "ours_ms_median": ours_ms, "ours_ms_p90": ours_all[int(0.9 * (len(ours_all) - 1))],
        "stages_ms": stages, "candidates": len(cands), "recall_iou50_ge30pts": recall,
        "objects_ge30pts": int(eligible.sum()),
        "baseline": "open3d cluster_dbscan(eps=0.5, min_points=10) on the raw cloud",
        "baseline_ms_median": base_ms, "baseline_clusters": n_base,
        "speedup": base_ms / ours_ms, "target_ms": TARGET_MS, "huge": huge,
    }


def _report(r: dict) -> None:
    ok = "meets" if r["ours_ms_median"] <= TARGET_MS else "MISSES"
    print(f"LiDAR specialist, {r['points']} points, 1 core (cpu {r['cpu']}, "
          f"OMP_NUM_THREADS={r['threads_env']['OMP_NUM_THREADS']})")
    print(f"  ours      median {r['ours_ms_median']:8.1f} ms  p90 {r['ours_ms_p90']:.1f} ms "
          f"({r['repeat']} runs) -> {r['candidates']} candidates, recall@3D IoU 0.5 "
          f"{r['recall_iou50_ge30pts']:.0%} of {r['objects_ge30pts']} objects with >= 30 points")
    print("            stages: " + ", ".join(f"{k} {v:.1f}" for k, v in r["stages_ms"].items()))
    print(f"  baseline  median {r['baseline_ms_median']:8.1f} ms  ({r['baseline']}; "
          f"{r['baseline_clusters']} clusters, no ground removal, no boxes)")
    print(f"  speed-up  x{r['speedup']:.1f}; target <= {r['target_ms']:.0f} ms: {ok}")
    if r["huge"]:
        h = r["huge"]
        print(f"  {h['points']:,} points: {h['ms']:.0f} ms (subsampled to {h['used']:,} first)")


if __name__ == "__main__":
    p = argparse.ArgumentParser(prog="spatial-ros bench lidar", description=HELP)
    add_arguments(p)
    sys.exit(run(p.parse_args()))
