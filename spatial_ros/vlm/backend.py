"""Inference backends: one interface, a transformers implementation and a scripted fake.

``VLMBackend.generate(images, prompts, max_new_tokens)`` answers a batch of conversations about
images with greedy decoding and returns text + timing per prompt. ``TransformersBackend`` loads
``AutoModelForImageTextToText`` + ``AutoProcessor`` from a LOCAL directory only (safetensors,
``trust_remote_code`` off unless the config says so), runs CUDA bf16 + SDPA when a GPU is present
and CPU fp32 otherwise, and answers several queries on one frame as ONE batch:

- ``batched``: all prompts left-padded into one batch (the image is encoded once per row);
- ``prefix``: the longest common token prefix (system text, image tokens, specialist boxes, the
  fixed part of the question) is run ONCE with the image, its KV cache (DynamicCache) is
  expanded to the batch, and only the per-query suffixes (left-padded, positions continuing the
  prefix) are prefilled before batched decoding;
- ``sequential``: one prompt at a time (the reference the other two must reproduce exactly
  under greedy decoding).

All three share one greedy decoding loop (ours, so prefill and decode time are measured
separately). Model families differ in prompt/answer format (``ModelAdapter``): our Cube-LLM text
format (LLaVA-style models, including our default model) and Qwen2.5-VL-style JSON grounding.
"""

from __future__ import annotations

import abc
import dataclasses
import json
import logging
import math
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from spatial_ros.config import param
from spatial_ros.errors import ConfigError, ModelError
from spatial_ros.vlm.codec import Box2DCode, Box3DCode, BoxCodec, ParseFailure, ParseResult
from spatial_ros.vlm.prompts import (
    Conversation,
    PromptBuilder,
    Turn,
    conversation_text,
    normalize_tag,
)

log = logging.getLogger(__name__)

# ----------------------------------------------------------------------------------------------
# Results and the interface
# ----------------------------------------------------------------------------------------------


@dataclass
class GenerationResult:
    """One prompt's answer.

    Attributes:
        text: generated text (special tokens removed, stops at end-of-sequence).
        prompt_tokens: tokens of the prompt (image tokens included).
        new_tokens: generated tokens (end-of-sequence included when produced).
        prefill_ms: wall time of the prompt forward pass(es) of the call this prompt was in
            (shared by the batch: the same value for every prompt of one batch).
        decode_ms: wall time of the decoding loop of that batch.
        batch_size: prompts in that batch.
        prefix_tokens: tokens of the shared prefix encoded once (0 = no prefix reuse).
        model_image_hw: (height, width) of the image as the model saw it (after resizing).
        token_ids: the generated ids.
        preprocess_ms: chat templating + tokenization + image preprocessing of that batch.
        score: geometric mean of the generated tokens' probabilities (greedy confidence in
            [0, 1]); NaN when the backend cannot tell.
    """

    text: str
    prompt_tokens: int = 0
    new_tokens: int = 0
    prefill_ms: float = 0.0
    decode_ms: float = 0.0
    batch_size: int = 1
    prefix_tokens: int = 0
    model_image_hw: tuple[int, int] | None = None
    token_ids: tuple[int, ...] = ()
    preprocess_ms: float = 0.0
    score: float = float("nan")

    @property
    def total_ms(self) -> float:
        return self.prefill_ms + self.decode_ms


Prompt = Conversation | str


def as_conversation(prompt: Prompt) -> Conversation:
    """A plain string becomes one user turn with the image attached."""
    if isinstance(prompt, str):
        return [Turn("user", prompt, image=True)]
    conv = list(prompt)
    if not conv or not all(isinstance(t, Turn) for t in conv):
        raise ConfigError("a prompt must be a string or a non-empty list of Turn")
    return conv


class VLMBackend(abc.ABC):
    """Interface of every backend. ``adapter`` knows the model family's formats."""

    adapter: ModelAdapter

    @abc.abstractmethod
    def generate(
        self,
        images: Sequence[np.ndarray],
        prompts: Sequence[Prompt],
        max_new_tokens: int = 64,
        *,
        mode: str = "auto",
    ) -> list[GenerationResult]:
        """Answer ``prompts`` (greedy). ``images``: one (H, W, 3) uint8 RGB image shared by all
        prompts, or one per prompt. ``mode``: "auto", "prefix", "batched" or "sequential"."""

    def score_choices(
        self, image: np.ndarray, prompt: Prompt, choices: Sequence[str]
    ) -> list[float]:
        """Log-probability of each choice as the model's COMPLETE answer to ``prompt`` about
        ``image`` (the sum over the choice's tokens and the end of the answer; natural log).
        Backends that cannot score raise NotImplementedError (callers fall back)."""
        raise NotImplementedError(f"{type(self).__name__} does not score answer choices")

    def close(self) -> None:  # noqa: B027 - optional hook
        """Free model memory (GPU caches)."""


def _check_batch(images: Sequence[np.ndarray], prompts: Sequence[Prompt]) -> None:
    if len(prompts) == 0:
        raise ConfigError("generate() needs at least one prompt")
    if len(images) not in (1, len(prompts)):
        raise ConfigError(
            f"generate(): got {len(images)} images for {len(prompts)} prompts; "
            "pass one shared image or one per prompt"
        )
    for im in images:
        a = np.asarray(im)
        if a.ndim != 3 or a.shape[2] != 3 or a.dtype != np.uint8:
            raise ConfigError(f"images must be (H, W, 3) uint8 RGB, got {a.shape} {a.dtype}")


# ----------------------------------------------------------------------------------------------
# Model-family adapters: prompt format and answer parsing
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GroundingAnswer:
    """A parsed grounding answer in image terms.

    Attributes:
        box3d: the Cube-LLM 3D box code, when the answer is a 3D box.
        box_2d: (4,) x1, y1, x2, y2 in pixels of the ORIGINAL image, when known (2D answers).
        label: label given by the model ('' when none).
        candidate: the tag of the listed candidate the model selected ("red2", "#3"), when
            the answer is a tag (``prompts.candidate_tags``).
    """

    box3d: Box3DCode | None = None
    box_2d: np.ndarray | None = None
    label: str = ""
    candidate: str | None = None


class ModelAdapter:
    """Cube-LLM text format (LLaVA-style models, our default model)."""

    family = "cube-llm"

    def messages(self, conversation: Conversation) -> list[dict[str, Any]]:
        """Turns -> transformers chat messages (image placeholder before the text)."""
        out = []
        for t in conversation:
            content: list[dict[str, Any]] = []
            if t.image:
                content.append({"type": "image"})
            content.append({"type": "text", "text": t.text})
            out.append({"role": t.role, "content": content})
        return out

    def grounding_prompt(
        self, builder: PromptBuilder, caption: str, context: str | None
    ) -> Conversation:
        return builder.box3d(caption, context)

    def parse_grounding(
        self,
        text: str,
        codec: BoxCodec,
        image_hw: tuple[int, int],
        model_image_hw: tuple[int, int] | None = None,
    ) -> ParseResult[GroundingAnswer] | ParseFailure:
        """A 3D box answer, or a candidate tag ("red2", "#3": models trained on tagged
        candidate lists; the engine resolves it against the prompt's tags); a 2D box answer is
        accepted as a fallback (lifted via candidates or depth by the engine). Never raises."""
        tag = normalize_tag(text)
        if tag:
            return ParseResult(GroundingAnswer(candidate=tag), (0, len(text)))
        r3 = codec.parse_box3d(text)
        if r3.ok:
            return ParseResult(GroundingAnswer(box3d=r3.value), r3.span)
        r2 = codec.parse_box2d(text)
        if r2.ok:
            c: Box2DCode = r2.value
            H, W = image_hw
            n = np.array([[c.x1, c.y1], [c.x2, c.y2]])
            px = codec.norm_to_pixels(n, W, H).reshape(4)
            return ParseResult(GroundingAnswer(box_2d=px), r2.span)
        return r3


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
    """

    family = "qwen-json"

    def __init__(self, coord_mode: str = "resized_pixels"):
        if coord_mode not in ("resized_pixels", "relative_1000"):
            raise ConfigError(f"coord_mode={coord_mode!r}: resized_pixels or relative_1000")
        self.coord_mode = coord_mode

    def grounding_prompt(
        self, builder: PromptBuilder, caption: str, context: str | None
    ) -> Conversation:
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
        b = np.asarray(box, dtype=np.float64).reshape(4)
        if self.coord_mode == "relative_1000":
            sx, sy = W / 1000.0, H / 1000.0
        else:
            mh, mw = model_image_hw if model_image_hw else smart_resize(H, W)
            sx, sy = W / mw, H / mh
        out = b * np.array([sx, sy, sx, sy])
        x1, x2 = sorted((out[0], out[2]))
        y1, y2 = sorted((out[1], out[3]))
        return np.clip(np.array([x1, y1, x2, y2]), 0, [W - 1, H - 1, W - 1, H - 1])

    def parse_grounding(
        self,
        text: str,
        codec: BoxCodec,
        image_hw: tuple[int, int],
        model_image_hw: tuple[int, int] | None = None,
    ) -> ParseResult[GroundingAnswer] | ParseFailure:
        boxes = parse_json_boxes(text)
        if isinstance(boxes, ParseFailure):
            return boxes
        label, b = boxes[0]
        px = self.map_to_image(b, model_image_hw, image_hw)
        if px[2] - px[0] <= 0 or px[3] - px[1] <= 0:
            return ParseFailure(f"degenerate box: {b.tolist()} maps to zero area", text)
        return ParseResult(GroundingAnswer(box_2d=px, label=label), (0, len(text)))


def adapter_for(model_type: str, family: str = "auto") -> ModelAdapter:
    """Adapter for a transformers ``model_type`` (or an explicit family name)."""
    if family == "cube-llm":
        return ModelAdapter()
    if family == "qwen-json":
        return QwenJSONAdapter("relative_1000" if model_type.startswith("qwen3") else
                               "resized_pixels")
    if family != "auto":
        raise ConfigError(f"unknown model family {family!r}: auto, cube-llm or qwen-json")
    if model_type.startswith(("qwen2_vl", "qwen2_5_vl", "qwen3_vl")):
        return adapter_for(model_type, "qwen-json")
    return ModelAdapter()


# ----------------------------------------------------------------------------------------------
# Scripted backend (tests of callers)
# ----------------------------------------------------------------------------------------------


class ScriptedBackend(VLMBackend):
    """Returns given texts instead of running a model.

    Args:
        responses: a list of texts (returned in order, cycling), a dict mapping a substring of
            the last user turn to a text (first match wins; key "" is the default), or a
            callable ``(conversation, image) -> text``.
        adapter: the model family to emulate (default Cube-LLM).
        choice_scores: ``(conversation, choices) -> log-probabilities`` for ``score_choices``
            (None: scoring is not supported, like a backend without a model).

    ``calls`` records every (conversation, image) it was asked about.
    """

    def __init__(
        self,
        responses: Sequence[str] | dict[str, str] | Callable[[Conversation, np.ndarray], str],
        adapter: ModelAdapter | None = None,
        choice_scores: Callable[[Conversation, list[str]], Sequence[float]] | None = None,
    ) -> None:
        self.responses = responses
        self.adapter = adapter or ModelAdapter()
        self.choice_scores = choice_scores
        self.calls: list[tuple[Conversation, np.ndarray]] = []
        self._i = 0

    def _answer(self, conv: Conversation, image: np.ndarray) -> str:
        r = self.responses
        if callable(r):
            return r(conv, image)
        if isinstance(r, dict):
            last = next((t.text for t in reversed(conv) if t.role == "user"), "")
            for key, text in r.items():
                if key and key in last:
                    return text
            if "" in r:
                return r[""]
            raise ConfigError(f"ScriptedBackend has no response for {last!r}")
        if not r:
            raise ConfigError("ScriptedBackend has no responses")
        text = r[self._i % len(r)]
        self._i += 1
        return text

    def generate(self, images, prompts, max_new_tokens=64, *, mode="auto"):
        _check_batch(images, prompts)
        out = []
        for i, p in enumerate(prompts):
            conv = as_conversation(p)
            img = np.asarray(images[0] if len(images) == 1 else images[i])
            self.calls.append((conv, img))
            text = self._answer(conv, img)
            n = len(conversation_text(conv).split())
            out.append(
                GenerationResult(text, n, len(text.split()), batch_size=len(prompts),
                                 model_image_hw=img.shape[:2])
            )
        return out


    def score_choices(self, image, prompt, choices):
        if self.choice_scores is None:
            return super().score_choices(image, prompt, choices)
        conv = as_conversation(prompt)
        self.calls.append((conv, np.asarray(image)))
        return [float(x) for x in self.choice_scores(conv, list(choices))]


FakeBackend = ScriptedBackend

# ----------------------------------------------------------------------------------------------
# transformers backend
# ----------------------------------------------------------------------------------------------

# Model types whose language model takes plain 1D positions, so our own decoding loop (and
# prefix reuse) is exact. Others (e.g. Qwen's 3D M-RoPE) go through model.generate().
_CUSTOM_LOOP_TYPES = ("llava", "vipllava", "llava_next")


@dataclass(frozen=True)
class BackendConfig:
    """How to load and run a transformers VLM."""

    model_dir: str = param("", "local model directory (config.json + *.safetensors + processor)")
    device: str = param("auto", "auto (cuda when available), cpu, cuda or cuda:N")
    dtype: str = param(
        "auto", "auto (bfloat16 on CUDA, float32 on CPU), float32, bfloat16, float16"
    )
    attn_implementation: str = param("sdpa", "attention kernel: sdpa or eager")
    prefix_reuse: bool = param(True, "encode the shared image/system prefix once per batch")
    max_batch_size: int = param(16, "largest batch; more prompts are split into batches")
    min_prefix_tokens: int = param(4, "shortest common prefix worth reusing, tokens")
    trust_remote_code: bool = param(False, "allow the model's own Python code (never by default)")
    family: str = param("auto", "prompt/answer format: auto, cube-llm or qwen-json")

    def __post_init__(self) -> None:
        bad = []
        if not (self.device in ("auto", "cpu", "cuda") or re.fullmatch(r"cuda:\d+", self.device)):
            bad.append(f"device={self.device!r} (auto, cpu, cuda, cuda:N)")
        if self.dtype not in ("auto", "float32", "bfloat16", "float16"):
            bad.append(f"dtype={self.dtype!r} (auto, float32, bfloat16, float16)")
        if self.attn_implementation not in ("sdpa", "eager"):
            bad.append(f"attn_implementation={self.attn_implementation!r} (sdpa or eager)")
        if self.max_batch_size < 1 or self.min_prefix_tokens < 1:
            bad.append(
                f"max_batch_size={self.max_batch_size}, min_prefix_tokens="
                f"{self.min_prefix_tokens} (must be >= 1)"
            )
        if self.family not in ("auto", "cube-llm", "qwen-json"):
            bad.append(f"family={self.family!r} (auto, cube-llm, qwen-json)")
        if bad:
            raise ConfigError("invalid BackendConfig: " + "; ".join(bad))


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


@dataclass
class _Encoded:
    ids: list[list[int]]
    pixel: list[dict[str, Any]]  # per distinct image (1 when shared), batch dim 1
    shared: bool
    image_hw: tuple[int, int] | None


@dataclass
class BatchTiming:
    prefill_ms: float = 0.0
    decode_ms: float = 0.0
    steps: int = 0
    extra: dict = field(default_factory=dict)


class TransformersBackend(VLMBackend):
    """A transformers image-text-to-text model loaded from a local directory.

    Args:
        config: a BackendConfig, or a model directory (str/Path).
        **overrides: BackendConfig fields to change (e.g. ``device="cpu"``).

    Raises:
        ModelError: missing/incomplete directory, non-safetensors weights, a model that needs
            remote code while ``trust_remote_code`` is off, or any loading failure.
    """

    def __init__(self, config: BackendConfig | str | Path, **overrides: Any) -> None:
        if not isinstance(config, BackendConfig):
            config = BackendConfig(model_dir=str(config))
        if overrides:
            known = {f.name for f in dataclasses.fields(BackendConfig)}
            unknown = sorted(set(overrides) - known)
            if unknown:
                raise ConfigError(f"unknown backend option(s) {unknown}; known: {sorted(known)}")
            config = dataclasses.replace(config, **overrides)
        self.config = config
        path = check_model_dir(config.model_dir)
        import torch
        import transformers
        from transformers import AutoConfig, AutoModelForImageTextToText, AutoProcessor

        transformers.utils.logging.disable_progress_bar()
        self.torch = torch
        dev = config.device
        if dev == "auto":
            dev = "cuda" if torch.cuda.is_available() else "cpu"
        if dev.startswith("cuda") and not torch.cuda.is_available():
            raise ModelError(f"device={dev} requested but CUDA is not available; use cpu")
        self.device = torch.device(dev)
        dtype_name = config.dtype
        if dtype_name == "auto":
            dtype_name = "bfloat16" if self.device.type == "cuda" else "float32"
        self.dtype = getattr(torch, dtype_name)
        kw = dict(local_files_only=True, trust_remote_code=config.trust_remote_code)
        try:
            hf_config = AutoConfig.from_pretrained(path, **kw)
        except (OSError, ValueError, KeyError) as e:
            raise ModelError(f"cannot read the model config in {path}: {e}") from None
        if getattr(hf_config, "auto_map", None) and not config.trust_remote_code:
            raise ModelError(
                f"{path} needs the model's own Python code (auto_map in config.json); set "
                "trust_remote_code: true in the config only if you trust that code"
            )
        try:
            self.processor = AutoProcessor.from_pretrained(path, **kw)
            self.model = AutoModelForImageTextToText.from_pretrained(
                path,
                use_safetensors=True,
                dtype=self.dtype,
                attn_implementation=config.attn_implementation,
                **kw,
            )
        except (OSError, ValueError, KeyError, RuntimeError) as e:
            raise ModelError(f"cannot load the model in {path}: {e}") from None
        self.model.to(self.device).eval()
        self.model_type = hf_config.model_type
        self.adapter = adapter_for(self.model_type, config.family)
        self.tokenizer = getattr(self.processor, "tokenizer", None)
        if self.tokenizer is None:
            raise ModelError(f"{path}: the processor has no tokenizer")
        self.image_token = getattr(self.processor, "image_token", None)
        self.image_token_id = getattr(self.processor, "image_token_id", None)
        if self.image_token_id is None:
            self.image_token_id = getattr(hf_config, "image_token_id", None)
        gen = getattr(self.model, "generation_config", None)
        eos = getattr(gen, "eos_token_id", None) if gen is not None else None
        if eos is None:
            eos = self.tokenizer.eos_token_id
        self.eos_ids = sorted({int(e) for e in (eos if isinstance(eos, list) else [eos])
                               if e is not None})
        pad = self.tokenizer.pad_token_id
        self.pad_id = int(pad if pad is not None else (self.eos_ids[0] if self.eos_ids else 0))
        self.custom_loop = self.model_type in _CUSTOM_LOOP_TYPES
        n_params = sum(p.numel() for p in self.model.parameters())
        self.info = {
            "model_dir": str(path),
            "model_type": self.model_type,
            "family": self.adapter.family,
            "device": str(self.device),
            "dtype": dtype_name,
            "parameters": n_params,
            "weight_bytes": sum(p.numel() * p.element_size() for p in self.model.parameters()),
        }
        log.info("loaded %s (%s, %.1f M params) on %s %s", path, self.model_type,
                 n_params / 1e6, self.device, dtype_name)

    @classmethod
    def from_model(cls, model, processor, config: BackendConfig | None = None):
        """Wrap an already-built model + processor (benchmarks build 7B-shaped models from a
        config with random weights; nothing is downloaded)."""
        self = cls.__new__(cls)
        import torch

        self.config = config or BackendConfig()
        self.torch = torch
        self.model = model.eval()
        self.processor = processor
        p = next(model.parameters())
        self.device, self.dtype = p.device, p.dtype
        self.model_type = model.config.model_type
        self.adapter = adapter_for(self.model_type, self.config.family)
        self.tokenizer = processor.tokenizer
        self.image_token = getattr(processor, "image_token", None)
        self.image_token_id = getattr(processor, "image_token_id", None)
        eos = model.generation_config.eos_token_id if model.generation_config else None
        eos = self.tokenizer.eos_token_id if eos is None else eos
        self.eos_ids = sorted({int(e) for e in (eos if isinstance(eos, list) else [eos])
                               if e is not None})
        pad = self.tokenizer.pad_token_id
        self.pad_id = int(pad if pad is not None else (self.eos_ids[0] if self.eos_ids else 0))
        self.custom_loop = self.model_type in _CUSTOM_LOOP_TYPES
        self.info = {
            "model_type": self.model_type,
            "family": self.adapter.family,
            "device": str(self.device),
            "dtype": str(self.dtype).replace("torch.", ""),
            "parameters": sum(q.numel() for q in model.parameters()),
            "weight_bytes": sum(q.numel() * q.element_size() for q in model.parameters()),
        }
        return self

    # -- encoding -------------------------------------------------------------------------

    def chat_text(self, conversation: Conversation) -> str:
        """The model's chat-template text of a conversation, ready for generation."""
        msgs = self.adapter.messages(conversation)
        return self.processor.apply_chat_template(msgs, add_generation_prompt=True, tokenize=False)

    def _pixel_kwargs(self, enc) -> dict[str, Any]:
        return {k: v for k, v in enc.items() if k not in ("input_ids", "attention_mask")}

    def _model_hw(self, pix: dict[str, Any]) -> tuple[int, int] | None:
        if "image_grid_thw" in pix:  # Qwen: grid of 14 px patches
            ps = getattr(getattr(self.processor, "image_processor", None), "patch_size", 14)
            g = pix["image_grid_thw"][0]
            return int(g[1]) * ps, int(g[2]) * ps
        pv = pix.get("pixel_values")
        if pv is not None and pv.ndim == 4:
            return int(pv.shape[-2]), int(pv.shape[-1])
        return None

    def encode(self, images: Sequence[np.ndarray], prompts: Sequence[Prompt]) -> _Encoded:
        """Chat-format and tokenize prompts; preprocess each distinct image once."""
        texts = [self.chat_text(as_conversation(p)) for p in prompts]
        shared = len(images) == 1 or all(im is images[0] for im in images)
        if shared:
            enc0 = self.processor(images=[images[0]], text=[texts[0]], return_tensors="pt")
            pix = self._pixel_kwargs(enc0)
            ids0 = enc0["input_ids"][0].tolist()
            ids = [ids0]
            n_img = sum(1 for t in ids0 if t == self.image_token_id)
            fast = self.image_token is not None and texts[0].count(self.image_token) == 1
            if fast:
                # Expand the image placeholder like the processor does, tokenize text only; the
                # processor's own output for the first prompt checks that this is exact.
                tok = lambda t: self.tokenizer(  # noqa: E731
                    t.replace(self.image_token, self.image_token * n_img)
                )["input_ids"]
                fast = tok(texts[0]) == ids0
            for t in texts[1:]:
                if fast and t.count(self.image_token) == 1:
                    ids.append(tok(t))
                else:
                    e = self.processor(images=[images[0]], text=[t], return_tensors="pt")
                    ids.append(e["input_ids"][0].tolist())
            return _Encoded(ids, [pix], True, self._model_hw(pix))
        ids, pixs = [], []
        for im, t in zip(images, texts, strict=True):
            e = self.processor(images=[im], text=[t], return_tensors="pt")
            ids.append(e["input_ids"][0].tolist())
            pixs.append(self._pixel_kwargs(e))
        return _Encoded(ids, pixs, False, self._model_hw(pixs[0]))

    # -- generation -----------------------------------------------------------------------

    def _sync(self) -> None:
        if self.device.type == "cuda":
            self.torch.cuda.synchronize(self.device)

    def _to_dev(self, pix: dict[str, Any], repeat: int = 1) -> dict[str, Any]:
        torch = self.torch
        out = {}
        for k, v in pix.items():
            if isinstance(v, torch.Tensor):
                if repeat > 1:
                    v = torch.cat([v] * repeat, 0)
                v = v.to(self.device, dtype=self.dtype if v.is_floating_point() else None)
            out[k] = v
        return out

    def _left_pad(self, seqs: list[list[int]]):
        torch = self.torch
        L = max(len(s) for s in seqs)
        ids = torch.full((len(seqs), L), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(seqs), L), dtype=torch.long)
        for i, s in enumerate(seqs):
            ids[i, L - len(s):] = torch.tensor(s, dtype=torch.long)
            mask[i, L - len(s):] = 1
        return ids.to(self.device), mask.to(self.device)

    def _decode_loop(self, logits, cache, mask, last_pos, max_new: int):
        """Greedy decoding from the prefill's last logits. Returns (B, n) ids, n and the (B,)
        sum and count of the chosen tokens' log-probabilities (up to end-of-sequence)."""
        torch = self.torch
        B = logits.shape[0]
        eos = torch.tensor(self.eos_ids or [-1], device=self.device)
        out = torch.full((B, max_new), self.pad_id, dtype=torch.long, device=self.device)
        done = torch.zeros(B, dtype=torch.bool, device=self.device)
        lp_sum = torch.zeros(B, dtype=torch.float32, device=self.device)
        lp_n = torch.zeros(B, dtype=torch.float32, device=self.device)
        n = 0
        for step in range(max_new):
            nxt = logits.argmax(-1)
            lp = torch.log_softmax(logits.float(), -1).gather(1, nxt[:, None])[:, 0]
            live = (~done).float()
            lp_sum += lp * live
            lp_n += live
            out[:, step] = torch.where(done, torch.full_like(nxt, self.pad_id), nxt)
            done = done | torch.isin(nxt, eos)
            n = step + 1
            if step == max_new - 1 or bool(done.all()):
                break
            mask = torch.cat([mask, mask.new_ones((B, 1))], 1)
            last_pos = last_pos + 1
            o = self.model(
                input_ids=nxt[:, None],
                attention_mask=mask,
                position_ids=last_pos[:, None],
                past_key_values=cache,
                use_cache=True,
            )
            cache = o.past_key_values
            logits = o.logits[:, -1]
        return out[:, :n], n, (lp_sum.cpu(), lp_n.cpu())

    def _run_batched(self, ids: list[list[int]], pix: dict[str, Any], max_new: int):
        self._sync()
        t0 = time.perf_counter()
        x, mask = self._left_pad(ids)
        pos = (mask.cumsum(-1) - 1).clamp(min=0)
        o = self.model(
            input_ids=x, attention_mask=mask, position_ids=pos, use_cache=True,
            logits_to_keep=1, **pix,
        )
        logits = o.logits[:, -1]
        self._sync()
        t1 = time.perf_counter()
        gen, steps, lps = self._decode_loop(logits, o.past_key_values, mask, pos[:, -1], max_new)
        self._sync()
        t2 = time.perf_counter()
        return gen, BatchTiming((t1 - t0) * 1e3, (t2 - t1) * 1e3, steps, {"logprobs": lps})

    def _run_prefix(self, ids: list[list[int]], P: int, pix: dict[str, Any], max_new: int):
        torch = self.torch
        B = len(ids)
        self._sync()
        t0 = time.perf_counter()
        prefix = torch.tensor([ids[0][:P]], dtype=torch.long, device=self.device)
        pmask = torch.ones((1, P), dtype=torch.long, device=self.device)
        ppos = torch.arange(P, device=self.device)[None]
        o = self.model(
            input_ids=prefix, attention_mask=pmask, position_ids=ppos, use_cache=True,
            logits_to_keep=1, **pix,
        )
        cache = o.past_key_values
        if B > 1:
            cache.batch_repeat_interleave(B)  # the prefix KV, shared by every query
        suf, smask = self._left_pad([s[P:] for s in ids])
        mask = torch.cat([smask.new_ones((B, P)), smask], 1)
        spos = P + (smask.cumsum(-1) - 1).clamp(min=0)
        o = self.model(
            input_ids=suf, attention_mask=mask, position_ids=spos, past_key_values=cache,
            use_cache=True, logits_to_keep=1,
        )
        logits = o.logits[:, -1]
        self._sync()
        t1 = time.perf_counter()
        gen, steps, lps = self._decode_loop(logits, o.past_key_values, mask, spos[:, -1], max_new)
        self._sync()
        t2 = time.perf_counter()
        extra = {"prefix": P, "logprobs": lps}
        return gen, BatchTiming((t1 - t0) * 1e3, (t2 - t1) * 1e3, steps, extra)

    def _run_hf_generate(self, ids: list[list[int]], pix: dict[str, Any], max_new: int):
        """model.generate() for families whose positions our loop cannot reproduce."""
        from transformers import LogitsProcessor, LogitsProcessorList

        times: list[float] = []

        class _FirstCall(LogitsProcessor):
            def __call__(self, input_ids, scores):
                if not times:
                    times.append(time.perf_counter())
                return scores

        x, mask = self._left_pad(ids)
        self._sync()
        t0 = time.perf_counter()
        out = self.model.generate(
            input_ids=x, attention_mask=mask, max_new_tokens=max_new, do_sample=False,
            num_beams=1, pad_token_id=self.pad_id, logits_processor=LogitsProcessorList(
                [_FirstCall()]), **pix,
        )
        self._sync()
        t2 = time.perf_counter()
        t1 = times[0] if times else t2
        gen = out[:, x.shape[1]:]
        return gen, BatchTiming((t1 - t0) * 1e3, (t2 - t1) * 1e3, gen.shape[1])

    @staticmethod
    def common_prefix(seqs: list[list[int]]) -> int:
        """Length of the longest common prefix of the token lists."""
        if not seqs:
            return 0
        a = np.zeros((len(seqs), min(len(s) for s in seqs)), dtype=np.int64)
        for i, s in enumerate(seqs):
            a[i] = s[: a.shape[1]]
        diff = np.any(a != a[0], axis=0)
        return int(np.argmax(diff)) if diff.any() else a.shape[1]

    def _prefix_len(self, enc: _Encoded) -> int:
        """Usable shared-prefix length (0 = none): covers every image token, leaves at least
        one suffix token per prompt, and is at least min_prefix_tokens long."""
        if not enc.shared or not self.custom_loop or len(enc.ids) < 2:
            return 0  # one prompt: nothing to share within the batch
        P = min(self.common_prefix(enc.ids), min(len(s) for s in enc.ids) - 1)
        last_img = max((i for i, t in enumerate(enc.ids[0]) if t == self.image_token_id),
                       default=-1)
        if P <= last_img or P < self.config.min_prefix_tokens:
            return 0
        return P

    def _texts(self, gen, steps: int) -> list[tuple[str, int, tuple[int, ...]]]:
        out = []
        vocab = len(self.tokenizer)
        eos = set(self.eos_ids)
        for row in gen.tolist():
            ids = []
            n = 0
            for t in row[:steps]:
                n += 1
                if t in eos:
                    break
                ids.append(t)
            ids_ok = [t for t in ids if 0 <= t < vocab]  # random-weight models may exceed
            text = self.tokenizer.decode(ids_ok, skip_special_tokens=True)
            out.append((text.strip(), n, tuple(ids)))
        return out

    def generate(self, images, prompts, max_new_tokens=64, *, mode="auto"):
        """See :meth:`VLMBackend.generate`. ``mode="auto"`` uses prefix reuse when the config
        allows it and the prompts share an image and a prefix, else one left-padded batch."""
        _check_batch(images, prompts)
        if mode not in ("auto", "prefix", "batched", "sequential"):
            raise ConfigError(f"mode={mode!r}: auto, prefix, batched or sequential")
        if max_new_tokens < 1:
            raise ConfigError(f"max_new_tokens={max_new_tokens} must be >= 1")
        images = [np.asarray(im) for im in images]
        results: list[GenerationResult] = []
        bs = self.config.max_batch_size
        for start in range(0, len(prompts), bs):
            chunk = list(prompts[start : start + bs])
            imgs = images if len(images) == 1 else images[start : start + bs]
            results += self._generate_chunk(imgs, chunk, max_new_tokens, mode)
        return results

    def _generate_chunk(self, images, prompts, max_new, mode):
        torch = self.torch
        with torch.inference_mode():
            t_enc = time.perf_counter()
            enc = self.encode(images, prompts)
            enc_ms = (time.perf_counter() - t_enc) * 1e3
            B = len(prompts)
            runs: list[tuple[list[int], Any, BatchTiming]] = []  # (row indices, gen, timing)
            P = 0
            if mode in ("auto", "prefix"):
                P = self._prefix_len(enc) if (mode == "prefix" or self.config.prefix_reuse) else 0
                if mode == "prefix" and P == 0:
                    log.debug("no usable shared prefix; running one batch instead")
            if not self.custom_loop:
                pix = self._to_dev(enc.pixel[0], B) if enc.shared else self._to_dev(
                    {k: torch.cat([p[k] for p in enc.pixel], 0) for k in enc.pixel[0]})
                gen, tm = self._run_hf_generate(enc.ids, pix, max_new)
                runs.append((list(range(B)), gen, tm))
            elif P > 0:
                gen, tm = self._run_prefix(enc.ids, P, self._to_dev(enc.pixel[0]), max_new)
                runs.append((list(range(B)), gen, tm))
            elif mode == "sequential":
                for i in range(B):
                    pix = enc.pixel[0] if enc.shared else enc.pixel[i]
                    gen, tm = self._run_batched([enc.ids[i]], self._to_dev(pix), max_new)
                    runs.append(([i], gen, tm))
            else:
                if enc.shared:
                    pix = self._to_dev(enc.pixel[0], repeat=B)
                else:
                    pix = self._to_dev({k: torch.cat([p[k] for p in enc.pixel], 0)
                                        for k in enc.pixel[0]})
                gen, tm = self._run_batched(enc.ids, pix, max_new)
                runs.append((list(range(B)), gen, tm))
        out: list[GenerationResult | None] = [None] * B
        for rows, gen, tm in runs:
            lps = tm.extra.get("logprobs")
            texts = self._texts(gen, tm.steps)
            for j, (r, (text, n, tids)) in enumerate(zip(rows, texts, strict=True)):
                score = float("nan")
                if lps is not None and float(lps[1][j]) > 0:
                    score = math.exp(float(lps[0][j]) / float(lps[1][j]))
                out[r] = GenerationResult(
                    text=text,
                    prompt_tokens=len(enc.ids[r]),
                    new_tokens=n,
                    prefill_ms=tm.prefill_ms,
                    decode_ms=tm.decode_ms,
                    batch_size=len(rows),
                    prefix_tokens=int(tm.extra.get("prefix", 0)),
                    model_image_hw=enc.image_hw,
                    token_ids=tids,
                    preprocess_ms=enc_ms,
                    score=score,
                )
        return out  # type: ignore[return-value]

    def score_choices(self, image, prompt, choices):
        """See :meth:`VLMBackend.score_choices`. The prompt (with the image) is run once; its KV
        cache is expanded to one row per choice and the choices (right-padded) are scored in one
        batch. Families whose positions our loop cannot reproduce (Qwen's M-RoPE) run the full
        sequences in one batch instead."""
        if not choices:
            return []
        torch = self.torch
        toks = [self.tokenizer(c, add_special_tokens=False)["input_ids"] for c in choices]
        if any(not t for t in toks):
            raise ConfigError("score_choices: every choice must have at least one token")
        with torch.inference_mode():
            enc = self.encode([np.asarray(image)], [prompt])
            ids0 = enc.ids[0]
            B, P, L = len(toks), len(ids0), max(len(t) for t in toks)
            suf = torch.full((B, L), self.pad_id, dtype=torch.long)
            smask = torch.zeros((B, L), dtype=torch.long)
            for i, t in enumerate(toks):
                suf[i, : len(t)] = torch.tensor(t, dtype=torch.long)
                smask[i, : len(t)] = 1
            suf, smask = suf.to(self.device), smask.to(self.device)
            if self.custom_loop:
                o = self.model(
                    input_ids=torch.tensor([ids0], device=self.device),
                    attention_mask=torch.ones((1, P), dtype=torch.long, device=self.device),
                    position_ids=torch.arange(P, device=self.device)[None], use_cache=True,
                    logits_to_keep=1, **self._to_dev(enc.pixel[0]),
                )
                first = o.logits[:, -1].expand(B, -1)
                cache = o.past_key_values
                if B > 1:
                    cache.batch_repeat_interleave(B)
                o = self.model(
                    input_ids=suf, attention_mask=torch.cat([smask.new_ones((B, P)), smask], 1),
                    position_ids=P + torch.arange(L, device=self.device)[None].expand(B, -1),
                    past_key_values=cache, use_cache=False,
                )
                logits = torch.cat([first[:, None], o.logits], 1)  # (B, L + 1, V)
            else:
                x = torch.cat([torch.tensor([ids0], device=self.device).expand(B, -1), suf], 1)
                mask = torch.cat([smask.new_ones((B, P)), smask], 1)
                o = self.model(input_ids=x, attention_mask=mask, **self._to_dev(enc.pixel[0], B))
                logits = o.logits[:, P - 1:]
            lp = torch.log_softmax(logits.float(), -1)
            eos = torch.tensor(self.eos_ids or [self.pad_id], device=self.device)
            out = []
            for i, t in enumerate(toks):
                n = len(t)
                tok_lp = lp[i, torch.arange(n, device=self.device),
                            torch.tensor(t, device=self.device)].sum()
                end_lp = torch.logsumexp(lp[i, n, eos], 0)  # the answer ends after the choice
                out.append(float(tok_lp + end_lp))
        return out

    def generate_naive(
        self, images, prompts, max_new_tokens=64, **generate_kwargs
    ) -> list[GenerationResult]:
        """Baseline for benchmarks: one ``model.generate()`` call per prompt, each with its own
        processor call (image preprocessing included), no batching, no prefix reuse.
        ``generate_kwargs`` go to ``model.generate`` (e.g. ``min_new_tokens``)."""
        _check_batch(images, prompts)
        out = []
        for i, p in enumerate(prompts):
            img = np.asarray(images[0] if len(images) == 1 else images[i])
            text = self.chat_text(as_conversation(p))
            self._sync()
            t0 = time.perf_counter()
            with self.torch.inference_mode():
                enc = self.processor(images=[img], text=[text], return_tensors="pt")
                enc = self._to_dev(dict(enc))
                g = self.model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False,
                                        num_beams=1, pad_token_id=self.pad_id,
                                        **generate_kwargs)
            self._sync()
            ms = (time.perf_counter() - t0) * 1e3
            new = g[:, enc["input_ids"].shape[1]:]
            (t, n, tids), = self._texts(new, new.shape[1])
            out.append(GenerationResult(t, int(enc["input_ids"].shape[1]), n, 0.0, ms, 1, 0,
                                        None, tids))
        return out

    def close(self) -> None:
        self.model = None
        if self.device.type == "cuda":
            self.torch.cuda.empty_cache()
