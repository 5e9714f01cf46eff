"""Tiny-model factory: a real LLaVA architecture (CLIP vision tower + Llama text model) with a
BPE tokenizer trained on the spot, saved as safetensors + processor and reloadable offline.

Two presets:

- ``"test"``: as small as possible (builds in about a second) for tests of the whole stack.
- ``"default"``: the architecture of our default model, which ``training/`` trains on CPU
  (BRIEF §5 lessons): 112 px images, 16 px patches (49 image tokens), 2D sin-cos initialisation
  of the vision position embeddings, digits tokenised one per token, ~16 M parameters.

The directory also holds ``spatial_ros_vlm.json`` (preset + the CodecConfig the model is meant
to be trained and run with), which the engine reads so training and inference agree.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from spatial_ros.errors import ConfigError
from spatial_ros.vlm.codec import BoxCodec, CodecConfig
from spatial_ros.vlm.prompts import (
    DEFAULT_SYSTEM,
    SPATIAL_QUESTIONS,
    SPECIALIST_PREFIX,
    TASKS,
    VCOT_FOLLOW_UP,
)
from spatial_ros.vlm.visual_prompts import COLORS, PHRASES
from spatial_ros.vlm.weights_layout import write_vision_model_layout

META_FILE = "spatial_ros_vlm.json"
IMAGE_TOKEN = "<image>"
SPECIAL_TOKENS = ["<pad>", "<s>", "</s>", "<unk>", IMAGE_TOKEN]

# LLaVA-1.5-style chat format. The generation prompt ends with "ASSISTANT:" and answers start
# with a space, so prompt + answer tokenises as tokens(prompt) + tokens(answer).
CHAT_TEMPLATE = (
    "{% for m in messages %}"
    "{% if m['content'] is string %}{% set parts = [{'type': 'text', 'text': m['content']}] %}"
    "{% else %}{% set parts = m['content'] %}{% endif %}"
    "{% if m['role'] == 'system' %}SYSTEM: "
    "{% elif m['role'] == 'user' %}USER: "
    "{% else %}ASSISTANT: {% endif %}"
    "{% for c in parts %}{% if c['type'] == 'image' %}<image>{{ '\\n' }}"
    "{% else %}{{ c['text'] }}{% endif %}{% endfor %}"
    "{% if m['role'] == 'assistant' %}</s>{% endif %}{{ '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}ASSISTANT:{% endif %}"
)

CATEGORIES = [
    "mug", "bowl", "can", "box", "ball", "bottle", "book", "cube", "cup", "plate", "gripper",
    "car", "pedestrian", "cyclist", "pole", "truck", "van", "person", "bicycle", "tram",
    "chair", "table", "sofa", "bed", "desk", "lamp", "shelf", "door", "window", "monitor",
]


@dataclass(frozen=True)
class TinyPreset:
    """Sizes of a tiny LLaVA."""

    image_size: int
    patch_size: int
    vision_hidden: int
    vision_layers: int
    vision_heads: int
    vision_mlp: int
    text_hidden: int
    text_layers: int
    text_heads: int
    text_kv_heads: int
    text_mlp: int
    vocab_size: int
    max_positions: int


PRESETS = {
    "test": TinyPreset(32, 16, 32, 1, 2, 64, 64, 2, 4, 2, 128, 400, 2048),
    "default": TinyPreset(112, 16, 256, 4, 4, 768, 256, 4, 4, 2, 768, 4096, 4096),
}


def corpus(seed: int = 0, n_numbers: int = 400) -> list[str]:
    """Text the tokenizer is trained on: every prompt phrasing, captions, visual-prompt phrases,
    spatial questions and codec-formatted numbers (digits are split one per token anyway)."""
    rng = np.random.default_rng(seed)
    codec = BoxCodec()
    lines = [DEFAULT_SYSTEM, SPECIALIST_PREFIX, VCOT_FOLLOW_UP, *TASKS.values()]
    colours = list(COLORS)
    for cat in CATEGORIES:
        for col in colours:
            lines.append(f"the {col} {cat}")
    for ph in PHRASES.values():
        for col in colours[:4]:
            lines.append("the object " + ph.format(color=col))
    for q in SPATIAL_QUESTIONS.values():
        lines.append(q.format(a="the red mug", b="the blue bowl"))
    lines += [
        "USER: ASSISTANT: SYSTEM: Yes, No, left right above below behind in front of taller "
        "shorter wider thinner bigger smaller meters centimeters inches feet about o'clock",
    ]
    for _ in range(n_numbers):
        v = rng.uniform(-3.2, 3.2, 3)
        lines.append(
            codec.format_box3d(
                _code(rng.integers(0, 1000, 3), rng.uniform(0.05, 5.0, 3), v)
            )
        )
        lines.append(codec._list([str(int(a)) for a in rng.integers(0, 1000, 4)]))
    return lines


def _code(ints, sizes, angles):
    from spatial_ros.vlm.codec import Box3DCode

    return Box3DCode(float(ints[0]), float(ints[1]), int(ints[2]), *map(float, sizes),
                     tuple(map(float, angles)))


def train_tokenizer(vocab_size: int, seed: int = 0):
    """Byte-level BPE (exact round trip of any text) with digits split one per token."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(corpus(seed), trainer)
    return tok


def sincos_2d(grid: int, dim: int) -> np.ndarray:
    """(grid*grid, dim) 2D sine-cosine position embeddings (row-major patches): half the
    channels encode the row, half the column, each as sin/cos at geometric frequencies."""
    if dim % 4:
        raise ConfigError(f"sin-cos position embeddings need dim % 4 == 0, got {dim}")
    q = dim // 4
    omega = 1.0 / 10000 ** (np.arange(q, dtype=np.float64) / q)
    ys, xs = np.meshgrid(np.arange(grid), np.arange(grid), indexing="ij")

    def enc(pos):
        a = pos.reshape(-1)[:, None] * omega[None]
        return np.concatenate([np.sin(a), np.cos(a)], 1)

    return np.concatenate([enc(ys), enc(xs)], 1)


def build_tiny_vlm(
    out_dir: str | Path, preset: str = "test", seed: int = 0, init_std: float | None = None
) -> Path:
    """Build, save (safetensors) and return the directory of a random-init tiny LLaVA.

    Args:
        out_dir: directory to write (created; existing model files are overwritten).
        preset: "test" or "default" (see module docstring).
        seed: seeds the tokenizer corpus and the weights (same seed -> same model).
        init_std: standard deviation of the random weights (default: transformers' 0.02).
            Tests use a larger value so that a random model's answers depend on its input.

    Returns:
        The directory, loadable with ``TransformersBackend(out_dir)`` (offline).
    """
    if preset not in PRESETS:
        raise ConfigError(f"unknown tiny preset {preset!r}; known: {', '.join(PRESETS)}")
    import torch
    import transformers
    from transformers import (
        CLIPVisionConfig,
        LlamaConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
        LlavaProcessor,
        PreTrainedTokenizerFast,
    )
    from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

    transformers.utils.logging.disable_progress_bar()
    p = PRESETS[preset]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)

    tok = train_tokenizer(p.vocab_size, seed)
    hf_tok = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<s>",
        eos_token="</s>",
        pad_token="<pad>",
        unk_token="<unk>",
        extra_special_tokens={"image_token": IMAGE_TOKEN},
    )
    image_proc = CLIPImageProcessorPil(
        size={"height": p.image_size, "width": p.image_size},
        crop_size={"height": p.image_size, "width": p.image_size},
        do_center_crop=False,  # squash the whole image: 0..999 coordinates span all of it
    )
    processor = LlavaProcessor(
        image_processor=image_proc,
        tokenizer=hf_tok,
        patch_size=p.patch_size,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,  # the CLS token, dropped by the "default" strategy
        chat_template=CHAT_TEMPLATE,
        image_token=IMAGE_TOKEN,
    )
    vocab = tok.get_vocab_size()
    vocab_padded = int(np.ceil(vocab / 64) * 64)
    ids = {t: tok.token_to_id(t) for t in SPECIAL_TOKENS}
    n_patches = (p.image_size // p.patch_size) ** 2
    config = LlavaConfig(
        vision_config=CLIPVisionConfig(
            hidden_size=p.vision_hidden,
            intermediate_size=p.vision_mlp,
            num_hidden_layers=p.vision_layers,
            num_attention_heads=p.vision_heads,
            image_size=p.image_size,
            patch_size=p.patch_size,
            projection_dim=p.vision_hidden,
            initializer_range=init_std or 0.02,
        ),
        text_config=LlamaConfig(
            vocab_size=vocab_padded,
            hidden_size=p.text_hidden,
            intermediate_size=p.text_mlp,
            num_hidden_layers=p.text_layers,
            num_attention_heads=p.text_heads,
            num_key_value_heads=p.text_kv_heads,
            max_position_embeddings=p.max_positions,
            initializer_range=init_std or 0.02,
            bos_token_id=ids["<s>"],
            eos_token_id=ids["</s>"],
            pad_token_id=ids["<pad>"],
        ),
        image_token_id=ids[IMAGE_TOKEN],
        vision_feature_select_strategy="default",
        vision_feature_layer=-1,
        projector_hidden_act="gelu",
        image_seq_length=n_patches,
    )
    torch.manual_seed(seed)
    model = LlavaForConditionalGeneration(config).eval()
    tower = model.model.vision_tower
    tower = getattr(tower, "vision_model", tower)  # CLIPVisionModel flattens it in 5.x
    pos = tower.embeddings.position_embedding.weight
    with torch.no_grad():
        grid = p.image_size // p.patch_size
        pos[0].zero_()  # CLS
        pos[1:] = torch.from_numpy(sincos_2d(grid, p.vision_hidden)).to(pos.dtype)
    model.generation_config.eos_token_id = ids["</s>"]
    model.generation_config.pad_token_id = ids["<pad>"]
    model.generation_config.bos_token_id = ids["<s>"]
    model.save_pretrained(out, safe_serialization=True)
    write_vision_model_layout(out)  # the layout vLLM loads too (transformers loads both)
    processor.save_pretrained(out)
    meta = {
        "preset": preset,
        "seed": seed,
        "parameters": int(sum(q.numel() for q in model.parameters())),
        "image_tokens": n_patches,
        "codec": dataclasses.asdict(CodecConfig()),
    }
    (out / META_FILE).write_text(json.dumps(meta, indent=2) + "\n")
    return out


def read_meta(model_dir: str | Path) -> dict:
    """The ``spatial_ros_vlm.json`` of a model directory ({} when absent)."""
    f = Path(model_dir) / META_FILE
    if not f.is_file():
        return {}
    try:
        return json.loads(f.read_text())
    except (OSError, ValueError) as e:
        raise ConfigError(f"{f} is not valid JSON: {e}") from None


def codec_config_for(model_dir: str | Path) -> CodecConfig:
    """The CodecConfig a model directory was trained with (defaults when not recorded)."""
    meta = read_meta(model_dir).get("codec")
    if not meta:
        return CodecConfig()
    known = {f.name for f in dataclasses.fields(CodecConfig)}
    return CodecConfig(**{k: v for k, v in meta.items() if k in known})
