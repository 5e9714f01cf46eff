"""`spatial-ros bench lidar`: LiDAR specialist ms per scan on ONE core, side by side with an
open3d baseline in the same run.

Scans: the real 360-degree KITTI scans in the shared sample folder (``kitti_*/velodyne_360.bin``,
~120 k points each; ``--real DIR``, default ``$SPATIAL_ROS_REAL_DATA`` or ``../shared/data/real``
next to the project), else (or with ``--synthetic``) ray-cast 64-beam street scans with exact
truth (``--points`` returns each).

Ours: ``LidarSpecialist`` with the street preset (patchwise ground, two clusterings, batched
L-shape boxes, classes). Baseline, the usual open3d recipe: ``voxel_down_sample`` (0.1 m),
``segment_plane`` (RANSAC ground, 0.2 m, 100 iterations), ``cluster_dbscan`` (eps 0.5 m, 10
points) on the rest, a ``cv2.minAreaRect`` box per cluster. Both run ``--repeat`` times per scan;
the report gives the median (and p90) ms per scan over all runs, and, where the scans carry
labels (KITTI label_2 of the camera view) or truth (synthetic), each method's recall at BEV IoU
0.5 of the objects with at least 50 points, so the speed comparison is between methods that do
the job.

The measurement runs in a child process pinned to one CPU (``sched_setaffinity``) with the
OpenMP/BLAS/torch thread variables set to 1 before numpy and open3d are imported: the numbers
are single-core numbers.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

HELP = "LiDAR specialist ms/scan on one core (real 360-degree scans) vs an open3d baseline"
TARGET_MS = 50.0
_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                "NUMEXPR_NUM_THREADS", "VECLIB_MAXIMUM_THREADS", "TORCH_NUM_THREADS")


def default_real_dir() -> Path:
    env = os.environ.get("SPATIAL_ROS_REAL_DATA")
    root = Path(__file__).resolve().parents[2]
    return Path(env) if env else root.parent / "shared" / "data" / "real"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--real", default=None,
                        help="folder of kitti_*/velodyne_360.bin scans (default: the shared "
                             "sample folder when present)")
    parser.add_argument("--synthetic", action="store_true",
                        help="ray-cast street scans instead of the real ones")
    parser.add_argument("--points", type=int, default=120_000,
                        help="returns per synthetic scan")
    parser.add_argument("--scans", type=int, default=3, help="synthetic scans (seeds 0..)")
    parser.add_argument("--repeat", type=int, default=20, help="timed runs per scan (ours)")
    parser.add_argument("--baseline-repeat", type=int, default=3,
                        help="timed runs per scan of the open3d baseline")
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
           "--points", str(args.points), "--scans", str(args.scans),
           "--repeat", str(args.repeat), "--baseline-repeat", str(args.baseline_repeat),
           "--huge", str(args.huge)]
    if args.real:
        cmd += ["--real", str(args.real)]
    if args.synthetic:
        cmd += ["--synthetic"]
    if args.cpu is not None:
        cmd += ["--cpu", str(args.cpu)]
    if args.json:
        cmd += ["--json", args.json]
    return subprocess.call(cmd, env=env)


def _load_scans(args) -> tuple[list[dict], str]:
    """[{name, points (N, 4), T (4x4 base from lidar), truth boxes, truth point counts}]."""
    import numpy as np

    real = Path(args.real) if args.real else default_real_dir()
    if not args.synthetic and real.is_dir():
        from spatial_ros.datasets.kitti import load_kitti_frame, read_velodyne

        scans = []
        for d in sorted(real.glob("kitti_*")):
            f = d / "velodyne_360.bin"
            if not f.is_file():
                continue
            pts = read_velodyne(f)
            kf = load_kitti_frame(d)
            boxes = [lab.box for lab in kf.labels if lab.box is not None]
            counts = [int(b.contains(pts[:, :3]).sum()) for b in boxes]
            scans.append(dict(name=d.name, points=pts, T=np.eye(4), boxes=boxes,
                              counts=np.array(counts), frame="velodyne"))
        if scans:
            return scans, f"real 360-degree KITTI scans ({real})"
    from spatial_ros.specialists.synthetic import street_scan

    scans = []
    for seed in range(max(args.scans, 1)):
        steps = max(2048, int(np.ceil(args.points / (64 * 0.9))))
        s = street_scan(seed, azimuth_steps=steps, target_points=args.points)
        scans.append(dict(name=f"synthetic_{seed}", points=s.points, T=s.T_base_from_lidar,
                          boxes=s.boxes, counts=np.asarray(s.point_counts), frame="base_link"))
    return scans, "synthetic ray-cast 64-beam street scans"


def baseline_boxes(points, T):
    """The open3d baseline (module docstring): Box3D list in the frame of ``T``."""
    import cv2
    import numpy as np
    import open3d as o3d

    from spatial_ros.types import Box3D

    p = np.asarray(points)[:, :3].astype(np.float64) @ T[:3, :3].T + T[:3, 3]
    o3d.utility.random.seed(0)  # RANSAC: the same ground plane (and recall) on every run
    pc = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(p)).voxel_down_sample(0.1)
    _, inl = pc.segment_plane(distance_threshold=0.2, ransac_n=3, num_iterations=100)
    rest = pc.select_by_index(inl, invert=True)
    labels = np.asarray(rest.cluster_dbscan(eps=0.5, min_points=10))
    q = np.asarray(rest.points)
    out = []
    for k in range(int(labels.max()) + 1 if len(labels) else 0):
        c = q[labels == k]
        (cx, cy), (w, h), ang = cv2.minAreaRect(c[:, :2].astype(np.float32))
        z0, z1 = float(c[:, 2].min()), float(c[:, 2].max())
        out.append(Box3D.from_yaw([cx, cy, (z0 + z1) / 2], [max(w, 1e-3), max(h, 1e-3),
                                                             max(z1 - z0, 1e-3)],
                                  float(np.radians(ang))))
    return out


def _times(fn, repeat: int) -> tuple[list[float], list[float]]:
    """(wall ms, CPU ms) of each run after a warm-up. On a shared machine the wall time also
    counts the time other processes held the core; the CPU time is this process's own."""
    fn()  # warm-up (imports, caches)
    wall, cpu = [], []
    for _ in range(max(repeat, 1)):
        t, c = time.perf_counter(), time.process_time()
        fn()
        wall.append((time.perf_counter() - t) * 1e3)
        cpu.append((time.process_time() - c) * 1e3)
    return wall, cpu


def _recall(boxes, scan, min_points: int = 50) -> tuple[int, int]:

    from spatial_ros.geometry.iou import iou_bev_matrix

    ok = scan["counts"] >= min_points
    if not ok.any():
        return 0, 0
    truth = [b for b, k in zip(scan["boxes"], ok, strict=True) if k]
    if not boxes:
        return 0, len(truth)
    for b in (*truth, *boxes):  # all in the scan's working frame
        b.frame_id = ""
    M = iou_bev_matrix(truth, boxes)
    return int((M.max(axis=1) >= 0.5).sum()), len(truth)


def _measure(args) -> dict:
    cpu = None
    if hasattr(os, "sched_setaffinity"):
        allowed = sorted(os.sched_getaffinity(0))
        cpu = args.cpu if args.cpu is not None else allowed[0]
        os.sched_setaffinity(0, {cpu})
    import numpy as np
    import open3d as o3d

    from spatial_ros.specialists.lidar import LidarSpecialist, LidarSpecialistConfig

    o3d.utility.set_verbosity_level(o3d.utility.VerbosityLevel.Error)
    scans, source = _load_scans(args)
    ours_all, base_all, ours_cpu, base_cpu, per_scan = [], [], [], [], []
    hits = {"ours": [0, 0], "baseline": [0, 0]}
    stages: dict[str, list[float]] = {}
    for s in scans:
        sp = LidarSpecialist(LidarSpecialistConfig.street())
        pts, T = s["points"], s["T"]
        def run_ours(sp=sp, pts=pts, T=T):
            sp.propose(pts, T_base_from_lidar=T)
            for k, v in sp.last_stats.timings_ms.items():  # per stage, every timed run
                stages.setdefault(k, []).append(v)

        ours, ocpu = _times(run_ours, args.repeat)
        cands = sp.propose(pts, T_base_from_lidar=T)
        base, bcpu = _times(lambda pts=pts, T=T: baseline_boxes(pts, T), args.baseline_repeat)
        bboxes = baseline_boxes(pts, T)
        for name, boxes in (("ours", [c.box for c in cands]), ("baseline", bboxes)):
            h, n = _recall(boxes, s)
            hits[name][0] += h
            hits[name][1] += n
        ours_all += ours
        base_all += base
        ours_cpu += ocpu
        base_cpu += bcpu
        per_scan.append({"scan": s["name"], "points": int(len(pts)),
                         "ours_ms_median": float(np.median(ours)),
                         "baseline_ms_median": float(np.median(base)),
                         "candidates": len(cands), "baseline_boxes": len(bboxes)})
    huge = None
    if args.huge:
        s = scans[0]
        rng = np.random.default_rng(1)
        big = s["points"][rng.integers(0, len(s["points"]), args.huge)]
        big[:, :3] += rng.normal(0, 0.01, (len(big), 3)).astype(big.dtype)
        sp = LidarSpecialist(LidarSpecialistConfig.street())
        t = time.perf_counter()
        sp.propose(big, T_base_from_lidar=s["T"])
        huge = {"points": int(args.huge), "ms": (time.perf_counter() - t) * 1e3,
                "used": sp.last_stats.n_used}
    ours_med, base_med = float(np.median(ours_all)), float(np.median(base_all))

    def rec(h):
        return (h[0] / h[1]) if h[1] else None

    return {
        "cpu": cpu, "threads_env": {k: os.environ.get(k) for k in _THREAD_VARS},
        "source": source, "scans": len(scans),
        "points": int(np.mean([p["points"] for p in per_scan])), "repeat": args.repeat,
        "ours_ms_median": ours_med,
        "ours_ms_p90": float(np.percentile(ours_all, 90)),
        "ours_cpu_ms_median": float(np.median(ours_cpu)),
        "baseline_cpu_ms_median": float(np.median(base_cpu)),
        "load_average": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        "stages_ms": {k: float(np.median(v)) for k, v in stages.items()},
        "baseline": "open3d voxel_down_sample(0.1) + segment_plane(0.2, 100 it) + "
                    "cluster_dbscan(eps 0.5, 10) + cv2.minAreaRect",
        "baseline_ms_median": base_med, "speedup": base_med / ours_med,
        "recall_bev50_ge50pts": {"ours": rec(hits["ours"]), "baseline": rec(hits["baseline"]),
                                 "objects": hits["ours"][1]},
        "per_scan": per_scan, "target_ms": TARGET_MS, "huge": huge,
    }


def _report(r: dict) -> None:
    ok = "meets" if r["ours_ms_median"] <= TARGET_MS else "MISSES"
    rec = r["recall_bev50_ge50pts"]

    def pct(x):
        return "n/a" if x is None else f"{x:.0%}"

    print(f"LiDAR specialist on {r['scans']} {r['source']}, ~{r['points']:,} points each, "
          f"1 core (cpu {r['cpu']}, OMP_NUM_THREADS={r['threads_env']['OMP_NUM_THREADS']})")
    print(f"  ours      median {r['ours_ms_median']:7.1f} ms/scan  p90 "
          f"{r['ours_ms_p90']:.1f} ms; recall@BEV 0.5 {pct(rec['ours'])} of "
          f"{rec['objects']} objects with >= 50 points")
    print("            stage medians: "
          + ", ".join(f"{k} {v:.1f}" for k, v in r["stages_ms"].items()))
    print(f"  baseline  median {r['baseline_ms_median']:7.1f} ms/scan; recall@BEV 0.5 "
          f"{pct(rec['baseline'])}  ({r['baseline']})")
    for s in r["per_scan"]:
        print(f"    {s['scan']}: {s['points']:,} points, ours {s['ours_ms_median']:.1f} ms "
              f"({s['candidates']} candidates), baseline {s['baseline_ms_median']:.1f} ms "
              f"({s['baseline_boxes']} boxes)")
    print(f"  CPU time  median ours {r['ours_cpu_ms_median']:.1f} ms, baseline "
          f"{r['baseline_cpu_ms_median']:.1f} ms (load average {r['load_average']})")
    print(f"  speed-up  x{r['speedup']:.1f}; target <= {r['target_ms']:.0f} ms/scan: {ok}")
    if r["huge"]:
        h = r["huge"]
        print(f"  {h['points']:,} points: {h['ms']:.0f} ms (subsampled to {h['used']:,} first)")


if __name__ == "__main__":
    p = argparse.ArgumentParser(prog="spatial-ros bench lidar", description=HELP)
    add_arguments(p)
    sys.exit(run(p.parse_args()))
