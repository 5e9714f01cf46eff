"""Backends: the transformers backend on a real tiny LLaVA (CPU), batched / prefix-reuse /
sequential greedy equivalence, offline-only loading, adapters (Qwen JSON), the scripted fake."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from spatial_ros.errors import ConfigError, ModelError
from spatial_ros.vlm.backend import (
    BackendConfig,
    ModelAdapter,
    QwenJSONAdapter,
    ScriptedBackend,
    TransformersBackend,
    adapter_for,
    parse_json_boxes,
    smart_resize,
)
from spatial_ros.vlm.codec import BoxCodec, ParseFailure
from spatial_ros.vlm.prompts import PromptBuilder, Turn
from spatial_ros.vlm.tiny import META_FILE, PRESETS, build_tiny_vlm, codec_config_for, sincos_2d

CAPTIONS = [
    "the red mug", "the blue bowl", "the green can on the left", "a ball",
    "the yellow box near the edge", "the bottle", "the purple book", "the cube",
]
CONTEXT = (
    "Here is the list of 3D bounding boxes of all objects around the camera:\n"
    "[500, 500, 300, 1.00, 1.00, 1.00, 0.00, 0.00, 0.00]\n"
    "[120, 610, 455, 0.20, 0.30, 0.10, 0.00, 0.00, 1.20]"
)


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread():
    """The tiny model is overhead-bound: one thread is faster on shared, busy cores."""
    torch = pytest.importorskip("torch")
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    # A larger init std than transformers' default so the random model's answers depend on the
    # input (otherwise all paths would trivially agree on one constant answer).
    return build_tiny_vlm(tmp_path_factory.mktemp("tiny"), "test", seed=0, init_std=0.3)


@pytest.fixture(scope="module")
def backend(tiny_dir):
    return TransformersBackend(tiny_dir, device="cpu")


@pytest.fixture(scope="module")
def image():
    return np.random.default_rng(0).integers(0, 256, (90, 120, 3), dtype=np.uint8)


def test_tiny_model_reloads_offline_on_cpu_fp32(backend, tiny_dir):
    assert backend.info["device"] == "cpu" and backend.info["dtype"] == "float32"
    assert backend.info["model_type"] == "llava" and backend.adapter.family == "cube-llm"
    assert backend.info["parameters"] < 500_000
    files = {p.name for p in tiny_dir.iterdir()}
    assert "model.safetensors" in files and not any(f.endswith(".bin") for f in files)
    meta = json.loads((tiny_dir / META_FILE).read_text())
    assert meta["preset"] == "test" and codec_config_for(tiny_dir) == BoxCodec().config
    # digits are single tokens, and byte-level BPE round-trips any text exactly
    tok = backend.tokenizer
    ids = tok("[512, 300, 421, 1.62]", add_special_tokens=False)["input_ids"]
    pieces = [tok.decode([i]) for i in ids]
    assert all(len(p.strip()) <= 1 or not any(c.isdigit() for c in p) for p in pieces)
    text = "the red mug ~ ü 中 [0, 999]"
    assert tok.decode(tok(text, add_special_tokens=False)["input_ids"]) == text


def test_batched_prefix_and_sequential_greedy_outputs_are_identical(backend, image):
    pb = PromptBuilder()
    prompts = [pb.box3d(c, CONTEXT) for c in CAPTIONS]
    seq = backend.generate([image], prompts, max_new_tokens=12, mode="sequential")
    bat = backend.generate([image], prompts, max_new_tokens=12, mode="batched")
    pre = backend.generate([image], prompts, max_new_tokens=12, mode="prefix")
    assert len({r.token_ids for r in seq}) >= 3  # answers depend on the query
    for s, b, p in zip(seq, bat, pre, strict=True):
        assert s.token_ids == b.token_ids == p.token_ids
        assert s.text == b.text == p.text
        assert abs(s.score - p.score) < 1e-4 and 0.0 < s.score <= 1.0
    assert all(r.batch_size == 1 and r.prefix_tokens == 0 for r in seq)
    assert all(r.batch_size == 8 and r.prefix_tokens == 0 for r in bat)
    # the shared prefix covers system text, image tokens, candidates and the fixed question part
    n_img = (PRESETS["test"].image_size // PRESETS["test"].patch_size) ** 2
    assert all(r.batch_size == 8 and r.prefix_tokens > n_img + 100 for r in pre)
    assert all(r.prompt_tokens > r.prefix_tokens for r in pre)
    # auto = prefix reuse (the config default)
    auto = backend.generate([image], prompts, max_new_tokens=12)
    assert [r.token_ids for r in auto] == [r.token_ids for r in pre]
    assert auto[0].prefix_tokens == pre[0].prefix_tokens


def test_per_prompt_images_batch_equals_sequential(backend, image):
    imgs = [image, image[::-1].copy(), np.zeros_like(image)]
    prompts = ["Provide the 2D bounding box of the region this sentence describes: the mug"] * 3
    seq = backend.generate(imgs, prompts, max_new_tokens=8, mode="sequential")
    bat = backend.generate(imgs, prompts, max_new_tokens=8, mode="auto")
    assert [r.token_ids for r in seq] == [r.token_ids for r in bat]
    assert bat[0].prefix_tokens == 0  # different images: nothing to share
    assert len({r.token_ids for r in seq}) >= 2  # the image matters


def test_fast_tokenization_matches_the_processor(backend, image):
    pb = PromptBuilder()
    prompts = [pb.box3d(c, CONTEXT) for c in CAPTIONS[:3]] + [[Turn("user", "hi", image=True)]]
    enc = backend.encode([image], prompts)
    for p, ids in zip(prompts, enc.ids, strict=True):
        ref = backend.processor(images=[image], text=[backend.chat_text(p)], return_tensors="pt")
        assert ref["input_ids"][0].tolist() == ids


def test_max_batch_size_splits_batches(tiny_dir, image):
    small = TransformersBackend(tiny_dir, device="cpu", max_batch_size=3)
    prompts = [PromptBuilder().box3d(c) for c in CAPTIONS[:7]]
    out = small.generate([image], prompts, max_new_tokens=6)
    assert [r.batch_size for r in out] == [3, 3, 3, 3, 3, 3, 1]
    ref = small.generate([image], prompts, max_new_tokens=6, mode="sequential")
    assert [r.token_ids for r in out] == [r.token_ids for r in ref]


def test_generate_naive_matches_our_greedy_loop(backend, image):
    prompts = [PromptBuilder().box3d(c) for c in CAPTIONS[:2]]
    ours = backend.generate([image], prompts, max_new_tokens=10, mode="sequential")
    naive = backend.generate_naive([image], prompts, max_new_tokens=10)
    assert [r.token_ids for r in ours] == [r.token_ids for r in naive]


def test_score_choices_equals_full_sequence_log_probabilities(backend, image):
    """The prefix-cached choice scores equal log p(choice, end | prompt) from one plain forward
    pass per choice (the prompt's KV cache is shared by the choices)."""
    torch = pytest.importorskip("torch")
    prompt = PromptBuilder().box3d("the red mug", CONTEXT)
    greedy = backend.generate([image], [prompt], max_new_tokens=6, mode="sequential")[0]
    answer = backend.tokenizer.decode(list(greedy.token_ids[:3]))
    choices = [answer, "red1", "large blue2", "#3"]
    got = backend.score_choices(image, prompt, choices)
    enc = backend.processor(images=[image], text=[backend.chat_text(prompt)], return_tensors="pt")
    ids0 = enc["input_ids"][0].tolist()
    pix = {k: v for k, v in enc.items() if k not in ("input_ids", "attention_mask")}
    for choice, score in zip(choices, got, strict=True):
        t = backend.tokenizer(choice, add_special_tokens=False)["input_ids"]
        with torch.inference_mode():
            lp = torch.log_softmax(
                backend.model(input_ids=torch.tensor([ids0 + t]), **pix).logits[0].float(), -1)
        want = sum(float(lp[len(ids0) - 1 + j, tok]) for j, tok in enumerate(t))
        want += float(torch.logsumexp(lp[len(ids0) - 1 + len(t), backend.eos_ids], 0))
        assert score == pytest.approx(want, abs=1e-4)
    assert backend.score_choices(image, prompt, []) == []
    with pytest.raises(ConfigError, match="at least one token"):
        backend.score_choices(image, prompt, ["ok", ""])


def test_bad_calls_raise_config_errors(backend, image):
    with pytest.raises(ConfigError, match="2 images for 3 prompts"):
        backend.generate([image, image], ["a", "b", "c"])
    with pytest.raises(ConfigError, match="uint8"):
        backend.generate([image.astype(np.float32)], ["a"])
    with pytest.raises(ConfigError, match="mode"):
        backend.generate([image], ["a"], mode="fast")
    with pytest.raises(ConfigError, match="unknown backend option"):
        TransformersBackend(backend.info["model_dir"], gpu=True)
    with pytest.raises(ConfigError, match="device='tpu'"):
        BackendConfig(device="tpu")


def test_model_loading_is_local_and_safetensors_only(tiny_dir, tmp_path):
    with pytest.raises(ModelError, match="not found"):
        TransformersBackend(tmp_path / "missing")
    with pytest.raises(ModelError, match="no config.json"):
        TransformersBackend(tmp_path)
    bin_only = tmp_path / "bin_only"
    shutil.copytree(tiny_dir, bin_only)
    (bin_only / "model.safetensors").rename(bin_only / "pytorch_model.bin")
    with pytest.raises(ModelError, match="safetensors"):
        TransformersBackend(bin_only)
    remote = tmp_path / "remote"
    shutil.copytree(tiny_dir, remote)
    cfg = json.loads((remote / "config.json").read_text())
    cfg["auto_map"] = {"AutoModelForImageTextToText": "modeling_evil.Model"}
    (remote / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ModelError, match="trust_remote_code"):
        TransformersBackend(remote)


def test_default_preset_architecture():
    p = PRESETS["default"]
    assert p.image_size == 112 and p.patch_size == 16 and (112 // 16) ** 2 == 49
    # parameter budget (<= ~20 M) from the preset's shapes
    v = p.vision_hidden
    vision = p.vision_layers * (4 * v * v + 2 * v * p.vision_mlp) + 50 * v + 3 * 16 * 16 * v
    t = p.text_hidden
    kv = t // p.text_heads * p.text_kv_heads
    text = p.text_layers * (2 * t * t + 2 * t * kv + 3 * t * p.text_mlp) + 2 * p.vocab_size * t
    assert vision + text + v * t + t * t < 20e6
    pe = sincos_2d(7, 256)  # patch k = row * 7 + col; first half encodes the row, second the col
    assert pe.shape == (49, 256)
    np.testing.assert_allclose(pe[1, :128], pe[0, :128])  # same row
    np.testing.assert_allclose(pe[7, 128:], pe[0, 128:])  # same column
    np.testing.assert_allclose(pe[0, :64], 0.0)  # sin(0 * omega): row 0
    np.testing.assert_allclose(pe[0, 64:128], 1.0)  # cos(0 * omega)
    # patch 9 = row 1, column 2; the first frequency is 1: sin(1), cos(1), sin(2), cos(2)
    np.testing.assert_allclose(pe[9, [0, 64, 128, 192]],
                               [np.sin(1), np.cos(1), np.sin(2), np.cos(2)])
    assert not np.allclose(pe[8], pe[0])


# ----------------------------------------------------------------------------------------------
# Adapters (no Qwen weights exist here: parsing and coordinate mapping on synthetic outputs)
# ----------------------------------------------------------------------------------------------


def test_qwen_smart_resize_and_box_mapping():
    assert smart_resize(375, 1242) == (364, 1232)  # multiples of 28, aspect kept
    h, w = smart_resize(3000, 4000)
    assert h % 28 == 0 and w % 28 == 0 and h * w <= 28 * 28 * 1280
    assert smart_resize(20, 20) == (56, 56)
    ad = QwenJSONAdapter()
    text = '```json\n[{"bbox_2d": [308, 91, 616, 182], "label": "red mug"}]\n```'
    r = ad.parse_grounding(text, BoxCodec(), image_hw=(375, 1242), model_image_hw=(364, 1232))
    assert r.ok and r.value.label == "red mug"
    np.testing.assert_allclose(
        r.value.box_2d, [308 * 1242 / 1232, 91 * 375 / 364, 616 * 1242 / 1232, 182 * 375 / 364]
    )
    # Without the processor's grid the adapter recomputes the resize.
    r2 = ad.parse_grounding(text, BoxCodec(), image_hw=(375, 1242))
    np.testing.assert_allclose(r2.value.box_2d, r.value.box_2d)
    q3 = adapter_for("qwen3_vl")
    assert q3.coord_mode == "relative_1000"
    r3 = q3.parse_grounding('[{"bbox_2d": [500, 0, 1000, 500]}]', BoxCodec(), (400, 800))
    np.testing.assert_allclose(r3.value.box_2d, [400, 0, 799, 200])


@pytest.mark.parametrize(
    "text, n",
    [
        ('[{"bbox_2d": [1, 2, 30, 40], "label": "a"}, {"bbox_2d": [5, 6, 70, 80]}]', 2),
        ('{"bbox_2d": [1, 2, 30, 40], "label": "a"}', 1),
        ('[{"bbox_2d": [1, 2, 30, 40], "label": "a"}, {"bbox_2d": [5, 6', 1),  # truncated
        ('Sure! "bbox_2d": [10, 20, 30, 40], "label": "cup"', 1),
    ],
)
def test_parse_json_boxes_tolerates_fences_and_truncation(text, n):
    out = parse_json_boxes(text)
    assert not isinstance(out, ParseFailure) and len(out) == n
    assert out[0][1].tolist() in ([1, 2, 30, 40], [10, 20, 30, 40])


@pytest.mark.parametrize("text", ["", "no boxes here", '[{"bbox": [1, 2]}]', "{{{", None])
def test_parse_json_boxes_failures(text):
    out = parse_json_boxes(text)
    assert isinstance(out, ParseFailure) and out.reason
    r = QwenJSONAdapter().parse_grounding(text, BoxCodec(), (100, 100))
    assert not r.ok


def test_cube_llm_adapter_accepts_2d_answers_as_fallback():
    ad = ModelAdapter()
    r = ad.parse_grounding("[0, 0, 999, 999]", BoxCodec(), (100, 200))
    assert r.ok and r.value.box3d is None
    np.testing.assert_allclose(r.value.box_2d, [-0.5, -0.5, 199.5, 99.5])
    msgs = ad.messages([Turn("system", "s"), Turn("user", "q", image=True)])
    assert msgs[1]["content"][0] == {"type": "image"}


def test_scripted_backend_modes():
    img = np.zeros((4, 4, 3), np.uint8)
    seq = ScriptedBackend(["a", "b"])
    assert [r.text for r in seq.generate([img], ["x", "y", "z"])] == ["a", "b", "a"]
    by_key = ScriptedBackend({"mug": "[1]", "": "none"})
    out = by_key.generate([img], ["the mug", "the bowl"])
    assert [r.text for r in out] == ["[1]", "none"]
    assert len(by_key.calls) == 2 and by_key.calls[0][0][0].image
    fn = ScriptedBackend(lambda conv, im: f"{im.shape[0]}:{conv[-1].text}")
    assert fn.generate([img], ["q"])[0].text == "4:q"
    with pytest.raises(ConfigError, match="no response"):
        ScriptedBackend({"mug": "x"}).generate([img], ["bowl"])


@pytest.mark.gpu
def test_cuda_bf16_prefix_reuse_matches_batched(tiny_dir, image):
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    gpu = TransformersBackend(tiny_dir)  # auto: cuda, bfloat16, sdpa
    assert gpu.info["device"].startswith("cuda") and gpu.info["dtype"] == "bfloat16"
    prompts = [PromptBuilder().box3d(c, CONTEXT) for c in CAPTIONS]
    pre = gpu.generate([image], prompts, max_new_tokens=8, mode="prefix")
    bat = gpu.generate([image], prompts, max_new_tokens=8, mode="batched")
    assert pre[0].prefix_tokens > 0
    same = sum(p.token_ids == b.token_ids for p, b in zip(pre, bat, strict=True))
    assert same >= 7  # bf16 rounding may flip a near-tie on one of 8
