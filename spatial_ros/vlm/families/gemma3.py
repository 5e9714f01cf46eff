"""Gemma 3: no trained box format -> set-of-marks selection.

With candidates, the engine draws them as numbered marks on the image and lists them; the model
answers the mark's number. Without candidates: ``[x1, y1, x2, y2]`` in 0..1000 of the image.
Chat format ``<start_of_turn>user ... <end_of_turn>`` (the system text goes into the first user
turn); the image's soft tokens attend to each other bidirectionally (``token_type_ids``), which
stays inside the shared prefix, so the prefix KV cache is reused. Sliding-window layers and
logit soft-capping: ``auto`` attention picks eager.
"""

from __future__ import annotations

from pathlib import Path

from spatial_ros.vlm.families.base import MarksAdapter

CHAT_TEMPLATE = (
    "{{ bos_token }}{% set sys = namespace(text='') %}{% for m in messages %}"
    "{% if m['role'] == 'system' %}{% set sys.text = m['content'][0]['text'] + '\n\n' %}"
    "{% else %}<start_of_turn>{{ 'model' if m['role'] == 'assistant' else m['role'] }}\n"
    "{% if m['role'] == 'user' %}{{ sys.text }}{% set sys.text = '' %}{% endif %}"
    "{% for c in m['content'] %}{% if c['type'] == 'image' %}<start_of_image>"
    "{% else %}{{ c['text'] }}{% endif %}{% endfor %}<end_of_turn>\n{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}"
)


class Gemma3Adapter(MarksAdapter):
    family = "gemma3"
    model_types = ("gemma3",)
    chat_template = CHAT_TEMPLATE
    attn_implementation = "eager"


def build_tiny(out_dir: str | Path, seed: int = 0, init_std: float = 0.3) -> Path:
    """A tiny random-weight Gemma3ForConditionalGeneration + processor."""
    import torch
    from transformers import (
        Gemma3Config,
        Gemma3ForConditionalGeneration,
        Gemma3Processor,
        Gemma3TextConfig,
        SiglipVisionConfig,
    )
    from transformers.models.gemma3.image_processing_pil_gemma3 import Gemma3ImageProcessorPil

    from spatial_ros.vlm.families import tiny

    sp = ["<start_of_turn>", "<end_of_turn>"]
    extra = {"boi_token": "<start_of_image>", "eoi_token": "<end_of_image>",
             "image_token": "<image_soft_token>"}
    tok = tiny.train_tokenizer(sp, bos="<bos>", eos="<eos>", pad="<pad>", seed=seed,
                               extra=extra)
    ids = tok.convert_tokens_to_ids
    size, patch, mm = 32, 8, 4
    ip = Gemma3ImageProcessorPil(size={"height": size, "width": size}, do_pan_and_scan=False)
    proc = Gemma3Processor(image_processor=ip, tokenizer=tok, image_seq_length=mm,
                           chat_template=CHAT_TEMPLATE)
    cfg = Gemma3Config(
        text_config=Gemma3TextConfig(vocab_size=tiny.padded_vocab(tok), hidden_size=64,
                                     intermediate_size=128, num_hidden_layers=2,
                                     num_attention_heads=4, num_key_value_heads=2, head_dim=16,
                                     initializer_range=init_std / 15, sliding_window=512,
                                     query_pre_attn_scalar=16, bos_token_id=ids("<bos>"),
                                     eos_token_id=[ids("<eos>"), ids("<end_of_turn>")],
                                     pad_token_id=ids("<pad>")),
        vision_config=SiglipVisionConfig(hidden_size=32, intermediate_size=64,
                                         num_hidden_layers=1, num_attention_heads=2,
                                         image_size=size, patch_size=patch),
        mm_tokens_per_image=mm, boi_token_index=ids("<start_of_image>"),
        eoi_token_index=ids("<end_of_image>"), image_token_index=ids("<image_soft_token>"),
    )
    torch.manual_seed(seed)
    model = Gemma3ForConditionalGeneration(cfg).eval()
    with torch.no_grad():
        for p in model.model.vision_tower.parameters():
            p.normal_(0, init_std)
    tiny.set_generation_ids(model, tok, "<end_of_turn>", "<pad>", "<bos>")
    model.generation_config.eos_token_id = [ids("<eos>"), ids("<end_of_turn>")]
    return tiny.save(model, proc, out_dir, "gemma3", seed)
