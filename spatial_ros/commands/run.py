"""`spatial-ros run perception|reward --config FILE`: start a node in-process from the same YAML the
launch file uses (for machines without `ros2 launch`)."""

from __future__ import annotations

import importlib
from pathlib import Path

from spatial_ros.config import load_node_yaml
from spatial_ros.errors import ConfigError

HELP = "start the perception or reward node in-process from a launch-file YAML config"

NODES = {
    "perception": ("spatial_ros.nodes.perception_node", "PerceptionNode", "perception_node"),
    "reward": ("spatial_ros.nodes.reward_annotator", "RewardAnnotatorNode", "reward_annotator"),
}
CONFIG_DIR = Path(__file__).resolve().parents[2] / "config"


def add_arguments(parser) -> None:
    parser.add_argument("node", choices=sorted(NODES), help="which node")
    parser.add_argument("--config", help="ROS 2 parameter YAML (default: config/<node>.yaml)")
    parser.add_argument("-p", "--param", action="append", default=[], metavar="NAME:=VALUE",
                        help="override one parameter (YAML value), repeatable")
    parser.add_argument("--duration", type=float, default=0.0,
                        help="stop after this many seconds (0 = run until Ctrl-C)")


def parameter_overrides(node_name: str, config: str | None, params: list[str]) -> list:
    import yaml
    from rclpy.parameter import Parameter

    path = Path(config) if config else CONFIG_DIR / f"{node_name.split('_')[0]}.yaml"
    values = load_node_yaml(path, node_name)
    for item in params:
        if ":=" not in item:
            raise ConfigError(f"--param {item!r}: use NAME:=VALUE")
        k, v = item.split(":=", 1)
        values[k.strip()] = yaml.safe_load(v)
    return [Parameter(k, value=v) for k, v in values.items()]


def run(args) -> int:
    import rclpy

    from spatial_ros.nodes import spin_node

    module, cls, node_name = NODES[args.node]
    overrides = parameter_overrides(node_name, args.config, args.param)
    try:
        node_cls = getattr(importlib.import_module(module), cls)
    except ModuleNotFoundError as e:
        if e.name != module:
            raise
        raise ConfigError(f"the {args.node} node is not part of this build ({module})") from None
    rclpy.init()
    node = node_cls(parameter_overrides=overrides)
    spin_node(node, args.duration)
    return 0
