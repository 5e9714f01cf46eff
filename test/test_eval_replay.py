"""`spatial-ros eval --bag` on simulated bags: replay through the perception pipeline, metrics vs
the simulator's exact truth (specialists only, a model that answers the truth, one that answers
the wrong object, a tiny random model), MCAP == sqlite3, errors a user can make."""

from __future__ import annotations

import json
import time

import pytest

from spatial_ros.boxfile import read_box_file
from spatial_ros.cli import main
from spatial_ros.evaluation import EvalConfig, run_bag_eval
from spatial_ros.evaluation.replay import replay_bag
from spatial_ros.geometry.iou import iou_bev_matrix
from spatial_ros.perception import PerceptionConfig
from spatial_ros.sim import SimConfig, simulate
from spatial_ros.vlm.backend import ScriptedBackend
from spatial_ros.vlm.codec import BoxCodec

QUERIES = ["the purple ball", "the white box"]  # unique captions of tabletop seed 0
FRAMES = 12  # 30 Hz camera, 10 Hz LiDAR -> 4 synchronized frames


@pytest.fixture(scope="module")
def sims(tmp_path_factory):
    out = {}
    for storage in ("mcap", "sqlite3"):
        d = tmp_path_factory.mktemp(f"sim_{storage}")
        simulate(SimConfig("tabletop", seed=0, frames=FRAMES, storage=storage), d)
        out[storage] = d
    return out


@pytest.fixture(scope="module")
def truth(sims):
    return read_box_file(sims["mcap"] / "truth.jsonl")


def oracle(sim_dir, lie: bool = False) -> ScriptedBackend:
    """A model that answers each query with the true box of its caption (or, with ``lie``,
    with the box of the other query's object)."""
    from spatial_ros.bagio import frames_from_bag

    fr = next(iter(frames_from_bag(sim_dir / "bag")))
    T = fr.transforms.lookup(fr.camera.frame_id, "base_link")
    t0 = read_box_file(sim_dir / "truth.jsonl")[0]
    boxes = {o.query: o.box for o in t0.objects}
    codec = BoxCodec()

    def answer(conv, image):
        caption = conv[-1].text.rsplit(": ", 1)[-1]
        if lie:
            caption = QUERIES[1 - QUERIES.index(caption)]
        return codec.encode_box3d(boxes[caption].transformed(T, fr.camera.frame_id), fr.camera)

    return ScriptedBackend(answer)


def test_specialists_only_metrics_match_the_truth(sims, truth, tmp_path):
    out = tmp_path / "eval"
    assert (
        main(
            [
                "eval",
                "--bag",
                str(sims["mcap"] / "bag"),
                "--specialists-only",
                "--report-frames",
                "1",
                "--out",
                str(out),
            ]
        )
        == 0
    )  # truth.jsonl found
    m = json.loads((out / "metrics.json").read_text())
    assert {
        "source",
        "frames",
        "detection_bev",
        "distance",
        "parse_failures",
        "latency_ms",
        "throughput",
        "per_frame",
    } <= set(m)
    assert m["source"]["gt"].endswith("truth.jsonl") and m["source"]["mode"] == "specialists only"
    assert m["frames"] == {"predicted": 4, "with_truth": 4}
    assert "grounding" not in m  # no queries
    preds = read_box_file(out / "predictions.jsonl")
    by_stamp = {t.stamp_ns: t for t in truth}
    assert all(p.stamp_ns in by_stamp for p in preds)  # the source image's stamps
    # Independent count: truth objects in view, and those a candidate covers at BEV IoU 0.5.
    n_truth = recalled = 0
    for p in preds:
        t = [o for o in by_stamp[p.stamp_ns].objects if o.extra["visible_fraction"] >= 0.01]
        n_truth += len(t)
        B = iou_bev_matrix([o.box for o in t], [o.box for o in p.objects])
        recalled += int((B.max(axis=1) >= 0.5).sum())
    det = m["detection_bev"]["all@0.5"]
    assert det["n_truth"] == n_truth and det["tp"] == recalled
    assert det["recall"] == pytest.approx(recalled / n_truth, abs=1e-4) and det["recall"] > 0.7
    assert det["tp"] + det["fp"] == det["n_pred"]
    d = m["distance"]["sensor_to_candidate"]
    assert d["n"] == recalled and d["abs_mean"] < 0.03  # LiDAR boxes: centimetres
    assert m["latency_ms"]["total"]["n"] == 4 and m["throughput"]["frames_per_s"] > 0
    assert len(m["per_frame"]) == 4 and m["parse_failures"]["queries"] == 0
    assert (out / "report.html").is_file() and (out / "candidates.jsonl").is_file()


def test_mcap_and_sqlite3_give_the_same_predictions(sims):
    cfg = PerceptionConfig(use_vlm=False)
    t0 = time.perf_counter()
    a = replay_bag(sims["mcap"] / "bag", cfg, snapshots=0)
    wall = time.perf_counter() - t0
    b = replay_bag(sims["sqlite3"] / "bag", cfg, snapshots=0)
    assert a.frames == b.frames == 4

    def strip(f):
        d = f.to_json()
        d.pop("timings_ms")
        return d

    assert [strip(f) for f in a.predictions] == [strip(f) for f in b.predictions]
    assert a.predictions[0].objects
    # fps is frames over the replay's own wall time, which lies within the call's
    assert 0 < a.elapsed_s <= wall and a.fps == pytest.approx(4 / a.elapsed_s)
    assert a.fps >= 4 / wall


def test_a_model_answering_the_truth_scores_high_and_a_wrong_one_zero(sims, tmp_path):
    sim = sims["mcap"]

    def cfg(name):
        return EvalConfig(
            out_dir=str(tmp_path / name),
            bag=str(sim / "bag"),
            gt=str(sim / "truth.jsonl"),
            queries=QUERIES,
            pairs=[" | ".join(QUERIES)],
            report=False,
            referring="model",  # the model's own answers are what is scored here
        )

    good = run_bag_eval(cfg("good"), backend=oracle(sim)).metrics
    g = good["grounding"]
    assert g["n"] == 8 and g["missing"] == 0  # 4 frames x 2 queries, all answered
    assert g["acc@0.25"] == 1.0 and g["acc@0.5"] >= 0.85 and g["mean_iou_3d"] > 0.6
    assert good["parse_failures"] == {
        "queries": 8,
        "parse_failures": 0,
        "rate": 0.0,
        "reasons": {},
    }
    assert good["distance"]["sensor_to_query_object"]["n"] == 8
    assert good["distance"]["sensor_to_query_object"]["abs_mean"] < 0.05
    assert good["distance"]["object_pairs"]["n"] == 4
    assert good["distance"]["object_pairs"]["abs_mean"] < 0.05
    assert good["source"]["mode"] == "vlm"

    bad = run_bag_eval(cfg("bad"), backend=oracle(sim, lie=True)).metrics
    assert bad["grounding"]["n"] == 8 and bad["grounding"]["acc@0.25"] == 0.0
    # the swapped answers are still good *candidates*: detection metrics do not change
    assert bad["detection_bev"] == good["detection_bev"]


def test_tiny_random_model_parse_failures_are_counted(sims, tmp_path):
    from spatial_ros.vlm.tiny import build_tiny_vlm

    model = build_tiny_vlm(tmp_path / "tiny", "test")
    out = tmp_path / "eval"
    args = [
        "eval",
        "--bag",
        str(sims["sqlite3"] / "bag"),
        "--model",
        str(model),
        "--device",
        "cpu",
        "--max-new-tokens",
        "12",
        "--max-frames",
        "2",
        "--no-report",
        "--out",
        str(out),
    ]
    for q in QUERIES:
        args += ["--query", q]
    assert main(args) == 0
    m = json.loads((out / "metrics.json").read_text())
    pf, g = m["parse_failures"], m["grounding"]
    assert pf["queries"] == 4  # 2 frames x 2 queries
    assert pf["rate"] == pytest.approx(pf["parse_failures"] / 4, abs=1e-4)
    unanswered = sum(
        r["parse_failures"] for r in (f.extra for f in read_box_file(out / "predictions.jsonl"))
    )
    assert g["n"] == 4 and g["missing"] == unanswered >= pf["parse_failures"]
    assert sum(pf["reasons"].values()) == pf["parse_failures"]
    assert m["source"]["model"] == str(model)


def test_without_truth_predictions_are_still_written_and_drawn(sims, tmp_path):
    out = tmp_path / "eval"
    assert (
        main(
            [
                "eval",
                "--bag",
                str(sims["mcap"] / "bag"),
                "--specialists-only",
                "--no-gt",
                "--report-frames",
                "1",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    m = json.loads((out / "metrics.json").read_text())
    assert m["source"]["gt"] is None and m["frames"]["with_truth"] == 0
    assert "detection_bev" not in m and len(m["per_frame"]) == 4
    html = (out / "report.html").read_text()
    assert "No ground truth" in html and "frame_00000_image.png" in html


def test_user_errors_exit_1_with_a_message(sims, tmp_path, capsys):
    bag = str(sims["mcap"] / "bag")
    assert (
        main(
            [
                "eval",
                "--bag",
                str(tmp_path / "nope"),
                "--specialists-only",
                "--out",
                str(tmp_path / "o1"),
            ]
        )
        == 1
    )
    assert "bag not found" in capsys.readouterr().err
    # boxes in the LiDAR frame cannot be scored against base_link truth
    assert (
        main(
            [
                "eval",
                "--bag",
                bag,
                "--specialists-only",
                "--output-frame",
                "lidar",
                "--no-report",
                "--out",
                str(tmp_path / "o2"),
            ]
        )
        == 1
    )
    assert "--output-frame base_link" in capsys.readouterr().err
    assert (
        main(
            [
                "eval",
                "--bag",
                bag,
                "--specialists-only",
                "--query",
                "the mug",
                "--out",
                str(tmp_path / "o3"),
            ]
        )
        == 1
    )
    assert "need a model" in capsys.readouterr().err
    assert main(["eval", "--out", str(tmp_path / "o4")]) == 1
    assert "give --bag" in capsys.readouterr().err
    assert (
        main(
            [
                "eval",
                "--bag",
                bag,
                "--specialists-only",
                "--iou",
                "1.5",
                "--out",
                str(tmp_path / "o5"),
            ]
        )
        == 1
    )
    assert "(0, 1]" in capsys.readouterr().err
