"""The backend interface: ``VLMBackend`` and what it returns (``GenerationResult``).

``VLMBackend.generate(images, prompts, max_new_tokens)`` answers a batch of conversations about
images with greedy decoding and returns text + timing per prompt; ``score_choices`` gives the
log-probability of each of several complete answers. ``adapter`` (a ``families`` ModelAdapter)
knows the model family's prompt and answer formats.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from spatial_ros.errors import ConfigError
from spatial_ros.vlm.prompts import Conversation, Turn

if TYPE_CHECKING:
    from spatial_ros.vlm.families.base import ModelAdapter


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
        image_encodes: vision-encoder passes this call ran for its images (0 when the image's
            features were still cached from an earlier call on the same image).
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
    image_encodes: int = 0

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


def check_batch(images: Sequence[np.ndarray], prompts: Sequence[Prompt]) -> None:
    """ConfigError unless ``images`` (one shared or one per prompt) and ``prompts`` fit."""
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
