"""`spatial-ros reward`: offline reward labels for a bag or a directory of episode bags -> parquet.

Every synchronized frame gets progress in [0, 1], a reward, a success flag and an explanation
for the goal (LeRobot-style columns: see spatial_ros/reward/offline.py). Grounding comes from
the perception pipeline (specialists + VLM; ``--model``) or from ground truth (``--gt``: a
``truth.jsonl`` box file, or ``auto`` = the ``truth.jsonl`` that ``spatial-ros sim`` wrote next
to each bag). The job is resumable: rerun the same command after an interruption.
"""

from __future__ import annotations

from spatial_ros.commands.served_args import add_served_arguments, served_values

HELP = "label every frame of a bag (or of episode bags) with goal progress/reward -> parquet"


def add_arguments(parser) -> None:
    from spatial_ros.vlm.backends.options import add_model_arguments

    src = parser.add_mutually_exclusive_group(required=True)
    src.add_argument("--bag", help="rosbag2 directory (or a spatial-ros sim output directory)")
    src.add_argument("--episodes", help="directory of episode bags (one episode per bag, in "
                     "name order)")
    parser.add_argument("--goal", required=True,
                        help='the goal, e.g. "put the red cube next to the blue bowl"')
    parser.add_argument("--out", required=True, help="output parquet file")
    parser.add_argument("--model", default="",
                        help="local model directory (default: the embedded models/default)")
    parser.add_argument("--gt", nargs="?", const="auto", default=None, metavar="TRUTH",
                        help="ground-truth grounding: a truth.jsonl box file, or no value / "
                        "'auto' for the truth.jsonl next to each bag (spatial-ros sim output)")
    parser.add_argument("--config", default=None,
                        help="reward node YAML (config/reward.yaml layout) for topics and scoring")
    parser.add_argument("-p", "--param", action="append", default=[], metavar="NAME:=VALUE",
                        help="override one config value (YAML value), repeatable")
    parser.add_argument("--device", default=None, help="auto, cpu, cuda, cuda:N")
    add_model_arguments(parser)
    parser.add_argument("--chunk-size", type=int, default=64,
                        help="frames per part file (the most work an interruption loses)")
    parser.add_argument("--ray", action="store_true", help="spread episodes over Ray actors")
    parser.add_argument("--ray-workers", type=int, default=0,
                        help="Ray actors (0 = one per CPU, at most one per episode)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an existing output and discard unfinished parts")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_served_arguments(parser)


def config_from_args(args):
    """RewardAnnotatorConfig from --config/--param/--model/--device through the loader of
    ``spatial-ros run`` and the launch files (``config.load_config``; ConfigError on an unknown
    key, a wrong type or a bad value, one line)."""
    from spatial_ros.node_launch import NODES
    from spatial_ros.vlm.backends.options import model_options_from_args

    extra = {"goal": "",  # the goal comes from --goal
             "grounding": "truth" if args.gt else "perception"}
    if args.model:
        extra["model_path"] = args.model
    if args.device:
        extra["device"] = args.device
    extra.update(model_options_from_args(args))
    extra.update(served_values(args))
    return NODES["reward"].load(args.config, args.param, extra).config


def run(args) -> int:
    from spatial_ros.reward.goal import parse_goal
    from spatial_ros.reward.offline import label_dataset, sources_for
    from spatial_ros.user_text import bounded_text

    cfg = config_from_args(args)
    args.goal = bounded_text(args.goal, "goal", cfg.max_goal_chars)  # before any parser
    goal = parse_goal(args.goal)
    sources = sources_for(args.bag, args.episodes, args.gt)
    res = label_dataset(
        sources, args.goal, args.out, cfg, chunk_size=args.chunk_size,
        overwrite=args.overwrite, progress=not args.no_progress, use_ray=args.ray,
        ray_workers=args.ray_workers,
    )
    mode = "ground truth" if args.gt else "perception"
    resumed = f", {res.resumed} resumed from an earlier run" if res.resumed else ""
    print(f"goal: {goal.objective(cfg.tolerances).describe()}")
    print(f"{res.rows} frames in {res.episodes} episode(s) ({mode} grounding{resumed}): "
          f"{res.labelled} labelled in {res.elapsed_s:.1f} s = {res.fps:.1f} frames/s "
          f"-> {res.out}")
    return 0
