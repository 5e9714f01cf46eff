"""Processor outputs split into what the backend needs, and tensor helpers.

One processor call on (image, first prompt) gives the token ids, per-token side inputs
(``mm_token_type_ids`` / ``token_type_ids``: which tokens are image tokens) and the image inputs
(pixel values, grids, sizes, patch masks). Further prompts on the same image are tokenized as
text only when that reproduces the processor exactly (checked on the first prompt), so the image
is preprocessed once per frame.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

PER_TOKEN = ("mm_token_type_ids", "token_type_ids")
NOT_IMAGE = ("input_ids", "attention_mask", "labels", *PER_TOKEN)


@dataclass
class ImageEntry:
    """One distinct image of a call: its processor inputs (batch of 1), its encoded features
    (the vision tower's output, computed lazily, once) and its size as the model saw it."""

    inputs: dict[str, Any]
    model_hw: tuple[int, int] | None
    features: Any = None
    digest: bytes = b""


@dataclass
class Encoded:
    """Prompts of one call, tokenized.

    Attributes:
        ids: token ids per prompt (image placeholders expanded).
        token_inputs: per prompt, the per-token side inputs (lists as long as ``ids``).
        image_of: per prompt, the index into ``images`` of its image.
        images: the distinct images.
    """

    ids: list[list[int]]
    token_inputs: list[dict[str, list[int]]]
    image_of: list[int]
    images: list[ImageEntry] = field(default_factory=list)

    @property
    def shared(self) -> bool:
        return len(self.images) == 1

    @property
    def image_hw(self) -> tuple[int, int] | None:
        return self.images[0].model_hw if self.images else None


def split_processor_output(enc: Any) -> tuple[list[int], dict[str, list[int]], dict[str, Any]]:
    """(ids, per-token inputs, image inputs) of a one-prompt processor output."""
    ids = enc["input_ids"][0].tolist()
    tok = {k: enc[k][0].tolist() for k in PER_TOKEN if k in enc}
    img = {k: v for k, v in enc.items() if k not in NOT_IMAGE}
    return ids, tok, img


def token_rule(ids: list[int], tok: dict[str, list[int]], image_token_id: int | None):
    """The per-token inputs as a function of "is an image token": {key: (text value, image
    value)}, or None when they are not such a function (then no text-only tokenization)."""
    rule = {}
    for k, vals in tok.items():
        text_v = {v for t, v in zip(ids, vals, strict=True) if t != image_token_id}
        img_v = {v for t, v in zip(ids, vals, strict=True) if t == image_token_id}
        if len(text_v) > 1 or len(img_v) > 1:
            return None
        rule[k] = (next(iter(text_v), 0), next(iter(img_v), 0))
    return rule


def apply_rule(ids: list[int], rule: dict, image_token_id: int | None) -> dict[str, list[int]]:
    return {k: [iv if t == image_token_id else tv for t in ids] for k, (tv, iv) in rule.items()}


def tile(value: Any, n: int):
    """Repeat every tensor in ``value`` (a ModelOutput, list, tuple or tensor of ONE image's
    encoder outputs) ``n`` times along dim 0: the features of ``n`` rows sharing the image, in the
    order the model's placeholder scatter consumes them."""
    return concat_rows([value] * n)


def concat_rows(values: list[Any]):
    """Concatenate, along dim 0, the tensors of several rows' encoder outputs (same structure,
    one image per row)."""
    import torch

    first = values[0]
    if n_is_one := len(values) == 1:
        return first
    del n_is_one
    if isinstance(first, torch.Tensor):
        return torch.cat(values, 0)
    if isinstance(first, (list, tuple)):
        return type(first)(concat_rows([v[i] for v in values]) for i in range(len(first)))
    if hasattr(first, "keys") and hasattr(first, "__getitem__"):
        data = {k: concat_rows([v[k] for v in values]) for k in first.keys()}
        return type(first)(**data)
    return first
