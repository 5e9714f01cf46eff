"""Saved LLaVA models name their vision tower ``vision_tower.vision_model.*`` (the layout vLLM's
LLaVA loader expects); transformers loads it to the same weights and answers as the flat one."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from spatial_ros.perception import DEFAULT_MODEL_DIR
from spatial_ros.vlm.weights_layout import nested_name, write_vision_model_layout


def _keys(d):
    out = []
    for f in sorted(d.glob("*.safetensors")):
        with safe_open(f, "pt") as sf:
            out += list(sf.keys())
    return out


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from spatial_ros.vlm.tiny import build_tiny_vlm

    return build_tiny_vlm(tmp_path_factory.mktemp("tiny") / "m", "test", init_std=0.5)


def test_tiny_models_are_saved_nested_and_load_like_the_flat_layout(tiny, tmp_path):
    from transformers import AutoModelForImageTextToText

    from spatial_ros.vlm.backend import TransformersBackend

    tower = [k for k in _keys(tiny) if k.startswith("vision_tower.")]
    assert tower and all(k.startswith("vision_tower.vision_model.") for k in tower)
    assert write_vision_model_layout(tiny) == 0  # already nested: untouched

    flat = tmp_path / "flat"
    shutil.copytree(tiny, flat)
    sd = load_file(flat / "model.safetensors")
    save_file({k.replace("vision_tower.vision_model.", "vision_tower."): v for k, v in sd.items()},
              flat / "model.safetensors", metadata={"format": "pt"})
    models = [AutoModelForImageTextToText.from_pretrained(d, use_safetensors=True,
                                                          dtype=torch.float32)
              for d in (flat, tiny)]
    a, b = (m.state_dict() for m in models)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)

    image = np.random.default_rng(1).integers(0, 256, (40, 56, 3), dtype=np.uint8)
    answers = []
    for d in (flat, tiny):
        backend = TransformersBackend(d, device="cpu")
        answers.append([(r.text, r.token_ids) for r in backend.generate(
            [image], ["the red mug", "the blue bowl on the left"], 8)])
    assert answers[0] == answers[1]
    assert write_vision_model_layout(flat) == len(tower)  # back to nested
    assert sorted(_keys(flat)) == sorted(_keys(tiny))


def test_shards_and_their_index_are_renamed(tmp_path):
    cfg = {"model_type": "llava", "vision_config": {"model_type": "clip_vision_model"}}
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    t = torch.zeros
    save_file({"vision_tower.embeddings.w": t(2), "multi_modal_projector.w": t(2)},
              tmp_path / "model-00001-of-00002.safetensors")
    save_file({"vision_tower.encoder.layers.0.w": t(2), "language_model.lm_head.weight": t(2)},
              tmp_path / "model-00002-of-00002.safetensors")
    index = {"metadata": {}, "weight_map": {
        "vision_tower.embeddings.w": "model-00001-of-00002.safetensors",
        "multi_modal_projector.w": "model-00001-of-00002.safetensors",
        "vision_tower.encoder.layers.0.w": "model-00002-of-00002.safetensors",
        "language_model.lm_head.weight": "model-00002-of-00002.safetensors"}}
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps(index))
    assert write_vision_model_layout(tmp_path) == 2
    want = {"vision_tower.vision_model.embeddings.w", "multi_modal_projector.w",
            "vision_tower.vision_model.encoder.layers.0.w", "language_model.lm_head.weight"}
    assert set(_keys(tmp_path)) == want
    got = json.loads((tmp_path / "model.safetensors.index.json").read_text())["weight_map"]
    assert set(got) == want


def test_other_architectures_are_left_alone(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps(
        {"model_type": "qwen2_5_vl", "vision_config": {"model_type": "qwen2_5_vl"}}))
    save_file({"visual.blocks.0.w": torch.zeros(1)}, tmp_path / "model.safetensors")
    assert write_vision_model_layout(tmp_path) == 0
    assert nested_name("language_model.x") == "language_model.x"
    assert nested_name("vision_tower.vision_model.x") == "vision_tower.vision_model.x"


def test_the_shipped_default_model_is_nested():
    if not (DEFAULT_MODEL_DIR / "model.safetensors").is_file():
        pytest.skip("models/default not trained here")
    tower = [k for k in _keys(DEFAULT_MODEL_DIR) if k.startswith("vision_tower.")]
    assert tower and all(k.startswith("vision_tower.vision_model.") for k in tower)
