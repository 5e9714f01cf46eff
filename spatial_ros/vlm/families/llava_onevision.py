"""LLaVA-OneVision: no trained box format -> set-of-marks selection.

With candidates, the engine draws them as numbered marks on the image and lists them; the model
answers the mark's number. Without candidates it is asked for ``[x1, y1, x2, y2]`` fractions 0..1
of the image (the format of LLaVA's grounding data; OneVision's anyres input is not padded to a
square). Qwen2 chat format, causal prompt, 1D positions.
"""

from __future__ import annotations

from pathlib import Path

from spatial_ros.vlm.codec import ParseResult
from spatial_ros.vlm.families.base import GroundingAnswer, MarksAdapter, Turn, parse_mark
from spatial_ros.vlm.families.llava import REF_PROMPT, parse_unit_box

CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n"
    "{% for c in m['content'] %}{% if c['type'] == 'image' %}<image>\n{% else %}{{ c['text'] }}"
    "{% endif %}{% endfor %}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


class LlavaOneVisionAdapter(MarksAdapter):
    family = "llava-onevision"
    model_types = ("llava_onevision",)
    chat_template = CHAT_TEMPLATE

    def grounding_prompt(self, builder, caption, context):
        if context:
            return self.marks_prompt(builder, caption, context)
        return [Turn("user", REF_PROMPT + caption.strip(), image=True)]

    def parse_grounding(self, text, codec, image_hw, model_image_hw=None):
        mark = parse_mark(text)
        if mark:
            return ParseResult(GroundingAnswer(candidate=mark), (0, len(text)))
        return parse_unit_box(text, image_hw, pad_to_square=False)


def build_tiny(out_dir: str | Path, seed: int = 0, init_std: float = 0.3) -> Path:
    """A tiny random-weight LlavaOnevisionForConditionalGeneration + image-only processor."""
    import torch
    from transformers import (
        LlavaOnevisionConfig,
        LlavaOnevisionForConditionalGeneration,
        LlavaOnevisionProcessor,
        Qwen2Config,
        SiglipVisionConfig,
    )
    from transformers.models.llava_onevision.image_processing_pil_llava_onevision import (
        LlavaOnevisionImageProcessorPil,
    )

    from spatial_ros.vlm.families import tiny

    sp = ["<|im_start|>", "<|im_end|>", "<image>", "<video>"]
    tok = tiny.train_tokenizer(sp, eos="<|im_end|>", pad="<|endoftext|>", seed=seed,
                               extra={"image_token": "<image>", "video_token": "<video>"})
    ids = tok.convert_tokens_to_ids
    size, patch = 32, 16
    pins = [[size, size], [size, 2 * size], [2 * size, size]]
    ip = LlavaOnevisionImageProcessorPil(size={"height": size, "width": size},
                                         image_grid_pinpoints=pins)
    proc = tiny.image_only(LlavaOnevisionProcessor)(
        image_processor=ip, tokenizer=tok, video_processor=None,
        num_image_tokens=(size // patch) ** 2, vision_feature_select_strategy="full",
        chat_template=CHAT_TEMPLATE, vision_aspect_ratio="anyres_max_9")
    cfg = LlavaOnevisionConfig(
        vision_config=SiglipVisionConfig(hidden_size=32, intermediate_size=64,
                                         num_hidden_layers=1, num_attention_heads=2,
                                         image_size=size, patch_size=patch),
        text_config=Qwen2Config(vocab_size=tiny.padded_vocab(tok), hidden_size=64,
                                intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                                num_key_value_heads=2, initializer_range=init_std,
                                eos_token_id=ids("<|im_end|>"), pad_token_id=ids("<|endoftext|>"),
                                bos_token_id=None),
        image_token_index=ids("<image>"), video_token_index=ids("<video>"),
        image_grid_pinpoints=pins, vision_feature_select_strategy="full",
        vision_feature_layer=-1, vision_aspect_ratio="anyres_max_9",
    )
    torch.manual_seed(seed)
    model = LlavaOnevisionForConditionalGeneration(cfg).eval()
    with torch.no_grad():
        model.model.image_newline.normal_(0, init_std)
        for p in model.model.vision_tower.parameters():
            p.normal_(0, init_std)
    tiny.set_generation_ids(model, tok, "<|im_end|>", "<|endoftext|>")
    return tiny.save(model, proc, out_dir, "llava-onevision", seed)
