"""How the sensor nodes are started: one table of nodes for ``spatial-ros run`` and the launch
files, the config check both do, and the launch description both launch files return.

``launch/perception.launch.py`` and ``launch/reward.launch.py`` are one line each over
:func:`launch_description`. Before the node starts, the launch checks its parameter file (plus
the ``model_path``/``autostart`` launch arguments) with :func:`spatial_ros.config.load_config`,
the loader ``spatial-ros run`` and the offline commands use, so a typo (``use_vml``) or a wrong
type stops the launch with the same one-line error instead of a node that ignores it.

Importable without rclpy or launch (the launch modules are imported by
:func:`launch_description` only).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from spatial_ros.config import NodeConfig, load_config

PACKAGE = "spatial_ros"
CONFIG_DIR = Path(__file__).resolve().parents[1] / "config"
LAUNCH_ARGUMENTS = {  # name -> (default, description); model_path and autostart are parameters
    "namespace": ("", "node namespace"),
    "model_path": ("", "local model directory ('' = embedded default)"),
    "autostart": ("true", "configure + activate on start"),
}


@dataclass(frozen=True)
class NodeSpec:
    """One startable node: ``executable`` (scripts/, installed by CMakeLists.txt) runs
    ``module.node_class`` under ``node_name``, the section name of ``config/<config_file>``,
    whose parameters are the fields of ``config_module.config_class``."""

    kind: str
    executable: str
    node_name: str
    module: str
    node_class: str
    config_module: str
    config_class: str
    config_file: str

    @property
    def config_cls(self) -> type:
        return getattr(importlib.import_module(self.config_module), self.config_class)

    @property
    def default_config(self) -> Path:
        return CONFIG_DIR / self.config_file

    def load(self, path: str | Path | None = None, params=(), extra: dict | None = None
             ) -> NodeConfig:
        """The validated config (``config.load_config``) from the parameter file ``path``
        (None: none, the dataclass defaults), ``-p NAME:=VALUE`` overrides and ``extra``
        values."""
        return load_config(self.config_cls, self.node_name, path, params, extra)


NODES = {
    "perception": NodeSpec("perception", "perception_node", "perception_node",
                           "spatial_ros.nodes.perception_node", "PerceptionNode",
                           "spatial_ros.perception", "PerceptionConfig", "perception.yaml"),
    "reward": NodeSpec("reward", "reward_annotator", "reward_annotator",
                       "spatial_ros.nodes.reward_annotator", "RewardAnnotatorNode",
                       "spatial_ros.reward.annotator", "RewardAnnotatorConfig", "reward.yaml"),
}


def launch_argument_values(values: dict[str, str]) -> dict[str, Any]:
    """Launch-argument text -> parameter values, as launch_ros converts them (YAML; empty text
    stays an empty string)."""
    import yaml

    out = {}
    for k, v in values.items():
        parsed = yaml.safe_load(v) if v != "" else ""
        out[k] = "" if parsed is None else parsed
    return out


def check_launch_config(kind: str, config: str, arguments: dict[str, str]) -> NodeConfig:
    """What the launch checks before starting node ``kind``: the parameter file ``config`` plus
    the launch ``arguments`` that become parameters (text, as launch passes them), through the
    loader of ``spatial-ros run``. Raises ConfigError (one line: the launch prints it and exits
    non-zero)."""
    return NODES[kind].load(config, extra=launch_argument_values(arguments))


def launch_description(kind: str):
    """The LaunchDescription of node ``kind`` (needs ``launch`` and ``launch_ros``): arguments
    ``config`` (default: the installed config/<kind>.yaml), ``namespace``, ``model_path``,
    ``autostart``; the config check; the node with the file and the two parameter overrides."""
    from launch.actions import DeclareLaunchArgument, OpaqueFunction
    from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
    from launch_ros.actions import Node
    from launch_ros.substitutions import FindPackageShare

    from launch import LaunchDescription

    spec = NODES[kind]
    args = [DeclareLaunchArgument(
        "config", default_value=PathJoinSubstitution(
            [FindPackageShare(PACKAGE), "config", spec.config_file]),
        description="parameter file (ROS 2 YAML)")]
    args += [DeclareLaunchArgument(name, default_value=default, description=text)
             for name, (default, text) in LAUNCH_ARGUMENTS.items()]
    overrides = {"model_path": LaunchConfiguration("model_path"),
                 "autostart": LaunchConfiguration("autostart")}

    def check_config(context):
        """Refuse a bad parameter file before the node starts (raises ConfigError: launch
        prints its one-line message and exits non-zero)."""
        check_launch_config(kind, LaunchConfiguration("config").perform(context),
                            {k: v.perform(context) for k, v in overrides.items()})
        return []

    node = Node(
        package=PACKAGE,
        executable=spec.executable,
        name=spec.node_name,
        namespace=LaunchConfiguration("namespace"),
        output="screen",
        emulate_tty=True,
        parameters=[LaunchConfiguration("config"), overrides],
    )
    return LaunchDescription([*args, OpaqueFunction(function=check_config), node])
