"""Inference backends and model-family adapters (stable import path).

The code lives in ``spatial_ros.vlm.backends`` (interface, scripted fake, options, loading, the
transformers backend) and ``spatial_ros.vlm.families`` (one module per model family); this
module re-exports the names callers use.
"""

from spatial_ros.vlm.backends.base import (
    GenerationResult,
    Prompt,
    VLMBackend,
    as_conversation,
)
from spatial_ros.vlm.backends.base import check_batch as _check_batch
from spatial_ros.vlm.backends.hf import BatchTiming, TransformersBackend
from spatial_ros.vlm.backends.options import (
    MODEL_OPTIONS,
    BackendConfig,
    add_model_arguments,
    check_model_dir,
    model_options_from_args,
)
from spatial_ros.vlm.backends.scripted import FakeBackend, ScriptedBackend
from spatial_ros.vlm.families import adapter_for, family_names
from spatial_ros.vlm.families.base import GroundingAnswer, MarksAdapter, ModelAdapter
from spatial_ros.vlm.families.qwen2_5_vl import QwenJSONAdapter, parse_json_boxes, smart_resize

__all__ = [
    "MODEL_OPTIONS", "BackendConfig", "BatchTiming", "FakeBackend", "GenerationResult",
    "GroundingAnswer", "MarksAdapter", "ModelAdapter", "Prompt", "QwenJSONAdapter",
    "ScriptedBackend", "TransformersBackend", "VLMBackend", "_check_batch", "adapter_for",
    "add_model_arguments", "as_conversation", "check_model_dir", "family_names",
    "model_options_from_args", "parse_json_boxes", "smart_resize",
]
