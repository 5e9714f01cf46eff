"""Settings of a served VLM (an OpenAI-compatible ``/v1/chat/completions`` server: vLLM, SGLang,
Ollama, llama.cpp's server).

One definition of each setting: ``PerceptionConfig`` (node parameters, YAML, CLI) declares the
same fields with :func:`served_param` and builds a :class:`ServedConfig` from them.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass

from spatial_ros.config import param
from spatial_ros.errors import ConfigError

BACKENDS = ("transformers", "openai")
IMAGE_FORMATS = ("jpeg", "png")


@dataclass(frozen=True)
class ServedConfig:
    """How to reach a served model and what to send it. The API key itself is never stored
    here (nor logged): only the name of the environment variable that holds it."""

    server_url: str = param(
        "http://127.0.0.1:8000/v1", "backend openai: base URL of the OpenAI-compatible server "
        "(/v1 is appended when missing), e.g. http://127.0.0.1:8000/v1 (vLLM, SGLang), "
        "http://127.0.0.1:11434/v1 (Ollama), http://127.0.0.1:8080/v1 (llama.cpp)")
    served_model: str = param(
        "", "backend openai: the model name the server serves ('' = the first model the "
        "server lists at /v1/models)")
    api_key_env: str = param(
        "SPATIAL_ROS_API_KEY", "backend openai: NAME of the environment variable holding the "
        "API key, sent as 'Authorization: Bearer ...' (unset or empty = no key); the key is "
        "never logged")
    family: str = param(
        "auto", "prompt/answer format of the model: auto (transformers: from the model's "
        "config.json; openai: guessed from served_model, Qwen2/2.5/3-VL names, else cube-llm), "
        "cube-llm (our default model), qwen-json, or (openai) a transformers model_type such "
        "as qwen2_5_vl")
    image_max_side: int = param(
        1024, "backend openai: images are resized (aspect kept) so that their longer side is "
        "at most this before sending, px (0 = send the full image)")
    image_format: str = param(
        "jpeg", "backend openai: image encoding of the data URL: jpeg (small) or png "
        "(lossless: the server sees exactly the pixels a local model would)")
    jpeg_quality: int = param(90, "backend openai: JPEG quality of the sent images, 1..100")
    timeout_s: float = param(
        30.0, "backend openai: longest wait for one answer (s); a request that times out is "
        "not retried (the server may still be working on it) and the frame is skipped")
    retries: int = param(
        2, "backend openai: extra attempts after a connection error, HTTP 5xx or 429 "
        "(exponential backoff from 0.5 s, Retry-After honoured up to 8 s); 4xx is not retried")
    concurrency: int = param(
        8, "backend openai: most requests in flight at once (a frame's queries are sent "
        "concurrently; the server batches them)")
    top_logprobs: int = param(
        20, "backend openai: alternatives per answer token asked for when scoring candidate "
        "tags from log-probabilities (0 = never ask for log-probabilities: no answer scores, "
        "no tag scoring)")

    def __post_init__(self) -> None:
        bad = []
        if not re.match(r"^https?://[^/\s]+", self.server_url):
            bad.append(f"server_url={self.server_url!r} (http://HOST:PORT/v1)")
        if self.api_key_env and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", self.api_key_env):
            bad.append(f"api_key_env={self.api_key_env!r} (an environment variable NAME, not "
                       "the key itself)")
        if self.image_max_side < 0:
            bad.append(f"image_max_side={self.image_max_side} (>= 0; 0 = full size)")
        if self.image_format not in IMAGE_FORMATS:
            bad.append(f"image_format={self.image_format!r} ({' or '.join(IMAGE_FORMATS)})")
        if not 1 <= self.jpeg_quality <= 100:
            bad.append(f"jpeg_quality={self.jpeg_quality} (1..100)")
        if not self.timeout_s > 0:
            bad.append(f"timeout_s={self.timeout_s} (> 0 s)")
        if self.retries < 0:
            bad.append(f"retries={self.retries} (>= 0)")
        if self.concurrency < 1:
            bad.append(f"concurrency={self.concurrency} (>= 1)")
        if not 0 <= self.top_logprobs <= 20:
            bad.append(f"top_logprobs={self.top_logprobs} (0..20, the OpenAI API's limit)")
        if bad:
            raise ConfigError("invalid served-model settings: " + "; ".join(bad))

    @property
    def base_url(self) -> str:
        """``server_url`` without a trailing slash, ending in /v1."""
        url = self.server_url.rstrip("/")
        return url if re.search(r"/v\d+$", url) else url + "/v1"


SERVED_FIELDS = {f.name: f for f in dataclasses.fields(ServedConfig)}


def served_param(name: str):
    """A config field with the same name, default and help as ServedConfig's (one definition
    for PerceptionConfig and the reward annotator)."""
    f = SERVED_FIELDS[name]
    return param(f.default, f.metadata["help"])


def served_config_from(cfg) -> ServedConfig:
    """The ServedConfig of any config object carrying ServedConfig's field names."""
    return ServedConfig(**{k: getattr(cfg, k) for k in SERVED_FIELDS if hasattr(cfg, k)})
