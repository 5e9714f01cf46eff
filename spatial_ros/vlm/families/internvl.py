"""InternVL 2.5 / 3 (transformers-native "-hf" checkpoints): ``<ref>``/``<box>`` grounding.

Prompt: "Please provide the bounding box coordinates of the region this sentence describes:
<ref>caption</ref>"; answer ``<ref>phrase</ref><box>[[x1, y1, x2, y2]]</box>`` with coordinates
RELATIVE 0..1000 of the image. Qwen2-style chat format, causal prompt, 1D positions. (The
original InternVL checkpoints need their own code: ``trust_remote_code``; the "-hf" ones do not.)
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from spatial_ros.vlm.codec import ParseFailure, ParseResult
from spatial_ros.vlm.families.base import (
    GroundingAnswer,
    ModelAdapter,
    Turn,
    box_result,
    parse_four_numbers,
    parse_mark,
    to_image_box,
)

CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n"
    "{% for c in m['content'] %}{% if c['type'] == 'image' %}<IMG_CONTEXT>\n"
    "{% else %}{{ c['text'] }}{% endif %}{% endfor %}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
_BOX = re.compile(r"(?:<ref>(.*?)</ref>)?\s*<box>\s*\[\s*(\[[^\[\]]*\])", re.S)


class InternVLAdapter(ModelAdapter):
    family = "internvl"
    model_types = ("internvl",)
    chat_template = CHAT_TEMPLATE

    def grounding_prompt(self, builder, caption, context):
        if context and self.set_of_marks:
            return self.marks_prompt(builder, caption, context)
        text = ("Please provide the bounding box coordinates of the region this sentence "
                f"describes: <ref>{caption.strip()}</ref>")
        return [Turn("user", text, image=True)]

    def parse_grounding(self, text, codec, image_hw, model_image_hw=None):
        mark = parse_mark(text) if self.set_of_marks else None
        if mark:
            return ParseResult(GroundingAnswer(candidate=mark), (0, len(text)))
        m = _BOX.search(text[:20000]) if isinstance(text, str) else None
        b = parse_four_numbers(m.group(2)) if m else None
        label = (m.group(1) or "").strip() if m else ""
        if b is None:
            b = parse_four_numbers(text)  # a bare [x1, y1, x2, y2]
        if b is None:
            return ParseFailure(f"no <box>[[x1, y1, x2, y2]]</box> in {str(text)[:60]!r}",
                                text if isinstance(text, str) else "")
        H, W = image_hw
        return box_result(to_image_box(np.asarray(b), (W / 1000.0, H / 1000.0), image_hw),
                          text, label)


def build_tiny(out_dir: str | Path, seed: int = 0, init_std: float = 0.3) -> Path:
    """A tiny random-weight InternVLForConditionalGeneration + image-only processor."""
    import torch
    from transformers import (
        InternVLConfig,
        InternVLForConditionalGeneration,
        InternVLProcessor,
        Qwen2Config,
    )
    from transformers.models.got_ocr2.image_processing_pil_got_ocr2 import (
        GotOcr2ImageProcessorPil,
    )

    from spatial_ros.vlm.families import tiny

    sp = ["<|im_start|>", "<|im_end|>"]
    extra = {"start_image_token": "<img>", "end_image_token": "</img>",
             "context_image_token": "<IMG_CONTEXT>", "video_token": "<video>"}
    tok = tiny.train_tokenizer(sp, eos="<|im_end|>", pad="<|endoftext|>", seed=seed,
                               extra=extra)
    ids = tok.convert_tokens_to_ids
    size, patch = 32, 8
    ip = GotOcr2ImageProcessorPil(size={"height": size, "width": size}, crop_to_patches=False)
    seq = int((size // patch) ** 2 * 0.25)
    proc = tiny.image_only(InternVLProcessor)(image_processor=ip, tokenizer=tok,
                                              video_processor=None, image_seq_length=seq,
                                              chat_template=CHAT_TEMPLATE)
    cfg = InternVLConfig(
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                           num_attention_heads=2, image_size=[size, size],
                           patch_size=[patch, patch], initializer_range=init_std),
        text_config=Qwen2Config(vocab_size=tiny.padded_vocab(tok), hidden_size=64,
                                intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                                num_key_value_heads=2, initializer_range=init_std,
                                eos_token_id=ids("<|im_end|>"), pad_token_id=ids("<|endoftext|>"),
                                bos_token_id=None, tie_word_embeddings=False),
        image_token_id=ids("<IMG_CONTEXT>"), image_seq_length=seq, downsample_ratio=0.5,
        vision_feature_layer=-1, tie_word_embeddings=False,
    )
    torch.manual_seed(seed)
    model = InternVLForConditionalGeneration(cfg).eval()
    tiny.set_generation_ids(model, tok, "<|im_end|>", "<|endoftext|>")
    return tiny.save(model, proc, out_dir, "internvl", seed)
