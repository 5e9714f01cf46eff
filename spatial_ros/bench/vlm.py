"""`spatial-ros bench vlm`: grounding latency per frame, batched + prefix-reused vs naive.

For 1 and 8 queries on one frame (a prompt with specialist candidate boxes, as the engine sends
it) it measures, in the same run:

- ours: ``TransformersBackend.generate`` — one batch, the shared image/candidate prefix encoded
  once and its KV cache expanded to the batch, then batched greedy decoding;
- naive: one ``model.generate()`` call per query (processor + prefill + decode each time).

Every answer is forced to exactly ``--max-new-tokens`` tokens (end-of-sequence disabled) so both
sides decode the same amount. Reported: per-frame latency (median of ``--repeat``), tokens/s,
prefill and decode time, decode ms/token, the naive/ours ratio, and on CUDA the decode
bandwidth bound (weight bytes / HBM bandwidth, ``--hbm-gbps``, 4800 GB/s = H200).

Models: ``--model DIR`` (a local model of any family: the prompts are the family's own,
set-of-marks families get the candidates as marks), or built on the spot with random weights
(nothing is downloaded): ``--preset tiny`` (our default tiny LLaVA, ~14 M parameters),
``--preset FAMILY`` (that family's tiny model, ``spatial_ros.vlm.families``) or ``--preset 7b``
(a Llama-2-7B-shaped text model + CLIP ViT-L/14-336 vision tower, bf16, CUDA only) or
``--preset qwen2.5-vl-7b`` (Qwen2.5-VL-7B-shaped, bf16, CUDA only).

Also reported: vision-encoder passes per frame (ours: 1, the image's features reused by every
query; naive: one per query).
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import time
from pathlib import Path

import numpy as np

from spatial_ros.errors import ConfigError

HELP = "VLM grounding latency: batched + prefix KV reuse vs sequential generate() (1, 8 queries)"

CAPTIONS = [
    "the red mug", "the blue bowl", "the green can on the left", "the yellow ball",
    "the white box near the edge", "the black bottle", "the purple book", "the orange cube",
]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", type=Path, default=None, help="local model directory")
    parser.add_argument("--preset", default=None,
                        help="build a random-weight model: tiny (default on CPU), test, 7b "
                        "(LLaVA-1.5-7B-shaped), qwen2.5-vl-7b, or a family name (its tiny model: "
                        "qwen2.5-vl, gemma3, ...)")
    parser.add_argument("--queries", default="1,8", help="comma-separated query counts")
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--candidates", type=int, default=6,
                        help="specialist boxes listed in the prompt")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs (median reported)")
    parser.add_argument("--hbm-gbps", type=float, default=4800.0,
                        help="GPU memory bandwidth for the decode bound, GB/s (H200: 4800)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    from spatial_ros.vlm.backends.options import add_model_arguments

    add_model_arguments(parser)


# ----------------------------------------------------------------------------------------------
# Models built from a config (random weights)
# ----------------------------------------------------------------------------------------------


def llava_7b_config(processor):
    """LlavaConfig of a LLaVA-1.5-7B-shaped model: Llama-2-7B text model, CLIP ViT-L/14 vision
    tower at 336 px (576 image tokens), penultimate-layer features."""
    from transformers import CLIPVisionConfig, LlamaConfig, LlavaConfig

    ids = processor.tokenizer.convert_tokens_to_ids
    return LlavaConfig(
        vision_config=CLIPVisionConfig(
            hidden_size=1024, intermediate_size=4096, num_hidden_layers=24,
            num_attention_heads=16, image_size=336, patch_size=14, projection_dim=768,
        ),
        text_config=LlamaConfig(
            vocab_size=32000, hidden_size=4096, intermediate_size=11008, num_hidden_layers=32,
            num_attention_heads=32, num_key_value_heads=32, max_position_embeddings=4096,
            bos_token_id=ids("<s>"), eos_token_id=ids("</s>"), pad_token_id=ids("<pad>"),
        ),
        image_token_id=ids("<image>"),
        vision_feature_select_strategy="default",
        vision_feature_layer=-2,
        image_seq_length=576,
    )


def build_7b(device: str):
    """The 7B-shaped model with random bf16 weights created directly on ``device`` (``"meta"``
    builds it without memory), and a processor with our tokenizer."""
    import torch
    from transformers import LlavaForConditionalGeneration

    processor = _processor(336, 14)
    cfg = llava_7b_config(processor)
    with torch.device(device):
        model = LlavaForConditionalGeneration._from_config(
            cfg, dtype=torch.bfloat16, attn_implementation="sdpa"
        )
    return model.eval(), processor


def qwen2_5_vl_7b(device: str):
    """A Qwen2.5-VL-7B-shaped model (28-layer 3584-wide text model with 3D rotary positions,
    32-layer ViT with window attention) with random bf16 weights created directly on ``device``
    (``"meta"``: no memory), and the tiny Qwen family's processor (our tokenizer; images resized
    to at most 448 x 448 -> up to 256 image tokens)."""
    import tempfile

    import torch
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

    from spatial_ros.vlm.backends.loading import load_processor
    from spatial_ros.vlm.families.qwen2_5_vl import build_tiny

    with tempfile.TemporaryDirectory(prefix="spatial_ros_qwen7b_") as tmp:
        d = build_tiny(tmp)
        proc = load_processor(d, "qwen2_5_vl", False)
    proc.image_processor.max_pixels = 448 * 448
    proc.image_processor.size = {"shortest_edge": 56 * 56, "longest_edge": 448 * 448}
    ids = proc.tokenizer.convert_tokens_to_ids
    cfg = Qwen2_5_VLConfig(
        text_config=dict(vocab_size=152064, hidden_size=3584, intermediate_size=18944,
                         num_hidden_layers=28, num_attention_heads=28, num_key_value_heads=4,
                         max_position_embeddings=128000, rope_parameters={
                             "rope_type": "default", "mrope_section": [16, 24, 24],
                             "rope_theta": 1000000.0},
                         eos_token_id=ids("<|im_end|>"), pad_token_id=ids("<|endoftext|>")),
        vision_config=dict(depth=32, hidden_size=1280, intermediate_size=3420, num_heads=16,
                           out_hidden_size=3584, patch_size=14, spatial_merge_size=2,
                           temporal_patch_size=2, window_size=112,
                           fullatt_block_indexes=[7, 15, 23, 31]),
        image_token_id=ids("<|image_pad|>"), video_token_id=ids("<|video_pad|>"),
        vision_start_token_id=ids("<|vision_start|>"), vision_end_token_id=ids("<|vision_end|>"),
    )
    with torch.device(device):
        model = Qwen2_5_VLForConditionalGeneration._from_config(
            cfg, dtype=torch.bfloat16, attn_implementation="sdpa")
    model.generation_config.eos_token_id = ids("<|im_end|>")
    return model.eval(), proc


def _processor(image_size: int, patch_size: int):
    from transformers import LlavaProcessor, PreTrainedTokenizerFast
    from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

    from spatial_ros.vlm.tiny import CHAT_TEMPLATE, IMAGE_TOKEN, train_tokenizer

    tok = PreTrainedTokenizerFast(
        tokenizer_object=train_tokenizer(4096), bos_token="<s>", eos_token="</s>",
        pad_token="<pad>", unk_token="<unk>", extra_special_tokens={"image_token": IMAGE_TOKEN},
    )
    ip = CLIPImageProcessorPil(
        size={"height": image_size, "width": image_size},
        crop_size={"height": image_size, "width": image_size}, do_center_crop=False,
    )
    return LlavaProcessor(image_processor=ip, tokenizer=tok, patch_size=patch_size,
                          vision_feature_select_strategy="default",
                          num_additional_image_tokens=1, chat_template=CHAT_TEMPLATE)


def make_backend(args):
    """The backend to measure (see module docstring)."""
    import tempfile

    import torch

    from spatial_ros.vlm.backend import BackendConfig, TransformersBackend
    from spatial_ros.vlm.backends.options import model_options_from_args

    opts = model_options_from_args(args)
    cuda = torch.cuda.is_available() and args.device != "cpu"
    if args.model is not None:
        return TransformersBackend(args.model, device=args.device, **opts), str(args.model)
    preset = args.preset or "tiny"
    if preset in ("7b", "qwen2.5-vl-7b"):
        if not cuda:
            raise ConfigError(f"--preset {preset} needs a CUDA GPU (about 15 GB of bf16 "
                              "weights); use --preset tiny on CPU")
        dev = "cuda" if args.device == "auto" else args.device
        model, proc = build_7b(dev) if preset == "7b" else qwen2_5_vl_7b(dev)
        fam = "cube-llm" if preset == "7b" else "auto"  # 7b: our prompts on a LLaVA-1.5 shape
        return TransformersBackend.from_model(model, proc, BackendConfig(device=dev, family=fam)
                                              ), preset
    from spatial_ros.vlm.tiny import build_tiny_vlm

    with tempfile.TemporaryDirectory(prefix="spatial_ros_bench_vlm_") as tmp:
        if preset in ("tiny", "test"):
            d = build_tiny_vlm(tmp, "default" if preset == "tiny" else "test")
        else:
            from spatial_ros.vlm.families import family_module

            d = family_module(preset).build_tiny(tmp)
        backend = TransformersBackend(d, device=args.device, **opts)  # weights now in memory
    return backend, f"tiny preset '{preset}' (random weights)"


# ----------------------------------------------------------------------------------------------
# Measurement
# ----------------------------------------------------------------------------------------------


def _prompts(adapter, n_queries: int, n_cands: int):
    """The engine's prompts for ``n_queries`` captions with ``n_cands`` candidates listed (the
    Cube-LLM specialist block, or numbered marks for set-of-marks families)."""
    from spatial_ros.types import Box3D, CameraIntrinsics
    from spatial_ros.vlm.prompts import PromptBuilder, candidate_tags

    cam = CameraIntrinsics.from_fov(640, 480, 70.0)
    rng = np.random.default_rng(0)
    boxes = [
        Box3D([rng.uniform(-1, 1), rng.uniform(-0.3, 0.5), rng.uniform(1.0, 4.0)],
              rng.uniform(0.05, 0.4, 3))
        for _ in range(n_cands)
    ]
    pb = PromptBuilder()
    ctx = None
    if n_cands and getattr(adapter, "set_of_marks", False):
        xy = rng.uniform(0, 400, (n_cands, 2))
        b2 = [np.array([x, y, x + 80, y + 60]) for x, y in xy]
        ctx = adapter.marks_context(b2, candidate_tags([None] * n_cands), (480, 640))
    elif n_cands:
        ctx = pb.specialist_block(boxes, cam)
    caps = [CAPTIONS[i % len(CAPTIONS)] + ("" if i < len(CAPTIONS) else f" number {i}")
            for i in range(n_queries)]
    return [adapter.grounding_prompt(pb, c, ctx) for c in caps]


def _image() -> np.ndarray:
    y, x = np.mgrid[0:480, 0:640]
    return np.stack([x % 256, y % 256, (x + y) % 256], -1).astype(np.uint8)


def measure(backend, n_queries: int, args) -> dict:
    """Median timings of ours vs naive for ``n_queries`` queries on one frame."""
    img = _image()
    prompts = _prompts(backend.adapter, n_queries, args.candidates)
    N = args.max_new_tokens

    def ours():
        backend.clear_image_cache()  # each run is a new frame: its image is encoded again
        t0 = time.perf_counter()
        res = backend.generate([img], prompts, N)
        backend._sync()
        return time.perf_counter() - t0, res

    def naive():
        t0 = time.perf_counter()
        res = backend.generate_naive([img], prompts, N, min_new_tokens=N)
        return time.perf_counter() - t0, res

    ours()  # warm-up (allocations, kernels)
    runs = [ours() for _ in range(args.repeat)]
    wall = statistics.median(r[0] for r in runs)
    res = runs[-1][1]
    naive()
    nruns = [naive() for _ in range(args.repeat)]
    nwall = statistics.median(r[0] for r in nruns)
    steps = max(r.new_tokens for r in res)
    decode_ms = statistics.median(r[1][0].decode_ms for r in runs)
    prefill_ms = statistics.median(r[1][0].prefill_ms for r in runs)
    return {
        "queries": n_queries,
        "prompt_tokens": res[0].prompt_tokens,
        "shared_prefix_tokens": res[0].prefix_tokens,
        "new_tokens_per_query": steps,
        "ours_ms": wall * 1e3,
        "ours_prefill_ms": prefill_ms,
        "ours_decode_ms": decode_ms,
        "ours_preprocess_ms": res[0].preprocess_ms,
        "ours_decode_ms_per_token": decode_ms / max(steps - 1, 1),
        "ours_tokens_per_s": n_queries * steps / wall,
        "naive_ms": nwall * 1e3,
        "naive_tokens_per_s": n_queries * steps / nwall,
        "ratio_naive_over_ours": nwall / wall,
        "image_encodes_per_frame": res[0].image_encodes,
        "naive_image_encodes_per_frame": sum(r.image_encodes for r in nruns[-1][1]),
        "same_tokens_as_naive": sum(
            a.token_ids == b.token_ids for a, b in zip(res, nruns[-1][1], strict=True)
        ) / n_queries,
    }


def run(args) -> int:
    logging.getLogger("transformers").setLevel(logging.ERROR)
    counts = [int(c) for c in str(args.queries).split(",") if c.strip()]
    if not counts or min(counts) < 1:
        raise ConfigError(f"--queries {args.queries!r}: give positive counts, e.g. 1,8")
    if args.max_new_tokens < 2 or args.repeat < 1:
        raise ConfigError("--max-new-tokens must be >= 2 and --repeat >= 1")
    if args.threads:
        from spatial_ros.vlm.backends.options import apply_threads

        apply_threads(args.threads)
    backend, name = make_backend(args)
    backend.eos_ids = []  # every answer gets exactly --max-new-tokens tokens
    info = dict(backend.info)
    on_gpu = info["device"].startswith("cuda")
    print(f"model: {name}: {info['parameters'] / 1e6:.1f} M parameters, {info['dtype']} on "
          f"{info['device']}; {args.max_new_tokens} new tokens per query, "
          f"{args.candidates} candidate boxes in the prompt, median of {args.repeat}")
    rows = []
    for n in counts:
        r = measure(backend, n, args)
        rows.append(r)
        print(
            f"{n:2d} queries: ours {r['ours_ms']:8.1f} ms/frame "
            f"(prefill {r['ours_prefill_ms']:.1f}, decode {r['ours_decode_ms']:.1f}, "
            f"{r['ours_decode_ms_per_token']:.2f} ms/token, prefix {r['shared_prefix_tokens']}/"
            f"{r['prompt_tokens']} tokens shared) {r['ours_tokens_per_s']:7.1f} tok/s | naive "
            f"generate() x{n}: {r['naive_ms']:8.1f} ms {r['naive_tokens_per_s']:7.1f} tok/s | "
            f"ratio {r['ratio_naive_over_ours']:.2f}x | image encodes/frame "
            f"{r['image_encodes_per_frame']} (naive {r['naive_image_encodes_per_frame']}) | "
            f"same tokens {r['same_tokens_as_naive']:.0%}"
        )
    out = {"model": name, "info": info, "max_new_tokens": args.max_new_tokens, "rows": rows}
    if on_gpu:
        bound_ms = info["weight_bytes"] / (args.hbm_gbps * 1e9) * 1e3
        out["decode_bound_ms_per_token"] = bound_ms
        for r in rows:
            r["decode_vs_bound"] = r["ours_decode_ms_per_token"] / bound_ms
        print(f"decode bandwidth bound: {info['weight_bytes'] / 1e9:.2f} GB of weights / "
              f"{args.hbm_gbps:.0f} GB/s = {bound_ms:.2f} ms/token; measured "
              + ", ".join(f"{r['queries']} q: {r['ours_decode_ms_per_token']:.2f} ms "
                          f"({r['decode_vs_bound']:.1f}x bound)" for r in rows))
    else:
        print("CPU run: no HBM bound reported (run on a GPU machine for --preset 7b)")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(out, indent=2) + "\n")
    return 0
