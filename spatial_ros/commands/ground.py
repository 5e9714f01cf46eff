"""`spatial-ros ground`: natural-language queries over every synchronized frame of a bag -> 3D
boxes in the JSON Lines box format (spatial_ros/boxfile.py), one line per frame.

Runs the same ``PerceptionPipeline`` as the perception node (LiDAR specialist candidates ->
VLM engine with specialist box prompts -> boxes in the output frame), so a replayed bag gives
what the node would publish. ``--specialists-only`` skips the model and writes every candidate.
Extra keys per object: ``source``, ``distance`` (m from the camera), ``box_2d`` (px), ``frame``
(the frame index in the bag).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from spatial_ros.commands.served_args import add_served_arguments, served_values

HELP = "ground natural-language queries in every frame of a bag -> boxes (JSON Lines)"

log = logging.getLogger(__name__)


def add_arguments(parser) -> None:
    from spatial_ros.vlm.backends.options import add_model_arguments

    parser.add_argument("--bag", required=True, help="rosbag2 directory (MCAP or sqlite3)")
    parser.add_argument("--query", action="append", default=[],
                        help='a phrase to ground, e.g. "the red mug" (repeatable)')
    parser.add_argument("--model", default="",
                        help="local model directory (default: the embedded models/default)")
    parser.add_argument("--out", required=True, help="output JSON Lines file (box format)")
    parser.add_argument("--specialists-only", action="store_true",
                        help="no model: write every specialist candidate")
    parser.add_argument("--output-frame", default="base_link", help="frame of the boxes (z up)")
    parser.add_argument("--lidar-preset", choices=("auto", "tabletop", "street"), default="auto",
                        help="auto: chosen from the first cloud's ranges (logged)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N")
    parser.add_argument("--max-new-tokens", type=int, default=48)
    add_model_arguments(parser)
    parser.add_argument("--vcot", action="store_true", help="ask the 2D box first, then 3D")
    parser.add_argument("--no-specialist-prompts", action="store_true",
                        help="do not list candidate boxes in the prompt")
    parser.add_argument("--image-topic", default="/camera/image_raw")
    parser.add_argument("--info-topic", default="/camera/camera_info")
    parser.add_argument("--cloud-topic", default="/lidar/points")
    parser.add_argument("--depth-topic", default="", help="aligned depth topic ('' = none)")
    parser.add_argument("--slop", type=float, default=0.05, help="sync slop (s)")
    parser.add_argument("--max-frames", type=int, default=0, help="stop after N frames (0 = all)")
    add_served_arguments(parser)


def object_record(o, frame_index: int):
    """GroundedObject -> BoxRecord (box format + source, distance, box_2d, frame)."""
    from spatial_ros.boxfile import BoxRecord

    extra = {"source": o.source, "distance": float(o.distance), "frame": frame_index}
    if o.box_2d is not None:
        extra["box_2d"] = [float(v) for v in o.box_2d]
    return BoxRecord(id=o.id, label=o.label, box=o.box, query=o.query or None,
                     score=float(o.score), extra=extra)


def run(args) -> int:
    from spatial_ros.bagio import frames_from_bag
    from spatial_ros.boxfile import BoxFrame, write_box_file
    from spatial_ros.errors import ConfigError
    from spatial_ros.perception import PerceptionConfig, PerceptionPipeline, normalize_queries
    from spatial_ros.vlm.backends.options import model_options_from_args

    queries = normalize_queries(args.query)
    if not queries and not args.specialists_only:
        raise ConfigError("give at least one --query (or --specialists-only)")
    if args.max_new_tokens < 1:
        raise ConfigError(f"--max-new-tokens {args.max_new_tokens} must be >= 1")
    cfg = PerceptionConfig(
        cloud_topic=args.cloud_topic,
        depth_topic=args.depth_topic,
        output_frame=args.output_frame,
        queries=queries,
        use_vlm=not args.specialists_only,
        model_path=args.model,
        device=args.device,
        max_new_tokens=args.max_new_tokens,
        specialist_prompts=not args.no_specialist_prompts,
        vcot=args.vcot,
        lidar_preset=args.lidar_preset,
        relation_pairs=[],
        **model_options_from_args(args),
        **served_values(args),
    )
    pipe = PerceptionPipeline(cfg)
    pipe.load()
    frames_out: list[BoxFrame] = []
    failures = n_obj = 0
    t0 = time.perf_counter()
    try:
        frames = frames_from_bag(
            args.bag, image_topic=args.image_topic, info_topic=args.info_topic,
            cloud_topic=args.cloud_topic or None, depth_topic=args.depth_topic or None,
            slop_s=args.slop,
        )
        for frame in frames:
            res = pipe.process(frame, queries)
            failures += res.parse_failures
            n_obj += len(res.objects)
            recs = [object_record(o, frame.index) for o in res.objects]
            frames_out.append(BoxFrame(res.stamp_ns, res.frame_id, recs,
                                       {"timings_ms": res.timings_ms}))
            if args.max_frames and len(frames_out) >= args.max_frames:
                break
    finally:
        pipe.unload()
    out = Path(args.out)
    write_box_file(out, frames_out)
    dt = time.perf_counter() - t0
    n = len(frames_out)
    mode = "specialists only" if args.specialists_only else f"{len(queries)} queries"
    print(f"{n} frames, {mode}: {n_obj} objects, {failures} unanswered queries; "
          f"{dt / max(n, 1) * 1e3:.0f} ms/frame -> {out}")
    return 0
