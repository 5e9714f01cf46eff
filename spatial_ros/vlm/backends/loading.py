"""Loading a transformers VLM from a LOCAL directory: family detection, the image-only processor
(no video processor, so no torchvision), the model (safetensors only), and errors that say what
to do.

Why image-only: Hub folders of Qwen2.5-VL, Qwen3-VL, LLaVA-OneVision, InternVL and SmolVLM carry
a video processor config, and ``AutoProcessor`` then builds a video processor that imports
torchvision, which is not installable here (and not needed for images). The processor class is
subclassed with its video/audio sub-processors left out; images and text go through the same
image processor and tokenizer as with AutoProcessor.
"""

from __future__ import annotations

import inspect
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from spatial_ros.errors import ModelError
from spatial_ros.vlm.backends.options import BackendConfig

log = logging.getLogger(__name__)

_DROPPED = ("video", "audio", "feature_extractor")


def image_only_processor_class(cls: type) -> type:
    """``cls`` (a ProcessorMixin subclass) without video/audio sub-processors, same name."""
    attrs = [a for a in cls.get_attributes() if not any(d in a for d in _DROPPED)]
    dropped = [a for a in cls.get_attributes() if a not in attrs]
    if not dropped:
        return cls
    names = list(inspect.signature(cls.__init__).parameters)[1:]
    # Sub-processor arguments after the kept ones that the class requires positionally (SmolVLM's
    # video_processor): passed as None when loading.
    pad = [d for d in dropped if names.index(d) < len(attrs) + len(dropped)
           and inspect.signature(cls.__init__).parameters[d].default is inspect.Parameter.empty]

    def _get_arguments_from_pretrained(c, *args, **kwargs):
        got = super(new, c)._get_arguments_from_pretrained(*args, **kwargs)
        return [*got, *([None] * len(pad))]

    new = type(cls.__name__, (cls,), {
        "_get_arguments_from_pretrained": classmethod(_get_arguments_from_pretrained),
        "get_attributes": classmethod(lambda c: list(attrs)),
        "__module__": cls.__module__,
        "__doc__": f"{cls.__name__} for images only (no video processor).",
    })
    return new


def read_config(path: Path) -> dict[str, Any]:
    try:
        data = json.loads((path / "config.json").read_text())
    except (OSError, ValueError) as e:
        raise ModelError(f"cannot read {path / 'config.json'}: {e}") from None
    if not isinstance(data, dict) or not data.get("model_type"):
        raise ModelError(f"{path / 'config.json'} has no model_type; is it a transformers model?")
    return data


@dataclass
class Loaded:
    model: Any
    processor: Any
    config: Any  # the model's transformers config
    raw_config: dict[str, Any]


def _processor_class(model_type: str, trust_remote_code: bool):
    import transformers
    from transformers.models.auto.processing_auto import PROCESSOR_MAPPING_NAMES

    name = PROCESSOR_MAPPING_NAMES.get(model_type)
    cls = getattr(transformers, name, None) if name else None
    return None if cls is None else image_only_processor_class(cls)


def load_processor(path: Path, model_type: str, trust_remote_code: bool, shim=None):
    """The model's processor for images + text (see module docstring)."""
    from transformers import AutoProcessor

    kw = dict(local_files_only=True, trust_remote_code=trust_remote_code)
    cls = _processor_class(model_type, trust_remote_code)
    try:
        if shim is not None:
            with shim():
                return (cls or AutoProcessor).from_pretrained(path, **kw)
        return (cls or AutoProcessor).from_pretrained(path, **kw)
    except ImportError as e:
        raise ModelError(
            f"cannot load the processor of {path} ({model_type}): {e}. The image processor "
            "needs a package that is not installed; install it (pip install NAME), or save the "
            "model's PIL image processor (image_processor_type ending in 'Pil') in the folder: "
            "torchvision is not required for images"
        ) from None
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        raise ModelError(f"cannot load the processor of {path}: {e}") from None


def load_model(path: Path, config: BackendConfig, dtype, attn: str, raw: dict[str, Any]):
    import transformers
    from transformers import AutoModelForImageTextToText

    kw = dict(local_files_only=True, trust_remote_code=config.trust_remote_code,
              use_safetensors=True, dtype=dtype, attn_implementation=attn)
    classes: list[Any] = [AutoModelForImageTextToText]
    for arch in raw.get("architectures") or []:
        c = getattr(transformers, arch, None)
        if c is not None:
            classes.insert(0, c)
    err: Exception | None = None
    for cls in classes:
        try:
            return cls.from_pretrained(path, **kw)
        except ValueError as e:  # not in this auto mapping: try the next class
            err = e
        except (OSError, KeyError, RuntimeError, ImportError) as e:
            raise ModelError(f"cannot load the model in {path}: {e}") from None
    raise ModelError(f"cannot load the model in {path}: {err}")


def load(path: Path, config: BackendConfig, dtype, adapter_cls) -> Loaded:
    """Model + image-only processor from ``path`` (already checked by ``check_model_dir``).

    Raises:
        ModelError: remote code needed while ``trust_remote_code`` is off, a missing package, or
            any loading failure (the message says what to do).
    """
    from transformers import AutoConfig

    raw = read_config(path)
    if raw.get("auto_map") and not config.trust_remote_code:
        raise ModelError(
            f"{path} needs the model's own Python code (auto_map in config.json). Only if you "
            "trust that code, set trust_remote_code: true (node parameter or YAML) or pass "
            "--trust-remote-code (CLI); otherwise use a transformers-native ('-hf') version of "
            "the model"
        )
    try:
        hf_config = AutoConfig.from_pretrained(path, local_files_only=True,
                                               trust_remote_code=config.trust_remote_code)
    except (OSError, ValueError, KeyError) as e:
        raise ModelError(f"cannot read the model config in {path}: {e}") from None
    attn = config.attn_implementation
    if attn == "auto":
        attn = adapter_cls.attn_implementation
    processor = load_processor(path, raw["model_type"], config.trust_remote_code,
                               getattr(adapter_cls, "processor_shim", None))
    model = load_model(path, config, dtype, attn, raw)
    return Loaded(model, processor, hf_config, raw)
