"""LLaVA-1.5 and LLaVA-NeXT (1.6): boxes as ``[x1, y1, x2, y2]`` floats 0..1.

LLaVA-1.5 was trained on RefCOCO-style grounding with the prompt "Please provide the bounding box
coordinate of the region this sentence describes: <caption>" and answers ``[0.12, 0.34, 0.56,
0.78]``: fractions of the image PADDED TO A SQUARE (the short side centred, ``expand2square``),
so y (for a wide image) is mapped back as ``y * S - (S - H) / 2`` with ``S = max(W, H)``.
LLaVA-NeXT (anyres, no square padding) gives fractions of the image itself. Causal prompt, 1D
positions: the shared prefix is reused.
"""

from __future__ import annotations

from pathlib import Path

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
    "{% for m in messages %}{% if m['role'] == 'system' %}{{ m['content'][0]['text'] }} "
    "{% else %}{{ m['role'].upper() }}: {% for c in m['content'] %}{% if c['type'] == 'image' %}"
    "<image>\n{% else %}{{ c['text'] }} {% endif %}{% endfor %}{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}ASSISTANT:{% endif %}"
)
REF_PROMPT = "Please provide the bounding box coordinate of the region this sentence describes: "


def parse_unit_box(text: str, image_hw, pad_to_square: bool):
    """``[x1, y1, x2, y2]`` in 0..1 (of the image, or of it padded to a square) -> pixels."""
    b = parse_four_numbers(text)
    if b is None:
        return ParseFailure(f"no [x1, y1, x2, y2] box in {text[:60]!r}", text)
    if b.max() > 1.0 + 1e-6 or b.min() < -1e-6:
        return ParseFailure(f"box values {b.tolist()} are not fractions 0..1", text)
    H, W = image_hw
    if pad_to_square:
        S = max(H, W)
        return box_result(to_image_box(b, (S, S), image_hw, ((S - W) / 2, (S - H) / 2)), text)
    return box_result(to_image_box(b, (W, H), image_hw), text)


class LlavaAdapter(ModelAdapter):
    """LLaVA-NeXT (model_type "llava_next"): fractions of the image itself."""

    family = "llava"
    model_types = ("llava_next",)
    chat_template = CHAT_TEMPLATE
    pad_to_square = False

    def grounding_prompt(self, builder, caption, context):
        if context and self.set_of_marks:
            return self.marks_prompt(builder, caption, context)
        return [Turn("user", REF_PROMPT + caption.strip(), image=True)]

    def parse_grounding(self, text, codec, image_hw, model_image_hw=None):
        mark = parse_mark(text) if self.set_of_marks else None
        if mark:
            return ParseResult(GroundingAnswer(candidate=mark), (0, len(text)))
        return parse_unit_box(text, image_hw, self.pad_to_square)


class Llava15Adapter(LlavaAdapter):
    """LLaVA-1.5 (model_type "llava"): fractions of the image padded to a square."""

    family = "llava-1.5"
    model_types = ("llava", "vipllava")
    pad_to_square = True


def build_tiny(out_dir: str | Path, seed: int = 0, init_std: float = 0.3) -> Path:
    """A tiny random-weight LlavaNextForConditionalGeneration (anyres tiles) + processor."""
    import torch
    from transformers import (
        CLIPVisionConfig,
        LlamaConfig,
        LlavaNextConfig,
        LlavaNextForConditionalGeneration,
        LlavaNextProcessor,
    )
    from transformers.models.llava_next.image_processing_pil_llava_next import (
        LlavaNextImageProcessorPil,
    )

    from spatial_ros.vlm.families import tiny

    tok = tiny.train_tokenizer(["<image>"], bos="<s>", eos="</s>", pad="<pad>", seed=seed,
                               extra={"image_token": "<image>"})
    ids = tok.convert_tokens_to_ids
    size, patch = 32, 16
    ip = LlavaNextImageProcessorPil(size={"shortest_edge": size},
                                    crop_size={"height": size, "width": size},
                                    image_grid_pinpoints=[[size, 2 * size], [2 * size, size]])
    proc = LlavaNextProcessor(image_processor=ip, tokenizer=tok, patch_size=patch,
                              vision_feature_select_strategy="default",
                              num_additional_image_tokens=1, chat_template=CHAT_TEMPLATE)
    cfg = LlavaNextConfig(
        vision_config=CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                       num_attention_heads=2, image_size=size, patch_size=patch,
                                       projection_dim=32, initializer_range=init_std),
        text_config=LlamaConfig(vocab_size=tiny.padded_vocab(tok), hidden_size=64,
                                intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                                num_key_value_heads=2, initializer_range=init_std,
                                bos_token_id=ids("<s>"), eos_token_id=ids("</s>"),
                                pad_token_id=ids("<pad>")),
        image_token_index=ids("<image>"), image_grid_pinpoints=[[size, 2 * size],
                                                                [2 * size, size]],
        vision_feature_select_strategy="default", vision_feature_layer=-1,
        image_seq_length=(size // patch) ** 2,
    )
    torch.manual_seed(seed)
    model = LlavaNextForConditionalGeneration(cfg).eval()
    with torch.no_grad():
        model.model.image_newline.normal_(0, init_std)
    tiny.set_generation_ids(model, tok, "</s>", "<pad>", "<s>")
    return tiny.save(model, proc, out_dir, "llava", seed)
