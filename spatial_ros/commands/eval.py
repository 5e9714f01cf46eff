"""`spatial-ros eval`: replay a bag (or KITTI-format frames) through the perception pipeline and
score it -> metrics.json + report.html (+ predictions as box files, KITTI label_2 files).

    spatial-ros eval --bag runs/sim/bag --gt runs/sim/truth.jsonl --query "the red cube" \
        --model models/default --out runs/eval
    spatial-ros eval --bag runs/sim/bag --specialists-only --out runs/eval_lidar
    spatial-ros eval --bag runs/sim/bag --pred-bag runs/live --gt runs/sim/truth.jsonl --out E
    spatial-ros eval --kitti ../shared/data/real/kitti_000008 --out runs/kitti

Bag frames come from the live node's synchronizer and decoders (``bagio.frames_from_bag``);
``--pred-bag`` scores what a live node published (recorded by ``spatial-ros play --record``).
"""

from __future__ import annotations

from pathlib import Path

from spatial_ros.commands.served_args import add_served_arguments, served_values

HELP = "replay a bag or KITTI frames against ground truth -> metrics.json + report.html"


def add_arguments(parser) -> None:
    from spatial_ros.vlm.backends.options import add_model_arguments

    src = parser.add_argument_group("input")
    src.add_argument("--bag", help="rosbag2 directory (MCAP or sqlite3) with the sensor data")
    src.add_argument(
        "--kitti",
        help="KITTI-format folder (image_2/ velodyne/ calib/ [label_2/], or one folder per frame)",
    )
    src.add_argument(
        "--gt",
        help="ground-truth box file (JSON Lines); default: truth.jsonl next "
        "to the bag directory when it exists",
    )
    src.add_argument("--no-gt", action="store_true", help="do not look for truth.jsonl")
    src.add_argument(
        "--refer", metavar="QUERIES",
        help="a referring-expression query file (python -m training.refqueries): accuracy by "
        "query kind with the candidate ceiling -> OUT/refer_metrics.json (frames from the "
        "file's keys: simulated seeds, or KITTI ids under --kitti)")
    src.add_argument(
        "--pred", help="score this predictions box file instead of running the pipeline"
    )
    src.add_argument(
        "--pred-bag",
        help="score the GroundedObject3DArray messages recorded from "
        "a live node (spatial-ros play --record)",
    )
    src.add_argument(
        "--pred-topic", default="/perception_node/objects", help="topic of those messages"
    )
    g = parser.add_argument_group("grounding")
    g.add_argument(
        "--query",
        action="append",
        default=[],
        help='a phrase to ground, e.g. "the red mug" (repeatable)',
    )
    g.add_argument("--queries", nargs="+", default=[], metavar="Q", help="several phrases")
    g.add_argument(
        "--pair",
        action="append",
        default=[],
        metavar="'A | B'",
        help="query pair whose centre distance is scored (repeatable)",
    )
    g.add_argument("--model", default="", help="local model directory (default: models/default)")
    g.add_argument(
        "--specialists-only",
        action="store_true",
        help="no model: score the specialist candidates only",
    )
    g.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N")
    g.add_argument("--max-new-tokens", type=int, default=48)
    add_model_arguments(parser)
    g.add_argument("--vcot", action="store_true", help="ask the 2D box first, then 3D")
    g.add_argument(
        "--output-frame",
        default=None,
        help="frame of the boxes, the truth's (default base_link; KITTI velodyne)",
    )
    g.add_argument(
        "--lidar-preset",
        choices=("auto", "tabletop", "street"),
        default=None,
        help="default auto (chosen from the first cloud's ranges); KITTI street",
    )
    t = parser.add_argument_group("bag topics")
    t.add_argument("--image-topic", default="/camera/image_raw")
    t.add_argument("--info-topic", default="/camera/camera_info")
    t.add_argument("--cloud-topic", default="/lidar/points")
    t.add_argument("--depth-topic", default="", help="aligned depth topic ('' = none)")
    t.add_argument("--slop", type=float, default=0.05, help="sync slop (s)")
    t.add_argument("--max-frames", type=int, default=0, help="stop after N frames (0 = all)")
    s = parser.add_argument_group("scoring and report")
    s.add_argument(
        "--iou",
        type=float,
        nargs="+",
        default=[0.25, 0.5],
        help="3D IoU thresholds of grounding accuracy",
    )
    s.add_argument(
        "--bev-iou",
        type=float,
        nargs="+",
        default=None,
        help="BEV IoU thresholds of candidate AP (default 0.5; KITTI 0.5 0.7)",
    )
    s.add_argument(
        "--min-visible",
        type=float,
        default=0.01,
        help="truth objects less visible than this fraction are ignored in AP",
    )
    s.add_argument("--reward", help="reward labels parquet (frame_index, progress, reward)")
    s.add_argument("--reward-reach-stage", action="store_true",
                   help="the labels include the reach stage (tool_frame): compare them with "
                        "the simulator's staged truth progress")
    s.add_argument("--report-frames", type=int, default=4, help="frames drawn in the report")
    s.add_argument("--no-report", action="store_true", help="metrics.json only")
    parser.add_argument("--out", required=True, help="output directory")
    add_served_arguments(parser)


def default_gt(bag: str | None) -> str | None:
    """truth.jsonl next to a simulated bag directory (``spatial-ros sim`` layout), or None."""
    if not bag:
        return None
    cand = Path(bag).resolve().parent / "truth.jsonl"
    return str(cand) if cand.is_file() else None


def run(args) -> int:
    from spatial_ros.evaluation import EvalConfig, run_eval
    from spatial_ros.vlm.backends.options import model_options_from_args

    if args.refer:
        return run_refer(args)
    gt = args.gt
    if gt is None and not args.no_gt and not args.kitti:
        gt = default_gt(args.bag)
        if gt:
            print(f"using ground truth {gt} (--no-gt to skip)")
    cfg = EvalConfig(
        out_dir=args.out,
        bag=args.bag,
        kitti=args.kitti,
        gt=gt,
        pred=args.pred,
        pred_bag=args.pred_bag,
        pred_topic=args.pred_topic,
        queries=list(args.query) + list(args.queries),
        pairs=args.pair,
        model=args.model,
        specialists_only=args.specialists_only,
        output_frame=args.output_frame,
        lidar_preset=args.lidar_preset,
        device=args.device,
        max_new_tokens=args.max_new_tokens,
        vcot=args.vcot,
        model_options=model_options_from_args(args),
        image_topic=args.image_topic,
        info_topic=args.info_topic,
        cloud_topic=args.cloud_topic,
        depth_topic=args.depth_topic,
        slop=args.slop,
        max_frames=args.max_frames,
        grounding_iou=tuple(args.iou),
        bev_iou=tuple(args.bev_iou) if args.bev_iou else None,
        min_visible=args.min_visible,
        report=not args.no_report,
        report_frames=args.report_frames,
        reward=args.reward,
        reward_reach_stage=args.reward_reach_stage,
        backend_options=served_values(args),
    )
    res = run_eval(cfg)
    print_summary(res)
    return 0


def run_refer(args) -> int:
    """``--refer``: the query file through the product path (spatial_ros.evaluation.refer)."""
    import json
    from pathlib import Path

    from spatial_ros.evaluation.refer import evaluate_refer, format_table, read_query_file
    from spatial_ros.perception import PerceptionConfig, PerceptionPipeline

    records = read_query_file(args.refer)
    cfg = PerceptionConfig(model_path=args.model, device=args.device, queries=[],
                           relation_pairs=[], max_new_tokens=args.max_new_tokens,
                           **{k: v for k, v in served_values(args).items()})
    pipe = PerceptionPipeline(cfg)
    pipe.load()
    try:
        m = evaluate_refer(records, pipe.engine, kitti_root=args.kitti)
    finally:
        pipe.unload()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "refer_metrics.json").write_text(json.dumps(m, indent=1, default=str) + "\n")
    print(format_table(m))
    print(f"wrote {out / 'refer_metrics.json'}")
    return 0


def print_summary(res) -> None:
    """A few lines: frames, accuracy, AP/recall, distance error, speed, output paths."""
    m = res.metrics
    fr = m["frames"]
    print(
        f"{fr['predicted']} frames evaluated ({fr.get('with_truth', 0)} with truth), "
        f"mode: {m['source']['mode']}"
    )
    g = m.get("grounding")
    if g and g["n"]:
        accs = ", ".join(
            f"{k} {v:.2f}" for k, v in g.items() if k.startswith("acc@") and v is not None
        )
        print(
            f"grounding: {accs} over {g['n']} (frame, query) pairs; mean 3D IoU "
            f"{g['mean_iou_3d']:.2f}"
        )
    for k, d in (m.get("detection_bev") or {}).items():
        if d["n_truth"]:
            kind = "class-agnostic" if k.startswith("all@") else "class-aware"
            print(
                f"BEV detection {k} ({kind}): AP {d['ap']:.3f}, recall {d['recall']:.3f} "
                f"({d['tp']}/{d['n_truth']}), {d['fp']} false positives"
            )
    print_kitti_summary(m.get("kitti") or {})
    for k, st in (m.get("distance") or {}).items():
        if st and st["n"]:
            print(
                f"distance {k}: mean abs error {st['abs_mean']:.3f} m "
                f"(rel {st['rel_mean']:.1%}) over {st['n']}"
            )
    pf = m.get("parse_failures") or {}
    if pf.get("queries"):
        print(f"VLM parse failures: {pf['parse_failures']}/{pf['queries']} ({pf['rate']:.0%})")
    tp = m.get("throughput")
    if tp:
        lat = (m.get("latency_ms") or {}).get("total", {})
        print(
            f"{tp['frames_per_s']:.1f} frames/s; pipeline p50 {lat.get('p50')} ms, "
            f"p95 {lat.get('p95')} ms"
        )
    for k, p in res.paths.items():
        print(f"{k}: {p}")


def print_kitti_summary(k: dict) -> None:
    """The KITTI lines: class-aware recall/mAP over all classes per BEV IoU, and the recall of
    well-supported vehicles and people with the share of right types (``kitti_metrics``)."""
    for thr, a in (k.get("class_aware") or {}).items():
        if a["n_truth"]:
            mp = "n/a" if a["map"] is None else f"{a['map']:.3f}"
            print(f"KITTI class-aware @BEV {thr} over {', '.join(a['classes'])}: recall "
                  f"{a['recall']:.3f} ({a['tp']}/{a['n_truth']}), mAP {mp}")
    t = k.get("targets")
    if t:
        parts = []
        for name in ("vehicles", "people"):
            g = t[name]
            if g["n"]:
                parts.append(f"{name} {g['hits']}/{g['n']} ({g['recall']:.0%})")
        share = t["class_right_share"]
        right = "n/a" if share is None else f"{share:.0%}"
        print(f"KITTI objects with >= {t['min_points']} LiDAR points, recall @BEV {t['iou']}: "
              f"{', '.join(parts) or 'none'}; right class {right} of the hits; boxes per "
              f"frame max {t['boxes_per_frame']['max']}, mean {t['boxes_per_frame']['mean']}")
