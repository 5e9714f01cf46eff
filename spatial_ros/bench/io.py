"""`spatial-ros bench io`: message decode throughput, ours vs a naive per-element Python loop.

Decodes (1) a PointCloud2 of 120 k points in a realistic padded LiDAR layout (x, y, z,
intensity, ring, time; 32-byte point_step) to (N, 4) float32, and (2) a 1280x720 rgb8 / bgr8
Image to RGB and a 16UC1 depth Image to metres. The baseline is the classic per-point
``struct.unpack_from`` / per-pixel loop; it runs on a subset and is extrapolated linearly to the
full message (said in the output), after checking that it gives the same numbers as ours.
"""

from __future__ import annotations

import argparse
import json
import statistics
import struct
import time
from pathlib import Path

import numpy as np

from spatial_ros.io.image import decode_image, depth_to_metres, encode_image, image_to_rgb8
from spatial_ros.io.msgs import MessageFactory, buffer_u8
from spatial_ros.io.pointcloud import array_to_pointcloud2, pointcloud2_to_xyzi
from spatial_ros.sync import ApproximateTimeSynchronizer

HELP = "decode throughput: PointCloud2 (120k pts) and 1280x720 images vs a naive Python loop"

LIDAR_DTYPE = np.dtype({
    "names": ["x", "y", "z", "intensity", "ring", "time"],
    "formats": ["<f4", "<f4", "<f4", "<f4", "<u2", "<f4"],
    "offsets": [0, 4, 8, 16, 20, 24],
    "itemsize": 32,
})


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--points", type=int, default=120_000, help="points in the cloud")
    parser.add_argument("--width", type=int, default=1280, help="image width, px")
    parser.add_argument("--height", type=int, default=720, help="image height, px")
    parser.add_argument("--repeat", type=int, default=15, help="timed repetitions (median)")
    parser.add_argument("--naive-points", type=int, default=5_000,
                        help="points decoded by the naive loop (extrapolated to --points)")
    parser.add_argument("--naive-rows", type=int, default=12,
                        help="image rows decoded by the naive loop (extrapolated)")
    parser.add_argument("--factory", choices=["rosbags", "rclpy"], default="rosbags",
                        help="which kind of message to decode")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")


def _median_s(fn, repeat: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(max(repeat, 1)):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _naive_cloud(msg, n: int) -> np.ndarray:
    """Per-point struct.unpack loop (what per-point readers do)."""
    data = bytes(buffer_u8(msg.data)[: n * msg.point_step])
    offs = {f.name: f.offset for f in msg.fields}
    fmt = ">f" if msg.is_bigendian else "<f"
    out = []
    for i in range(n):
        base = i * msg.point_step
        out.append([struct.unpack_from(fmt, data, base + offs[k])[0]
                    for k in ("x", "y", "z", "intensity")])
    return np.array(out, dtype=np.float32)


def _naive_rgb(msg, rows: int, bgr: bool) -> np.ndarray:
    data = bytes(buffer_u8(msg.data)[: rows * msg.step])
    out = []
    for v in range(rows):
        row = []
        for u in range(msg.width):
            o = v * msg.step + 3 * u
            r, g, b = data[o], data[o + 1], data[o + 2]
            row.append((b, g, r) if bgr else (r, g, b))
        out.append(row)
    return np.array(out, dtype=np.uint8)


def _naive_depth(msg, rows: int) -> np.ndarray:
    data = bytes(buffer_u8(msg.data)[: rows * msg.step])
    out = np.empty((rows, msg.width), np.float32)
    for v in range(rows):
        for u in range(msg.width):
            mm = struct.unpack_from("<H", data, v * msg.step + 2 * u)[0]
            out[v, u] = np.nan if mm == 0 else mm * 0.001
    return out


def run(args) -> int:
    f = MessageFactory.rclpy() if args.factory == "rclpy" else MessageFactory.rosbags()
    rng = np.random.default_rng(0)
    results: dict[str, dict] = {}
    ok = True

    # -- PointCloud2 ------------------------------------------------------------------------
    n = int(args.points)
    arr = np.zeros(n, LIDAR_DTYPE)
    for k in ("x", "y", "z"):
        arr[k] = rng.normal(0, 20, n)
    arr["intensity"] = rng.random(n)
    arr["ring"] = rng.integers(0, 64, n)
    arr["time"] = rng.random(n) * 0.1
    cloud = array_to_pointcloud2(arr, 0, "lidar", f)
    t_ours = _median_s(lambda: pointcloud2_to_xyzi(cloud), args.repeat)
    m = min(int(args.naive_points), n)
    t0 = time.perf_counter()
    naive = _naive_cloud(cloud, m)
    t_naive = (time.perf_counter() - t0) * n / m
    ok &= bool(np.array_equal(naive, pointcloud2_to_xyzi(cloud)[:m]))
    results["pointcloud2_xyzi"] = {"points": n, "point_step": cloud.point_step,
                                   "ours_ms": t_ours * 1e3, "naive_ms_extrapolated": t_naive * 1e3,
                                   "naive_points_timed": m, "ours_Mpts_per_s": n / t_ours / 1e6,
                                   "speedup": t_naive / t_ours}

    # -- Images -----------------------------------------------------------------------------
    w, h = int(args.width), int(args.height)
    rows = min(int(args.naive_rows), h)
    rgb = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
    for enc, label in (("rgb8", "rgb8_decode_view"), ("rgb8", "rgb8_to_rgb8"),
                       ("bgr8", "bgr8_to_rgb8")):
        msg = encode_image(rgb if enc == "rgb8" else rgb[..., ::-1].copy(), enc, 0, "cam", f)
        if label.endswith("_view"):  # decode_image: a zero-copy view of msg.data
            t_ours = _median_s(lambda msg=msg: decode_image(msg), args.repeat)
        else:  # image_to_rgb8: always an owned, writable RGB array
            t_ours = _median_s(lambda msg=msg: image_to_rgb8(msg), args.repeat)
        t0 = time.perf_counter()
        naive = _naive_rgb(msg, rows, bgr=enc == "bgr8")
        t_naive = (time.perf_counter() - t0) * h / rows
        ok &= bool(np.array_equal(naive, rgb[:rows]))
        results[f"image_{label}"] = {
            "size": f"{w}x{h}", "ours_ms": t_ours * 1e3, "naive_ms_extrapolated": t_naive * 1e3,
            "naive_rows_timed": rows, "ours_MB_per_s": rgb.nbytes / t_ours / 1e6,
            "speedup": t_naive / t_ours}
    mm = rng.integers(0, 10_000, (h, w), dtype=np.uint16)
    dmsg = encode_image(mm, "16UC1", 0, "cam", f)
    t_ours = _median_s(lambda: depth_to_metres(dmsg), args.repeat)
    t0 = time.perf_counter()
    naive = _naive_depth(dmsg, rows)
    t_naive = (time.perf_counter() - t0) * h / rows
    ok &= bool(np.allclose(naive, depth_to_metres(dmsg)[:rows], equal_nan=True))
    results["depth_16UC1_to_metres"] = {"size": f"{w}x{h}", "ours_ms": t_ours * 1e3,
                                        "naive_ms_extrapolated": t_naive * 1e3,
                                        "naive_rows_timed": rows, "speedup": t_naive / t_ours}

    # -- Synchronizer cost per message (no baseline: reported for latency budgets) ----------
    sync = ApproximateTimeSynchronizer(2, lambda *a: None, queue_size=10, slop_s=0.05)
    k_msgs = 3000
    t0 = time.perf_counter()
    for i in range(k_msgs):
        sync.add(0, None, i * 33_333_333)
        if i % 3 == 0:
            sync.add(1, None, i * 33_333_333 + 1_000_000)
    per = (time.perf_counter() - t0) / (k_msgs + k_msgs // 3)
    results["sync_add"] = {"us_per_message": per * 1e6, "sets": sync.fired}

    print(f"bench io ({args.factory} messages; median of {args.repeat} runs; the naive loop runs "
          "on a subset and is EXTRAPOLATED linearly to the full message; 'view' is "
          "decode_image (zero-copy view); *_to_rgb8 return owned arrays)")
    for name, r in results.items():
        if "speedup" in r:
            extra = (f"{r['ours_Mpts_per_s']:.1f} Mpts/s" if "ours_Mpts_per_s" in r
                     else f"{r.get('ours_MB_per_s', 0):.0f} MB/s" if "ours_MB_per_s" in r else "")
            sub = r.get("naive_points_timed", r.get("naive_rows_timed"))
            unit = "points" if "naive_points_timed" in r else "rows"
            print(f"  {name:26s} ours {r['ours_ms']:8.2f} ms {extra:>12s} | naive "
                  f"{r['naive_ms_extrapolated']:9.1f} ms (from {sub} {unit}) | "
                  f"ratio {r['speedup']:7.0f}x")
        else:
            print(f"  {name:26s} {r['us_per_message']:.1f} us/message "
                  f"(2 inputs, 30 Hz + 10 Hz, queue 10; {r['sets']} sets)")
    print("  naive == ours on the timed subset:", "yes" if ok else "NO (bug)")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"results": results, "naive_matches": ok}, indent=2))
    return 0 if ok else 1
