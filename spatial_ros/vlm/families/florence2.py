"""Florence-2 (encoder-decoder): task tokens and ``<loc_N>`` answers, no chat template.

Prompt: a task token with the phrase, ``<OPEN_VOCABULARY_DETECTION>the red mug`` (the processor
turns it into "Locate the red mug in the image."; ``<CAPTION_TO_PHRASE_GROUNDING>`` also works).
Answer: ``phrase<loc_x1><loc_y1><loc_x2><loc_y2>`` with 1000 bins per axis, x BEFORE y; a bin
k stands for the pixel range centre ``(k + 0.5) / 1000`` of the width/height (Florence-2's
post-processor). Image + prompt go to a BART encoder (bidirectional, absolute positions: batches
are right-padded), the answer comes from the decoder: no prefix KV reuse, the image is encoded
once per frame and its features go to every query's encoder input.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from spatial_ros.vlm.codec import ParseFailure
from spatial_ros.vlm.families.base import ModelAdapter, Turn, box_result, to_image_box

TASK = "<OPEN_VOCABULARY_DETECTION>"
_DET = re.compile(r"([^<]*)<loc_(\d{1,3})>\s*<loc_(\d{1,3})>\s*<loc_(\d{1,3})>\s*<loc_(\d{1,3})>")
BINS = 1000


def loc_tokens(box_2d: np.ndarray, image_hw: tuple[int, int]) -> str:
    """``<loc_x1><loc_y1><loc_x2><loc_y2>`` of a pixel box (the native answer format)."""
    H, W = image_hw
    x1, y1, x2, y2 = np.asarray(box_2d, float)
    v = [x1 / W, y1 / H, x2 / W, y2 / H]
    return "".join(f"<loc_{int(np.clip(np.floor(t * BINS), 0, BINS - 1))}>" for t in v)


class Florence2Adapter(ModelAdapter):
    family = "florence2"
    model_types = ("florence2",)
    causal_prompt = False
    encoder_decoder = True
    keep_tokens = r"<loc_\d{1,3}>"

    def chat_text(self, processor, conversation):
        """No chat template: the last user turn's text (a task token and its phrase)."""
        return next((t.text for t in reversed(conversation) if t.role == "user"), "").strip()

    def grounding_prompt(self, builder, caption, context):
        return [Turn("user", f"{TASK}{caption.strip()}", image=True)]

    def parse_grounding(self, text, codec, image_hw, model_image_hw=None):
        m = _DET.search(text[:20000]) if isinstance(text, str) else None
        if not m:
            return ParseFailure(f"no <loc_N> x4 box in {str(text)[:60]!r}",
                                text if isinstance(text, str) else "")
        x1, y1, x2, y2 = (float(g) + 0.5 for g in m.groups()[1:])
        H, W = image_hw
        px = to_image_box(np.array([x1, y1, x2, y2]), (W / BINS, H / BINS), image_hw)
        return box_result(px, text, m.group(1).strip())


def build_tiny(out_dir: str | Path, seed: int = 0, init_std: float = 0.3) -> Path:
    """A tiny random-weight Florence2ForConditionalGeneration (DaViT + BART) + processor."""
    import torch
    from transformers import (
        BartConfig,
        Florence2Config,
        Florence2ForConditionalGeneration,
        Florence2Processor,
    )
    from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

    from spatial_ros.vlm.families import tiny

    locs = [f"<loc_{i}>" for i in range(BINS)]
    tok = tiny.train_tokenizer([], bos="<s>", eos="</s>", pad="<pad>", seed=seed,
                               extra={"image_token": "<image>"},
                               lines=["Locate the red mug in the image."])
    tok.add_tokens(locs)
    size = 32
    ip = CLIPImageProcessorPil(size={"height": size, "width": size},
                               crop_size={"height": size, "width": size}, do_center_crop=False)
    ip.image_seq_length = 1 + (size // 32) ** 2  # DaViT: /32 grid + the pooled token
    proc = Florence2Processor(image_processor=ip, tokenizer=tok)
    ids = tok.convert_tokens_to_ids
    cfg = Florence2Config(
        vision_config=dict(depths=[1, 1, 1, 1], embed_dim=[16, 16, 32, 32],
                           num_heads=[2, 2, 2, 2], num_groups=[2, 2, 2, 2], window_size=2,
                           projection_dim=32, drop_path_rate=0.0, initializer_range=init_std),
        text_config=BartConfig(vocab_size=tiny.padded_vocab(tok), d_model=32,
                               encoder_layers=1, decoder_layers=1, encoder_attention_heads=2,
                               decoder_attention_heads=2, encoder_ffn_dim=64, decoder_ffn_dim=64,
                               max_position_embeddings=256, init_std=init_std,
                               bos_token_id=ids("<s>"), eos_token_id=ids("</s>"),
                               pad_token_id=ids("<pad>"), decoder_start_token_id=ids("</s>"),
                               forced_eos_token_id=None),
        image_token_id=ids("<image>"),
    )
    torch.manual_seed(seed)
    model = Florence2ForConditionalGeneration(cfg).eval()
    tiny.set_generation_ids(model, tok, "</s>", "<pad>", "<s>")
    model.generation_config.decoder_start_token_id = ids("</s>")
    return tiny.save(model, proc, out_dir, "florence2", seed)
