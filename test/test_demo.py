"""`spatial-ros demo` (make demo) with a tiny random test model: simulate, ground, evaluate, print
the table and the report path. The full-size run (default-architecture model, 24 frames) is a
slow test that also checks the 5-minute budget."""

from __future__ import annotations

import json
import time

import pytest

from spatial_ros.boxfile import BoxFrame, BoxRecord
from spatial_ros.cli import main
from spatial_ros.commands.demo import demo_queries
from spatial_ros.types import Box3D


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    from spatial_ros.vlm.tiny import build_tiny_vlm

    return build_tiny_vlm(tmp_path_factory.mktemp("tiny"), "test")


def _run_demo(tmp_path, capsys, model, frames: int, *extra: str):
    out = tmp_path / "demo"
    t0 = time.perf_counter()
    rc = main(
        [
            "demo",
            "--model",
            str(model),
            "--device",
            "cpu",
            "--frames",
            str(frames),
            "--report-frames",
            "1",
            "--out",
            str(out),
            *extra,
        ]
    )
    wall = time.perf_counter() - t0
    text = capsys.readouterr().out
    print(f"\ndemo wall time {wall:.1f} s ({frames} frames)")
    return rc, out, text, wall


def test_demo_prints_the_table_and_writes_the_report(tmp_path, capsys, tiny_model):
    rc, out, text, _ = _run_demo(tmp_path, capsys, tiny_model, 6, "--max-new-tokens", "12")
    assert rc == 0
    m = json.loads((out / "eval" / "metrics.json").read_text())
    queries = m["source"]["queries"]
    assert queries[:2] == ["the red cube", "the blue bowl"]  # the goal's objects first
    assert 3 <= len(queries) <= 4 and all("gripper" not in q for q in queries)
    assert m["grounding"]["n"] == 2 * len(queries)  # 6 camera frames -> 2 LiDAR frames
    assert m["parse_failures"]["queries"] == 2 * len(queries)
    for q in queries:
        assert q in text
    for heading in ("query", "Acc@.25", "pred/true", "reward VOC", "report:"):
        assert heading in text
    assert (out / "eval" / "report.html").is_file() and (out / "sim" / "truth.jsonl").is_file()
    assert f"report: {(out / 'eval' / 'report.html').resolve()}" in text


def test_demo_without_a_model_says_what_to_do(tmp_path, capsys):
    assert main(["demo", "--model", str(tmp_path / "none"), "--out", str(tmp_path / "d")]) == 1
    err = capsys.readouterr().err
    assert "no model at" in err and "--specialists-only" in err
    assert not (tmp_path / "d").exists()  # checked before simulating


def test_demo_queries_skip_ambiguous_captions_and_the_gripper():
    def r(i, cap, label):
        return BoxRecord(i, label, Box3D.from_yaw([0, 0, 0], [1, 1, 1], 0.0), cap)

    t = BoxFrame(
        0,
        "base_link",
        [
            r("book_0", "the blue book", "book"),
            r("book_1", "the blue book", "book"),
            r("gripper_0", "the gripper", "gripper"),
            r("mug_0", "the red mug", "mug"),
            r("cube_0", "the red cube", "cube"),
            r("ball_0", "the green ball", "ball"),
            r("can_0", "the white can", "can"),
            r("box_0", "the black box", "box"),
        ],
    )
    assert demo_queries(t, ["cube_0", "mug_0"]) == [
        "the red cube",
        "the red mug",
        "the green ball",
        "the white can",
    ]


@pytest.mark.slow
def test_full_demo_with_the_default_architecture_is_under_five_minutes(tmp_path, capsys):
    from spatial_ros.vlm.tiny import build_tiny_vlm

    model = build_tiny_vlm(tmp_path / "default_arch", "default")
    rc, out, text, wall = _run_demo(tmp_path, capsys, model, frames=24)
    assert rc == 0 and wall < 300
    m = json.loads((out / "eval" / "metrics.json").read_text())
    assert m["frames"]["predicted"] == 8
