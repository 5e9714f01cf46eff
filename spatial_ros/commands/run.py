"""`spatial-ros run perception|reward --config FILE`: start a node in-process from the same YAML
the launch file uses (for machines without `ros2 launch`).

The file and the ``-p`` overrides go through ``spatial_ros.config.load_config`` (the loader of
the launch files and the offline commands) BEFORE rclpy starts: an unknown key or a wrong type is
one error line naming the key, exit code 1."""

from __future__ import annotations

import importlib

from spatial_ros.errors import ConfigError
from spatial_ros.node_launch import NODES

HELP = "start the perception or reward node in-process from a launch-file YAML config"


def add_arguments(parser) -> None:
    parser.add_argument("node", choices=sorted(NODES), help="which node")
    parser.add_argument("--config", help="ROS 2 parameter YAML (default: config/<node>.yaml)")
    parser.add_argument("-p", "--param", action="append", default=[], metavar="NAME:=VALUE",
                        help="override one parameter (YAML value), repeatable")
    parser.add_argument("--duration", type=float, default=0.0,
                        help="stop after this many seconds (0 = run until Ctrl-C)")


def parameter_overrides(kind: str, config: str | None, params: list[str]) -> list:
    """The validated parameters of node ``kind`` as rclpy Parameters (values converted to the
    fields' types: ``slop: 1`` arrives as 1.0). Raises ConfigError."""
    from rclpy.parameter import Parameter

    spec = NODES[kind]
    values = spec.load(config or spec.default_config, params).values
    return [Parameter(k, value=v) for k, v in values.items()]


def run(args) -> int:
    spec = NODES[args.node]
    overrides = parameter_overrides(args.node, args.config, args.param)
    import rclpy

    from spatial_ros.nodes import spin_node

    try:
        node_cls = getattr(importlib.import_module(spec.module), spec.node_class)
    except ModuleNotFoundError as e:
        if e.name != spec.module:
            raise
        raise ConfigError(f"the {args.node} node is not part of this build ({spec.module})") \
            from None
    rclpy.init()
    node = node_cls(parameter_overrides=overrides)
    spin_node(node, args.duration)
    return 0
