"""Qwen2.5-VL (and Qwen2-VL): JSON grounding in pixels of the RESIZED model input.

Native format: ``[{"bbox_2d": [x1, y1, x2, y2], "label": "..."}]`` (optionally in a ```json
fence) in absolute pixels of the image as the processor resized it (both sides multiples of 28:
``smart_resize``), mapped back with the processor's grid. Positions: 3D multimodal rotary
positions (temporal, height, width) from the model's ``get_rope_index``; text after the image
continues from the largest image position + 1.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

import numpy as np

from spatial_ros.errors import ConfigError
from spatial_ros.vlm.codec import ParseFailure, ParseResult
from spatial_ros.vlm.families.base import (
    GroundingAnswer,
    ModelAdapter,
    Turn,
    box_result,
    parse_mark,
    to_image_box,
)

CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n"
    "{% if m['content'] is string %}{{ m['content'] }}{% else %}{% for c in m['content'] %}"
    "{% if c['type'] == 'image' %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% else %}{{ c['text'] }}{% endif %}{% endfor %}{% endif %}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
SPECIAL = ["<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>", "<|image_pad|>",
           "<|video_pad|>"]


def smart_resize(
    height: int,
    width: int,
    factor: int = 28,
    min_pixels: int = 56 * 56,
    max_pixels: int = 28 * 28 * 1280,
) -> tuple[int, int]:
    """Qwen2-VL / Qwen2.5-VL image resizing: both sides rounded to multiples of ``factor``
    (patch 14 x merge 2), total pixels kept within [min_pixels, max_pixels], aspect kept."""
    if height <= 0 or width <= 0:
        raise ConfigError(f"smart_resize: bad image size {height}x{width}")
    h = max(factor, round(height / factor) * factor)
    w = max(factor, round(width / factor) * factor)
    if h * w > max_pixels:
        beta = math.sqrt(height * width / max_pixels)
        h = max(factor, math.floor(height / beta / factor) * factor)
        w = max(factor, math.floor(width / beta / factor) * factor)
    elif h * w < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h = math.ceil(height * beta / factor) * factor
        w = math.ceil(width * beta / factor) * factor
    return int(h), int(w)


_JSON_FENCE = re.compile(r"```(?:json)?\s*(.*?)```", re.S)
_BBOX_KEY = re.compile(
    r'"bbox_2d"\s*:\s*\[\s*([^\[\]]*?)\s*\](?:\s*,\s*"label"\s*:\s*"([^"]*)")?', re.S
)


def parse_json_boxes(text: str) -> list[tuple[str, np.ndarray]] | ParseFailure:
    """``[{"bbox_2d": [x1, y1, x2, y2], "label": ...}, ...]`` (optionally in a ```json fence,
    or a single object) -> [(label, (4,) box)]. Falls back to a regex over "bbox_2d" entries when
    the JSON is truncated or malformed. Never raises."""
    if not isinstance(text, str) or not text.strip():
        return ParseFailure("empty answer", text if isinstance(text, str) else "")
    m = _JSON_FENCE.search(text)
    body = m.group(1) if m else text
    out: list[tuple[str, np.ndarray]] = []
    try:
        data = json.loads(body)
        items = data if isinstance(data, list) else [data]
        for it in items:
            if isinstance(it, dict) and "bbox_2d" in it:
                b = np.asarray(it["bbox_2d"], dtype=np.float64).reshape(4)
                if np.all(np.isfinite(b)):
                    out.append((str(it.get("label", "")), b))
    except (ValueError, TypeError):
        out = []
    if not out:
        for mm in _BBOX_KEY.finditer(text[:20000]):
            parts = [p.strip() for p in mm.group(1).split(",")]
            try:
                b = np.array([float(p) for p in parts], dtype=np.float64)
            except ValueError:
                continue
            if b.shape == (4,) and np.all(np.isfinite(b)):
                out.append((mm.group(2) or "", b))
    if not out:
        return ParseFailure(f"no bbox_2d found in JSON answer: {text[:60]!r}", text)
    return out


class QwenJSONAdapter(ModelAdapter):
    """Qwen2.5-VL-style grounding: JSON ``[{"bbox_2d": [x1, y1, x2, y2], "label": ...}]``.

    Args:
        coord_mode: "resized_pixels" (Qwen2.5-VL: absolute pixels of the resized input image)
            or "relative_1000" (Qwen3-VL: 0..1000 of the image).
        set_of_marks: ask for a numbered mark instead of a box when candidates are listed.
    """

    family = "qwen2.5-vl"
    model_types = ("qwen2_vl", "qwen2_5_vl")
    rope_dims = 3
    chat_template = CHAT_TEMPLATE
    default_coord_mode = "resized_pixels"

    def __init__(self, coord_mode: str | None = None, set_of_marks: bool | None = None):
        super().__init__(set_of_marks)
        coord_mode = coord_mode or self.default_coord_mode
        if coord_mode not in ("resized_pixels", "relative_1000"):
            raise ConfigError(f"coord_mode={coord_mode!r}: resized_pixels or relative_1000")
        self.coord_mode = coord_mode

    def grounding_prompt(self, builder, caption, context):
        if context and self.set_of_marks:
            return self.marks_prompt(builder, caption, context)
        # Qwen models are not trained on specialist box prompts: the caption only.
        text = (
            f"Locate {caption.strip()} in the image and output its bounding box as JSON: "
            '[{"bbox_2d": [x1, y1, x2, y2], "label": "..."}]'
        )
        return [Turn("user", text, image=True)]

    def map_to_image(
        self, box: np.ndarray, model_image_hw: tuple[int, int] | None, image_hw: tuple[int, int]
    ) -> np.ndarray:
        """A box in the model's coordinates -> pixels of the original image."""
        H, W = image_hw
        if self.coord_mode == "relative_1000":
            return to_image_box(box, (W / 1000.0, H / 1000.0), image_hw)
        mh, mw = model_image_hw if model_image_hw else smart_resize(H, W)
        return to_image_box(box, (W / mw, H / mh), image_hw)

    def parse_grounding(self, text, codec, image_hw, model_image_hw=None):
        mark = parse_mark(text) if self.set_of_marks else None
        if mark:
            return ParseResult(GroundingAnswer(candidate=mark), (0, len(text)))
        boxes = parse_json_boxes(text)
        if isinstance(boxes, ParseFailure):
            return boxes
        label, b = boxes[0]
        return box_result(self.map_to_image(b, model_image_hw, image_hw), text, label)

    def model_image_hw(self, image_inputs, processor):
        g = image_inputs.get("image_grid_thw")
        if g is None:
            return None
        ps = getattr(getattr(processor, "image_processor", None), "patch_size", 14)
        return int(g[0][1]) * ps, int(g[0][2]) * ps

    def rope_positions(self, model, ids, mask, token_inputs, image_inputs):
        grid = image_inputs.get("image_grid_thw")
        if grid is not None:
            grid = grid.to(ids.device)
            n_img = int(token_inputs["mm_token_type_ids"].eq(1).any(-1).sum())
            if grid.shape[0] != n_img:  # one grid per row that holds the image
                grid = grid[:1].expand(n_img, -1)
        pos, _ = model.model.get_rope_index(
            ids, mm_token_type_ids=token_inputs["mm_token_type_ids"], image_grid_thw=grid,
            attention_mask=mask,
        )
        return pos


def build_tiny(out_dir: str | Path, seed: int = 0, init_std: float = 0.3) -> Path:
    """A tiny random-weight Qwen2_5_VLForConditionalGeneration + image-only processor."""
    return _build(out_dir, seed, init_std, qwen3=False)


def _build(out_dir, seed: int, init_std: float, qwen3: bool) -> Path:
    import torch
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import (
        Qwen2VLImageProcessorPil,
    )

    from spatial_ros.vlm.families import tiny

    tok = tiny.train_tokenizer(SPECIAL, eos="<|im_end|>", pad="<|endoftext|>", seed=seed,
                               extra={"image_token": "<|image_pad|>",
                                      "video_token": "<|video_pad|>"})
    ids = tok.convert_tokens_to_ids
    patch = 16 if qwen3 else 14
    ip = Qwen2VLImageProcessorPil(min_pixels=(2 * patch) ** 2 * 4, max_pixels=(4 * patch) ** 2 * 4,
                                  patch_size=patch, merge_size=2, temporal_patch_size=2)
    text = dict(vocab_size=tiny.padded_vocab(tok), hidden_size=64, intermediate_size=128,
                num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                eos_token_id=ids("<|im_end|>"), pad_token_id=ids("<|endoftext|>"),
                bos_token_id=None, initializer_range=init_std, max_position_embeddings=4096)
    common = dict(image_token_id=ids("<|image_pad|>"), video_token_id=ids("<|video_pad|>"),
                  vision_start_token_id=ids("<|vision_start|>"),
                  vision_end_token_id=ids("<|vision_end|>"))
    if qwen3:
        from transformers import (
            Qwen3VLConfig,
            Qwen3VLForConditionalGeneration,
            Qwen3VLProcessor,
        )

        text["rope_parameters"] = {"rope_type": "default", "mrope_section": [2, 3, 3],
                                   "mrope_interleaved": True, "rope_theta": 10000.0}
        text["head_dim"] = 16
        cfg = Qwen3VLConfig(
            text_config=text,
            vision_config=dict(depth=2, hidden_size=32, intermediate_size=64, num_heads=2,
                               out_hidden_size=64, patch_size=patch, spatial_merge_size=2,
                               temporal_patch_size=2, num_position_embeddings=64,
                               deepstack_visual_indexes=[0], initializer_range=init_std),
            **common)
        model_cls, proc_cls, fam = Qwen3VLForConditionalGeneration, Qwen3VLProcessor, "qwen3-vl"
    else:
        from transformers import (
            Qwen2_5_VLConfig,
            Qwen2_5_VLForConditionalGeneration,
            Qwen2_5_VLProcessor,
        )

        text["rope_parameters"] = {"rope_type": "default", "mrope_section": [2, 3, 3],
                                   "rope_theta": 10000.0}
        cfg = Qwen2_5_VLConfig(
            text_config=text,
            vision_config=dict(depth=2, hidden_size=32, intermediate_size=64, num_heads=2,
                               out_hidden_size=64, patch_size=patch, spatial_merge_size=2,
                               temporal_patch_size=2, window_size=56, fullatt_block_indexes=[1],
                               initializer_range=init_std),
            **common)
        model_cls, proc_cls, fam = (Qwen2_5_VLForConditionalGeneration, Qwen2_5_VLProcessor,
                                    "qwen2.5-vl")
    proc = tiny.image_only(proc_cls)(image_processor=ip, tokenizer=tok, video_processor=None,
                                     chat_template=CHAT_TEMPLATE)
    torch.manual_seed(seed)
    model = model_cls(cfg).eval()
    tiny.set_generation_ids(model, tok, "<|im_end|>", "<|endoftext|>")
    return tiny.save(model, proc, out_dir, fam, seed)


def hub_video_config() -> dict[str, Any]:
    """What a Hub Qwen folder's video_preprocessor_config.json holds (the file that makes
    AutoProcessor build a torchvision video processor)."""
    return {"video_processor_type": "Qwen2VLVideoProcessor", "patch_size": 14,
            "temporal_patch_size": 2, "merge_size": 2}
