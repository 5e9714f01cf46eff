"""Perception node robustness over real DDS: a wrong image encoding, stamps jumping backwards (bag
loop / simulator restart) and a VLM backend that raises. Each time: the node stays alive, says
so in /diagnostics, publishes NOTHING for the bad frame (not even an empty array, which would
claim "nothing found"), and processes the next good frame."""

from __future__ import annotations

import time

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy")
pytestmark = pytest.mark.ros

from test_perception_node import Harness, ros_context  # noqa: E402
from test_perception_pipeline import oracle_backend  # noqa: E402

from spatial_ros.io.image import encode_image  # noqa: E402
from spatial_ros.perception_metrics import grounding_queries  # noqa: E402
from spatial_ros.sim import SimConfig, iter_frames  # noqa: E402
from spatial_ros.vlm.backend import ScriptedBackend  # noqa: E402

DIAG_WARN, DIAG_ERROR = 1, 2


@pytest.fixture(scope="module")
def sim_frames():
    frames = [f for f in iter_frames(SimConfig("tabletop", seed=101, frames=7))
              if f.points is not None]
    assert len(frames) >= 2
    return frames


@pytest.fixture
def ros():
    ctx = ros_context(79)
    yield ctx
    rclpy.try_shutdown(context=ctx)


def test_wrong_image_encodings_skip_the_frame_only(ros, sim_frames):
    h = Harness(ros, sim_frames)
    try:
        f0, f1, f2 = (h.shifted(sim_frames[0], k) for k in (10.0, 11.0, 12.0))
        bogus = encode_image(f0.image, "rgb8", f0.stamp_ns, h.camera.frame_id, h.f)
        bogus.encoding = "foo"
        # a real YUV encoding whose payload is too short for its step x height
        yuy2 = encode_image(f1.image, "rgb8", f1.stamp_ns, h.camera.frame_id, h.f)
        yuy2.encoding, yuy2.step = "yuv422_yuy2", 2 * f1.image.shape[1]
        yuy2.data = bytes(yuy2.step * f1.image.shape[0] // 2)
        h.send(f0, image=bogus)
        time.sleep(0.5)
        h.send(f1, image=yuy2)
        time.sleep(0.5)
        h.stream([f2])
        assert h.wait_for_stamps([f2.stamp_ns], 20), "the good frame after bad ones was lost"
        assert f0.stamp_ns not in h.stamps() and f1.stamp_ns not in h.stamps()
        assert h.node.counters["skipped_frames"] == 2 and h.node._active
        assert len(h.outputs[-1].objects) > 0
        assert h.wait(lambda: h.diagnostics and h.last_diagnostics()["skipped_frames"] == "2.000")
        d = h.last_diagnostics()
        assert d["level"] == DIAG_WARN and "skipped_frames=2" in d["message"]
    finally:
        h.close()


def test_backwards_time_jump_resets_and_recovers(ros, sim_frames):
    h = Harness(ros, sim_frames, max_frame_age=1.0, time_jump=0.5)
    try:
        late = [h.shifted(sim_frames[k % len(sim_frames)], 30.0 + k * 0.1) for k in range(3)]
        for fr in late:
            h.send(fr)
            time.sleep(0.4)
        assert h.wait(lambda: late[0].stamp_ns in h.stamps(), 20)
        # the bag loops: stamps go back 25 s. Without the reset, every new frame would be
        # "older than max_frame_age" against the old timeline and dropped forever.
        early = [h.shifted(sim_frames[k % len(sim_frames)], 5.0 + k * 0.1) for k in range(3)]
        want = h.stream(early, gap_s=0.4)
        assert h.wait_for_stamps(want, 20), (
            f"after the jump got {sorted(h.stamps())}, want {want}")
        assert h.node.counters["time_jumps"] >= 1 and h.node._active
        assert h.node.counters["dropped_old"] == 0
        # outputs of the new timeline are in order and no old-timeline frame came after them
        after = [t for t in (int(m.header.stamp.sec * 1e9 + m.header.stamp.nanosec)
                             for m in h.outputs) if t in set(want)]
        assert after == sorted(after)
        assert h.wait(lambda: h.diagnostics and float(h.last_diagnostics()["time_jumps"]) >= 1)
    finally:
        h.close()


def test_backend_that_raises_publishes_nothing_for_that_frame(ros, sim_frames):
    oracle = oracle_backend(sim_frames[0])
    calls = []

    def flaky(conv, image):
        calls.append(image.shape)
        if len(calls) == 1:
            raise RuntimeError("CUDA out of memory (simulated)")
        return oracle._answer(conv, image)

    q = grounding_queries(sim_frames[0].truth)[0]
    h = Harness(ros, sim_frames, backend=ScriptedBackend(flaky), use_vlm=True, queries=[q],
                relation_pairs=[], referring="model")  # the query goes to the failing model
    try:
        f0, f1 = h.shifted(sim_frames[0], 10.0), h.shifted(sim_frames[0], 11.0)
        h.send(f0)
        time.sleep(0.5)
        h.stream([f1])
        assert h.wait_for_stamps([f1.stamp_ns], 20)
        assert f0.stamp_ns not in h.stamps(), "a failed frame must not publish an (empty) array"
        assert h.node.counters["model_errors"] == 1 and h.node._active
        objs = h.outputs[-1].objects
        assert [o.query for o in objs] == [q] and objs[0].source.startswith("vlm")
        assert np.isfinite(objs[0].distance) and objs[0].distance > 0
        assert h.wait(lambda: h.diagnostics and h.last_diagnostics()["model_errors"] == "1.000")
        d = h.last_diagnostics()
        assert d["level"] == DIAG_ERROR and "model_errors=1" in d["message"]
    finally:
        h.close()
