"""Perception node over real DDS with a served model (backend: openai, set by ROS parameters):
answers from the server; the server goes down -> frames skipped, node up, /diagnostics ERROR with
the backend's state; the server returns -> objects again and the backend reported ok."""

from __future__ import annotations

import os

import pytest

rclpy = pytest.importorskip("rclpy")
pytestmark = pytest.mark.ros

import test_perception_node  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from test_perception_node import Harness, ros_context  # noqa: E402

from spatial_ros.io.msgs import stamp_to_ns  # noqa: E402
from spatial_ros.nodes.perception_node import PerceptionNode  # noqa: E402
from spatial_ros.perception import DEFAULT_MODEL_DIR  # noqa: E402
from spatial_ros.perception_metrics import grounding_queries  # noqa: E402
from spatial_ros.sim import SimConfig, iter_frames  # noqa: E402
from spatial_ros.vlm.codec import BoxCodec  # noqa: E402
from spatial_ros.vlm.fake_openai_server import FakeOpenAIServer, request_text  # noqa: E402
from spatial_ros.vlm.tiny import codec_config_for  # noqa: E402

DOMAIN = 40 + os.getpid() % 20  # private (other DDS tests: 77-86, 100-230)


@pytest.fixture
def ros():
    ctx = ros_context(DOMAIN)
    yield ctx
    rclpy.try_shutdown(context=ctx)


class ServedNode(PerceptionNode):
    """The node with ``backend: openai`` (Harness's own ``backend`` argument injects a backend
    object, so the parameter is added here)."""

    def __init__(self, *args, parameter_overrides=(), **kw):
        super().__init__(*args, parameter_overrides=[*parameter_overrides,
                                                     Parameter("backend", value="openai")], **kw)


def published_one(h: Harness, fr, first_s: float, tries: int = 3):
    """Stream copies of ``fr`` shifted by first_s, first_s + 3, ... s until the node publishes
    one (a stray message on a shared machine can reset the synchronizer); its stamp or None."""
    for k in range(tries):
        nxt = h.shifted(fr, first_s + 3.0 * k)
        if h.wait_for_stamps(h.stream([nxt]), 15):
            return nxt.stamp_ns
    return None


def test_node_reports_a_down_server_and_recovers(ros, monkeypatch):
    monkeypatch.setattr(test_perception_node, "PerceptionNode", ServedNode)
    frames = [f for f in iter_frames(SimConfig("tabletop", seed=102, frames=4))
              if f.points is not None]
    fr = frames[0]
    queries = grounding_queries(fr.truth)[:3]
    sensor = fr.sensor_frame()
    T = sensor.transforms.lookup(sensor.camera.frame_id, "base_link")
    boxes = {o.caption: o.box.transformed(T, sensor.camera.frame_id) for o in fr.truth.objects}
    codec = BoxCodec(codec_config_for(DEFAULT_MODEL_DIR))

    def answer(body):
        return codec.encode_box3d(boxes[request_text(body).rsplit(": ", 1)[-1].strip()],
                                  sensor.camera)

    server = FakeOpenAIServer(answer).start()
    h = Harness(ros, frames, use_vlm=True, queries=queries, server_url=server.url, retries=0,
                timeout_s=5.0, relation_pairs=[], referring="model")  # queries to the server
    try:
        stamp = published_one(h, fr, 0.0)
        assert stamp is not None
        msg = next(m for m in h.outputs if stamp_to_ns(m.header) == stamp)
        assert [o.query for o in msg.objects] == queries
        assert {o.source for o in msg.objects} == {"vlm+lidar"}

        server.stop()
        down = []
        for k in range(3):
            down.append(h.shifted(fr, 10.0 + 3.0 * k))
            h.stream(down[-1:])
            # the frame's requests fail one after another, so the diagnostics can say
            # "unreachable" before the last of them is counted: wait for the whole frame
            if h.wait(lambda: bool(h.diagnostics) and
                      h.last_diagnostics().get("backend.state") == "unreachable" and
                      int(h.last_diagnostics().get("backend.consecutive_failures", 0)) >=
                      len(queries) and float(h.last_diagnostics().get("model_errors", 0)) >= 1,
                      10):
                break
        d = h.last_diagnostics()
        assert d["level"] == 2 and d["message"].startswith("VLM server unreachable (ConnectError")
        assert int(d["backend.consecutive_failures"]) >= len(queries)
        assert float(d["model_errors"]) >= 1
        assert not {x.stamp_ns for x in down} & h.stamps()  # nothing for a skipped frame

        server.start()
        assert published_one(h, fr, 20.0) is not None
        assert h.wait(lambda: h.last_diagnostics().get("backend.state") == "ok", 10)
        assert h.last_diagnostics()["backend.consecutive_failures"] == "0"
    finally:
        h.close()
        server.stop()
