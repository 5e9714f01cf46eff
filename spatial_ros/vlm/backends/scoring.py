"""Answer scoring for ``TransformersBackend``: the log-probability of each of several complete
answers to one prompt, with the prompt (and its image) run once."""

from __future__ import annotations

import numpy as np

from spatial_ros.errors import ConfigError
from spatial_ros.vlm.backends.inputs import Encoded


class ChoiceScoring:
    """Mixin of TransformersBackend (see ``VLMBackend.score_choices``)."""

    def score_choices(self, image, prompt, choices):
        """See :meth:`VLMBackend.score_choices`. The prompt (with the image) is run once; its KV
        cache is expanded to one row per choice and the choices (right-padded, positions
        continuing the prompt's) are scored in one batch. Encoder-decoder models run the
        encoder on the prompt and the decoder on each choice."""
        if not choices:
            return []
        torch = self.torch
        toks = [self.tokenizer(c, add_special_tokens=False)["input_ids"] for c in choices]
        if any(not t for t in toks):
            raise ConfigError("score_choices: every choice must have at least one token")
        with torch.inference_mode():
            enc = self.encode([np.asarray(image)], [prompt])
            B, L = len(toks), max(len(t) for t in toks)
            suf, smask = self._pad(toks, self.pad_id, left=False)
            if self.adapter.encoder_decoder:
                logits, n0 = self._choice_logits_encdec(enc, suf, smask)
            else:
                logits1, cache, mask, nxt = self._prefill(enc, [0])
                if B > 1:
                    cache.batch_repeat_interleave(B)
                pos = int(nxt[0]) + torch.arange(L, device=self.device)[None].expand(B, -1)
                o = self.model(
                    input_ids=suf, attention_mask=torch.cat([mask.expand(B, -1), smask], 1),
                    position_ids=self._expand(pos), past_key_values=cache, use_cache=False,
                )
                logits = torch.cat([logits1.expand(B, -1)[:, None], o.logits], 1)
                n0 = 0
            lp = torch.log_softmax(logits.float(), -1)
            eos = torch.tensor(self.eos_ids or [self.pad_id], device=self.device)
            out = []
            for i, t in enumerate(toks):
                n = len(t)
                tok_lp = lp[i, n0 + torch.arange(n, device=self.device),
                            torch.tensor(t, device=self.device)].sum()
                end_lp = torch.logsumexp(lp[i, n0 + n, eos], 0)  # the answer ends after it
                out.append(float(tok_lp + end_lp))
        return out

    def _choice_logits_encdec(self, enc: Encoded, suf, smask):
        """Decoder logits of every choice (after the decoder's start tokens) for enc-dec."""
        torch = self.torch
        B = suf.shape[0]
        start = self._decoder_start()
        dec = torch.cat([torch.tensor([start], device=self.device).expand(B, -1), suf], 1)
        dmask = torch.cat([smask.new_ones((B, len(start))), smask], 1)
        x, mask = self._pad([enc.ids[0]] * B, self.pad_id, left=False)
        o = self.model(input_ids=x, attention_mask=mask, decoder_input_ids=dec,
                       decoder_attention_mask=dmask, use_cache=False,
                       mm_encoder_outputs={"image": self._rows_features(enc, [0] * B)})
        return o.logits, len(start) - 1

    def _decoder_start(self) -> list[int]:
        cfg = self.model.config
        tc = cfg.get_text_config() if hasattr(cfg, "get_text_config") else cfg
        start = [int(getattr(tc, "decoder_start_token_id", None) or getattr(
            cfg, "decoder_start_token_id", 0) or 0)]
        fb = getattr(self.model.generation_config, "forced_bos_token_id", None)
        return start + ([int(fb)] if fb is not None else [])

