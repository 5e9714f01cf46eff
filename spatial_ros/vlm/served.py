"""A VLM served over HTTP: the OpenAI-compatible ``/v1/chat/completions`` API that vLLM, SGLang,
Ollama and llama.cpp's server speak.

``ServedBackend`` implements ``VLMBackend`` (same answers, parsed by the same family adapter as a
local model):

- each image goes once per frame as a data URL (resized to ``image_max_side``, JPEG or PNG), each
  query as one request; a frame's queries are sent concurrently (``concurrency`` in flight; the
  server batches them and, with prefix caching, reuses the shared image/candidate prefix);
- greedy decoding (temperature 0); the answer's token log-probabilities, when the server returns
  them, give its score, and ``score_choices`` reads candidate-tag scores from ``top_logprobs``;
- connection errors, HTTP 5xx and 429 are retried with exponential backoff; 4xx is not (the
  request itself is wrong: the error says what to fix); a timed-out request is not retried;
- a frame whose requests cannot be answered raises ``ServerUnavailable`` (a ``ModelError``: the
  node skips the frame and stays up); ``status()`` says whether the server is reachable, how many
  requests failed in a row and the last error's class, for diagnostics. While the server is down
  each frame costs one attempt per request (no backoff), so recovery is seen on the next frame;
- a reply that is not a completion (bad JSON, no choices, no text) becomes an empty answer: the
  engine counts it as a parse failure, ``status()`` as a malformed response.

The API key is read from the environment variable named by ``api_key_env`` at each request; it is
never stored on the backend, logged, or put in an exception or a diagnostic.

The wire format (data URLs, messages, reply parsing, choice log-probabilities) is
``spatial_ros.vlm.openai_format``. Written on httpx (a connection pool shared by worker threads)
and a thread pool rather than asyncio so that a node's worker thread can call ``generate``
without owning an event loop.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import re
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from spatial_ros.errors import ConfigError, ModelError
from spatial_ros.vlm.backend import GenerationResult, ModelAdapter, VLMBackend, adapter_for
from spatial_ros.vlm.openai_format import (
    Completion,
    chat_messages,
    choice_logprobs,
    image_data_url,
    parse_completion,
)
from spatial_ros.vlm.prompts import Conversation, Turn
from spatial_ros.vlm.served_config import ServedConfig

__all__ = ["BackendStatus", "Completion", "ServedBackend", "ServedError", "ServerRejected",
           "ServerUnavailable", "choice_logprobs", "image_data_url", "served_adapter",
           "served_backend_for"]

log = logging.getLogger(__name__)

BACKOFF_S = 0.5  # first retry delay; doubled per attempt
MAX_BACKOFF_S = 8.0  # longest delay, also the cap on a server's Retry-After


class ServedError(ModelError):
    """The served model could not answer (the frame is skipped; the node stays up)."""


class ServerUnavailable(ServedError):
    """Connection refused/reset, timeout, HTTP 5xx or 429 after the retries."""


class ServerRejected(ServedError):
    """HTTP 4xx: the server refused the request (URL, model name, key or request content)."""


@dataclass
class BackendStatus:
    """Health of the served backend, for diagnostics.

    Attributes:
        state: "idle" (no request yet), "ok" (the last request was answered), "unreachable"
            (connection error, timeout, 5xx or 429 after the retries) or "rejected" (4xx).
        consecutive_failures: failed requests since the last answered one.
        last_error: class of the last failure ("ConnectError", "ReadTimeout", "HTTP 503"...).
        requests, failed_requests, retries, timeouts, malformed_responses: counts since start.
        last_request_ms: wall time of the last answered request.
    """

    state: str = "idle"
    consecutive_failures: int = 0
    last_error: str = ""
    requests: int = 0
    failed_requests: int = 0
    retries: int = 0
    timeouts: int = 0
    malformed_responses: int = 0
    last_request_ms: float = float("nan")


# ----------------------------------------------------------------------------------------------
# Family
# ----------------------------------------------------------------------------------------------

# served model name (lower case) -> transformers model_type, for family "auto"
_NAME_TYPES = (
    (re.compile(r"qwen3[-_.]?vl"), "qwen3_vl"),
    (re.compile(r"qwen2[-_.]?5[-_.]?vl"), "qwen2_5_vl"),
    (re.compile(r"qwen2[-_.]?vl"), "qwen2_vl"),
)


def served_adapter(family: str, served_model: str = "") -> ModelAdapter:
    """The family adapter of a served model: ``family`` names an adapter family or a
    transformers model_type; "auto" guesses from the served model's name (cube-llm, our
    default model's format, when the name says nothing)."""
    if family == "auto":
        name = served_model.lower()
        model_type = next((t for rx, t in _NAME_TYPES if rx.search(name)), None)
        return adapter_for(model_type, "auto") if model_type else adapter_for("", "cube-llm")
    try:
        return adapter_for(family, family)
    except ConfigError:
        pass
    from spatial_ros.vlm.families import family_names

    for name in family_names():  # a transformers model_type of a known family
        try:
            cls = adapter_for("", name)
        except ConfigError:
            continue
        if family in getattr(cls, "model_types", ()):
            return cls
    raise ConfigError(
        f"family={family!r} is not a model family nor a model_type with an answer format; use "
        "auto, cube-llm, qwen-json or a model_type such as qwen2_5_vl"
    )


def _model_input_hw(adapter: ModelAdapter, sent_hw: tuple[int, int]) -> tuple[int, int] | None:
    """What the server's model sees of an image of ``sent_hw``, for adapters whose coordinates
    are pixels of the model's resized input (Qwen2.5-VL: the family module's smart_resize);
    None for coordinates relative to the image (they need no model size)."""
    if getattr(adapter, "coord_mode", None) != "resized_pixels":
        return None
    resize = getattr(sys.modules.get(type(adapter).__module__), "smart_resize", None)
    return resize(*sent_hw) if resize else None


# ----------------------------------------------------------------------------------------------
# The backend
# ----------------------------------------------------------------------------------------------


class ServedBackend(VLMBackend):
    """A model served by an OpenAI-compatible server (see the module docstring).

    Args:
        config: a ServedConfig (or None for the defaults).
        meta_dir: a local folder holding the served model's ``spatial_ros_vlm.json`` (the codec
            and candidate-list settings it was trained with; the engine reads it), e.g. our
            default model's folder when the server serves it; None: none.
        **overrides: ServedConfig fields to change.

    Nothing is sent before the first ``generate``: a server that is down at start-up does not
    stop a node from starting.
    """

    def __init__(self, config: ServedConfig | None = None, *,
                 meta_dir: str | Path | None = None, **overrides: Any) -> None:
        import httpx

        config = config or ServedConfig()
        if overrides:
            unknown = sorted(set(overrides) - {f.name for f in dataclasses.fields(config)})
            if unknown:
                raise ConfigError(f"unknown served-model option(s) {unknown}")
            config = dataclasses.replace(config, **overrides)
        self.config = config
        self.adapter = served_adapter(config.family, config.served_model)
        self._httpx = httpx
        for name in ("httpx", "httpcore"):  # one INFO line per request otherwise (8 per frame)
            if logging.getLogger(name).level == logging.NOTSET:
                logging.getLogger(name).setLevel(logging.WARNING)
        self._url = config.base_url
        timeout = httpx.Timeout(config.timeout_s, connect=min(config.timeout_s, 5.0))
        limits = httpx.Limits(max_connections=config.concurrency,
                              max_keepalive_connections=config.concurrency)
        self._client = httpx.Client(timeout=timeout, limits=limits, trust_env=False)
        self._pool: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()
        self._name_lock = threading.Lock()
        self._status = BackendStatus()
        self._model = config.served_model
        self._logprobs_ok: bool | None = None  # None until a reply tells
        self.info = {"backend": "openai", "server_url": self._url,
                     "served_model": config.served_model or "(first listed)",
                     "family": self.adapter.family}
        if meta_dir is not None and (Path(meta_dir) / "spatial_ros_vlm.json").is_file():
            self.info["model_dir"] = str(meta_dir)

    # -- status ------------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        """A copy of :class:`BackendStatus` as a dict, plus the backend and server URL."""
        with self._lock:
            d = dataclasses.asdict(self._status)
        return {"backend": "openai", "server_url": self._url, **d}

    def _ok(self, ms: float) -> None:
        with self._lock:
            s = self._status
            if s.state not in ("ok", "idle"):
                log.info("VLM server %s answers again (after %d failed requests)", self._url,
                         s.consecutive_failures)
            s.state, s.consecutive_failures, s.last_request_ms = "ok", 0, ms

    def _failed(self, state: str, error: str) -> int:
        with self._lock:
            s = self._status
            s.state, s.last_error = state, error
            s.failed_requests += 1
            s.consecutive_failures += 1
            return s.consecutive_failures

    # -- HTTP ----------------------------------------------------------------------------------

    def _headers(self) -> dict[str, str]:
        key = os.environ.get(self.config.api_key_env, "") if self.config.api_key_env else ""
        return {"Authorization": f"Bearer {key}"} if key else {}

    def _redact(self, text: str) -> str:
        key = os.environ.get(self.config.api_key_env, "") if self.config.api_key_env else ""
        return text.replace(key, "***") if key else text

    def _request(self, method: str, path: str, payload: dict | None = None):
        """One HTTP exchange with retries. Returns the 2xx response; raises ServedError."""
        httpx = self._httpx
        url = self._url + path
        with self._lock:
            down = self._status.state == "unreachable"
            self._status.requests += 1
        attempts = 1 if down else self.config.retries + 1  # probe once while down
        error = ""
        for attempt in range(attempts):
            if attempt:
                with self._lock:
                    self._status.retries += 1
            delay = min(BACKOFF_S * 2 ** attempt, MAX_BACKOFF_S)
            t0 = time.perf_counter()
            try:
                r = self._client.request(method, url, json=payload, headers=self._headers())
            except (httpx.ReadTimeout, httpx.WriteTimeout, httpx.PoolTimeout) as e:
                with self._lock:
                    self._status.timeouts += 1
                n = self._failed("unreachable", type(e).__name__)
                raise ServerUnavailable(
                    f"VLM server {self._url} gave no answer within timeout_s="
                    f"{self.config.timeout_s:g} s ({type(e).__name__}; failed requests in a row: "
                    f"{n}); frame skipped. Raise timeout_s or lower concurrency"
                ) from None
            except httpx.TransportError as e:  # connect errors (incl. timeouts), resets
                error = type(e).__name__
            else:
                if r.status_code < 400:
                    self._ok((time.perf_counter() - t0) * 1e3)
                    return r
                error = f"HTTP {r.status_code}"
                if r.status_code != 429 and r.status_code < 500:
                    self._failed("rejected", error)
                    raise ServerRejected(self._rejection(r)) from None
                delay = self._retry_after(r, delay)
            if attempt + 1 < attempts:
                time.sleep(delay)
        n = self._failed("unreachable", error)
        raise ServerUnavailable(
            f"VLM server {self._url} unreachable ({error} after {attempts} attempt"
            f"{'s' if attempts > 1 else ''}; failed requests in a row: {n}); frame skipped. "
            "Start the server or fix server_url"
        )

    @staticmethod
    def _retry_after(r, default: float) -> float:
        try:
            return min(max(float(r.headers.get("retry-after", "")), 0.0), MAX_BACKOFF_S)
        except ValueError:
            return default

    def _rejection(self, r) -> str:
        """What a 4xx means and what to do, with the server's own message (redacted)."""
        try:
            err = r.json().get("error", r.json())
            msg = err.get("message", "") if isinstance(err, dict) else str(err)
        except (ValueError, AttributeError):
            msg = r.text
        msg = self._redact(" ".join(str(msg).split()))[:300]
        hint = {
            401: f"set the API key in the environment variable {self.config.api_key_env!r}",
            403: f"the key in {self.config.api_key_env!r} may not use this model",
            404: f"check server_url (ends in /v1) and served_model ({self._model!r})",
            413: "lower image_max_side or jpeg_quality",
        }.get(r.status_code, "check served_model, image_max_side and the server's limits")
        return (f"VLM server {self._url} refused the request (HTTP {r.status_code}: {msg}); "
                f"{hint}")

    def model_name(self) -> str:
        """``served_model``, or the first model the server lists (asked once)."""
        with self._name_lock:  # asked once, even by concurrent requests
            if self._model:
                return self._model
            r = self._request("GET", "/models")
            try:
                ids = [m["id"] for m in r.json()["data"]]
            except (ValueError, KeyError, TypeError):
                ids = []
            if not ids:
                raise ServerRejected(f"{self._url}/models lists no model; set served_model")
            self._model = str(ids[0])
            self.info["served_model"] = self._model
            log.info("served model: %s at %s", self._model, self._url)
            if self.config.family == "auto":
                guess = served_adapter("auto", self._model)
                if type(guess) is not type(self.adapter):
                    log.warning("served model %r looks like family %s, but family 'auto' without "
                                "served_model uses %s; set served_model or family", self._model,
                                guess.family, self.adapter.family)
            return self._model

    def complete(self, messages: list[dict], max_tokens: int,
                 top_logprobs: int = 0) -> tuple[Completion, float]:
        """One greedy chat completion -> (Completion, wall ms). Raises ServedError."""
        payload: dict[str, Any] = {
            "model": self.model_name(), "messages": messages, "max_tokens": int(max_tokens),
            "temperature": 0.0, "n": 1, "stream": False,
        }
        if self.config.top_logprobs:
            payload["logprobs"] = True
            if top_logprobs:
                payload["top_logprobs"] = int(top_logprobs)
        t0 = time.perf_counter()
        r = self._request("POST", "/chat/completions", payload)
        c = parse_completion(r.content)
        ms = (time.perf_counter() - t0) * 1e3
        if c.malformed:
            with self._lock:
                self._status.malformed_responses += 1
                n = self._status.malformed_responses
            level = logging.WARNING if n <= 20 or n % 100 == 0 else logging.DEBUG
            log.log(level, "VLM server %s: %s (%d malformed replies so far); counted as an "
                    "unanswered query", self._url, c.malformed, n)
        elif self._logprobs_ok is None and self.config.top_logprobs:
            self._logprobs_ok = c.steps is not None
        return c, ms

    # -- VLMBackend ----------------------------------------------------------------------------

    def generate(self, images, prompts, max_new_tokens=64, *, mode="auto"):
        """See :meth:`VLMBackend.generate`. ``mode="sequential"`` sends one request at a time;
        every other mode sends them concurrently. ``decode_ms`` is the wall time of the whole
        call (shared by its results, like a local batch)."""
        if mode not in ("auto", "prefix", "batched", "sequential"):
            raise ConfigError(f"mode={mode!r}: auto, prefix, batched or sequential")
        if max_new_tokens < 1:
            raise ConfigError(f"max_new_tokens={max_new_tokens} must be >= 1")
        convs = [_conversation(p) for p in prompts]
        if not convs or len(images) not in (1, len(convs)):
            raise ConfigError(f"generate(): {len(images)} images for {len(convs)} prompts; "
                              "pass one shared image or one per prompt (at least one prompt)")
        cfg = self.config
        t0 = time.perf_counter()
        urls: dict[int, tuple[str, tuple[int, int]]] = {}  # one encoding per distinct image
        for im in images:
            if id(im) not in urls:
                urls[id(im)] = image_data_url(im, cfg.image_max_side, cfg.image_format,
                                              cfg.jpeg_quality)
        jobs = []
        for i, conv in enumerate(convs):
            url, sent_hw = urls[id(images[0] if len(images) == 1 else images[i])]
            jobs.append((chat_messages(self.adapter, conv, url), sent_hw))
        preprocess_ms = (time.perf_counter() - t0) * 1e3
        self.model_name()  # resolved once, before the concurrent requests
        if mode == "sequential" or len(jobs) == 1:
            done = [self.complete(m, max_new_tokens) for m, _ in jobs]
        else:
            futures = [self._executor().submit(self.complete, m, max_new_tokens)
                       for m, _ in jobs]
            errors = [f.exception() for f in futures]  # waits for every request
            first = next((e for e in errors if e is not None), None)
            if first is not None:
                raise first
            done = [f.result() for f in futures]
        wall_ms = (time.perf_counter() - t0) * 1e3 - preprocess_ms
        out = []
        for (c, ms), (_, sent_hw) in zip(done, jobs, strict=True):
            score = float("nan")
            if c.steps:
                score = math.exp(sum(lp for _, lp, _ in c.steps) / len(c.steps))
            out.append(GenerationResult(
                text=c.text, prompt_tokens=c.prompt_tokens, new_tokens=c.completion_tokens,
                decode_ms=ms if mode == "sequential" else wall_ms,
                batch_size=1 if mode == "sequential" else len(jobs),
                prefix_tokens=c.cached_tokens,
                model_image_hw=_model_input_hw(self.adapter, sent_hw),
                preprocess_ms=preprocess_ms, score=score,
            ))
        return out

    def score_choices(self, image, prompt, choices):
        """See :meth:`VLMBackend.score_choices`: one greedy request with ``top_logprobs``
        alternatives per token, read by :func:`choice_logprobs` (exact for choices that leave
        the greedy answer at their last token, an upper bound otherwise).

        Raises:
            NotImplementedError: ``top_logprobs`` is 0, or the server returns no
                log-probabilities (callers fall back).
        """
        if not choices:
            return []
        if not self.config.top_logprobs or self._logprobs_ok is False:
            raise NotImplementedError(
                f"VLM server {self._url} gives no token log-probabilities "
                f"(top_logprobs={self.config.top_logprobs}); answer choices cannot be scored")
        cfg = self.config
        url, _ = image_data_url(image, cfg.image_max_side, cfg.image_format, cfg.jpeg_quality)
        msgs = chat_messages(self.adapter, _conversation(prompt), url)
        longest = max(len(c.strip()) for c in choices)
        c, _ = self.complete(msgs, min(longest + 2, 64), top_logprobs=cfg.top_logprobs)
        if not c.steps:
            if not c.malformed:
                self._logprobs_ok = False
            raise NotImplementedError(
                f"VLM server {self._url} returned no token log-probabilities; answer choices "
                "cannot be scored")
        return choice_logprobs(c.steps, list(choices))

    def _executor(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.config.concurrency,
                                                thread_name_prefix="served_vlm")
            return self._pool

    def close(self) -> None:
        """Close the connections and the worker threads."""
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True)
        self._client.close()


def _conversation(prompt) -> Conversation:
    if isinstance(prompt, str):
        return [Turn("user", prompt, image=True)]
    conv = list(prompt)
    if not conv or not all(isinstance(t, Turn) for t in conv):
        raise ConfigError("a prompt must be a string or a non-empty list of Turn")
    return conv


def served_backend_for(cfg, default_meta_dir: str | Path | None = None) -> ServedBackend:
    """The ServedBackend of a node config (PerceptionConfig's ServedConfig fields). Its
    ``model_path`` names the local folder with the served model's ``spatial_ros_vlm.json``;
    when empty, ``default_meta_dir`` (our default model's folder) serves for family cube-llm."""
    from spatial_ros.vlm.served_config import served_config_from

    settings = served_config_from(cfg)
    meta = getattr(cfg, "model_path", "") or None
    if meta is None and served_adapter(settings.family, settings.served_model).family == \
            "cube-llm":
        meta = default_meta_dir
    return ServedBackend(settings, meta_dir=Path(meta).expanduser() if meta else None)
