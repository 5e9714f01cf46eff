"""`spatial-ros bench NAME`: benchmarks. Each lives in spatial_ros/bench/<name>.py with
``HELP``, ``add_arguments(parser)`` and ``run(args) -> int`` and prints ratios measured in one
run."""

from __future__ import annotations

import importlib
import pkgutil

import spatial_ros.bench as bench_pkg

HELP = ("benchmarks (io, lidar, vlm, served, sim, reward, load, all): ours vs a baseline, "
        "one run each")


def _names() -> list[str]:
    return sorted(m.name for m in pkgutil.iter_modules(bench_pkg.__path__)
                  if not m.name.startswith("_"))


def add_arguments(parser) -> None:
    sub = parser.add_subparsers(dest="bench", metavar="NAME", required=True)
    for name in _names():
        mod = importlib.import_module(f"spatial_ros.bench.{name}")
        mod.add_arguments(sub.add_parser(name, help=mod.HELP, description=mod.HELP))
    sub.add_parser("all", help="run every benchmark with its defaults")


def run(args) -> int:
    if args.bench == "all":
        rc = 0
        for name in _names():
            mod = importlib.import_module(f"spatial_ros.bench.{name}")
            p = __import__("argparse").ArgumentParser()
            mod.add_arguments(p)
            print(f"== bench {name} ==")
            rc |= int(mod.run(p.parse_args([])) or 0)
        return rc
    return int(importlib.import_module(f"spatial_ros.bench.{args.bench}").run(args) or 0)
