"""Idefics3 and SmolVLM: no trained box format -> set-of-marks selection.

With candidates, the engine draws them as numbered marks on the image and lists them; the model
answers the mark's number. Without candidates: ``[x1, y1, x2, y2]`` in 0..1000 of the image.
Chat format "User:<image>...<end_of_utterance>\\nAssistant:", causal prompt, 1D positions.
SmolVLM's processor refuses to start without the ``num2words`` package, which it uses only to
phrase VIDEO prompts; image-only loading supplies a stand-in that raises if a video prompt ever
asks for it (``processor_shim``).
"""

from __future__ import annotations

import contextlib
from pathlib import Path

from spatial_ros.vlm.families.base import MarksAdapter

CHAT_TEMPLATE = (
    "<|im_start|>{% for m in messages %}{{ m['role'] | capitalize }}:"
    "{% for c in m['content'] %}{% if c['type'] == 'image' %}<image>{% else %}{{ c['text'] }}"
    "{% endif %}{% endfor %}<end_of_utterance>\n{% endfor %}"
    "{% if add_generation_prompt %}Assistant:{% endif %}"
)


def _no_video_words(*args, **kwargs):
    raise RuntimeError("num2words is needed for SmolVLM video prompts: pip install num2words")


class Idefics3Adapter(MarksAdapter):
    family = "idefics3"
    model_types = ("idefics3", "smolvlm")
    chat_template = CHAT_TEMPLATE

    @staticmethod
    @contextlib.contextmanager
    def processor_shim():
        from transformers.models.smolvlm import processing_smolvlm as m

        if m.num2words is not None:
            yield
            return
        m.num2words = _no_video_words
        try:
            yield
        finally:
            m.num2words = None


def build_tiny(out_dir: str | Path, seed: int = 0, init_std: float = 0.3,
               variant: str = "smolvlm") -> Path:
    """A tiny random-weight SmolVLMForConditionalGeneration (or Idefics3, ``variant``) +
    image-only processor (no image splitting: one global image)."""
    import torch
    from transformers import LlamaConfig

    from spatial_ros.vlm.families import tiny

    rows = [f"<row_{i + 1}_col_{j + 1}>" for i in range(6) for j in range(6)]
    sp = ["<|im_start|>", "<fake_token_around_image>", "<image>", "<end_of_utterance>",
          "<global-img>", "<video>", *rows]
    tok = tiny.train_tokenizer(sp, bos="<|im_start|>", eos="<end_of_utterance>",
                               pad="<|endoftext|>", seed=seed,
                               extra={"image_token": "<image>",
                                      "fake_image_token": "<fake_token_around_image>",
                                      "global_image_token": "<global-img>",
                                      "end_of_utterance_token": "<end_of_utterance>"})
    ids = tok.convert_tokens_to_ids
    size, patch, scale = 32, 8, 2
    seq = (size // patch) ** 2 // scale**2
    vision = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                  num_attention_heads=2, image_size=size, patch_size=patch,
                  initializer_range=init_std)
    text = LlamaConfig(vocab_size=tiny.padded_vocab(tok), hidden_size=64, intermediate_size=128,
                       num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                       initializer_range=init_std, bos_token_id=ids("<|im_start|>"),
                       eos_token_id=ids("<end_of_utterance>"), pad_token_id=ids("<|endoftext|>"))
    ipkw = dict(do_image_splitting=False, size={"longest_edge": size},
                max_image_size={"longest_edge": size})
    if variant == "smolvlm":
        from transformers import SmolVLMConfig, SmolVLMForConditionalGeneration, SmolVLMProcessor
        from transformers.models.smolvlm.image_processing_pil_smolvlm import (
            SmolVLMImageProcessorPil,
        )

        with Idefics3Adapter.processor_shim():
            proc = tiny.image_only(SmolVLMProcessor)(
                image_processor=SmolVLMImageProcessorPil(**ipkw), tokenizer=tok,
                video_processor=None, image_seq_len=seq, chat_template=CHAT_TEMPLATE)
        cfg = SmolVLMConfig(vision_config=vision, text_config=text, scale_factor=scale,
                            image_token_id=ids("<image>"))
        model_cls = SmolVLMForConditionalGeneration
    else:
        from transformers import (
            Idefics3Config,
            Idefics3ForConditionalGeneration,
            Idefics3Processor,
        )
        from transformers.models.idefics3.image_processing_pil_idefics3 import (
            Idefics3ImageProcessorPil,
        )

        proc = Idefics3Processor(image_processor=Idefics3ImageProcessorPil(**ipkw), tokenizer=tok,
                                 image_seq_len=seq, chat_template=CHAT_TEMPLATE)
        cfg = Idefics3Config(vision_config=vision, text_config=text, scale_factor=scale,
                             image_token_id=ids("<image>"))
        model_cls = Idefics3ForConditionalGeneration
    torch.manual_seed(seed)
    model = model_cls(cfg).eval()
    tiny.set_generation_ids(model, tok, "<end_of_utterance>", "<|endoftext|>", "<|im_start|>")
    return tiny.save(model, proc, out_dir, "idefics3", seed)
