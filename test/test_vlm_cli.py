"""`spatial-ros ground`, `spatial-ros ask` and `spatial-ros bench vlm` on a simulated bag."""

from __future__ import annotations

import json

import numpy as np
import pytest

from spatial_ros.boxfile import read_box_file
from spatial_ros.cli import main
from spatial_ros.commands.ask import phrases_in_question
from spatial_ros.types import Box3D
from spatial_ros.vlm.backend import ScriptedBackend
from spatial_ros.vlm.codec import BoxCodec

QUERIES = ["the purple ball", "the white box"]  # unique captions in tabletop seed 0


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    out = tmp_path_factory.mktemp("sim")
    assert main(["sim", "--scenario", "tabletop", "--seed", "0", "--frames", "4",
                 "--out", str(out), "--no-progress"]) == 0
    truth = {}
    for line in (out / "truth_detail.jsonl").read_text().splitlines():
        for o in json.loads(line)["objects"]:
            b = o["box"]
            truth[o["caption"]] = Box3D.from_yaw(b["center"], b["size"], b["yaw"], "base_link")
    return out, truth


@pytest.fixture()
def perfect_model(sim, monkeypatch):
    """The pipeline's model replaced by one that answers with the true box of the caption."""
    from spatial_ros.bagio import frames_from_bag

    out, truth = sim
    frame = next(iter(frames_from_bag(out / "bag")))
    T = frame.transforms.lookup(frame.camera.frame_id, "base_link")
    codec = BoxCodec()

    def answer(conv, image):
        caption = conv[-1].text.rsplit(": ", 1)[-1]
        b = truth[caption].transformed(T, frame.camera.frame_id)
        return codec.encode_box3d(b, frame.camera)

    backend = ScriptedBackend(answer)
    backend.close = lambda: None
    monkeypatch.setattr("spatial_ros.vlm.backend.TransformersBackend",
                        lambda *a, **k: backend)
    return backend


def test_ground_specialists_only_writes_one_line_per_frame(sim, tmp_path):
    out, _ = sim
    pred = tmp_path / "pred.jsonl"
    assert main(["ground", "--bag", str(out / "bag"), "--specialists-only",
                 "--out", str(pred)]) == 0
    frames = read_box_file(pred)
    stamps = [json.loads(x)["lidar_stamp_ns"] for x in
              (out / "truth_detail.jsonl").read_text().splitlines()]
    scans = {s for s in stamps if s is not None}
    assert len(frames) == len(scans) == 2  # one frame per LiDAR scan (10 Hz vs 30 Hz camera)
    lines = (out / "truth.jsonl").read_text().splitlines()
    truth_stamps = {json.loads(x)["stamp_ns"] for x in lines}
    assert all(f.stamp_ns in truth_stamps for f in frames)  # the source image's stamp
    assert all(f.frame_id == "base_link" and f.objects for f in frames)
    assert all(o.extra["source"] == "lidar" and o.query is None for o in frames[0].objects)


def test_ground_with_a_model_fuses_answers_with_candidates(sim, tmp_path, perfect_model):
    out, truth = sim
    pred = tmp_path / "pred.jsonl"
    args = ["ground", "--bag", str(out / "bag"), "--out", str(pred)]
    for q in QUERIES:
        args += ["--query", q]
    assert main(args) == 0
    frames = read_box_file(pred)
    assert len(frames) == 2
    for f in frames:
        assert [o.query for o in f.objects] == QUERIES
        for o in f.objects:
            assert o.extra["source"] == "vlm+lidar"  # the specialist's measured box
            assert np.linalg.norm(o.box.center - truth[o.query].center) < 0.03
            assert o.extra["distance"] > 0.5 and len(o.extra["box_2d"]) == 4
    # every query went to the model with the specialist box list in its prompt
    assert all("Here is the list of 3D bounding boxes" in c[-1].text
               for c, _ in perfect_model.calls)


def test_ask_answers_from_grounded_boxes(sim, perfect_model, capsys):
    from spatial_ros.spatial.predicates import SpatialObject, Viewpoint
    from spatial_ros.spatial.qa import answer_question

    out, truth = sim
    q = "How far is the purple ball from the white box?"
    assert main(["ask", "--bag", str(out / "bag"), "--frame", "1", "--question", q,
                 "--json"]) == 0
    got = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert set(got["grounded"]) == set(QUERIES)
    # the same question answered from the TRUE boxes
    from spatial_ros.bagio import frames_from_bag

    frame = next(iter(frames_from_bag(out / "bag")))
    vp = Viewpoint.from_camera_pose(frame.transforms.lookup("base_link", frame.camera.frame_id))
    ref = answer_question(q, [SpatialObject(c, truth[c]) for c in QUERIES], vp)
    assert got["unit"] == ref.unit == "m" and got["type"] == ref.type
    assert got["value"] == pytest.approx(ref.value, abs=0.03)
    assert main(["ask", "--bag", str(out / "bag"), "--frame", "7", "--question", q]) == 1
    assert "no synchronized frame 7" in capsys.readouterr().err


def test_phrases_in_question():
    assert phrases_in_question("How far is the red mug from the blue bowl?") == [
        "the red mug", "the blue bowl"]
    assert phrases_in_question("Is the mug to the left of the bowl?") == ["the mug", "the bowl"]
    assert phrases_in_question("Which is closer to the camera, the cup or the plate?") == [
        "the cup", "the plate"]
    assert phrases_in_question("What time is it?") == []


def test_ground_needs_queries(sim, tmp_path, capsys):
    out, _ = sim
    assert main(["ground", "--bag", str(out / "bag"), "--out", str(tmp_path / "p.jsonl")]) == 1
    assert "--query" in capsys.readouterr().err


def test_bench_vlm_reports_the_ratio(tmp_path, capsys):
    torch = pytest.importorskip("torch")
    n = torch.get_num_threads()
    try:
        rc = main(["bench", "vlm", "--preset", "test", "--queries", "1,3",
                   "--max-new-tokens", "4", "--repeat", "1", "--candidates", "2",
                   "--threads", "1", "--json", str(tmp_path / "b.json")])
    finally:
        torch.set_num_threads(n)
    assert rc == 0
    res = json.loads((tmp_path / "b.json").read_text())
    assert [r["queries"] for r in res["rows"]] == [1, 3]
    for r in res["rows"]:
        assert r["new_tokens_per_query"] == 4 and r["ours_ms"] > 0 and r["naive_ms"] > 0
        # the ratio and the rates are the reported timings' (no speed claim in a unit test)
        assert r["ratio_naive_over_ours"] == pytest.approx(r["naive_ms"] / r["ours_ms"])
        assert r["ours_tokens_per_s"] == pytest.approx(r["queries"] * 4 / (r["ours_ms"] / 1e3))
        assert r["naive_tokens_per_s"] == pytest.approx(r["queries"] * 4 / (r["naive_ms"] / 1e3))
        assert r["same_tokens_as_naive"] == 1.0  # greedy: same answers as generate()
    assert res["rows"][1]["shared_prefix_tokens"] > 0
    assert res["rows"][0]["shared_prefix_tokens"] == 0  # one query: nothing to share
    assert "ratio" in capsys.readouterr().out
    assert main(["bench", "vlm", "--preset", "7b", "--device", "cpu"]) == 1


def test_7b_preset_has_llava_7b_shapes():
    """Built on the meta device (no memory): parameter count and image tokens of LLaVA-1.5-7B."""
    from spatial_ros.bench.vlm import build_7b

    model, proc = build_7b("meta")
    n = sum(p.numel() for p in model.parameters())
    assert 7.0e9 < n < 7.1e9  # LLaVA-1.5-7B: 7.06 B
    assert next(model.parameters()).dtype.is_floating_point
    assert model.config.text_config._attn_implementation == "sdpa"
    img = np.zeros((480, 640, 3), np.uint8)
    enc = proc(images=[img], text=["<image>\nhi"], return_tensors="pt")
    assert int((enc["input_ids"] == model.config.image_token_id).sum()) == 576


@pytest.mark.gpu
def test_bench_vlm_7b_on_gpu(tmp_path):
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    assert main(["bench", "vlm", "--preset", "7b", "--queries", "1,8", "--max-new-tokens", "16",
                 "--repeat", "2", "--json", str(tmp_path / "b.json")]) == 0
    res = json.loads((tmp_path / "b.json").read_text())
    assert res["info"]["dtype"] == "bfloat16" and res["decode_bound_ms_per_token"] > 0
    assert res["rows"][1]["ratio_naive_over_ours"] > 1.0
