"""Opt-in (`make test-vllm`): vLLM, in its own environment (.venv-vllm, built by
scripts/vllm_env.sh), serves the default model on CPU; the served backend must give the same
answers and boxes as the transformers backend, and a repeated frame must hit vLLM's prefix cache.

Skipped unless SPATIAL_ROS_VLLM_PYTHON names that environment's python. Server settings from
issue 19: ``python -m vllm.entrypoints.openai.api_server`` (the ``vllm`` console script fails a
metadata lookup), ``--block-size 32`` (CPU prefix caching never fills the default 128-token
block with our prompts), VLLM_CACHE_ROOT / TORCHINDUCTOR_CACHE_DIR / TMPDIR set; float32 like
the transformers backend on CPU; PNG images at full size (the pixels a local model sees).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from spatial_ros.perception import DEFAULT_MODEL_DIR, PerceptionConfig, PerceptionPipeline

pytestmark = pytest.mark.vllm

VLLM_PYTHON = os.environ.get("SPATIAL_ROS_VLLM_PYTHON", "")
START_TIMEOUT_S = float(os.environ.get("SPATIAL_ROS_VLLM_START_S", "900"))
NAME = "spatial-ros-default"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def vllm_server(tmp_path_factory):
    if not VLLM_PYTHON or not Path(VLLM_PYTHON).is_file():
        pytest.skip("needs vLLM's own environment: run `make test-vllm`")
    if not (DEFAULT_MODEL_DIR / "model.safetensors").is_file():
        pytest.skip("models/default is not trained here")
    import httpx

    work = tmp_path_factory.mktemp("vllm")
    for d in ("cache", "inductor", "tmp"):
        (work / d).mkdir()
    env = {**os.environ, "VLLM_CACHE_ROOT": str(work / "cache"),
           "TORCHINDUCTOR_CACHE_DIR": str(work / "inductor"), "TMPDIR": str(work / "tmp"),
           "VLLM_CPU_KVCACHE_SPACE": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    env.pop("PYTHONPATH", None)  # nothing of the main environment inside vLLM's
    port = _free_port()
    cmd = [VLLM_PYTHON, "-m", "vllm.entrypoints.openai.api_server", "--model",
           str(DEFAULT_MODEL_DIR), "--served-model-name", NAME, "--host", "127.0.0.1",
           "--port", str(port), "--dtype", "float32", "--max-model-len", "1024",
           "--enable-prefix-caching", "--block-size", "32", "--enable-prompt-tokens-details",
           "--chat-template-content-format", "openai"]
    log_path = work / "vllm.log"
    log = open(log_path, "w")  # noqa: SIM115 - closed in teardown
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)  # its own process group, ended below
    url = f"http://127.0.0.1:{port}/v1"
    t0 = time.monotonic()
    try:
        while True:
            if proc.poll() is not None:
                pytest.fail(f"vLLM exited ({proc.returncode}); log tail:\n"
                            + log_path.read_text()[-4000:])
            try:
                if httpx.get(url + "/models", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() - t0 > START_TIMEOUT_S:
                pytest.fail(f"vLLM not up after {START_TIMEOUT_S:.0f} s; log tail:\n"
                            + log_path.read_text()[-4000:])
            time.sleep(2)
        print(f"\nvLLM up in {time.monotonic() - t0:.0f} s at {url}")
        yield url
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        log.close()


@pytest.fixture(scope="module")
def frames():
    from spatial_ros.perception_metrics import grounding_queries
    from spatial_ros.sim import SimConfig, iter_frames

    out = []
    for seed in (104, 7):
        for sf in iter_frames(SimConfig("tabletop", seed=seed, frames=2)):
            out.append((sf.sensor_frame(), grounding_queries(sf.truth)))
    return out


def _run(pipe: PerceptionPipeline, frames):
    rows, ms = [], []
    for frame, queries in frames:
        t0 = time.perf_counter()
        res = pipe.process(frame, queries)
        ms.append((time.perf_counter() - t0) * 1e3)
        rows.append([(o.query, o.raw_text, o.source, np.round(o.box.center, 6).tolist(),
                      np.round(o.box.size, 6).tolist()) for o in res.objects])
    return rows, ms


def test_vllm_serves_the_default_model_with_the_same_boxes(vllm_server, frames):
    from spatial_ros.vlm.served import served_backend_for

    local = PerceptionPipeline(PerceptionConfig(relation_pairs=[], device="cpu"))
    local.load()
    want, local_ms = _run(local, frames)
    local.unload()

    cfg = PerceptionConfig(relation_pairs=[], backend="openai", server_url=vllm_server,
                           served_model=NAME, image_format="png", image_max_side=0)
    backend = served_backend_for(cfg, DEFAULT_MODEL_DIR)
    cached: list[int] = []
    generate = backend.generate

    def recording(*args, **kw):
        res = generate(*args, **kw)
        cached.extend(r.prefix_tokens for r in res)
        return res

    backend.generate = recording
    served = PerceptionPipeline(cfg, backend=backend)
    served.load()
    got, served_ms = _run(served, frames)
    n_first = len(cached)
    again, _ = _run(served, frames[:1])  # the same frame once more: its prefix is cached
    served.unload()
    backend.close()

    n_q = sum(len(q) for _, q in frames)
    n_same = sum(a == b for fa, fb in zip(want, got, strict=True)
                 for a, b in zip(fa, fb, strict=False))
    print(f"\n{len(frames)} frames, {n_q} queries: {n_same} answers+boxes identical; "
          f"transformers {np.median(local_ms):.0f} ms/frame, vLLM {np.median(served_ms):.0f} "
          f"ms/frame (median); cached prompt tokens on the repeated frame: "
          f"{cached[n_first:]}")
    assert got == want  # greedy answers, sources and boxes identical
    assert again == want[:1]
    assert min(cached[n_first:]) > 0  # prefix caching hit on the repeated frame
