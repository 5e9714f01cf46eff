"""Shared pieces of the tiny random-weight models each family module builds (tests and
``spatial-ros bench vlm``): a byte-level BPE tokenizer trained on the spot with the family's
special tokens, and saving model + processor (safetensors) for offline reloading.

A tiny model has the REAL architecture class of its family with tiny sizes, so loading,
preprocessing, batching, prefix reuse and answer parsing run the same code as the full model.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

TEMPLATE_WORDS = [
    "user assistant system model Locate the in image and output its bounding box as JSON "
    "Which mark is Answer with number only detect Give coordinates from to Please provide "
    "of region this sentence describes",
    '[{"bbox_2d": [12, 34, 56, 78], "label": "red mug"}] <ref>the cup</ref><box>[[1, 2, 3, 4]]'
    "</box> [0.12, 0.34, 0.56, 0.78]",
]


def train_tokenizer(specials: Sequence[str], *, vocab_size: int = 700, bos: str | None = None,
                    eos: str | None = None, pad: str | None = None, unk: str = "<unk>",
                    extra: dict[str, str] | None = None, seed: int = 0,
                    lines: Sequence[str] = ()):
    """A transformers fast tokenizer (byte-level BPE, digits one per token) trained on our
    prompt corpus, with ``specials`` as special tokens and ``extra`` as named special tokens
    (e.g. ``{"image_token": "<image>"}``)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    from spatial_ros.vlm.tiny import corpus

    tok = Tokenizer(models.BPE(unk_token=unk))
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
    ])
    tok.decoder = decoders.ByteLevel()
    names = [unk, *(s for s in (bos, eos, pad) if s), *specials, *(extra or {}).values()]
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=list(dict.fromkeys(names)),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False,
    )
    tok.train_from_iterator([*corpus(seed, 40), *TEMPLATE_WORDS, *lines], trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=bos, eos_token=eos,
                                   pad_token=pad, unk_token=unk, extra_special_tokens=extra or {})


def padded_vocab(tokenizer: Any, multiple: int = 64) -> int:
    n = len(tokenizer)
    return (n + multiple - 1) // multiple * multiple


def image_only(cls: type) -> type:
    """The processor class ``cls`` without its video/audio sub-processors (same name, so a
    saved processor_config.json names the real class). See ``backends.loading``."""
    from spatial_ros.vlm.backends.loading import image_only_processor_class

    return image_only_processor_class(cls)


def save(model: Any, processor: Any, out_dir: str | Path, family: str, seed: int,
         extra_files: dict[str, Any] | None = None) -> Path:
    """Save a tiny model (safetensors) + processor to ``out_dir``; ``tiny_family.json`` records
    the family and seed (not read at load time: ``family: auto`` must find it from config)."""
    import transformers

    transformers.utils.logging.disable_progress_bar()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out, safe_serialization=True)
    processor.save_pretrained(out)
    (out / "tiny_family.json").write_text(json.dumps({"family": family, "seed": seed}) + "\n")
    for name, data in (extra_files or {}).items():
        (out / name).write_text(json.dumps(data, indent=2) + "\n")
    return out


def set_generation_ids(model: Any, tokenizer: Any, eos: str, pad: str | None = None,
                       bos: str | None = None) -> None:
    g = model.generation_config
    ids = tokenizer.convert_tokens_to_ids
    g.eos_token_id = ids(eos)
    g.pad_token_id = ids(pad or eos)
    if bos:
        g.bos_token_id = ids(bos)
