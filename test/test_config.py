"""Config mechanism: the YAML parameter file feeds the same dataclass as ROS parameters."""

from dataclasses import dataclass

import pytest

from spatial_ros.config import field_help, from_dict, load_node_yaml, param
from spatial_ros.errors import ConfigError


@dataclass
class DemoConfig:
    slop: float = param(0.05, "max stamp spread of a synchronized set (s)")
    queue_size: int = param(10, "per-input queue length (messages)")
    queries: list = param(["the red mug"], "initial queries")
    use_vlm: bool = param(True, "run the VLM (false: specialists only)")

    def __post_init__(self):
        if self.slop <= 0:
            raise ConfigError(f"slop must be > 0 s, got {self.slop}")


def test_yaml_to_dataclass(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text(
        "/**:\n  ros__parameters:\n    queue_size: 3\n"
        "demo_node:\n  ros__parameters:\n    slop: 0.1\n    queries: [a, b]\n    use_vlm: 'false'\n"
    )
    cfg = from_dict(DemoConfig, load_node_yaml(p, "demo_node"))
    assert cfg == DemoConfig(slop=0.1, queue_size=3, queries=["a", "b"], use_vlm=False)
    assert "(s)" in field_help(DemoConfig)["slop"]


def test_bad_values_name_the_parameter(tmp_path):
    with pytest.raises(ConfigError, match="unknown parameter.*sloop"):
        from_dict(DemoConfig, {"sloop": 1})
    with pytest.raises(ConfigError, match="queue_size"):
        from_dict(DemoConfig, {"queue_size": 2.5})
    with pytest.raises(ConfigError, match="slop must be > 0"):
        from_dict(DemoConfig, {"slop": -1})
    p = tmp_path / "bad.yaml"
    p.write_text("demo_node: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_node_yaml(p, "demo_node")
    with pytest.raises(ConfigError, match="cannot read"):
        load_node_yaml(tmp_path / "missing.yaml", "demo_node")
    # Defaults are not shared between instances.
    a, b = DemoConfig(), DemoConfig()
    a.queries.append("x")
    assert b.queries == ["the red mug"]
