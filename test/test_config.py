"""Config mechanism: the YAML parameter file feeds the same dataclass as ROS parameters."""

import re
from dataclasses import dataclass

import pytest

from spatial_ros.config import field_help, from_dict, load_config, load_node_yaml, param
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
        "demo_node:\n  ros__parameters:\n    slop: 0.1\n    queries: [a, b]\n"
        "    use_vlm: 'false'\n"
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


def test_types_int_for_float_fine_string_refused():
    """An int is a fine float (YAML ``slop: 1``), an integral float a fine int; a string is
    neither (no silent float('0.1')), nor a number a string; each error names the key."""
    assert from_dict(DemoConfig, {"slop": 1, "queue_size": 3.0}) == DemoConfig(slop=1.0,
                                                                              queue_size=3)
    assert isinstance(from_dict(DemoConfig, {"slop": 1}).slop, float)
    for values, words in (({"slop": "0.1"}, "parameter 'slop': '0.1' is a str, expected a float"),
                          ({"slop": True}, "parameter 'slop': True is a bool"),
                          ({"queue_size": "3"}, "parameter 'queue_size': '3' is a str"),
                          ({"queries": "a"}, "parameter 'queries': 'a' is a str, expected a "
                                             "list"),
                          ({"use_vlm": 2}, "parameter 'use_vlm': 2 is an int, expected a bool")):
        with pytest.raises(ConfigError, match=re.escape(words)):
            from_dict(DemoConfig, values)


def test_unknown_keys_name_the_nearest_field(tmp_path):
    with pytest.raises(ConfigError, match=re.escape(
            "x.yaml: unknown parameter 'use_vml' (did you mean 'use_vlm'?) for DemoConfig")):
        from_dict(DemoConfig, {"use_vml": False}, source="x.yaml")
    with pytest.raises(ConfigError, match="unknown parameter 'zzz' for DemoConfig; known: "
                                          "queries, queue_size, slop, use_vlm"):
        from_dict(DemoConfig, {"zzz": 1})
    p = tmp_path / "c.yaml"
    p.write_text("demo_node:\n  ros__parameters:\n    slop: 1\n")
    loaded = load_config(DemoConfig, "demo_node", p, ["queue_size:=4", "queries:=[a, b]"])
    assert loaded.config == DemoConfig(slop=1.0, queue_size=4, queries=["a", "b"])
    assert loaded.values == {"slop": 1.0, "queue_size": 4, "queries": ["a", "b"]}
    with pytest.raises(ConfigError, match=re.escape("--param: unknown parameter 'sloop' (did "
                                                    "you mean 'slop'?)")):
        load_config(DemoConfig, "demo_node", p, ["sloop:=1"])
    with pytest.raises(ConfigError, match="use NAME:=VALUE"):
        load_config(DemoConfig, "demo_node", p, ["slop=1"])


def test_wildcard_section_keys_for_other_nodes_are_not_typos(tmp_path):
    p = tmp_path / "shared.yaml"
    p.write_text("/**:\n  ros__parameters:\n    use_sim_time: true\n    other_nodes_rate: 5\n"
                 "    slop: 0.2\n"
                 "demo_node:\n  ros__parameters:\n    queue_size: 3\n")
    loaded = load_config(DemoConfig, "demo_node", p)
    assert loaded.values == {"slop": 0.2, "queue_size": 3}
    p.write_text("/**:\n  ros__parameters:\n    slop: fast\n")
    with pytest.raises(ConfigError, match="parameter 'slop': 'fast' is a str"):
        load_config(DemoConfig, "demo_node", p)
    p.write_text("demo_node:\n  ros__parameters:\n    sloop: 0.2\n")
    with pytest.raises(ConfigError, match="did you mean 'slop'"):
        load_config(DemoConfig, "demo_node", p)
