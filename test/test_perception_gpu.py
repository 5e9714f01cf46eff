"""GPU: the pipeline loads the model on CUDA in bfloat16 and ``unload()`` (what the node calls on
deactivate and shutdown) returns ``torch.cuda.memory_allocated()`` to its value before load."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

pytestmark = pytest.mark.gpu


@pytest.fixture(scope="module")
def cuda():
    if not torch.cuda.is_available():
        pytest.skip("CUDA is not available")
    # cuBLAS keeps a per-handle workspace that lives in the caching allocator once any matmul
    # ran: create it before the baseline so the baseline is what a warm process holds.
    for dtype in (torch.float32, torch.bfloat16):
        a = torch.ones(64, 64, device="cuda", dtype=dtype)
        (a @ a).sum().item()
    del a
    torch.cuda.synchronize()
    return torch.device("cuda")


def test_unload_returns_cuda_memory_to_baseline(cuda, tmp_path):
    from spatial_ros.perception import PerceptionConfig, PerceptionPipeline
    from spatial_ros.perception_metrics import grounding_queries
    from spatial_ros.sim import SimConfig, iter_frames
    from spatial_ros.vlm.tiny import build_tiny_vlm

    sim = next(f for f in iter_frames(SimConfig("tabletop", seed=3, frames=3))
               if f.points is not None)
    model = build_tiny_vlm(tmp_path / "tiny", "default", seed=0)
    queries = grounding_queries(sim.truth)
    torch.cuda.synchronize()
    baseline = torch.cuda.memory_allocated()
    pipe = PerceptionPipeline(PerceptionConfig(model_path=str(model), device="auto",
                                               queries=queries, relation_pairs=[]))
    pipe.load()
    info = pipe.engine.backend.info
    assert info["device"].startswith("cuda") and info["dtype"] == "bfloat16"
    loaded = torch.cuda.memory_allocated()
    assert loaded - baseline >= info["weight_bytes"]  # the weights are on the GPU
    res = pipe.process(sim.sensor_frame(), queries)  # generation allocates KV caches too
    assert res.stamp_ns == sim.stamp_ns
    torch.cuda.synchronize()
    reserved_loaded = torch.cuda.memory_reserved()
    pipe.unload()
    torch.cuda.synchronize()
    assert torch.cuda.memory_allocated() == baseline, (
        f"{torch.cuda.memory_allocated() - baseline} bytes still allocated after unload "
        f"(model was {info['weight_bytes']} bytes)"
    )
    # empty_cache: the model's cached blocks went back to the driver
    assert torch.cuda.memory_reserved() <= reserved_loaded - info["weight_bytes"]
    pipe.load()  # and it loads again (re-activate)
    assert pipe.loaded
    pipe.unload()
