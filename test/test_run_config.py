"""`spatial-ros run perception|reward` and `spatial-ros reward --config` read their YAML with the
one config loader: an unknown key or a wrong type is ONE clear error line naming the key (and the
nearest known key for a typo), exit code 1, no traceback; an int where a float is expected is
accepted as a float."""

from __future__ import annotations

import argparse
import subprocess
import sys

import pytest

from spatial_ros.cli import main

BAD = {
    "use_vml: false": "unknown parameter 'use_vml' (did you mean 'use_vlm'?)",
    "slop: fast": "parameter 'slop': 'fast' is a str, expected a float",
    "qos_reliability: 3": "parameter 'qos_reliability': 3 is an int, expected a str",
}


def _yaml(tmp_path, node: str, body: str):
    p = tmp_path / f"{node}.yaml"
    p.write_text(f"{node}:\n  ros__parameters:\n    {body}\n")
    return p


@pytest.mark.parametrize("line, words", BAD.items())
def test_run_refuses_bad_config_in_one_line(tmp_path, capsys, line, words):
    path = _yaml(tmp_path, "perception_node", line)
    assert main(["run", "perception", "--config", str(path), "--duration", "0.1"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and words in err and str(path) in err, err
    assert err.startswith("spatial-ros run: error: ")


def test_run_reward_and_param_typos(tmp_path, capsys):
    path = _yaml(tmp_path, "reward_annotator", "succes_tolerance: 0.02")
    assert main(["run", "reward", "--config", str(path)]) == 1
    err = capsys.readouterr().err.strip()
    assert "'succes_tolerance' (did you mean 'success_tolerance'?)" in err and "\n" not in err
    assert main(["run", "perception", "-p", "sloop:=0.1"]) == 1
    err = capsys.readouterr().err.strip()
    assert "--param: unknown parameter 'sloop' (did you mean 'slop'?)" in err


def test_int_for_float_reaches_the_node_as_a_float(tmp_path):
    from spatial_ros.commands.run import parameter_overrides

    path = _yaml(tmp_path, "perception_node", "slop: 1\n    time_jump: 2\n    queue_size: 4")
    params = {p.name: p.value for p in parameter_overrides("perception", str(path), [])}
    assert params == {"slop": 1.0, "time_jump": 2.0, "queue_size": 4}
    assert isinstance(params["slop"], float) and isinstance(params["queue_size"], int)


def test_offline_reward_config_same_errors(tmp_path):
    from spatial_ros.commands.reward import config_from_args
    from spatial_ros.errors import ConfigError

    path = _yaml(tmp_path, "reward_annotator", "slop: fast")
    args = argparse.Namespace(config=str(path), param=[], model="", device=None, gt="auto")
    with pytest.raises(ConfigError, match=r"parameter 'slop': 'fast' is a str, expected a float"):
        config_from_args(args)
    path = _yaml(tmp_path, "reward_annotator", "slop: 1\n    time_jump: 2")
    assert config_from_args(argparse.Namespace(**{**vars(args), "config": str(path)})).slop == 1.0


def test_run_as_a_process_prints_one_line_and_exits_1(tmp_path):
    path = _yaml(tmp_path, "perception_node", "use_vml: false")
    r = subprocess.run([sys.executable, "-m", "spatial_ros.cli", "run", "perception",
                        "--config", str(path)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 1
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert lines == [f"spatial-ros run: error: {path}: unknown parameter 'use_vml' (did you mean "
                     "'use_vlm'?) for PerceptionConfig"], r.stderr
