"""`spatial-ros bench served`: latency per frame of the served-model backend, its frame's
queries sent concurrently (ours) vs one after another (baseline), against the scripted
OpenAI-compatible server on 127.0.0.1 (``spatial_ros.vlm.fake_openai_server``) that answers each
request after a fixed delay (a stand-in for the model's time per request; the server itself adds
well under a millisecond). Both modes send the same requests (one image data URL, the same
answers); the ideal ratio is the number of queries (bounded by ``--concurrency``)."""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np

HELP = "served backend: ms per frame with N queries, concurrent vs sequential (local fake server)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--queries", type=int, default=8, help="queries per frame")
    parser.add_argument("--delay", type=float, default=0.1,
                        help="the fake server's time per request (s)")
    parser.add_argument("--concurrency", type=int, default=8, help="requests in flight")
    parser.add_argument("--frames", type=int, default=5, help="timed frames per mode (median)")
    parser.add_argument("--width", type=int, default=1280, help="image width, px")
    parser.add_argument("--height", type=int, default=720, help="image height, px")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")


def run(args) -> int:
    import cv2

    from spatial_ros.vlm.fake_openai_server import FakeOpenAIServer, Reply
    from spatial_ros.vlm.served import ServedBackend, image_data_url
    from spatial_ros.vlm.served_config import ServedConfig

    # a camera-like image (smooth regions and edges; random noise would make a JPEG ~10x larger)
    low = np.random.default_rng(0).integers(0, 256, (max(args.height // 16, 2),
                                                     max(args.width // 16, 2), 3), np.uint8)
    image = cv2.resize(low, (args.width, args.height), interpolation=cv2.INTER_NEAREST)
    prompts = [f"Provide the 3D bounding box of the region this sentence describes: object {i}"
               for i in range(args.queries)]
    answer = "[315, 280, 274, 0.07, 0.22, 0.07, 0.9]"
    out: dict = {"queries": args.queries, "server_delay_s": args.delay,
                 "concurrency": args.concurrency, "image": [args.height, args.width]}
    with FakeOpenAIServer(lambda body: Reply(answer, delay_s=args.delay), model="bench") as srv:
        backend = ServedBackend(ServedConfig(server_url=srv.url, served_model="bench",
                                             concurrency=args.concurrency))
        try:
            for mode in ("auto", "sequential"):
                backend.generate([image], prompts, 24, mode=mode)  # warm-up (connections)
                srv.max_in_flight = 0
                times = []
                for _ in range(max(args.frames, 1)):
                    t0 = time.perf_counter()
                    res = backend.generate([image], prompts, 24, mode=mode)
                    times.append((time.perf_counter() - t0) * 1e3)
                    assert [r.text for r in res] == [answer] * args.queries
                key = "concurrent" if mode == "auto" else "sequential"
                out[key] = {"ms_per_frame": statistics.median(times),
                            "max_in_flight": srv.max_in_flight}
        finally:
            backend.close()
    t0 = time.perf_counter()
    url, _ = image_data_url(image, 1024, "jpeg", 90)
    out["image_encode_ms"] = (time.perf_counter() - t0) * 1e3
    out["data_url_kb"] = len(url) / 1e3
    c, s = out["concurrent"]["ms_per_frame"], out["sequential"]["ms_per_frame"]
    out["speedup"] = s / c
    ideal = args.delay * 1e3 * -(-args.queries // args.concurrency)
    print(f"served backend, {args.queries} queries/frame, fake server {args.delay * 1e3:.0f} ms "
          f"per request, {args.width}x{args.height} image (sent at 1024 px, JPEG):")
    print(f"  concurrent (ours):     {c:8.1f} ms/frame   (max {out['concurrent']['max_in_flight']}"
          f" in flight; ideal {ideal:.0f} ms)")
    print(f"  sequential (baseline): {s:8.1f} ms/frame   (max "
          f"{out['sequential']['max_in_flight']} in flight)")
    print(f"  speed-up {out['speedup']:.2f}x; image encoding {out['image_encode_ms']:.1f} ms "
          f"of each frame ({out['data_url_kb']:.0f} kB data URL per request)")
    if args.json:
        args.json.write_text(json.dumps(out, indent=2) + "\n")
    return 0
