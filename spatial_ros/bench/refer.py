"""`spatial-ros bench refer`: referring-expression accuracy by query kind, with the candidate
ceiling and the latency per call, for the product path and (``--compare``) the alternatives.

    spatial-ros bench refer --scenario tabletop --frames 60
    spatial-ros bench refer --queries runs/q_street.jsonl --compare
    spatial-ros bench refer --kitti ../shared/data/real

Queries come from a query file (``python -m training.refqueries``) or are generated on the fly
for ``--frames`` held-out simulated scenes (test seed range) or the labels of ``--kitti``
frames. ``--compare`` runs, in the same process on the same frames: the product path
(``referring: program``, the model breaks name ties), the same without the model (shape and
colour only), and the model alone (``referring: model``, the whole query to the model).
Metrics: ``spatial_ros.evaluation.refer``.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

HELP = "referring-expression accuracy by kind (captions, paraphrases, spatial) with ceiling"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from spatial_ros.vlm.backends.options import add_model_arguments

    parser.add_argument("--queries", type=Path, default=None,
                        help="query file (JSON Lines); its kitti:<id> frames need --kitti too")
    parser.add_argument("--kitti", type=Path, default=None,
                        help="KITTI folder: viewer-relative car queries from its labels "
                             "(with --queries: the folder that file's frames come from)")
    parser.add_argument("--scenario", choices=("tabletop", "street"), default="tabletop",
                        help="simulated scenes when no --queries/--kitti")
    parser.add_argument("--frames", type=int, default=20, help="simulated scenes")
    parser.add_argument("--first", type=int, default=600_000,
                        help="first scene offset in the test seed range")
    parser.add_argument("--model", type=Path, default=None,
                        help="local model directory (default: the embedded models/default)")
    parser.add_argument("--no-model", action="store_true",
                        help="the program alone: names from shape and colour, no VLM")
    parser.add_argument("--compare", action="store_true",
                        help="also run without the model and with the model alone")
    parser.add_argument("--per-call", type=int, default=8, help="queries per engine call")
    parser.add_argument("--json", type=Path, default=None, help="write metrics (and rows) here")
    add_model_arguments(parser)


def _records(args):
    from spatial_ros.errors import ConfigError

    try:
        from training import refqueries
    except ImportError as e:  # pragma: no cover - a robot install without training/
        raise ConfigError("bench refer needs the training/ package (query generation); run it "
                          "from a source checkout or pass --queries FILE") from e
    if args.queries:
        return refqueries.read_queries(args.queries)
    if args.kitti:
        from training.kitti_refqueries import kitti_queries, left_out_line

        skipped: list = []
        records = kitti_queries(args.kitti, skipped=skipped)
        if skipped:
            print(left_out_line(skipped))
        return records
    from training.generate_data import SPLIT_SEED_BASE

    base = SPLIT_SEED_BASE["test"] + args.first
    return refqueries.sim_queries(args.scenario, range(base, base + args.frames))


def _engine(args, mode: str):
    from spatial_ros.perception import DEFAULT_MODEL_DIR
    from spatial_ros.vlm.backend import ScriptedBackend, TransformersBackend
    from spatial_ros.vlm.backends.options import model_options_from_args
    from spatial_ros.vlm.engine import EngineConfig, SpatialEngine

    if mode == "program, no model":
        # the default model's prompt settings (tags) without its answers
        backend = ScriptedBackend({"": "(no model)"})
        backend.info = {"model_dir": str(args.model or DEFAULT_MODEL_DIR)}
        return SpatialEngine(backend, EngineConfig(name_scores=False))
    backend = _engine.backend = getattr(_engine, "backend", None) or TransformersBackend(
        args.model or DEFAULT_MODEL_DIR, **model_options_from_args(args))
    return SpatialEngine(backend, EngineConfig(
        referring="model" if mode == "model alone" else "program"))


def run(args) -> int:
    from spatial_ros.evaluation.refer import evaluate_refer, format_table

    logging.basicConfig(level=logging.ERROR)
    records = _records(args)
    modes = ["program, no model"] if args.no_model else ["program + model names"]
    if args.compare:
        modes = ["program + model names", "program, no model", "model alone"]
    print(f"{len(records)} queries over {len({r.frame for r in records})} frames, "
          f"{args.per_call} queries per call")
    out = {}
    for mode in modes:
        m = evaluate_refer(records, _engine(args, mode), kitti_root=args.kitti,
                           per_call=args.per_call)
        print(f"\n== {mode} ==")
        print(format_table(m))
        out[mode] = m
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(out, indent=1, default=str) + "\n")
        print(f"wrote {args.json}")
    return 0
