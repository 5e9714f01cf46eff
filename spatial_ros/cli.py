"""The ``spatial-ros`` command line.

Each subcommand lives in ``spatial_ros/commands/<name>.py`` and exposes ``HELP`` (one line),
``add_arguments(parser)`` and ``run(args) -> int``. Modules are imported lazily so that
``spatial-ros sim`` does not import torch. SpatialRosError → message on stderr, exit 1.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from spatial_ros.errors import SpatialRosError

# name -> module under spatial_ros.commands (kept in help order)
SUBCOMMANDS = {
    "demo": "demo",
    "sim": "sim",
    "ground": "ground",
    "ask": "ask",
    "reward": "reward",
    "eval": "eval",
    "play": "play",
    "run": "run",
    "bench": "bench",
}


def _load(name: str):
    return importlib.import_module(f"spatial_ros.commands.{SUBCOMMANDS[name]}")


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="spatial-ros",
        description="Spatial language understanding for ROS 2: 3D grounding, distances, rewards.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMANDS:
        if only is not None and name != only:
            # Cheap placeholder so `spatial-ros --help` lists everything without importing all.
            sub.add_parser(name, add_help=False)
            continue
        try:
            mod = _load(name)
        except ModuleNotFoundError as e:
            if e.name and e.name.startswith("spatial_ros.commands"):
                continue  # not implemented in this build
            raise
        p = sub.add_parser(name, help=mod.HELP, description=mod.HELP)
        mod.add_arguments(p)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    first = next((a for a in argv if not a.startswith("-")), None)
    parser = build_parser(first if first in SUBCOMMANDS else None)
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )
    if not args.command:
        parser.print_help()
        return 2
    try:
        return int(_load(args.command).run(args) or 0)
    except SpatialRosError as e:
        print(f"spatial-ros {args.command}: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
