"""Model options: how a transformers VLM is loaded and run (``BackendConfig``), the subset every
user-facing config exposes (node parameters, YAML, CLI: ``MODEL_OPTIONS``), CPU threads, and the
model-directory check.

One definition: ``PerceptionConfig`` / ``RewardAnnotatorConfig`` copy the fields named in
``MODEL_OPTIONS`` from ``BackendConfig`` (``model_option``), and every CLI command that loads a
model adds the same flags with ``add_model_arguments``.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from spatial_ros.config import param
from spatial_ros.errors import ConfigError, ModelError

log = logging.getLogger(__name__)

DTYPES = ("auto", "float32", "bfloat16", "float16")
ATTN = ("auto", "sdpa", "eager")


@dataclass(frozen=True)
class BackendConfig:
    """How to load and run a transformers VLM."""

    model_dir: str = param("", "local model directory (config.json + *.safetensors + processor)")
    device: str = param("auto", "auto (cuda when available), cpu, cuda or cuda:N")
    dtype: str = param(
        "auto", "weights and activations: auto (bfloat16 on CUDA, float32 on CPU), float32, "
        "bfloat16, float16"
    )
    attn_implementation: str = param(
        "auto", "attention kernel: auto (the family's choice: eager for PaliGemma/Gemma, else "
        "sdpa), sdpa or eager"
    )
    prefix_reuse: bool = param(True, "encode the shared image/system prefix once per batch")
    max_batch_size: int = param(16, "largest batch; more prompts are split into batches")
    min_prefix_tokens: int = param(4, "shortest common prefix worth reusing, tokens")
    trust_remote_code: bool = param(
        False, "run Python code shipped with the model (auto_map in config.json); off by "
        "default: turn on only for a model whose code you trust"
    )
    family: str = param(
        "auto", "prompt/answer format: auto (from the model folder's config.json model_type; "
        "backend openai: guessed from served_model, Qwen2/2.5/3-VL names, else cube-llm) or "
        "one of cube-llm, qwen2.5-vl, qwen3-vl, llava-1.5, llava (NeXT), llava-onevision, "
        "internvl, idefics3 (also SmolVLM), paligemma, florence2, gemma3"
    )
    threads: int = param(
        0, "CPU threads of the model (torch, process-wide); 0 = auto: 1 on machines with <= 2 "
        "cores (a busy small robot computer), else half the cores (at most 8)"
    )

    def __post_init__(self) -> None:
        bad = []
        if not (self.device in ("auto", "cpu", "cuda") or re.fullmatch(r"cuda:\d+", self.device)):
            bad.append(f"device={self.device!r} (auto, cpu, cuda, cuda:N)")
        if self.dtype not in DTYPES:
            bad.append(f"dtype={self.dtype!r} ({', '.join(DTYPES)})")
        if self.attn_implementation not in ATTN:
            bad.append(f"attn_implementation={self.attn_implementation!r} ({', '.join(ATTN)})")
        if self.max_batch_size < 1 or self.min_prefix_tokens < 1:
            bad.append(
                f"max_batch_size={self.max_batch_size}, min_prefix_tokens="
                f"{self.min_prefix_tokens} (must be >= 1)"
            )
        if self.threads < 0:
            bad.append(f"threads={self.threads} (0 = auto, or >= 1)")
        from spatial_ros.vlm.families import family_names

        names = family_names()
        if self.family != "auto" and self.family not in names:
            bad.append(f"family={self.family!r} (auto, {', '.join(names)})")
        if bad:
            raise ConfigError("invalid BackendConfig: " + "; ".join(bad))


# The BackendConfig fields that node parameters, YAML files and CLI flags expose.
MODEL_OPTIONS = ("family", "dtype", "attn_implementation", "trust_remote_code", "threads")
_FIELDS = {f.name: f for f in dataclasses.fields(BackendConfig)}


def model_option(name: str) -> Any:
    """A config field with the same name, default and help as BackendConfig's ``name`` (so a
    node config declares the model options without repeating them)."""
    f = _FIELDS[name]
    return param(f.default, f.metadata["help"])


def model_options_of(cfg: Any) -> dict[str, Any]:
    """The MODEL_OPTIONS values of any config object that has them."""
    return {k: getattr(cfg, k) for k in MODEL_OPTIONS if hasattr(cfg, k)}


def add_model_arguments(parser: argparse.ArgumentParser | Any) -> None:
    """Add --family, --dtype, --attn-implementation, --trust-remote-code and --threads (the
    MODEL_OPTIONS) to a CLI command; ``model_options_from_args`` reads them back."""
    g = parser.add_argument_group("model options") if hasattr(parser, "add_argument_group") \
        else parser
    g.add_argument("--family", default=None,
                   help="prompt/answer format of the model (default auto: from config.json)")
    g.add_argument("--dtype", default=None, choices=DTYPES,
                   help="auto (bfloat16 on CUDA, float32 on CPU), float32, bfloat16, float16")
    g.add_argument("--attn-implementation", default=None, choices=ATTN,
                   help="attention kernel (auto: the family's choice)")
    g.add_argument("--trust-remote-code", action="store_true", default=None,
                   help="allow Python code shipped with the model (only for code you trust)")
    g.add_argument("--threads", type=int, default=None,
                   help="CPU threads of the model (0 = auto: 1 on <= 2 cores)")


def model_options_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """The model options given on the command line (flags not given are left out)."""
    out = {}
    for k in MODEL_OPTIONS:
        v = getattr(args, k, None)
        if v is not None:
            out[k] = v
    if out.get("family") is not None:
        BackendConfig(family=out["family"])  # ConfigError naming the known families
    return out


def usable_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def resolve_threads(threads: int) -> int:
    """The thread count ``threads`` means (0 = auto: 1 on <= 2 cores, else half, at most 8).

    Why 1 on small machines: the tiny models are overhead-bound, and on a 2-core computer that
    also runs the ROS executor and the specialists, two torch threads fight the other work (one
    frame with 10 queries took 0.25-0.34 s with one thread and up to 4.6 s with two under load).
    """
    if threads > 0:
        return threads
    n = usable_cpus()
    return 1 if n <= 2 else min(8, n // 2)


def apply_threads(threads: int) -> int:
    """Set torch's intra-op thread count (process-wide) and return it."""
    import torch

    n = resolve_threads(threads)
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
        log.info("torch CPU threads: %d", n)
    return n


def check_model_dir(path: str | Path) -> Path:
    """Raise ModelError unless ``path`` holds config.json and safetensors weights."""
    p = Path(path).expanduser()
    if not str(path):
        raise ModelError("no model directory given; pass --model DIR (or model_path)")
    if not p.is_dir():
        raise ModelError(f"model directory not found: {p} (models load from local paths only)")
    if not (p / "config.json").is_file():
        raise ModelError(f"{p} has no config.json; is it a transformers model directory?")
    if not any(p.glob("*.safetensors")):
        extra = " (only .bin weights: convert them to safetensors)" if any(p.glob("*.bin")) else ""
        raise ModelError(f"{p} has no *.safetensors weights{extra}")
    return p
