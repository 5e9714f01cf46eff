"""Model families end to end, each with a tiny random-weight model of its REAL architecture class
(built offline here: processor + a tokenizer trained on the spot + the family's chat template):

- ``spatial-ros ground`` over a simulated bag with queries of different token lengths runs;
- batched, prefix-reusing and sequential greedy answers are identical, the image is encoded once
  per call, answer scoring equals a plain forward pass (decoder-only families);
- a hand-written correct answer in the family's NATIVE format (Qwen JSON, InternVL <box>,
  PaliGemma <loc>, Florence-2 <loc_N>, LLaVA fractions, Cube-LLM 3D box, set-of-marks number) is
  parsed and lifted/fused to within 1 cm of the simulator's truth box;
- ``spatial-ros bench vlm --model DIR`` reports one image encode per frame (naive: one per
  query) and the batched + prefix vs naive ratio.
Plus the parsers on hand-computed values, image-only loading of a Hub-layout folder, the
model options and the set-of-marks drawing.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil

import numpy as np
import pytest

from spatial_ros.cli import main
from spatial_ros.errors import ConfigError, ModelError
from spatial_ros.types import Candidate
from spatial_ros.vlm.backend import GenerationResult, ScriptedBackend, VLMBackend
from spatial_ros.vlm.codec import BoxCodec
from spatial_ros.vlm.engine import EngineConfig
from spatial_ros.vlm.families import adapter_for, family_module
from spatial_ros.vlm.prompts import PromptBuilder, candidate_tags

torch = pytest.importorskip("torch")

FAMILIES = ["cube-llm", "qwen2.5-vl", "qwen3-vl", "llava", "llava-onevision", "internvl",
            "idefics3", "paligemma", "florence2", "gemma3"]
QUERIES = ["the mug", "the purple ball", "the white box on the table",
           "the small green object that is closest to the camera on the left"]


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def model_dirs(tmp_path_factory):
    """family -> its tiny model directory (built once, on first use)."""
    root = tmp_path_factory.mktemp("families")
    cache: dict[str, object] = {}

    def get(family: str):
        if family not in cache:
            cache[family] = family_module(family).build_tiny(root / family, seed=0)
        return cache[family]

    return get


@pytest.fixture(scope="module")
def backends(model_dirs):
    from spatial_ros.vlm.backend import TransformersBackend

    cache: dict[str, object] = {}

    def get(family: str):
        if family not in cache:
            cache[family] = TransformersBackend(model_dirs(family), device="cpu")
        return cache[family]

    return get


@pytest.fixture(scope="module")
def sim_bag(tmp_path_factory):
    out = tmp_path_factory.mktemp("sim")
    assert main(["sim", "--scenario", "tabletop", "--seed", "0", "--frames", "4",
                 "--out", str(out), "--no-progress"]) == 0
    return out


@pytest.fixture(scope="module")
def sim_frame():
    from spatial_ros.sim import SimConfig, iter_frames

    f = next(iter(iter_frames(SimConfig(scenario="tabletop", seed=3, frames=1))))
    return f.sensor_frame(), f.truth


def _image():
    return np.random.default_rng(0).integers(0, 256, (90, 120, 3), dtype=np.uint8)


def _prompts(adapter, captions):
    pb = PromptBuilder()
    ctx = None
    if adapter.set_of_marks:
        boxes = [np.array([5, 8, 40, 50]), np.array([60, 20, 110, 85])]
        ctx = adapter.marks_context(boxes, candidate_tags([None, None]), (90, 120))
    return [adapter.grounding_prompt(pb, c, ctx) for c in captions]


# ----------------------------------------------------------------------------------------------
# Every family, end to end
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("family", FAMILIES)
def test_family_is_detected_from_config_json(family, backends):
    assert backends(family).adapter.family == family


@pytest.mark.parametrize("family", FAMILIES)
def test_ground_runs_over_a_simulated_bag(family, model_dirs, sim_bag, tmp_path):
    from spatial_ros.boxfile import read_box_file

    out = tmp_path / "pred.jsonl"
    args = ["ground", "--bag", str(sim_bag / "bag"), "--model", str(model_dirs(family)),
            "--out", str(out), "--max-new-tokens", "6", "--device", "cpu", "--threads", "1"]
    for q in QUERIES:
        args += ["--query", q]
    assert main(args) == 0
    frames = read_box_file(out)
    assert len(frames) == 2  # one per LiDAR scan of the 4 camera frames
    assert all(f.frame_id == "base_link" for f in frames)


@pytest.mark.parametrize("family", FAMILIES)
def test_batched_prefix_and_sequential_answers_are_identical(family, backends):
    b = backends(family)
    img = _image()
    prompts = _prompts(b.adapter, QUERIES)
    assert len({len(ids) for ids in b.encode([img], prompts).ids}) == len(QUERIES)  # lengths
    b.clear_image_cache()
    calls = b.vision_calls
    seq = b.generate([img], prompts, 6, mode="sequential")
    assert b.vision_calls - calls == 1 and seq[0].image_encodes == 1  # one encode per frame
    bat = b.generate([img], prompts, 6, mode="batched")
    auto = b.generate([img], prompts, 6)
    assert b.vision_calls - calls == 1  # the same image again: its features are kept
    for s, x, a in zip(seq, bat, auto, strict=True):
        assert s.token_ids == x.token_ids == a.token_ids
        assert abs(s.score - a.score) < 1e-4
    assert len({r.token_ids for r in seq}) >= 2  # the answers depend on the query
    if b.adapter.causal_prompt:
        assert auto[0].prefix_tokens > 0 and auto[0].batch_size == len(QUERIES)
    else:  # PaliGemma's bidirectional prompt, Florence-2's encoder: one batch, no prefix
        assert auto[0].prefix_tokens == 0
    # per-prompt images batch like sequential
    imgs = [img, img[::-1].copy()]
    two = b.generate(imgs, prompts[:2], 5)
    assert [r.token_ids for r in two] == [
        r.token_ids for r in b.generate(imgs, prompts[:2], 5, mode="sequential")]


@pytest.mark.parametrize("family", [f for f in FAMILIES if f != "florence2"])
def test_score_choices_equals_a_plain_forward_pass(family, backends):
    """log p(choice, end | prompt) from the cached-prefix batch equals one plain forward pass of
    prompt + choice (with the processor's own inputs), for decoder-only families."""
    b = backends(family)
    img = _image()
    prompt = _prompts(b.adapter, ["the purple ball"])[0]
    choices = ["2", "the cup", "1"]
    got = b.score_choices(img, prompt, choices)
    enc = b.processor(images=[img], text=[b.chat_text(prompt)], return_tensors="pt")
    ids0 = enc["input_ids"][0].tolist()
    for choice, score in zip(choices, got, strict=True):
        t = b.tokenizer(choice, add_special_tokens=False)["input_ids"]
        kw = {k: v for k, v in enc.items() if k not in ("input_ids", "attention_mask", "labels")}
        for k in ("mm_token_type_ids", "token_type_ids"):
            if k in kw:
                kw[k] = torch.cat([kw[k], kw[k].new_full((1, len(t)), 1 if family == "paligemma"
                                                         else 0)], 1)
        with torch.inference_mode():
            logits = b.model(input_ids=torch.tensor([ids0 + t]), **kw).logits[0].float()
        lp = torch.log_softmax(logits, -1)
        want = sum(float(lp[len(ids0) - 1 + j, tok]) for j, tok in enumerate(t))
        want += float(torch.logsumexp(lp[len(ids0) - 1 + len(t), b.eos_ids], 0))
        assert score == pytest.approx(want, abs=2e-3)


class _Answering(VLMBackend):
    """The real backend (preprocessing, model image size) with a hand-written answer."""

    def __init__(self, real, answer):
        self.real, self.answer, self.adapter = real, answer, real.adapter
        self.convs = []

    def generate(self, images, prompts, max_new_tokens=64, *, mode="auto"):
        res = self.real.generate(images, prompts, 1, mode=mode)
        self.convs += list(prompts)
        return [dataclasses.replace(r, text=self.answer(p, r)) for p, r in zip(
            prompts, res, strict=True)]


def _native(family, adapter, box_2d, image_hw, res: GenerationResult, conv, cam_box, cam):
    """The family's correct answer for an object with pixel box ``box_2d`` (the truth)."""
    H, W = image_hw
    x1, y1, x2, y2 = (float(v) for v in box_2d)
    if adapter.set_of_marks:  # the mark whose listed box is the object's
        lines = [ln for ln in conv[-1].text.splitlines() if ln[:1].isdigit()]
        best = max(lines, key=lambda ln: -np.abs(np.array(json.loads(ln.split(": ", 1)[1]))
                                                 - np.array([x1 / W, y1 / H, x2 / W, y2 / H])
                                                 * 1000).sum())
        return best.split(":")[0]
    if family == "cube-llm":
        return BoxCodec().encode_box3d(cam_box, cam)
    if family == "qwen2.5-vl":
        mh, mw = res.model_image_hw
        b = [round(x1 * mw / W), round(y1 * mh / H), round(x2 * mw / W), round(y2 * mh / H)]
        return f'```json\n[{{"bbox_2d": {b}, "label": "it"}}]\n```'
    if family in ("qwen3-vl", "internvl"):
        b = [round(x1 / W * 1000), round(y1 / H * 1000), round(x2 / W * 1000),
             round(y2 / H * 1000)]
        return (f'[{{"bbox_2d": {b}}}]' if family == "qwen3-vl"
                else f"<ref>it</ref><box>[{b}]</box>")
    if family == "llava":
        return f"[{x1 / W:.3f}, {y1 / H:.3f}, {x2 / W:.3f}, {y2 / H:.3f}]"
    if family == "paligemma":
        from spatial_ros.vlm.families.paligemma import loc_tokens

        return loc_tokens(box_2d, image_hw) + " it"
    if family == "florence2":
        from spatial_ros.vlm.families.florence2 import loc_tokens

        return "it" + loc_tokens(box_2d, image_hw)
    raise AssertionError(family)


@pytest.mark.parametrize("family", FAMILIES)
def test_native_answer_is_lifted_to_the_truth_box(family, backends, sim_frame):
    from spatial_ros.vlm.engine import SpatialEngine

    frame, truth = sim_frame
    cam = frame.camera
    T = frame.transforms.lookup(cam.frame_id, "base_link")
    caps = [o.caption for o in truth.objects]
    objs = [o for o in truth.objects if o.box_2d is not None and caps.count(o.caption) == 1
            and o.visible_fraction >= 0.5 and o.category != "gripper"]
    assert len(objs) >= 2
    cands = [Candidate(box=o.box, box_2d=None, source="lidar", id=o.id) for o in truth.objects
             if o.category != "gripper"]
    real = backends(family)
    for o in objs[:3]:
        def answer(conv, res, o=o):
            return _native(family, real.adapter, o.box_2d, frame.image.shape[:2], res, conv,
                           o.box.transformed(T, cam.frame_id), cam)

        engine = SpatialEngine(_Answering(real, answer), EngineConfig(referring="model"))
        got = engine.ground(frame, [o.caption], cands, "base_link")
        assert len(got) == 1, engine.stats.as_dict()
        g = got[0]
        assert g.source == "vlm+lidar"
        assert np.linalg.norm(g.box.center - o.box.center) < 0.01
        assert np.abs(g.box.size - o.box.size).max() < 0.01


@pytest.mark.parametrize("family", FAMILIES)
def test_bench_vlm_encodes_the_image_once_per_frame(family, model_dirs, tmp_path, capsys):
    out = tmp_path / "b.json"
    assert main(["bench", "vlm", "--model", str(model_dirs(family)), "--queries", "1,4",
                 "--max-new-tokens", "4", "--repeat", "1", "--candidates", "3", "--device",
                 "cpu", "--threads", "1", "--json", str(out)]) == 0
    res = json.loads(out.read_text())
    assert res["info"]["family"] == family
    for r in res["rows"]:
        assert r["image_encodes_per_frame"] == 1
        assert r["naive_image_encodes_per_frame"] == r["queries"]
        assert r["ratio_naive_over_ours"] > 0
        assert r["same_tokens_as_naive"] == 1.0  # greedy: the same answers as generate()
    assert "image encodes/frame 1" in capsys.readouterr().out


# ----------------------------------------------------------------------------------------------
# Parsers on hand-computed values
# ----------------------------------------------------------------------------------------------


def _parse(family, text, hw=(400, 800), model_hw=None):
    return adapter_for("", family).parse_grounding(text, BoxCodec(), hw, model_hw)


def test_native_parsers_map_to_original_pixels():
    r = _parse("paligemma", "<loc0256><loc0512><loc0768><loc1023> red mug ; <loc0000>")
    np.testing.assert_allclose(r.value.box_2d, [400, 100, 799, 300])  # y first, 1024 bins
    assert r.value.label == "red mug"
    r = _parse("florence2", "red mug<loc_100><loc_250><loc_499><loc_999>")
    np.testing.assert_allclose(r.value.box_2d, [80.4, 100.2, 399.6, 399])  # (k + .5) / 1000
    r = _parse("internvl", "<ref>the cup</ref><box>[[250, 500, 750, 1000]]</box>")
    np.testing.assert_allclose(r.value.box_2d, [200, 200, 600, 399])
    assert r.value.label == "the cup"
    # LLaVA-1.5: fractions of the image padded to a square (800 x 800, image rows 200..600)
    r = _parse("llava-1.5", "[0.25, 0.25, 0.75, 0.5]")
    np.testing.assert_allclose(r.value.box_2d, [200, 0, 600, 200])
    r = _parse("llava", "[0.25, 0.25, 0.75, 0.5]")  # NeXT: fractions of the image itself
    np.testing.assert_allclose(r.value.box_2d, [200, 100, 600, 200])
    r = _parse("llava-onevision", "[0.1, 0.2, 0.3, 0.4]")  # the 0..1 floats
    np.testing.assert_allclose(r.value.box_2d, [80, 80, 240, 160])
    r = _parse("qwen2.5-vl", '[{"bbox_2d": [112, 56, 224, 112]}]', model_hw=(224, 448))
    np.testing.assert_allclose(r.value.box_2d, [200, 100, 400, 200])
    r = _parse("gemma3", "[100, 200, 300, 400]")
    np.testing.assert_allclose(r.value.box_2d, [80, 80, 240, 160])
    for fam, text, tag in [("gemma3", "3", "#3"), ("idefics3", "Mark [12].", "#12"),
                           ("llava-onevision", "#2", "#2")]:
        assert _parse(fam, text).value.candidate == tag
    for fam in ("paligemma", "florence2", "internvl", "llava", "gemma3"):
        assert not _parse(fam, "no idea").ok
    assert not _parse("llava", "[12, 30, 400, 500]").ok  # not fractions: never read as 0..999
    assert not _parse("paligemma", "<loc0100><loc0100><loc0100><loc0100>").ok  # zero area


def test_prompts_are_in_the_native_format():
    pb = PromptBuilder()
    assert adapter_for("", "paligemma").grounding_prompt(pb, "the mug", None)[-1].text == \
        "detect the mug"
    assert adapter_for("", "florence2").grounding_prompt(pb, "the mug", None)[-1].text == \
        "<OPEN_VOCABULARY_DETECTION>the mug"
    assert "<ref>the mug</ref>" in adapter_for("", "internvl").grounding_prompt(
        pb, "the mug", None)[-1].text
    som = adapter_for("", "gemma3")
    ctx = som.marks_context([np.array([0, 0, 60, 30])], ["#1"], (60, 120))
    assert ctx.splitlines()[1] == "1: [0, 0, 500, 500]"
    assert "Which mark is the mug?" in som.grounding_prompt(pb, "the mug", ctx)[-1].text


# ----------------------------------------------------------------------------------------------
# Loading and options
# ----------------------------------------------------------------------------------------------


def test_hub_layout_folder_loads_image_only_without_torchvision_or_template(model_dirs, tmp_path):
    from spatial_ros.vlm.backend import TransformersBackend
    from spatial_ros.vlm.families.qwen2_5_vl import hub_video_config

    hub = tmp_path / "hub"
    shutil.copytree(model_dirs("qwen2.5-vl"), hub)
    (hub / "video_preprocessor_config.json").write_text(json.dumps(hub_video_config()))
    (hub / "chat_template.jinja").unlink()  # no chat template: the family's fallback is used
    try:
        import torchvision  # noqa: F401
    except ImportError:  # what a user hit: AutoProcessor builds the torchvision video processor
        from transformers import AutoProcessor

        with pytest.raises((ImportError, OSError, ValueError)):
            AutoProcessor.from_pretrained(hub, local_files_only=True)
    b = TransformersBackend(hub, device="cpu")
    assert b.adapter.family == "qwen2.5-vl" and not hasattr(b.processor, "video_processor")
    assert not b.processor.chat_template
    assert b.chat_text("the mug").startswith("<|im_start|>user\n<|vision_start|><|image_pad|>")
    assert b.generate([_image()], ["the mug"], 2)[0].image_encodes == 1


def test_remote_code_model_names_the_option(model_dirs, tmp_path):
    from spatial_ros.vlm.backend import TransformersBackend

    remote = tmp_path / "remote"
    shutil.copytree(model_dirs("internvl"), remote)
    cfg = json.loads((remote / "config.json").read_text())
    cfg["auto_map"] = {"AutoModel": "modeling_internvl_chat.InternVLChatModel"}
    (remote / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ModelError, match="trust_remote_code: true.*--trust-remote-code"):
        TransformersBackend(remote, device="cpu")
    import yaml

    from spatial_ros.config import from_dict
    from spatial_ros.perception import PerceptionConfig

    assert not PerceptionConfig().trust_remote_code  # off unless the user opts in
    # the YAML line the message names is a key the config takes
    opted_in = from_dict(PerceptionConfig, yaml.safe_load("trust_remote_code: true"))
    assert opted_in.trust_remote_code


def test_model_options_reach_the_backend_from_cli_and_yaml(sim_bag, tmp_path, monkeypatch):
    from spatial_ros.perception import PerceptionConfig

    seen = {}

    def fake(path, **kw):
        seen.update(kw)
        b = ScriptedBackend({"": "no box"})
        b.close = lambda: None
        return b

    monkeypatch.setattr("spatial_ros.vlm.backend.TransformersBackend", fake)
    assert main(["ground", "--bag", str(sim_bag / "bag"), "--query", "the mug", "--out",
                 str(tmp_path / "p.jsonl"), "--family", "paligemma", "--dtype", "bfloat16",
                 "--attn-implementation", "eager", "--threads", "1", "--trust-remote-code",
                 "--max-frames", "1"]) == 0
    assert seen == {"device": "auto", "family": "paligemma", "dtype": "bfloat16",
                    "attn_implementation": "eager", "trust_remote_code": True, "threads": 1}
    with pytest.raises(ConfigError, match="family='nope'"):
        PerceptionConfig(family="nope")
    from spatial_ros.config import from_dict
    from spatial_ros.reward.annotator import RewardAnnotatorConfig

    r = from_dict(RewardAnnotatorConfig, {"family": "gemma3", "threads": 2})
    assert r.perception().family == "gemma3" and r.perception().threads == 2
    assert main(["ground", "--bag", "x", "--query", "a", "--out", "y", "--family", "nope"]) == 1


def test_threads_auto_is_one_on_small_machines(monkeypatch):
    from spatial_ros.vlm.backends import options

    for cpus, want in [(1, 1), (2, 1), (4, 2), (16, 8), (64, 8)]:
        monkeypatch.setattr(options, "usable_cpus", lambda c=cpus: c)
        assert options.resolve_threads(0) == want
    assert options.resolve_threads(3) == 3


# ----------------------------------------------------------------------------------------------
# Set-of-marks in the engine
# ----------------------------------------------------------------------------------------------


def test_draw_marks_draws_boxes_and_numbers():
    from spatial_ros.vlm.visual_prompts import draw_marks

    img = np.zeros((120, 160, 3), np.uint8)
    out = draw_marks(img, [np.array([20, 30, 80, 100])], color="red")
    assert (out[100, 50] == [255, 0, 0]).all() and (out[60, 20] == [255, 0, 0]).all()
    assert (out[60, 50] == 0).all()  # inside the box untouched
    tag = out[14:31, 20:40]
    assert (tag == [255, 0, 0]).all(-1).sum() > 20  # the red tag above the box's corner
    assert (tag.min(-1) > 150).any()  # with the white number
    assert (img == 0).all()  # a copy


def test_engine_draws_marks_and_resolves_the_number(sim_frame, caplog):
    from spatial_ros.vlm.engine import SpatialEngine
    from spatial_ros.vlm.families.gemma3 import Gemma3Adapter

    caplog.set_level(logging.ERROR)
    frame, truth = sim_frame
    objs = [o for o in truth.objects if o.category != "gripper"]
    cands = [Candidate(box=o.box, source="lidar", id=o.id) for o in objs]
    backend = ScriptedBackend(["2"], adapter=Gemma3Adapter())
    engine = SpatialEngine(backend, EngineConfig(referring="model"))
    got = engine.ground(frame, ["the thing"], cands, "base_link")
    conv, img = backend.calls[0]
    assert "Which mark is the thing?" in conv[-1].text and "\n2: [" in conv[-1].text
    assert not np.array_equal(img, frame.image)  # the marks are drawn
    # the object of mark 2 is the second listed (closest first) candidate
    dist = sorted(np.linalg.norm(
        frame.transforms.lookup(frame.camera.frame_id, "base_link")[:3, :3] @ o.box.center
        + frame.transforms.lookup(frame.camera.frame_id, "base_link")[:3, 3]) for o in objs
        if _visible(o))
    assert len(got) == 1 and got[0].source == "vlm+lidar"
    assert got[0].distance == pytest.approx(dist[1], abs=1e-6)


def _visible(o):
    return o.box_2d is not None



def test_qwen_7b_preset_has_qwen2_5_vl_7b_shapes():
    """Built on the meta device (no memory): Qwen2.5-VL-7B has 8.29 B parameters; a 640 x 480
    frame becomes at most 448 x 448 pixels -> <= 256 image tokens."""
    from spatial_ros.bench.vlm import qwen2_5_vl_7b

    model, proc = qwen2_5_vl_7b("meta")
    n = sum(p.numel() for p in model.parameters())
    assert 8.2e9 < n < 8.4e9
    enc = proc(images=[np.zeros((480, 640, 3), np.uint8)],
               text=["<|vision_start|><|image_pad|><|vision_end|>hi"], return_tensors="pt")
    n_img = int((enc["input_ids"] == model.config.image_token_id).sum())
    assert 128 <= n_img <= 256
