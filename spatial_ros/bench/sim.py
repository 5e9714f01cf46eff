"""`spatial-ros bench sim`: simulator throughput, vectorised ray casting vs one ray per call.

Measures, for the tabletop and street scenarios at their default sensor settings: frames/s of
``iter_frames`` (camera + depth + truth every frame, a LiDAR scan every 3rd frame, in memory),
the time of one camera render and one LiDAR scan, and the bag-writing rate of ``simulate``.
The baseline casts the same camera rays one ``cast_rays`` call per ray (what a per-pixel Python
loop costs); it runs on a subset of the rays and is extrapolated linearly (said in the output),
after checking that it returns the same hit distances.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import open3d as o3d

from spatial_ros.sim import SimConfig, iter_frames, make_scene, simulate
from spatial_ros.sim.raycast import RayWorld, camera_rays, render_camera, render_lidar

HELP = "simulator frames/s (tabletop, street) and vectorised vs per-ray casting"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--frames", type=int, default=30, help="frames per scenario")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--naive-rays", type=int, default=2000, help="rays cast one by one")
    parser.add_argument("--bag", action="store_true", help="also time simulate() with a bag")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")


def _median_s(fn, repeat: int = 5) -> float:
    fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def run(args) -> int:
    results: dict[str, dict] = {}
    for scenario in ("tabletop", "street"):
        cfg = SimConfig(scenario=scenario, seed=args.seed, frames=args.frames)
        t0 = time.perf_counter()
        n = sum(1 for _ in iter_frames(cfg))
        fps = n / (time.perf_counter() - t0)
        scene = make_scene(scenario, args.seed)
        world = RayWorld(scene)
        rng = np.random.default_rng(0)
        cam_s = _median_s(lambda w=world, g=rng: render_camera(w, g))
        lid_s = _median_s(lambda w=world, g=rng: render_lidar(w, g))
        rays = camera_rays(scene.rig, 1)[0]
        sub = rays[np.linspace(0, len(rays) - 1, min(args.naive_rays, len(rays))).astype(int)]
        t0 = time.perf_counter()
        naive = np.array(
            [world.rc.cast_rays(o3d.core.Tensor(r[None]))["t_hit"].numpy()[0] for r in sub]
        )
        naive_s = (time.perf_counter() - t0) * len(rays) / len(sub)
        vec_s = _median_s(lambda w=world, r=rays: w.rc.cast_rays(o3d.core.Tensor(r)))
        ours = world.rc.cast_rays(o3d.core.Tensor(sub))["t_hit"].numpy()
        assert np.array_equal(naive, ours), "per-ray baseline disagrees with the batched cast"
        intr = scene.rig.intrinsics
        results[scenario] = {
            "frames_per_s": round(fps, 2),
            "camera_render_ms": round(cam_s * 1e3, 2),
            "lidar_scan_ms": round(lid_s * 1e3, 2),
            "image": f"{intr.width}x{intr.height}",
            "camera_rays": int(len(rays)),
            "cast_batched_ms": round(vec_s * 1e3, 2),
            "cast_per_ray_ms_extrapolated": round(naive_s * 1e3, 1),
            "speedup": round(naive_s / vec_s, 1),
        }
        r = results[scenario]
        print(
            f"{scenario:8s} {r['image']:>8s}: {fps:6.1f} frames/s in memory "
            f"(camera {r['camera_render_ms']:.1f} ms, LiDAR scan {r['lidar_scan_ms']:.1f} ms); "
            f"casting {len(rays)} camera rays: one call {r['cast_batched_ms']:.1f} ms vs one "
            f"call per ray {r['cast_per_ray_ms_extrapolated']:.0f} ms "
            f"(extrapolated from {len(sub)} rays) = {r['speedup']:.0f}x"
        )
        if args.bag:
            with tempfile.TemporaryDirectory() as d:
                res = simulate(cfg, Path(d) / "run")
            r["bag_frames_per_s"] = round(res.fps, 2)
            print(f"{'':8s} with MCAP bag + truth files: {res.fps:.1f} frames/s")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1) + "\n")
    return 0
