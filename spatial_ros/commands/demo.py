"""`spatial-ros demo` (``make demo``): the whole offline loop on a fresh machine.

1. simulate a small tabletop episode in which the gripper carries out a goal
   ("put the red cube next to the blue bowl"): rosbag2 + exact truth;
2. replay the bag through the perception pipeline with the shipped default model
   (``models/default``; ``--model DIR`` for another) on 3-4 queries naming the scene's objects,
   LiDAR candidates in the prompt;
3. [reward labelling of the goal: the hook below];
4. evaluate against the truth (``spatial_ros.evaluation``) and print a short table
   (queries, boxes, distances, accuracy) and the path of report.html.
"""

from __future__ import annotations

import time
from pathlib import Path

HELP = "run the offline demo (simulate, ground, reward, evaluate) with the embedded model"

DEFAULT_GOAL = "put the red cube next to the blue bowl"
MAX_QUERIES = 4


def add_arguments(parser) -> None:
    parser.add_argument("--out", default="runs/demo", help="output directory")
    parser.add_argument(
        "--model", default="", help="model directory (default: the embedded models/default)"
    )
    parser.add_argument(
        "--specialists-only",
        action="store_true",
        help="no model: LiDAR candidates only (no queries)",
    )
    parser.add_argument("--goal", default=DEFAULT_GOAL, help="goal of the simulated episode")
    parser.add_argument("--seed", type=int, default=10_000_000,
                        help="scene seed (default: the first held-out seed; training scenes "
                        "use seeds from 0)")
    parser.add_argument(
        "--frames", type=int, default=24, help="camera frames (30 Hz; one perception frame per 3)"
    )
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N")
    parser.add_argument(
        "--max-new-tokens", type=int, default=48, help="generation budget per query (tokens)"
    )
    parser.add_argument("--report-frames", type=int, default=4, help="frames drawn in the report")


def demo_queries(truth_frame, ids_first: list[str], limit: int = MAX_QUERIES) -> list[str]:
    """Captions of the goal's objects first, then other objects whose caption is unique in the
    scene (an ambiguous caption cannot be scored), never the gripper; at most ``limit``."""
    from collections import Counter

    caps = Counter(o.query for o in truth_frame.objects)
    by_id = {o.id: o for o in truth_frame.objects}
    ordered = [by_id[i] for i in ids_first if i in by_id]
    ordered += [o for o in truth_frame.objects if o.id not in ids_first]
    out: list[str] = []
    for o in ordered:
        if o.query and caps[o.query] == 1 and o.label != "gripper" and o.query not in out:
            out.append(o.query)
    return out[:limit]


def reward_labels(sim_dir: Path, goal: str, model: str, specialists_only: bool):
    """Reward labels of the episode for the report and the table: every synchronized frame of
    ``sim_dir / "bag"`` labelled for ``goal`` by the offline labeller (as ``spatial-ros reward``
    does), grounding the goal's objects with ``model``; with ``specialists_only`` (no model)
    the objects come from the simulator's truth file instead. Progress has the reach stage:
    the bag's /tf carries the simulated gripper's tool point.

    Returns:
        The labels' parquet path (the report draws the curves next to the true progress and
        metrics.json gets the reward VOC).
    """
    from spatial_ros.reward.annotator import RewardAnnotatorConfig
    from spatial_ros.reward.offline import label_dataset, sources_for
    from spatial_ros.sim import GRIPPER_TCP_FRAME

    src = sources_for(bag=sim_dir / "bag", gt="auto" if specialists_only else None)
    # the simulated robot publishes its gripper's tool point on /tf: the reach stage is on
    cfg = RewardAnnotatorConfig(tool_frame=GRIPPER_TCP_FRAME,
                                model_path="" if specialists_only else model)
    return label_dataset(src, goal, sim_dir / "reward.parquet", cfg, progress=False,
                         overwrite=True).out


def _check_model(path: str) -> None:
    from spatial_ros.errors import ModelError
    from spatial_ros.perception import DEFAULT_MODEL_DIR

    p = Path(path).expanduser() if path else DEFAULT_MODEL_DIR
    if not (p / "config.json").is_file():
        raise ModelError(
            f"no model at {p}. The default model is trained into models/default "
            "(python -m training.finetune); pass --model DIR for another one, or run "
            "--specialists-only for the LiDAR candidates alone"
        )


def run(args) -> int:
    from rich.console import Console
    from rich.table import Table

    from spatial_ros.boxfile import read_box_file
    from spatial_ros.errors import ConfigError
    from spatial_ros.evaluation import EvalConfig, run_bag_eval
    from spatial_ros.evaluation.metrics import objects_for_query, truth_for_query
    from spatial_ros.sim import SimConfig, simulate

    t_start = time.perf_counter()
    console = Console()
    if not console.is_terminal:  # piped / captured: do not wrap the table at 80 columns
        console = Console(width=120)
    if args.frames < 3:
        raise ConfigError(f"--frames {args.frames}: need >= 3 (one LiDAR scan per 3 frames)")
    if not args.specialists_only:
        _check_model(args.model)
    out = Path(args.out)
    sim_dir = out / "sim"
    with console.status("simulating the tabletop episode ..."):
        sim = simulate(
            SimConfig(
                "tabletop",
                seed=args.seed,
                frames=args.frames,
                trajectory="success",
                goal=args.goal,
            ),
            sim_dir,
            overwrite=True,
        )
    ep = sim.episodes[0]
    truth = read_box_file(sim.truth_path)
    queries = (
        []
        if args.specialists_only
        else demo_queries(truth[0], [ep.get("target_id", ""), ep.get("reference_id", "")])
    )
    pair = queries[:2] if len(queries) >= 2 else []
    console.print(
        f"[bold]goal[/bold] {ep['goal']!r}: {sim.frames} frames, {sim.scans} LiDAR "
        f"scans -> {sim.bag_path}",
        soft_wrap=True,
    )

    rows = reward_labels(sim_dir, args.goal, args.model, args.specialists_only)  # REWARD HOOK

    cfg = EvalConfig(
        out_dir=str(out / "eval"),
        bag=str(sim.bag_path),
        gt=str(sim.truth_path),
        queries=queries,
        pairs=[" | ".join(pair)] if pair else [],
        model=args.model,
        specialists_only=args.specialists_only,
        device=args.device,
        max_new_tokens=args.max_new_tokens,
        report_frames=args.report_frames,
        reward_reach_stage=True,
    )
    with console.status(f"grounding {len(queries)} queries on {sim.scans} frames ..."):
        res = run_bag_eval(cfg, reward=rows)
    m = res.metrics

    table = Table(title=f"spatial_ros demo: '{args.goal}' (last frame, base_link)")
    for col, just in (
        ("query", "left"),
        ("centre [m]", "right"),
        ("size [m]", "right"),
        ("dist. [m] pred/true", "right"),
        ("IoU", "right"),
        ("Acc@.25", "right"),
        ("Acc@.5", "right"),
    ):
        table.add_column(col, justify=just)
    per_q = (m.get("grounding") or {}).get("per_query", {})
    last = res.predictions[-1] if res.predictions else None
    t_last = next((t for t in reversed(truth) if last and t.stamp_ns == last.stamp_ns), None)
    for q in queries:
        objs = objects_for_query(q, last) if last else []
        tgt = truth_for_query(q, t_last) if t_last else []
        cam = (last.extra.get("sensor_origins") or {}).get("camera") if last else None
        if objs:
            o = objs[0]
            centre = ", ".join(f"{v:.2f}" for v in o.box.center)
            size = "x".join(f"{v:.2f}" for v in o.box.size)
            dist = f"{o.extra.get('distance', float('nan')):.2f}"
        else:
            centre, size, dist = "[red]not found[/red]", "", "–"
        if len(tgt) == 1 and cam is not None:
            import numpy as np

            dist += f" / {np.linalg.norm(tgt[0].box.center - np.asarray(cam)):.2f}"
        s = per_q.get(q, {})
        fmt = lambda v: "–" if v is None else f"{v:.2f}"  # noqa: E731
        table.add_row(
            q,
            centre,
            size,
            dist,
            fmt(s.get("mean_iou_3d")),
            fmt(s.get("acc@0.25")),
            fmt(s.get("acc@0.5")),
        )
    if queries:
        console.print(table)

    g = m.get("grounding") or {}
    lines = []
    if g.get("n"):
        lines.append(
            f"grounding over {g['n']} (frame, query) pairs: Acc@0.25 "
            f"{g['acc@0.25']:.2f}, Acc@0.5 {g['acc@0.5']:.2f}"
        )
    det = (m.get("detection_bev") or {}).get("all@0.5")
    if det and det["n_truth"]:
        lines.append(f"LiDAR candidates: BEV AP@0.5 {det['ap']:.2f}, recall {det['recall']:.2f}")
    pairs = (m.get("distance") or {}).get("object_pairs")
    if pairs and pairs["n"]:
        lines.append(
            f"distance '{pair[0]}' <-> '{pair[1]}': mean abs error "
            f"{pairs['abs_mean']:.3f} m over {pairs['n']} frames"
        )
    pf = m.get("parse_failures") or {}
    if pf.get("queries"):
        lines.append(f"VLM parse failures: {pf['parse_failures']}/{pf['queries']}")
    voc = (m.get("reward") or {}).get("voc_progress")
    lines.append(
        "reward VOC: "
        + (f"{voc:.2f}" if voc is not None
           else "– (progress is constant over the episode)" if m.get("reward")
           else "– (no reward labels)")
    )
    tp = m.get("throughput") or {}
    lines.append(
        f"{tp.get('frames', 0)} frames at {tp.get('frames_per_s') or 0:.2f} frames/s; "
        f"demo wall time {time.perf_counter() - t_start:.1f} s"
    )
    for line in lines:
        console.print(line, soft_wrap=True)
    if "report" in res.paths:
        console.print(f"[bold]report:[/bold] {res.paths['report'].resolve()}", soft_wrap=True)
    return 0
