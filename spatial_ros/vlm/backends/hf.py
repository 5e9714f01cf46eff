"""``TransformersBackend``: a transformers image-text-to-text model from a local directory.

Loads the model + an image-only processor (``loading``), runs CUDA bf16 on a GPU and CPU fp32
otherwise (``threads`` CPU threads), and answers several queries on one frame as ONE batch:

- the image goes through the vision encoder ONCE per frame: its features are computed once and
  handed to the language model for every row (``mm_encoder_outputs``), and kept for further
  calls on the same image (a retry, answer scoring);
- ``prefix``: the longest common token prefix (system text, image tokens, candidate list, the
  fixed part of the question) is run ONCE, its KV cache expanded to the batch, and only the
  per-query suffixes (left-padded, positions continuing the prefix) are prefilled — for every
  family whose prompt is causal (not PaliGemma's bidirectional prefix, not encoder-decoders);
- ``batched``: all prompts left-padded into one batch (per-token side inputs such as
  ``mm_token_type_ids`` padded with them; 1D or Qwen 3D rotary positions per row);
- ``sequential``: one prompt at a time (the reference the others must reproduce exactly under
  greedy decoding).

Decoder-only families share one greedy loop (ours, so prefill and decode time are measured
separately); encoder-decoder families (Florence-2) use ``model.generate`` on right-padded
encoder inputs. The family adapter (``spatial_ros.vlm.families``) supplies prompt formats, answer
parsing and the positional facts.
"""

from __future__ import annotations

import dataclasses
import hashlib
import inspect
import logging
import math
import time
from pathlib import Path
from typing import Any

import numpy as np

from spatial_ros.errors import ConfigError, ModelError
from spatial_ros.vlm.backends.base import (
    GenerationResult,
    VLMBackend,
    as_conversation,
    check_batch,
)
from spatial_ros.vlm.backends.decoding import BatchTiming, GreedyDecoding
from spatial_ros.vlm.backends.inputs import (
    Encoded,
    ImageEntry,
    apply_rule,
    concat_rows,
    split_processor_output,
    tile,
    token_rule,
)
from spatial_ros.vlm.backends.options import BackendConfig, apply_threads, check_model_dir
from spatial_ros.vlm.backends.scoring import ChoiceScoring
from spatial_ros.vlm.prompts import Conversation

log = logging.getLogger(__name__)


def _vision_module(model):
    inner = getattr(model, "model", model)
    for name in ("vision_tower", "visual", "vision_model", "vision_encoder"):
        m = getattr(inner, name, None)
        if m is not None:
            return m
    return None


class TransformersBackend(GreedyDecoding, ChoiceScoring, VLMBackend):
    """A transformers image-text-to-text model loaded from a local directory.

    Args:
        config: a BackendConfig, or a model directory (str/Path).
        **overrides: BackendConfig fields to change (e.g. ``device="cpu"``).

    Raises:
        ModelError: missing/incomplete directory, non-safetensors weights, a model that needs
            remote code while ``trust_remote_code`` is off, a missing package, or any loading
            failure.
    """

    def __init__(self, config: BackendConfig | str | Path, **overrides: Any) -> None:
        if not isinstance(config, BackendConfig):
            config = BackendConfig(model_dir=str(config))
        if overrides:
            known = {f.name for f in dataclasses.fields(BackendConfig)}
            unknown = sorted(set(overrides) - known)
            if unknown:
                raise ConfigError(f"unknown backend option(s) {unknown}; known: {sorted(known)}")
            config = dataclasses.replace(config, **overrides)
        path = check_model_dir(config.model_dir)
        import torch
        import transformers

        from spatial_ros.vlm.backends.loading import load, read_config
        from spatial_ros.vlm.families import adapter_class

        transformers.utils.logging.disable_progress_bar()
        dev = config.device
        if dev == "auto":
            dev = "cuda" if torch.cuda.is_available() else "cpu"
        if dev.startswith("cuda") and not torch.cuda.is_available():
            raise ModelError(f"device={dev} requested but CUDA is not available; use cpu")
        device = torch.device(dev)
        if device.type == "cpu":
            apply_threads(config.threads)
        dtype_name = config.dtype
        if dtype_name == "auto":
            dtype_name = "bfloat16" if device.type == "cuda" else "float32"
        raw = read_config(path)
        cls = adapter_class(raw, config.family, model_dir=path)
        loaded = load(path, config, getattr(torch, dtype_name), cls)
        self._setup(loaded.model.to(device), loaded.processor, config, cls(), loaded.config)
        self.info["model_dir"] = str(path)
        log.info("loaded %s (%s, family %s, %.1f M params) on %s %s", path, self.model_type,
                 self.adapter.family, self.info["parameters"] / 1e6, self.device, dtype_name)

    @classmethod
    def from_model(cls, model, processor, config: BackendConfig | None = None, adapter=None):
        """Wrap an already-built model + processor (benchmarks build 7B-shaped models from a
        config with random weights; nothing is downloaded)."""
        from spatial_ros.vlm.families import adapter_class

        self = cls.__new__(cls)
        config = config or BackendConfig()
        if adapter is None:
            adapter = adapter_class(model.config.to_dict(), config.family)()
        self._setup(model, processor, config, adapter, model.config)
        return self

    def _setup(self, model, processor, config, adapter, hf_config) -> None:
        import torch

        self.torch = torch
        self.config = config
        self.model = model.eval()
        self.processor = processor
        self.adapter = adapter
        p = next(model.parameters())
        self.device, self.dtype = p.device, p.dtype
        self.model_type = hf_config.model_type
        self.tokenizer = getattr(processor, "tokenizer", None)
        if self.tokenizer is None:
            raise ModelError("the processor has no tokenizer")
        self.image_token = getattr(processor, "image_token", None)
        itid = getattr(hf_config, "image_token_id", None)
        if itid is None:
            itid = getattr(hf_config, "image_token_index", None)
        if itid is None:
            itid = getattr(processor, "image_token_id", None)
        self.image_token_id = itid
        gen = getattr(model, "generation_config", None)
        eos = getattr(gen, "eos_token_id", None) if gen is not None else None
        if eos is None:
            eos = self.tokenizer.eos_token_id
        self.eos_ids = sorted({int(e) for e in (eos if isinstance(eos, list) else [eos])
                               if e is not None})
        pad = self.tokenizer.pad_token_id
        self.pad_id = int(pad if pad is not None else (self.eos_ids[0] if self.eos_ids else 0))
        self.custom_loop = not adapter.encoder_decoder
        self.vision_calls = 0
        vm = _vision_module(model)
        if vm is not None:
            vm.register_forward_hook(self._count_vision)
        self._feature_fn = model.get_image_features
        self._feature_args = set(inspect.signature(self._feature_fn).parameters)
        self._image_cache: ImageEntry | None = None
        n_params = sum(q.numel() for q in model.parameters())
        self.info = {
            "model_type": self.model_type,
            "family": adapter.family,
            "device": str(self.device),
            "dtype": str(self.dtype).replace("torch.", ""),
            "parameters": n_params,
            "weight_bytes": sum(q.numel() * q.element_size() for q in model.parameters()),
        }

    def clear_image_cache(self) -> None:
        """Forget the last image's encoded features (the next call encodes its image again)."""
        self._image_cache = None

    def _count_vision(self, module, args, output) -> None:
        self.vision_calls += 1

    # -- encoding -------------------------------------------------------------------------

    def chat_text(self, conversation: Conversation | str) -> str:
        """The model's prompt text of a conversation (or a string), ready for generation."""
        return self.adapter.chat_text(self.processor, as_conversation(conversation))

    def _process(self, image: np.ndarray, text: str):
        return self.processor(images=[image], text=[text], return_tensors="pt")

    @staticmethod
    def _digest(image: np.ndarray) -> bytes:
        a = np.ascontiguousarray(image)
        return hashlib.blake2b(a.tobytes(), digest_size=16,
                               person=str(a.shape).encode()[:16]).digest()

    def encode(self, images, prompts) -> Encoded:
        """Chat-format and tokenize prompts; preprocess each distinct image once."""
        texts = [self.chat_text(as_conversation(p)) for p in prompts]
        groups: list[list[int]] = []
        firsts: list[np.ndarray] = []
        for i in range(len(prompts)):
            im = images[0] if len(images) == 1 else images[i]
            k = next((j for j, f in enumerate(firsts) if f is im), None)
            if k is None:
                firsts.append(im)
                groups.append([i])
            else:
                groups[k].append(i)
        enc = Encoded([[] for _ in texts], [{} for _ in texts], [0] * len(texts))
        for g, (im, rows) in enumerate(zip(firsts, groups, strict=True)):
            out = self._process(im, texts[rows[0]])
            ids0, tok0, img = split_processor_output(out)
            entry = ImageEntry(img, self.adapter.model_image_hw(img, self.processor),
                               digest=self._digest(im))
            c = self._image_cache
            if c is not None and c.digest == entry.digest and c.features is not None:
                entry.features = c.features  # the same image as the last call: already encoded
            enc.images.append(entry)
            fast = self._text_only(texts[rows[0]], ids0, tok0)
            for r in rows:
                enc.image_of[r] = g
                if r == rows[0]:
                    enc.ids[r], enc.token_inputs[r] = ids0, tok0
                elif fast is not None and (ids := fast[0](texts[r])) is not None:
                    enc.ids[r], enc.token_inputs[r] = ids, apply_rule(ids, fast[1],
                                                                      self.image_token_id)
                else:
                    enc.ids[r], enc.token_inputs[r], _ = split_processor_output(
                        self._process(im, texts[r]))
        return enc

    def _text_only(self, text0: str, ids0: list[int], tok0: dict):
        """A text-only tokenizer reproducing the processor's ids, or None. The processor
        replaces the ONE image placeholder by an expansion E (image tokens, with begin/end
        markers or newlines for some families); E is read off the first prompt's processor
        output, and ``tok(text) = tokens before the placeholder + E + tokens after`` is checked
        to give exactly that output before it is used for the other prompts."""
        it = self.image_token
        if not it or text0.count(it) != 1 or self.image_token_id is None:
            return None
        ph = self.tokenizer.convert_tokens_to_ids(it)
        rule = token_rule(ids0, tok0, self.image_token_id)
        if rule is None or ph is None:
            return None
        for add in (True, False):
            t0 = self.tokenizer(text0, add_special_tokens=add)["input_ids"]
            if t0.count(ph) != 1:
                continue
            k = t0.index(ph)
            tail = len(t0) - k - 1
            if len(ids0) < len(t0) or ids0[:k] != t0[:k] or ids0[len(ids0) - tail:] != t0[k + 1:]:
                continue
            expansion = ids0[k:len(ids0) - tail]

            def tok(t: str, add=add, expansion=expansion) -> list[int] | None:
                ti = self.tokenizer(t, add_special_tokens=add)["input_ids"]
                if ti.count(ph) != 1:
                    return None
                j = ti.index(ph)
                return ti[:j] + expansion + ti[j + 1:]

            return tok, rule
        return None

    # -- the vision encoder ----------------------------------------------------------------

    def image_features(self, entry: ImageEntry):
        """The encoder outputs of one image (computed once; kept for the next call)."""
        if entry.features is None:
            kw = {k: self._to_dev(v) for k, v in entry.inputs.items()
                  if k in self._feature_args}
            entry.features = self._feature_fn(**kw, return_dict=True)
            self._image_cache = entry
        return entry.features

    def _rows_features(self, enc: Encoded, rows: list[int]):
        feats = [self.image_features(enc.images[enc.image_of[r]]) for r in rows]
        if all(f is feats[0] for f in feats):
            return tile(feats[0], len(rows))
        return concat_rows(feats)

    def _rows_image_inputs(self, enc: Encoded, rows: list[int]) -> dict[str, Any]:
        torch = self.torch
        out = {}
        for k in enc.images[0].inputs:
            vals = [enc.images[enc.image_of[r]].inputs[k] for r in rows]
            out[k] = torch.cat(vals, 0) if isinstance(vals[0], torch.Tensor) else vals[0]
        return out

    # -- tensors ---------------------------------------------------------------------------

    def _sync(self) -> None:
        if self.device.type == "cuda":
            self.torch.cuda.synchronize(self.device)

    def _to_dev(self, v):
        torch = self.torch
        if isinstance(v, torch.Tensor):
            return v.to(self.device, dtype=self.dtype if v.is_floating_point() else None)
        return v

    def _pad(self, seqs: list[list[int]], value: int, left: bool = True):
        torch = self.torch
        L = max(len(s) for s in seqs)
        ids = torch.full((len(seqs), L), value, dtype=torch.long)
        mask = torch.zeros((len(seqs), L), dtype=torch.long)
        for i, s in enumerate(seqs):
            sl = slice(L - len(s), L) if left else slice(0, len(s))
            ids[i, sl] = torch.tensor(s, dtype=torch.long)
            mask[i, sl] = 1
        return ids.to(self.device), mask.to(self.device)

    def _left_pad(self, seqs):
        return self._pad(seqs, self.pad_id)

    def _token_inputs(self, enc: Encoded, rows: list[int], cut: slice | None = None):
        """Per-token side inputs of ``rows``, left-padded like the ids."""
        out = {}
        for k in enc.token_inputs[rows[0]]:
            seqs = [enc.token_inputs[r][k][cut] if cut else enc.token_inputs[r][k] for r in rows]
            out[k] = self._pad(seqs, 0)[0]
        return out

    def _texts(self, gen, steps: int) -> list[tuple[str, int, tuple[int, ...]]]:
        out = []
        vocab = len(self.tokenizer)
        eos = set(self.eos_ids)
        for row in gen.tolist():
            ids = []
            n = 0
            for t in row[:steps]:
                n += 1
                if t in eos:
                    break
                ids.append(t)
            ids_ok = [t for t in ids if 0 <= t < vocab]  # random-weight models may exceed
            text = self.adapter.decode(self.tokenizer, ids_ok)
            out.append((text.strip(), n, tuple(ids)))
        return out

    def generate(self, images, prompts, max_new_tokens=64, *, mode="auto"):
        """See :meth:`VLMBackend.generate`. ``mode="auto"`` uses prefix reuse when the config
        allows it and the prompts share an image and a prefix, else one left-padded batch."""
        check_batch(images, prompts)
        if mode not in ("auto", "prefix", "batched", "sequential"):
            raise ConfigError(f"mode={mode!r}: auto, prefix, batched or sequential")
        if max_new_tokens < 1:
            raise ConfigError(f"max_new_tokens={max_new_tokens} must be >= 1")
        images = [np.asarray(im) for im in images]
        results: list[GenerationResult] = []
        bs = self.config.max_batch_size
        for start in range(0, len(prompts), bs):
            chunk = list(prompts[start : start + bs])
            imgs = images if len(images) == 1 else images[start : start + bs]
            results += self._generate_chunk(imgs, chunk, max_new_tokens, mode)
        return results

    def _generate_chunk(self, images, prompts, max_new, mode):
        torch = self.torch
        calls0 = self.vision_calls
        with torch.inference_mode():
            t_enc = time.perf_counter()
            enc = self.encode(images, prompts)
            enc_ms = (time.perf_counter() - t_enc) * 1e3
            B = len(prompts)
            runs: list[tuple[list[int], Any, BatchTiming]] = []  # (row indices, gen, timing)
            P = 0
            if mode in ("auto", "prefix"):
                P = self._prefix_len(enc) if (mode == "prefix" or self.config.prefix_reuse) else 0
                if mode == "prefix" and P == 0:
                    log.debug("no usable shared prefix; running one batch instead")
            step = (self._run_encoder_decoder if self.adapter.encoder_decoder
                    else self._run_batched)
            if P > 0:
                gen, tm = self._run_prefix(enc, P, max_new)
                runs.append((list(range(B)), gen, tm))
            elif mode == "sequential":
                for i in range(B):
                    gen, tm = step(enc, [i], max_new)
                    runs.append(([i], gen, tm))
            else:
                gen, tm = step(enc, list(range(B)), max_new)
                runs.append((list(range(B)), gen, tm))
        encodes = self.vision_calls - calls0
        out: list[GenerationResult | None] = [None] * B
        for rows, gen, tm in runs:
            lps = tm.extra.get("logprobs")
            texts = self._texts(gen, tm.steps)
            for j, (r, (text, n, tids)) in enumerate(zip(rows, texts, strict=True)):
                score = float("nan")
                if lps is not None and float(lps[1][j]) > 0:
                    score = math.exp(float(lps[0][j]) / float(lps[1][j]))
                out[r] = GenerationResult(
                    text=text,
                    prompt_tokens=len(enc.ids[r]),
                    new_tokens=n,
                    prefill_ms=tm.prefill_ms,
                    decode_ms=tm.decode_ms,
                    batch_size=len(rows),
                    prefix_tokens=int(tm.extra.get("prefix", 0)),
                    model_image_hw=enc.images[enc.image_of[r]].model_hw,
                    token_ids=tids,
                    preprocess_ms=enc_ms,
                    score=score,
                    image_encodes=encodes,
                )
        return out  # type: ignore[return-value]

    def generate_naive(
        self, images, prompts, max_new_tokens=64, **generate_kwargs
    ) -> list[GenerationResult]:
        """Baseline for benchmarks: one ``model.generate()`` call per prompt, each with its own
        processor call (image preprocessing and encoding included), no batching, no prefix
        reuse. ``generate_kwargs`` go to ``model.generate`` (e.g. ``min_new_tokens``)."""
        check_batch(images, prompts)
        out = []
        for i, p in enumerate(prompts):
            img = np.asarray(images[0] if len(images) == 1 else images[i])
            text = self.chat_text(as_conversation(p))
            calls0 = self.vision_calls
            self._sync()
            t0 = time.perf_counter()
            with self.torch.inference_mode():
                enc = self._process(img, text)
                enc = {k: self._to_dev(v) for k, v in enc.items() if k != "labels"}
                g = self.model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False,
                                        num_beams=1, pad_token_id=self.pad_id,
                                        **generate_kwargs)
            self._sync()
            ms = (time.perf_counter() - t0) * 1e3
            n_in = 1 if self.adapter.encoder_decoder else enc["input_ids"].shape[1]
            new = g[:, n_in:]
            (t, n, tids), = self._texts(new, new.shape[1])
            out.append(GenerationResult(t, int(enc["input_ids"].shape[1]), n, 0.0, ms, 1, 0,
                                        None, tids, image_encodes=self.vision_calls - calls0))
        return out

    def close(self) -> None:
        self.model = None
        self._image_cache = None
        if self.device.type == "cuda":
            self.torch.cuda.empty_cache()
