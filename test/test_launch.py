"""launch/perception.launch.py and config/perception.yaml.

- config/perception.yaml is generated from PerceptionConfig (``python -m spatial_ros.perception
  > config/perception.yaml``): the file equals the generator's output, every parameter in it is a
  field and every field is in it (commented out only when its default is an empty list), and
  its values are the dataclass defaults. The node declares exactly those parameters.
- The launch file starts the installed ``perception_node`` executable under the name the YAML
  section uses. Loading it needs ``launch_ros`` (on a robot); that test skips elsewhere.
"""

from __future__ import annotations

import ast
import dataclasses
import importlib.util
import re
from pathlib import Path

import pytest

from spatial_ros.config import from_dict, load_node_yaml
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
    """Every declared parameter maps to a field the node uses; nothing is declared twice."""
    src = (ROOT / "spatial_ros" / "nodes" / "perception_node.py").read_text()
    extra = re.findall(r"declare_parameter\(\s*\"(\w+)\"", src)
    assert extra == [], f"parameters declared outside PerceptionConfig: {extra}"
    assert "for f in dataclasses.fields(PerceptionConfig)" in src


def _launch_node_call() -> ast.Call:
    tree = ast.parse(LAUNCH_FILE.read_text())
    calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call)
             and getattr(n.func, "id", None) == "Node"]
    assert len(calls) == 1
    return calls[0]


def test_launch_file_starts_the_installed_node_under_the_yaml_name():
    kw = {k.arg: k.value for k in _launch_node_call().keywords}
    literal = {k: v.value for k, v in kw.items() if isinstance(v, ast.Constant)}
    assert literal["package"] == "spatial_ros"
    assert literal["name"] == NODE_NAME == next(iter(
        __import__("yaml").safe_load(CONFIG_FILE.read_text())))
    assert (ROOT / "scripts" / literal["executable"]).is_file()
    assert "scripts/perception_node" in (ROOT / "CMakeLists.txt").read_text()
    assert "perception.yaml" in LAUNCH_FILE.read_text()
    # launch arguments override parameters the node really has
    overrides = [k.value for d in ast.walk(kw["parameters"]) if isinstance(d, ast.Dict)
                 for k in d.keys]
    assert {"model_path", "autostart"} <= set(overrides) and set(overrides) <= set(FIELDS)


def test_generate_launch_description_with_launch_ros(tmp_path):
    pytest.importorskip("launch_ros")
    from launch import LaunchContext
    from launch.actions import DeclareLaunchArgument
    from launch_ros.actions import Node

    spec = importlib.util.spec_from_file_location("perception_launch", LAUNCH_FILE)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    ld = mod.generate_launch_description()
    args = {e.name: e for e in ld.entities if isinstance(e, DeclareLaunchArgument)}
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
