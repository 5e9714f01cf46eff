"""launch/perception.launch.py and config/perception.yaml.

- config/perception.yaml is generated from PerceptionConfig (``python -m spatial_ros.perception
  > config/perception.yaml``): the file equals the generator's output, every parameter in it is a
  field and every field is in it (commented out only when its default is an empty list), and
  its values are the dataclass defaults. The node declares exactly those parameters.
- Both launch files are one call of ``spatial_ros.node_launch.launch_description``: the
  installed executable under the name the YAML section uses, after checking the file with the
  loader of ``spatial-ros run``. Building the description needs ``launch_ros`` (on a robot);
  that test skips elsewhere.
"""

from __future__ import annotations

import ast
import dataclasses
import importlib.util
import re
from pathlib import Path

import pytest
import yaml

from spatial_ros.config import from_dict, load_node_yaml
from spatial_ros.errors import ConfigError
from spatial_ros.node_launch import (
    LAUNCH_ARGUMENTS,
    NODES,
    check_launch_config,
    launch_argument_values,
)
from spatial_ros.perception import CONFIG_FILE, NODE_NAME, PerceptionConfig, config_yaml

ROOT = Path(__file__).resolve().parents[1]
LAUNCH_FILE = ROOT / "launch" / "perception.launch.py"
FIELDS = [f.name for f in dataclasses.fields(PerceptionConfig)]


def test_config_file_is_the_generators_output():
    assert CONFIG_FILE == ROOT / "config" / "perception.yaml"
    assert CONFIG_FILE.read_text() == config_yaml(), (
        "config/perception.yaml is stale: run "
        "`python -m spatial_ros.perception > config/perception.yaml`"
    )


def test_config_parameters_are_exactly_the_fields_with_their_defaults():
    params = load_node_yaml(CONFIG_FILE, NODE_NAME)
    commented = set(re.findall(r"^    # (\w+): \[\]", CONFIG_FILE.read_text(), re.M))
    assert set(params) <= set(FIELDS), f"not PerceptionConfig fields: {set(params) - set(FIELDS)}"
    assert set(params) | commented == set(FIELDS), f"missing: {set(FIELDS) - set(params)}"
    assert all(getattr(PerceptionConfig(), name) == [] for name in commented)
    from_yaml, defaults = from_dict(PerceptionConfig, params), PerceptionConfig()
    for name in FIELDS:
        assert getattr(from_yaml, name) == getattr(defaults, name), name
    # ROS types survive: floats stay doubles (a "1" would make the parameter an integer)
    for name in FIELDS:
        if isinstance(getattr(defaults, name), float):
            assert isinstance(params[name], float), name


def test_node_declares_exactly_the_config_fields():
    """Every declared parameter maps to a field the node uses, and every field is declared
    (generically, from the dataclass: a field added to the config needs no node change)."""
    rclpy = pytest.importorskip("rclpy")
    from spatial_ros.nodes.perception_node import PerceptionNode

    ctx = rclpy.context.Context()
    rclpy.init(context=ctx, domain_id=88)
    try:
        node = PerceptionNode(context=ctx, parameter_overrides=[
            rclpy.parameter.Parameter("autostart", value=False)])
        declared = set(node._parameters) - {"use_sim_time", "start_type_description_service"}
        assert declared == set(FIELDS)
        node.destroy_node()
    finally:
        rclpy.try_shutdown(context=ctx)
    src = (ROOT / "spatial_ros" / "nodes" / "perception_node.py").read_text()
    assert re.findall(r"declare_parameter\(\s*\"(\w+)\"", src) == []


@pytest.mark.parametrize("kind", sorted(NODES))
def test_launch_files_start_the_installed_node_under_the_yaml_name(kind):
    """Both launch files are one call of the shared node_launch helper; its table names an
    installed executable, the YAML section and the config file of each node."""
    spec = NODES[kind]
    launch_file = ROOT / "launch" / f"{kind}.launch.py"
    calls = [n for n in ast.walk(ast.parse(launch_file.read_text()))
             if isinstance(n, ast.Call) and getattr(n.func, "id", None) == "launch_description"]
    assert [c.args[0].value for c in calls] == [kind]
    assert spec.default_config == ROOT / "config" / spec.config_file
    assert spec.node_name == next(iter(yaml.safe_load(spec.default_config.read_text())))
    assert (ROOT / "scripts" / spec.executable).is_file()
    assert f"scripts/{spec.executable}" in (ROOT / "CMakeLists.txt").read_text()
    fields = {f.name for f in dataclasses.fields(spec.config_cls)}
    assert set(LAUNCH_ARGUMENTS) - {"namespace"} <= fields  # launch arguments are parameters
    node_cls = getattr(importlib.import_module(spec.module), spec.node_class) \
        if importlib.util.find_spec("rclpy") else None
    if node_cls is not None:
        assert node_cls.config_cls is spec.config_cls


@pytest.mark.parametrize("kind", sorted(NODES))
def test_launch_config_check_is_the_run_loader(kind, tmp_path):
    """What the launch checks before starting a node: the shipped file passes with the launch
    arguments as text; a typo or a wrong type fails with the run loader's one-line error."""
    spec = NODES[kind]
    args = {"model_path": "", "autostart": "false"}
    ok = check_launch_config(kind, str(spec.default_config), args)
    assert ok.values["autostart"] is False and ok.values["model_path"] == ""
    assert launch_argument_values({"autostart": "true", "model_path": "/m"}) == {
        "autostart": True, "model_path": "/m"}
    bad = tmp_path / "bad.yaml"
    bad.write_text(f"{spec.node_name}:\n  ros__parameters:\n    qeue_size: 3\n")
    with pytest.raises(ConfigError, match=r"unknown parameter 'qeue_size' \(did you mean "
                                          r"'queue_size'\?\)") as e:
        check_launch_config(kind, str(bad), args)
    assert str(bad) in str(e.value) and "\n" not in str(e.value)
    bad.write_text(f"{spec.node_name}:\n  ros__parameters:\n    slop: fast\n")
    with pytest.raises(ConfigError, match="parameter 'slop': 'fast' is a str, expected a "
                                          "float"):
        check_launch_config(kind, str(bad), args)


def test_generate_launch_description_with_launch_ros(tmp_path):
    pytest.importorskip("launch_ros")
    from launch.actions import DeclareLaunchArgument, OpaqueFunction
    from launch_ros.actions import Node

    from launch import LaunchContext

    spec = importlib.util.spec_from_file_location("perception_launch", LAUNCH_FILE)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    ld = mod.generate_launch_description()
    args = {e.name: e for e in ld.entities if isinstance(e, DeclareLaunchArgument)}
    assert sum(isinstance(e, OpaqueFunction) for e in ld.entities) == 1  # the config check
    assert {"config", "namespace", "model_path", "autostart"} <= set(args)
    nodes = [e for e in ld.entities if isinstance(e, Node)]
    assert len(nodes) == 1
    node = nodes[0]
    ctx = LaunchContext()
    ctx.launch_configurations.update(
        {"config": str(CONFIG_FILE), "namespace": "", "model_path": "/models/x",
         "autostart": "true"}
    )
    node._perform_substitutions(ctx)  # what launch does before starting the process
    assert node.node_package == "spatial_ros" and node.node_executable == "perception_node"
    from launch_ros.utilities import evaluate_parameters

    params = evaluate_parameters(ctx, node._Node__parameters)
    files = [Path(p) for p in params if not isinstance(p, dict)]
    dicts = [p for p in params if isinstance(p, dict)]
    assert files == [CONFIG_FILE]
    assert set(load_node_yaml(files[0], NODE_NAME)) <= set(FIELDS)
    assert dicts and dicts[0]["model_path"] == "/models/x"
