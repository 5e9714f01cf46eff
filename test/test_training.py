"""training/: data generation (sim + real lifting), tokenization, fine-tuning smoke run, eval."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("datasets")

from spatial_ros.vlm.appearance import COLOUR_TERMS  # noqa: E402
from spatial_ros.vlm.codec import BoxCodec, CodecConfig  # noqa: E402
from spatial_ros.vlm.prompts import SPECIALIST_PREFIX, TASKS  # noqa: E402
from training import generate_data as gd  # noqa: E402
from training.samples import SampleConfig, frame_samples  # noqa: E402
from training.scenes import sim_frame  # noqa: E402


@pytest.fixture(scope="module")
def frame():
    return sim_frame(7, "tabletop", specialists=True)


def test_sim_frame_truth_is_consistent(frame):
    from spatial_ros.vlm.lifting import project_box

    assert frame.objects and frame.specialist_boxes is not None
    for o in frame.objects:
        # the optical box and the base box are the same box in two frames
        T = frame.T_base_from_optical
        np.testing.assert_allclose(o.box_optical.transformed(T, "base_link").center,
                                   o.box_base.center, atol=1e-9)
        b2 = project_box(o.box_optical, frame.camera)
        assert b2 is not None and o.box_optical.center[2] > 0


def test_ground_samples_copy_a_listed_box(frame):
    cfg = SampleConfig(task_weights=(1, 0, 0, 0), specialist_prob=0.0, drop_prob=0.0)
    codec_cfg = CodecConfig(rotation="yaw", angle_decimals=1)
    samples = frame_samples(frame, np.random.default_rng(0), codec_cfg, cfg, n=3)
    codec = BoxCodec(codec_cfg)
    for s in samples:
        assert s["task"] == "ground"
        user = s["messages"][1]
        assert user["image"] and user["content"].startswith(SPECIALIST_PREFIX)
        lines = user["content"].split("\n")[1:-1]
        # each listed box carries its colour name, read from the image like the engine does
        assert all(ln.rsplit("] ", 1)[1] in COLOUR_TERMS for ln in lines)
        listed = [ln.rsplit("] ", 1)[0] + "]" for ln in lines]
        for m in s["messages"]:
            if m["role"] == "assistant":
                assert m["content"] in listed  # candidate-selection target: an exact copy
        # the answer to each caption is that object's true box (the list holds true boxes)
        for q, a in zip(s["messages"][1::2], s["messages"][2::2], strict=False):
            cap = q["content"].split("\n")[-1].removeprefix(TASKS["box3d"])
            obj = next(o for o in frame.objects if o.caption == cap)
            assert a["content"] == codec.encode_box3d(obj.box_optical, frame.camera)


def test_ground_samples_with_candidate_tags_answer_the_matching_listed_box(frame):
    """With ``candidate_index`` the list is numbered and each answer is the tag of the listed
    box that IS the asked object (true boxes listed: the tag's box equals the truth)."""
    cfg = SampleConfig(task_weights=(1, 0, 0, 0), specialist_prob=0.0, drop_prob=0.0,
                       candidate_index=True, max_turns=8)
    codec_cfg = CodecConfig(rotation="yaw", angle_decimals=1)
    codec = BoxCodec(codec_cfg)
    n = 0
    for s in frame_samples(frame, np.random.default_rng(1), codec_cfg, cfg, n=3):
        lines = s["messages"][1]["content"].split("\n")[1:-1]
        # "[box] <colour><k>": k = the box's rank among the listed boxes of its colour
        tags = [ln.rsplit(" ", 1)[1] for ln in lines]
        colours = [t.rstrip("0123456789") for t in tags]
        assert all(c in COLOUR_TERMS for c in colours)
        assert tags == [f"{c}{colours[:k + 1].count(c)}" for k, c in enumerate(colours)]
        boxes = [ln.split("]", 1)[0] + "]" for ln in lines]
        for q, a in zip(s["messages"][1::2], s["messages"][2::2], strict=False):
            cap = q["content"].split("\n")[-1].removeprefix(TASKS["box3d"])
            obj = next(o for o in frame.objects if o.caption == cap)
            assert a["content"] in tags, a["content"]
            k = tags.index(a["content"])
            assert boxes[k] == codec.encode_box3d(obj.box_optical, frame.camera)
            n += 1
    assert n >= 6


def test_curriculum_samples_list_few_boxes_and_ask_only_listed_objects(frame):
    cfg = SampleConfig(task_weights=(1, 0, 0, 0), specialist_prob=0.0, drop_prob=0.0,
                       candidate_index=True, list_size=(2, 3), max_turns=8)
    sizes = set()
    for s in frame_samples(frame, np.random.default_rng(3), CodecConfig(), cfg, n=12):
        lines = s["messages"][1]["content"].split("\n")[1:-1]
        sizes.add(len(lines))
        tags = [ln.rsplit(" ", 1)[1] for ln in lines]
        answers = [m["content"] for m in s["messages"] if m["role"] == "assistant"]
        assert answers and all(a in tags for a in answers)  # every asked object is listed
    assert sizes == {2, 3}


def test_same_colour_curriculum_asks_only_boxes_that_share_a_colour():
    """With ``same_words_prob`` 1 the list is built around a colour two or more boxes show and
    only those boxes are asked, so ranks above 1 are answered and the colour word alone never
    decides; each tag still names the asked object's own box."""
    from spatial_ros.vlm.appearance import region_colour
    from spatial_ros.vlm.lifting import project_box

    fr = next(f for f in (sim_frame(s, "tabletop") for s in range(40, 80))
              if _shares_colour(f, region_colour, project_box))
    cfg = SampleConfig(task_weights=(1, 0, 0, 0), specialist_prob=0.0, drop_prob=0.0,
                       candidate_index=True, list_size=(2, 6), same_words_prob=1.0,
                       max_turns=8)
    codec_cfg = CodecConfig(rotation="yaw", angle_decimals=1)
    codec = BoxCodec(codec_cfg)
    ranks, grounded = set(), 0
    for s in frame_samples(fr, np.random.default_rng(5), codec_cfg, cfg, n=8):
        if s["task"] != "ground":  # the chosen colour's boxes were all ambiguous captions
            continue
        grounded += 1
        lines = s["messages"][1]["content"].split("\n")[1:-1]
        tags = [ln.rsplit(" ", 1)[1] for ln in lines]
        colours = [t.rstrip("0123456789") for t in tags]
        boxes = [ln.split("]", 1)[0] + "]" for ln in lines]
        for q, a in zip(s["messages"][1::2], s["messages"][2::2], strict=False):
            tag = a["content"]
            assert colours.count(tag.rstrip("0123456789")) >= 2, (tag, tags)
            cap = q["content"].split("\n")[-1].removeprefix(TASKS["box3d"])
            obj = next(o for o in fr.objects if o.caption == cap)
            assert boxes[tags.index(tag)] == codec.encode_box3d(obj.box_optical, fr.camera)
            ranks.add(int(tag[len(tag.rstrip("0123456789")):]))
    assert grounded >= 3 and ranks >= {1, 2}


def _shares_colour(fr, region_colour, project_box) -> bool:
    """Two uniquely captioned objects whose boxes read as the same colour."""
    caps = [o.caption for o in fr.objects]
    cols = [region_colour(fr.image, project_box(o.box_optical, fr.camera))
            for o in fr.objects if caps.count(o.caption) == 1]
    return any(c and cols.count(c) >= 2 for c in cols)


def test_samples_cover_every_task_and_are_deterministic(frame):
    cfg = SampleConfig(task_weights=(1, 1, 1, 1))
    codec = CodecConfig(rotation="yaw")
    a = frame_samples(frame, np.random.default_rng(3), codec, cfg, n=24)
    b = frame_samples(frame, np.random.default_rng(3), codec, cfg, n=24)
    assert [x["messages"] for x in a] == [x["messages"] for x in b]
    assert {x["task"] for x in a} == {"ground", "lv3d", "vqa", "vip"}
    vip = next(x for x in a if x["task"] == "vip")
    assert not np.array_equal(vip["image"], frame.image)  # the mark is drawn


def test_generate_data_parquet_loads_with_datasets_and_resumes(tmp_path):
    from datasets import load_dataset

    cfg = gd.GenerateConfig(frames=4, samples_per_frame=2, shard_size=4)
    paths = gd.generate(cfg, tmp_path, progress=False)
    assert len(paths) == 2 and all(p.exists() for p in paths)
    ds = load_dataset("parquet", data_files=[str(p) for p in paths], split="train")
    assert len(ds) == 8
    frames = {f.key: f for f in (gd.make_frame(gd.frame_plan(cfg, i)) for i in range(4))}
    plain = 0
    for row in ds:  # each image is its frame's camera image (a visual prompt draws on it)
        cam = json.loads(row["camera"])
        frame = frames[row["frame"]]
        assert row["image"].size == (cam["width"], cam["height"]) == frame.image.shape[1::-1]
        if row["task"] != "vip":
            np.testing.assert_array_equal(np.asarray(row["image"].convert("RGB")), frame.image)
            plain += 1
    assert plain > 0
    msgs = json.loads(ds[0]["messages"])
    assert msgs[0]["role"] == "system" and msgs[-1]["role"] == "assistant"
    # resumable: an existing shard is kept, a missing one is redone identically
    before = paths[1].read_bytes()
    paths[1].unlink()
    m0 = paths[0].stat().st_mtime_ns
    gd.generate(cfg, tmp_path, progress=False)
    assert paths[0].stat().st_mtime_ns == m0
    assert gd.load_rows([paths[1]]) == gd.load_rows([_write(tmp_path, before)])


def _write(d, data):
    p = d / "copy.parquet"
    p.write_bytes(data)
    return p


def test_generate_data_on_ray_local_mode_gives_the_same_rows(tmp_path):
    pytest.importorskip("ray")
    import ray

    cfg = gd.GenerateConfig(frames=2, samples_per_frame=1, shard_size=10)
    local = gd.load_rows(gd.generate(cfg, tmp_path / "local", progress=False))
    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False)
    try:
        on_ray = gd.load_rows(gd.generate(cfg, tmp_path / "ray", use_ray=True, progress=False))
    finally:
        ray.shutdown()
    assert on_ray == local


def test_real_frames_through_the_lifting_path(kitti_dir, sunrgbd_dir):
    from training.scenes import kitti_frames, sunrgbd_frames

    k = list(kitti_frames(kitti_dir))
    assert len(k) == 1 and len(k[0].objects) == 6
    s = list(sunrgbd_frames(sunrgbd_dir))
    assert len(s) == 1 and len(s[0].objects) >= 3
    for o in s[0].objects:  # lifted boxes sit in front of the camera and project in the image
        assert o.box_optical.center[2] > 0.5


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    d = tmp_path_factory.mktemp("data")
    cfg = gd.GenerateConfig(frames=6, samples_per_frame=2, shard_size=100,
                            samples=SampleConfig(task_weights=(1, 1, 0, 0)))
    gd.generate(cfg, d, progress=False)
    return d


def test_tokenization_matches_the_chat_template(tiny_data, tmp_path):
    from transformers import AutoProcessor

    from spatial_ros.vlm.tiny import build_tiny_vlm
    from training.finetune import IGNORE, ConversationEncoder, _decode_image

    proc = AutoProcessor.from_pretrained(build_tiny_vlm(tmp_path / "m", "test"))
    enc = ConversationEncoder(proc)
    for r in gd.load_rows(sorted(tiny_data.glob("*.parquet")))[:6]:
        img, msgs = _decode_image(r["image"]), json.loads(r["messages"])
        enc.check_tokenization(img, msgs)
        e = enc.encode(img, msgs)
        trained = proc.tokenizer.decode([t for t, lab in zip(e["input_ids"], e["labels"],
                                                               strict=True) if lab != IGNORE])
        answers = [m["content"] for m in msgs if m["role"] == "assistant"]
        assert trained.replace("</s>", "").split() == " ".join(answers).split()


def test_finetune_smoke_20_steps_loss_drops(tiny_data, tmp_path):
    from training.finetune import FinetuneConfig, StageConfig, finetune

    cfg = FinetuneConfig(
        out=str(tmp_path / "run"), init="test", threads=2, save_steps=10, logging_steps=1,
        stages=[StageConfig(name="s", data=[str(tiny_data / "*.parquet")], max_steps=20,
                            batch_size=4, lr=3e-3, warmup_steps=2)],
    )
    summary = finetune(cfg)
    losses = summary["stages"][0]["losses"]
    assert len(losses) == 20
    assert np.mean(losses[-5:]) < 0.8 * np.mean(losses[:5])
    model = tmp_path / "run" / "model"
    assert (model / "model.safetensors").exists()
    meta = json.loads((model / "spatial_ros_vlm.json").read_text())
    assert meta["trained"] and meta["codec"]["rotation"] == "yaw"
    # the trained model loads in the runtime backend and answers
    from spatial_ros.vlm.backend import TransformersBackend

    b = TransformersBackend(str(model))
    from spatial_ros.vlm.prompts import PromptBuilder

    image, prompt = np.zeros((240, 320, 3), np.uint8), PromptBuilder().box3d("the red mug")
    res = b.generate([image], [prompt], 8)
    ref = b.generate_naive([image], [prompt], 8)  # transformers' own generate() on the model
    assert len(res) == 1 and 1 <= len(res[0].token_ids) <= 8
    assert res[0].token_ids == ref[0].token_ids and res[0].text == ref[0].text
    # ... and the model answering is the trained one: its weights are not the initial ones
    from safetensors.numpy import load_file

    trained = load_file(model / "model.safetensors")
    init = load_file(tmp_path / "run" / "init" / "model.safetensors")
    assert trained.keys() == init.keys()
    assert sum(not np.array_equal(trained[k], init[k]) for k in trained) > len(trained) // 2


def test_finetune_resume_continues_from_the_checkpoint(tiny_data, tmp_path):
    from training.finetune import FinetuneConfig, StageConfig, finetune

    def cfg(steps):
        return FinetuneConfig(
            out=str(tmp_path / "run"), init="test", threads=2, save_steps=4, logging_steps=1,
            stages=[StageConfig(name="s", data=[str(tiny_data / "*.parquet")],
                                max_steps=steps, batch_size=2, lr=1e-3, warmup_steps=0)])

    first = finetune(cfg(4))["stages"][0]["losses"]
    (tmp_path / "run" / "s" / "done.json").unlink()  # as if killed after checkpoint-4
    s = finetune(cfg(8), resume=True)["stages"][0]
    assert s["steps"] == 8
    assert s["losses"][:4] == first  # history restored from checkpoint-4, steps 5..8 run
    # the weights were restored too: step 5 does not start from the random-init loss again
    assert s["losses"][4] < first[0] - 0.2


def test_finetune_continues_a_trained_model_with_chosen_stages(tiny_data, tmp_path):
    """``--model DIR --stages NAME`` runs only that stage of a config, from DIR's weights, and
    the new model's metadata keeps DIR's earlier stages."""
    from safetensors.numpy import load_file

    from training.finetune import main

    data = str(tiny_data / "*.parquet")
    cfg = tmp_path / "two.yaml"
    stage = "max_steps: 2, batch_size: 2, lr: 0.001, warmup_steps: 0"
    cfg.write_text(f"init: test\nthreads: 2\nsave_steps: 100\nstages:\n"
                   f"  - {{name: first, data: ['{data}'], {stage}}}\n"
                   f"  - {{name: second, data: ['{data}'], {stage}}}\n")
    assert main(["--config", str(cfg), "--out", str(tmp_path / "a"), "--stages", "first"]) == 0
    first = tmp_path / "a" / "model"
    assert main(["--config", str(cfg), "--model", str(first), "--stages", "second",
                 "--out", str(tmp_path / "b")]) == 0
    assert not (tmp_path / "b" / "first").exists()  # only the chosen stage ran
    meta = json.loads((tmp_path / "b" / "model" / "spatial_ros_vlm.json").read_text())
    assert [s["name"] for s in meta["stages"]] == ["first", "second"]
    summary = json.loads((tmp_path / "b" / "summary.json").read_text())
    assert [s.get("prior", False) for s in summary["stages"]] == [True, False]
    a, b = load_file(first / "model.safetensors"), load_file(
        tmp_path / "b" / "model" / "model.safetensors")
    assert a.keys() == b.keys() and any(not np.array_equal(a[k], b[k]) for k in a)
    assert main(["--config", str(cfg), "--model", str(first), "--stages", "third",
                 "--out", str(tmp_path / "c")]) == 2  # an unknown stage is refused


def test_evaluate_metrics_on_a_scripted_perfect_backend(monkeypatch):
    """The evaluator scores a backend that answers with the true box as perfect grounding."""
    from training import evaluate as ev

    frames = list(ev.held_out_frames(1))
    f = frames[0]
    objs = ev._unique_visible(f.truth)
    assert objs
    sf = f.sensor_frame()
    T = sf.transforms.lookup(sf.camera.frame_id, "base_link")
    codec = BoxCodec()
    answers = {o.caption: codec.encode_box3d(o.box.transformed(T, sf.camera.frame_id),
                                             sf.camera) for o in objs}
    from spatial_ros.vlm.backend import ScriptedBackend

    def reply(conversation, image):
        text = conversation[-1].text
        for cap, a in answers.items():
            if text.endswith(cap):
                return a
        return "I do not know"

    monkeypatch.setattr(ev, "held_out_frames", lambda n, start=0: iter(frames))
    m = ev.evaluate(ScriptedBackend(reply), frames=1, progress=False)
    assert m["grounding"]["without_candidates"]["acc_iou50"] == 1.0
    wc = m["grounding"]["with_candidates"]
    assert wc["acc_iou25"] >= 0.5  # fused to LiDAR boxes
    assert 0.5 <= wc["candidate_ceiling_iou25"] <= 1.0  # the LiDAR boxes match most objects
    assert m["grounding"]["without_candidates"]["parse_failure_rate"] == 0.0
    # the model alone (referring: model) gets every caption: its true boxes fuse to LiDAR boxes
    ma = m["grounding"]["with_candidates_model_alone"]
    assert ma["queries"] == wc["queries"] and ma["parse_failure_rate"] == 0.0
    assert ma["acc_iou25"] >= 0.5
