"""Qwen3-VL: the Qwen JSON grounding format with coordinates RELATIVE 0..1000 of the image.

``[{"bbox_2d": [x1, y1, x2, y2], "label": "..."}]``, each value in 0..1000 of the original
image's width/height. Same chat format and 3D rotary positions as Qwen2.5-VL (interleaved
sections); the vision tower also feeds intermediate features into the language model
("deepstack"), which the backend passes through with the image features.
"""

from __future__ import annotations

from pathlib import Path

from spatial_ros.vlm.families.qwen2_5_vl import QwenJSONAdapter, _build


class Qwen3VLAdapter(QwenJSONAdapter):
    family = "qwen3-vl"
    model_types = ("qwen3_vl", "qwen3_vl_moe")
    default_coord_mode = "relative_1000"


def build_tiny(out_dir: str | Path, seed: int = 0, init_std: float = 0.3) -> Path:
    """A tiny random-weight Qwen3VLForConditionalGeneration + image-only processor."""
    return _build(out_dir, seed, init_std, qwen3=True)
