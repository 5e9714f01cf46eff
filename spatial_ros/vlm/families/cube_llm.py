"""Our Cube-LLM text format (the default tiny model; any LLaVA-style model fine-tuned on it).

Prompt: the Cube-LLM task phrasing with the specialist candidates listed as encoded 3D boxes
(``prompts.PromptBuilder``); answer: a 3D box ``[x, y, z, w, h, l, r1, r2, r3]`` (image
coordinates 0..999, log depth), a candidate tag ("red2"), or a 2D box as fallback. Detected from
our ``spatial_ros_vlm.json`` in the model directory; the model is a LLaVA (model_type "llava").
"""

from __future__ import annotations

from pathlib import Path

from spatial_ros.vlm.families.base import ModelAdapter


class CubeLLMAdapter(ModelAdapter):
    """The base ModelAdapter behaviour under its own name (see the module docstring)."""

    family = "cube-llm"


def build_tiny(out_dir: str | Path, seed: int = 0, init_std: float = 0.3) -> Path:
    """Our tiny LLaVA (``spatial_ros.vlm.tiny``, preset "test")."""
    from spatial_ros.vlm.tiny import build_tiny_vlm

    return build_tiny_vlm(out_dir, "test", seed=seed, init_std=init_std)
