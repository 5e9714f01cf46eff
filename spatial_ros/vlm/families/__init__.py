"""Model families: one module per family (as transformers keeps ``models/<name>/``).

Each module defines the family's ``ModelAdapter`` subclass (native grounding prompt and answer
parser, coordinate convention, set-of-marks prompt, chat-template fallback, positional facts)
and ``build_tiny(out_dir, seed)``, a tiny random-weight model of the real architecture class
for tests and benchmarks. Adding a family = adding a module and one line in ``_MODULES``.

``family: auto`` picks the family from the model directory: our ``spatial_ros_vlm.json`` means
the Cube-LLM format (the default model), else config.json's ``model_type`` against each
family's ``model_types``.
"""

from __future__ import annotations

import importlib
import logging
from pathlib import Path
from typing import Any

from spatial_ros.errors import ConfigError
from spatial_ros.vlm.families.base import GroundingAnswer, MarksAdapter, ModelAdapter

log = logging.getLogger(__name__)

# family name -> module (spatial_ros/vlm/families/<module>.py) and its adapter class
_MODULES: dict[str, tuple[str, str]] = {
    "cube-llm": ("cube_llm", "CubeLLMAdapter"),
    "qwen2.5-vl": ("qwen2_5_vl", "QwenJSONAdapter"),
    "qwen3-vl": ("qwen3_vl", "Qwen3VLAdapter"),
    "llava": ("llava", "LlavaAdapter"),
    "llava-1.5": ("llava", "Llava15Adapter"),
    "llava-onevision": ("llava_onevision", "LlavaOneVisionAdapter"),
    "internvl": ("internvl", "InternVLAdapter"),
    "idefics3": ("idefics3", "Idefics3Adapter"),
    "paligemma": ("paligemma", "PaliGemmaAdapter"),
    "florence2": ("florence2", "Florence2Adapter"),
    "gemma3": ("gemma3", "Gemma3Adapter"),
}
# other names users may type
ALIASES = {"qwen-json": "qwen2.5-vl", "qwen2-vl": "qwen2.5-vl", "smolvlm": "idefics3",
           "llava-next": "llava", "paligemma2": "paligemma",
           "florence-2": "florence2", "gemma-3": "gemma3"}


def family_names() -> list[str]:
    return [*_MODULES, *ALIASES]


def family_module(name: str):
    """The module of family ``name`` (e.g. for ``build_tiny``)."""
    name = ALIASES.get(name, name)
    if name not in _MODULES:
        raise ConfigError(f"unknown model family {name!r}; known: {', '.join(family_names())}")
    return importlib.import_module(f"spatial_ros.vlm.families.{_MODULES[name][0]}")


def _cls(name: str) -> type[ModelAdapter]:
    name = ALIASES.get(name, name)
    return getattr(family_module(name), _MODULES[name][1])


def detect_family(config: dict[str, Any], model_dir: str | Path | None = None) -> str:
    """The family name of a model (see module docstring); "cube-llm" when nothing matches."""
    from spatial_ros.vlm.tiny import META_FILE

    if model_dir is not None and (Path(model_dir) / META_FILE).is_file():
        return "cube-llm"
    mt = str(config.get("model_type", ""))
    for name in _MODULES:
        if mt in _cls(name).model_types:
            return name
    log.warning("model_type %r matches no known family; using the Cube-LLM text format (set "
                "family to one of %s)", mt, ", ".join(_MODULES))
    return "cube-llm"


def adapter_class(config: dict[str, Any], family: str = "auto",
                  model_dir: str | Path | None = None) -> type[ModelAdapter]:
    """The adapter class for a model config (``family`` overrides detection)."""
    name = detect_family(config, model_dir) if family == "auto" else family
    if name == "qwen-json" and str(config.get("model_type", "")).startswith("qwen3"):
        name = "qwen3-vl"
    return _cls(name)


def adapter_for(model_type: str, family: str = "auto", *,
                model_dir: str | Path | None = None) -> ModelAdapter:
    """Adapter for a transformers ``model_type`` (or an explicit family name)."""
    return adapter_class({"model_type": model_type}, family, model_dir)()


__all__ = ["ALIASES", "GroundingAnswer", "MarksAdapter", "ModelAdapter", "adapter_class",
           "adapter_for", "detect_family", "family_module", "family_names"]
