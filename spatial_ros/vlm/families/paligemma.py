"""PaliGemma / PaliGemma 2: ``detect`` prompts and ``<locNNNN>`` answers, no chat template.

Prompt: "detect <phrase>" (the processor puts the image tokens and ``<bos>`` before it and a
newline after it). Answer: ``<locYMIN><locXMIN><locYMAX><locXMAX> phrase`` (several detections
separated by " ; "), each value one of 1024 bins (``<loc0000>``..``<loc1023>``) of the image's
height (y) or width (x), y BEFORE x. The prompt is a prefix that attends bidirectionally (the
whole prompt, not only the image), so one frame's queries cannot share a prefix KV cache; the
image is still encoded once and its features reused by every query. Positions count from 1.
PaliGemma 2 (Gemma 2 text model with logit soft-capping) needs eager attention: ``auto`` picks it.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from spatial_ros.vlm.codec import ParseFailure
from spatial_ros.vlm.families.base import ModelAdapter, Turn, box_result, to_image_box

_DET = re.compile(r"<loc(\d{4})>\s*<loc(\d{4})>\s*<loc(\d{4})>\s*<loc(\d{4})>\s*([^;<]*)")
BINS = 1024


def loc_tokens(box_2d: np.ndarray, image_hw: tuple[int, int]) -> str:
    """``<locYMIN><locXMIN><locYMAX><locXMAX>`` of a pixel box (the native answer format)."""
    H, W = image_hw
    x1, y1, x2, y2 = np.asarray(box_2d, float)
    v = [y1 / H, x1 / W, y2 / H, x2 / W]
    return "".join(f"<loc{int(np.clip(round(t * BINS), 0, BINS - 1)):04d}>" for t in v)


class PaliGemmaAdapter(ModelAdapter):
    family = "paligemma"
    model_types = ("paligemma",)
    causal_prompt = False
    position_offset = 1
    attn_implementation = "eager"
    keep_tokens = r"<loc\d{4}>"

    def chat_text(self, processor, conversation):
        """No chat template: the image placeholder and the last user turn's text."""
        text = next((t.text for t in reversed(conversation) if t.role == "user"), "")
        return f"{processor.image_token}{text.strip()}"

    def grounding_prompt(self, builder, caption, context):
        return [Turn("user", f"detect {caption.strip()}", image=True)]

    def parse_grounding(self, text, codec, image_hw, model_image_hw=None):
        m = _DET.search(text[:20000]) if isinstance(text, str) else None
        if not m:
            return ParseFailure(f"no <loc....> x4 detection in {str(text)[:60]!r}",
                                text if isinstance(text, str) else "")
        y1, x1, y2, x2 = (float(g) for g in m.groups()[:4])
        H, W = image_hw
        px = to_image_box(np.array([x1, y1, x2, y2]), (W / BINS, H / BINS), image_hw)
        return box_result(px, text, m.group(5).strip())


def build_tiny(out_dir: str | Path, seed: int = 0, init_std: float = 0.3) -> Path:
    """A tiny random-weight PaliGemmaForConditionalGeneration (PaliGemma 2: Gemma 2 text
    model) + processor (its 1024 location and 128 segmentation tokens added)."""
    import torch
    from transformers import (
        Gemma2Config,
        PaliGemmaConfig,
        PaliGemmaForConditionalGeneration,
        PaliGemmaProcessor,
        SiglipVisionConfig,
    )
    from transformers.models.siglip.image_processing_pil_siglip import SiglipImageProcessorPil

    from spatial_ros.vlm.families import tiny

    tok = tiny.train_tokenizer(["<image>"], bos="<bos>", eos="<eos>", pad="<pad>", seed=seed,
                               extra={"image_token": "<image>"}, lines=["detect the red mug"])
    size, patch = 32, 8
    n = (size // patch) ** 2
    ip = SiglipImageProcessorPil(size={"height": size, "width": size})
    ip.image_seq_length = n
    proc = PaliGemmaProcessor(image_processor=ip, tokenizer=tok)  # adds <locNNNN>, <segNNN>
    ids = tok.convert_tokens_to_ids
    cfg = PaliGemmaConfig(
        vision_config=SiglipVisionConfig(hidden_size=32, intermediate_size=64,
                                         num_hidden_layers=1, num_attention_heads=2,
                                         image_size=size, patch_size=patch, projection_dim=64),
        text_config=Gemma2Config(vocab_size=tiny.padded_vocab(tok), hidden_size=64,
                                 intermediate_size=128, num_hidden_layers=2,
                                 num_attention_heads=4, num_key_value_heads=2, head_dim=16,
                                 initializer_range=init_std / 4, sliding_window=512,
                                 bos_token_id=ids("<bos>"), eos_token_id=ids("<eos>"),
                                 pad_token_id=ids("<pad>")),
        image_token_id=ids("<image>"), projection_dim=64,
    )
    cfg.text_config.num_image_tokens = n
    torch.manual_seed(seed)
    model = PaliGemmaForConditionalGeneration(cfg).eval()
    with torch.no_grad():
        for p in model.model.vision_tower.parameters():
            p.normal_(0, init_std)
    tiny.set_generation_ids(model, tok, "<eos>", "<pad>", "<bos>")
    return tiny.save(model, proc, out_dir, "paligemma", seed)
