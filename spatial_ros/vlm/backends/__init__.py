"""Inference backends: the interface (``base``), a scripted fake (``scripted``), model options
(``options``), loading (``loading``) and the transformers implementation (``hf``)."""

from spatial_ros.vlm.backends.base import (
    GenerationResult,
    Prompt,
    VLMBackend,
    as_conversation,
    check_batch,
)
from spatial_ros.vlm.backends.options import BackendConfig, check_model_dir
from spatial_ros.vlm.backends.scripted import FakeBackend, ScriptedBackend

__all__ = ["BackendConfig", "FakeBackend", "GenerationResult", "Prompt", "ScriptedBackend",
           "TransformersBackend", "VLMBackend", "as_conversation", "check_batch",
           "check_model_dir"]


def __getattr__(name):  # the transformers backend imports torch lazily
    if name == "TransformersBackend":
        from spatial_ros.vlm.backends.hf import TransformersBackend

        return TransformersBackend
    raise AttributeError(name)
