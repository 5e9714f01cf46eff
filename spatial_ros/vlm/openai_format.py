"""The OpenAI chat-completions wire format, as the served backend uses it: images as data URLs,
our conversations as chat messages, replies parsed without raising, and answer-choice
log-probabilities read off ``top_logprobs`` (vLLM, SGLang, Ollama and llama.cpp's server all
speak it; see ``spatial_ros.vlm.served``)."""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from spatial_ros.errors import ConfigError
from spatial_ros.vlm.backend import ModelAdapter
from spatial_ros.vlm.prompts import Conversation


@dataclass
class Completion:
    """One parsed chat completion.

    Attributes:
        text: the answer ('' when the reply was malformed).
        steps: the answer's tokens as (token, log-probability, [(alternative, log-probability),
            ...]) when the server returned log-probabilities, else None.
        prompt_tokens, completion_tokens: the server's usage counts (0 when absent).
        cached_tokens: prompt tokens the server took from its prefix cache (0 when absent).
        malformed: why the reply is not a usable completion ('' when it is).
    """

    text: str
    steps: list[tuple[str, float, list[tuple[str, float]]]] | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    malformed: str = ""


# ----------------------------------------------------------------------------------------------
# Request and reply formats
# ----------------------------------------------------------------------------------------------


def image_data_url(image: np.ndarray, max_side: int = 0, fmt: str = "jpeg",
                   quality: int = 90) -> tuple[str, tuple[int, int]]:
    """An (H, W, 3) uint8 RGB image as a ``data:image/...;base64,`` URL, resized (area
    interpolation, aspect kept) so that its longer side is at most ``max_side`` px (0 = as is).
    Returns the URL and the (height, width) sent."""
    import cv2

    a = np.asarray(image)
    if a.ndim != 3 or a.shape[2] != 3 or a.dtype != np.uint8:
        raise ConfigError(f"images must be (H, W, 3) uint8 RGB, got {a.shape} {a.dtype}")
    h, w = a.shape[:2]
    if max_side and max(h, w) > max_side:
        s = max_side / max(h, w)
        size = (max(1, round(w * s)), max(1, round(h * s)))
        a = cv2.resize(a, size, interpolation=cv2.INTER_AREA)
    bgr = np.ascontiguousarray(a[:, :, ::-1])
    if fmt == "png":
        ok, buf = cv2.imencode(".png", bgr)
        mime = "image/png"
    else:
        ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
        mime = "image/jpeg"
    if not ok:
        raise ConfigError(f"could not encode a {a.shape} image as {fmt}")
    return f"data:{mime};base64,{base64.b64encode(buf.tobytes()).decode('ascii')}", a.shape[:2]


def chat_messages(adapter: ModelAdapter, conversation: Conversation,
                  image_url: str) -> list[dict[str, Any]]:
    """The family adapter's chat messages with each image placeholder replaced by an
    ``image_url`` part; text-only messages become plain strings (what every server accepts)."""
    out = []
    for msg in adapter.messages(conversation):
        content = msg.get("content")
        if isinstance(content, list):
            parts = []
            for part in content:
                if part.get("type") == "image":
                    parts.append({"type": "image_url", "image_url": {"url": image_url}})
                else:
                    parts.append(part)
            if all(p.get("type") == "text" for p in parts):
                content = "".join(p.get("text", "") for p in parts)
            else:
                content = parts
        out.append({**msg, "content": content})
    return out


def parse_completion(body: bytes | str) -> Completion:
    """A ``/v1/chat/completions`` reply -> Completion. Never raises: a reply that is not a
    completion gives ``Completion('', malformed=<why>)``."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return Completion("", malformed="reply is not JSON")
    if not isinstance(data, dict):
        return Completion("", malformed="reply is not a JSON object")
    choices = data.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        return Completion("", malformed="reply has no choices")
    message = choices[0].get("message")
    text = message.get("content") if isinstance(message, dict) else None
    if not isinstance(text, str):
        return Completion("", malformed="reply has no message content")
    usage = data.get("usage") if isinstance(data.get("usage"), dict) else {}
    details = usage.get("prompt_tokens_details")
    cached = details.get("cached_tokens") if isinstance(details, dict) else None
    return Completion(
        text=text.strip(),
        steps=_steps(choices[0].get("logprobs")),
        prompt_tokens=_int(usage.get("prompt_tokens")),
        completion_tokens=_int(usage.get("completion_tokens")),
        cached_tokens=_int(cached),
    )


def _int(v) -> int:
    return int(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else 0


def _steps(lp) -> list[tuple[str, float, list[tuple[str, float]]]] | None:
    """OpenAI ``logprobs.content`` -> [(token, logprob, [(alternative, logprob)])], or None."""
    content = lp.get("content") if isinstance(lp, dict) else None
    if not isinstance(content, list) or not content:
        return None
    out = []
    for item in content:
        try:
            tok, val = str(item["token"]), float(item["logprob"])
            alts = [(str(a["token"]), float(a["logprob"])) for a in item.get("top_logprobs") or []]
        except (KeyError, TypeError, ValueError):
            return None
        out.append((tok, val, alts))
    return out


def choice_logprobs(steps: list[tuple[str, float, list[tuple[str, float]]]],
                    choices: Sequence[str]) -> list[float]:
    """Log-probability of each choice as the answer, read off the greedy answer's tokens and
    their top alternatives (text matched, leading whitespace ignored).

    Exact when the choice follows the greedy answer and leaves it at most at its last token
    (summed over the tokenizations found); otherwise an upper bound: the probability of the
    greedy prefix it shares times that of its first token off that path (or of the least likely
    listed alternative when its token is not listed). The end of the answer is not scored:
    servers do not report the stop token's probability.
    """
    out = []
    for choice in choices:
        target = choice.strip()
        exact: list[float] = []
        bound = -math.inf
        acc_text, acc_lp = "", 0.0
        for tok, lp, alts in steps:
            options = dict(alts)
            options.setdefault(tok, lp)
            follows_greedy = False
            for alt, alt_lp in options.items():
                text = (acc_text + alt).lstrip()
                if text == target:
                    exact.append(acc_lp + alt_lp)
                elif target.startswith(text):  # a proper prefix ('' = whitespace so far)
                    if alt == tok:
                        follows_greedy = True
                    else:
                        bound = max(bound, acc_lp + alt_lp)
            if not follows_greedy:
                bound = max(bound, acc_lp + min(options.values()))
                break
            acc_text, acc_lp = acc_text + tok, acc_lp + lp
        else:
            bound = max(bound, acc_lp)  # the answer ended inside the choice
        out.append(float(np.logaddexp.reduce(exact)) if exact else bound)
    return out
