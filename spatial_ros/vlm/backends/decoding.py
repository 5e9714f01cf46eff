"""Greedy decoding for ``TransformersBackend``: prefill (one left-padded batch, or a shared
prefix run once and its KV cache expanded to the batch), our decoding loop (prefill and decode
timed apart), and ``model.generate`` for encoder-decoder families.

Positions: 1D (left padding skipped, ``position_offset`` added) or the family's 3D rotary
positions for the prompt; text after the prompt continues from each row's largest position + 1
(the same number on all three axes), which is what Qwen's ``get_rope_index`` gives text tokens.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from spatial_ros.vlm.backends.inputs import Encoded


@dataclass
class BatchTiming:
    prefill_ms: float = 0.0
    decode_ms: float = 0.0
    steps: int = 0
    extra: dict = field(default_factory=dict)



class GreedyDecoding:
    """Mixin of TransformersBackend (uses its model, adapter, padding and feature helpers)."""

    def _expand(self, pos):
        """(B, L) text positions -> what the model takes ((rope_dims, B, L) for M-RoPE)."""
        d = self.adapter.rope_dims
        return pos if d == 1 else pos[None].expand(d, -1, -1)

    def _positions(self, x, mask, tok: dict, img: dict):
        """Prefill positions of a left-padded batch and each row's next position (B,)."""
        if self.adapter.rope_dims > 1:
            pos = self.adapter.rope_positions(self.model, x, mask, tok, img)
            nxt = pos.amax(dim=(0, 2)) + 1
            return pos, nxt
        pos = (mask.cumsum(-1) - 1).clamp(min=0) + self.adapter.position_offset
        return pos, pos[:, -1] + 1

    # -- generation ------------------------------------------------------------------------

    def _decode_loop(self, logits, cache, mask, next_pos, max_new: int):
        """Greedy decoding from the prefill's last logits. Returns (B, n) ids, n and the (B,)
        sum and count of the chosen tokens' log-probabilities (up to end-of-sequence)."""
        torch = self.torch
        B = logits.shape[0]
        eos = torch.tensor(self.eos_ids or [-1], device=self.device)
        out = torch.full((B, max_new), self.pad_id, dtype=torch.long, device=self.device)
        done = torch.zeros(B, dtype=torch.bool, device=self.device)
        lp_sum = torch.zeros(B, dtype=torch.float32, device=self.device)
        lp_n = torch.zeros(B, dtype=torch.float32, device=self.device)
        n = 0
        pos = next_pos
        for step in range(max_new):
            nxt = logits.argmax(-1)
            lp = torch.log_softmax(logits.float(), -1).gather(1, nxt[:, None])[:, 0]
            live = (~done).float()
            lp_sum += lp * live
            lp_n += live
            out[:, step] = torch.where(done, torch.full_like(nxt, self.pad_id), nxt)
            done = done | torch.isin(nxt, eos)
            n = step + 1
            if step == max_new - 1 or bool(done.all()):
                break
            mask = torch.cat([mask, mask.new_ones((B, 1))], 1)
            o = self.model(
                input_ids=nxt[:, None], attention_mask=mask,
                position_ids=self._expand(pos[:, None]), past_key_values=cache, use_cache=True,
            )
            pos = pos + 1
            cache = o.past_key_values
            logits = o.logits[:, -1]
        return out[:, :n], n, (lp_sum.cpu(), lp_n.cpu())

    def _prefill(self, enc: Encoded, rows: list[int]):
        """One left-padded forward pass of ``rows`` with their image features; returns the
        last logits, the cache, the mask and the next positions."""
        x, mask = self._left_pad([enc.ids[r] for r in rows])
        tok = self._token_inputs(enc, rows)
        img = self._rows_image_inputs(enc, rows)
        pos, nxt = self._positions(x, mask, tok, img)
        o = self.model(
            input_ids=x, attention_mask=mask, position_ids=pos, use_cache=True, logits_to_keep=1,
            mm_encoder_outputs={"image": self._rows_features(enc, rows)}, **tok,
        )
        return o.logits[:, -1], o.past_key_values, mask, nxt

    def _run_batched(self, enc: Encoded, rows: list[int], max_new: int):
        self._sync()
        t0 = time.perf_counter()
        logits, cache, mask, nxt = self._prefill(enc, rows)
        self._sync()
        t1 = time.perf_counter()
        gen, steps, lps = self._decode_loop(logits, cache, mask, nxt, max_new)
        self._sync()
        t2 = time.perf_counter()
        return gen, BatchTiming((t1 - t0) * 1e3, (t2 - t1) * 1e3, steps, {"logprobs": lps})

    def _run_prefix(self, enc: Encoded, P: int, max_new: int):
        torch = self.torch
        B = len(enc.ids)
        self._sync()
        t0 = time.perf_counter()
        prefix = torch.tensor([enc.ids[0][:P]], dtype=torch.long, device=self.device)
        pmask = torch.ones((1, P), dtype=torch.long, device=self.device)
        tok = self._token_inputs(enc, [0], slice(0, P))
        pos, nxt = self._positions(prefix, pmask, tok, enc.images[0].inputs)
        o = self.model(
            input_ids=prefix, attention_mask=pmask, position_ids=pos, use_cache=True,
            logits_to_keep=1, mm_encoder_outputs={"image": self.image_features(enc.images[0])},
            **tok,
        )
        cache = o.past_key_values
        if B > 1:
            cache.batch_repeat_interleave(B)  # the prefix KV, shared by every query
        suf, smask = self._left_pad([s[P:] for s in enc.ids])
        mask = torch.cat([smask.new_ones((B, P)), smask], 1)
        spos = int(nxt[0]) + (smask.cumsum(-1) - 1).clamp(min=0)
        o = self.model(
            input_ids=suf, attention_mask=mask, position_ids=self._expand(spos),
            past_key_values=cache, use_cache=True, logits_to_keep=1,
        )
        self._sync()
        t1 = time.perf_counter()
        gen, steps, lps = self._decode_loop(o.logits[:, -1], o.past_key_values, mask,
                                            spos[:, -1] + 1, max_new)
        self._sync()
        t2 = time.perf_counter()
        extra = {"prefix": P, "logprobs": lps}
        return gen, BatchTiming((t1 - t0) * 1e3, (t2 - t1) * 1e3, steps, extra)

    def _run_encoder_decoder(self, enc: Encoded, rows: list[int], max_new: int):
        """model.generate() on right-padded encoder inputs (encoder positions are absolute:
        left padding would shift them) with the image features computed once."""
        from transformers import LogitsProcessor, LogitsProcessorList

        torch = self.torch
        times: list[float] = []

        class _FirstCall(LogitsProcessor):
            def __call__(self, input_ids, scores):
                if not times:
                    times.append(time.perf_counter())
                return scores

        x, mask = self._pad([enc.ids[r] for r in rows], self.pad_id, left=False)
        until = {} if self.eos_ids else {"min_new_tokens": max_new}  # no end token: all steps
        self._sync()
        t0 = time.perf_counter()
        out = self.model.generate(
            input_ids=x, attention_mask=mask, max_new_tokens=max_new, do_sample=False,
            num_beams=1, pad_token_id=self.pad_id, eos_token_id=self.eos_ids or None,
            logits_processor=LogitsProcessorList([_FirstCall()]),
            mm_encoder_outputs={"image": self._rows_features(enc, rows)},
            return_dict_in_generate=True, output_scores=True, **until,
        )
        self._sync()
        t2 = time.perf_counter()
        t1 = times[0] if times else t2
        n = len(out.scores)
        gen = out.sequences[:, -n:] if n else out.sequences[:, :0]
        lp_sum = torch.zeros(len(rows))
        lp_n = torch.zeros(len(rows))
        done = torch.zeros(len(rows), dtype=torch.bool)
        for s, sc in enumerate(out.scores):
            tokv = gen[:, s].cpu()
            lp = torch.log_softmax(sc.float().cpu(), -1).gather(1, tokv[:, None])[:, 0]
            live = (~done).float()
            lp_sum += torch.nan_to_num(lp, neginf=0.0) * live
            lp_n += live
            done |= torch.isin(tokv, torch.tensor(self.eos_ids or [-1]))
        return gen, BatchTiming((t1 - t0) * 1e3, (t2 - t1) * 1e3, gen.shape[1],
                                {"logprobs": (lp_sum, lp_n)})

    @staticmethod
    def common_prefix(seqs: list[list[int]]) -> int:
        """Length of the longest common prefix of the token lists."""
        if not seqs:
            return 0
        a = np.zeros((len(seqs), min(len(s) for s in seqs)), dtype=np.int64)
        for i, s in enumerate(seqs):
            a[i] = s[: a.shape[1]]
        diff = np.any(a != a[0], axis=0)
        return int(np.argmax(diff)) if diff.any() else a.shape[1]

    def _prefix_len(self, enc: Encoded) -> int:
        """Usable shared-prefix length (0 = none): covers every image token, leaves at least
        one suffix token per prompt, and is at least min_prefix_tokens long."""
        if not enc.shared or not self.adapter.causal_prompt or len(enc.ids) < 2:
            return 0  # one prompt: nothing to share within the batch
        P = min(self.common_prefix(enc.ids), min(len(s) for s in enc.ids) - 1)
        last_img = max((i for i, t in enumerate(enc.ids[0]) if t == self.image_token_id),
                       default=-1)
        if P <= last_img or P < self.config.min_prefix_tokens:
            return 0
        return P

