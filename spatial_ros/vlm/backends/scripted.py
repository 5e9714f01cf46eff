"""A backend that returns scripted texts instead of running a model (tests of callers)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from spatial_ros.errors import ConfigError
from spatial_ros.vlm.backends.base import (
    GenerationResult,
    VLMBackend,
    as_conversation,
    check_batch,
)
from spatial_ros.vlm.families.base import ModelAdapter
from spatial_ros.vlm.prompts import Conversation, conversation_text


class ScriptedBackend(VLMBackend):
    """Returns given texts instead of running a model.

    Args:
        responses: a list of texts (returned in order, cycling), a dict mapping a substring of
            the last user turn to a text (first match wins; key "" is the default), or a
            callable ``(conversation, image) -> text``.
        adapter: the model family to emulate (default Cube-LLM).
        choice_scores: ``(conversation, choices) -> log-probabilities`` for ``score_choices``
            (None: scoring is not supported, like a backend without a model).

    ``calls`` records every (conversation, image) it was asked about.
    """

    def __init__(
        self,
        responses: Sequence[str] | dict[str, str] | Callable[[Conversation, np.ndarray], str],
        adapter: ModelAdapter | None = None,
        choice_scores: Callable[[Conversation, list[str]], Sequence[float]] | None = None,
    ) -> None:
        self.responses = responses
        self.adapter = adapter or ModelAdapter()
        self.choice_scores = choice_scores
        self.calls: list[tuple[Conversation, np.ndarray]] = []
        self._i = 0

    def _answer(self, conv: Conversation, image: np.ndarray) -> str:
        r = self.responses
        if callable(r):
            return r(conv, image)
        if isinstance(r, dict):
            last = next((t.text for t in reversed(conv) if t.role == "user"), "")
            for key, text in r.items():
                if key and key in last:
                    return text
            if "" in r:
                return r[""]
            raise ConfigError(f"ScriptedBackend has no response for {last!r}")
        if not r:
            raise ConfigError("ScriptedBackend has no responses")
        text = r[self._i % len(r)]
        self._i += 1
        return text

    def generate(self, images, prompts, max_new_tokens=64, *, mode="auto"):
        check_batch(images, prompts)
        out = []
        for i, p in enumerate(prompts):
            conv = as_conversation(p)
            img = np.asarray(images[0] if len(images) == 1 else images[i])
            self.calls.append((conv, img))
            text = self._answer(conv, img)
            n = len(conversation_text(conv).split())
            out.append(
                GenerationResult(text, n, len(text.split()), batch_size=len(prompts),
                                 model_image_hw=img.shape[:2])
            )
        return out

    def score_choices(self, image, prompt, choices):
        if self.choice_scores is None:
            return super().score_choices(image, prompt, choices)
        conv = as_conversation(prompt)
        self.calls.append((conv, np.asarray(image)))
        return [float(x) for x in self.choice_scores(conv, list(choices))]


FakeBackend = ScriptedBackend
