"""The sensor-node base without DDS traffic (fast): the frame queue, stale-frame dropping, the
reward FIFO, frames too old for ``max_frame_age``, and the parameters a node accepts.

The worker's processing is replaced by a stand-in that blocks until released, so the frames
that arrive meanwhile are known exactly: perception keeps ONE pending frame (the newest; each
one it replaces is counted ``dropped_stale``, none is queued behind it), reward keeps
``max_pending`` in order (the oldest pushed out is counted ``dropped_full``).
"""

from __future__ import annotations

import threading
import time

import pytest

from spatial_ros.nodes.frame_queue import FrameQueue


def test_frame_queue_keeps_the_newest_and_says_what_it_pushed_out():
    q = FrameQueue(1)
    assert [q.put(i) for i in range(5)] == [0, 1, 1, 1, 1] and len(q) == 1
    assert q.get(0) == (False, 4) and q.get(0.01) is None and len(q) == 0
    q = FrameQueue(3)
    assert sum(q.put(i) for i in range(5)) == 2
    assert [q.get(0)[1] for _ in range(3)] == [2, 3, 4]
    # control items keep their place, are never pushed out and use no capacity
    q = FrameQueue(2)
    q.put("a")
    q.put_control("reset")
    assert q.put("b") == 0 and q.put("c") == 1 and len(q) == 2
    assert [q.get(0) for _ in range(3)] == [(True, "reset"), (False, "b"), (False, "c")]
    q.put("d")
    q.put_control("x")
    assert q.clear() == 1 and q.get(0) is None
    with pytest.raises(ValueError, match="capacity"):
        FrameQueue(0)


rclpy = pytest.importorskip("rclpy")
from rclpy.lifecycle import TransitionCallbackReturn  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402

DOMAIN = 85  # no traffic is sent; a domain of its own anyway


@pytest.fixture
def ctx():
    c = rclpy.context.Context()
    rclpy.init(context=c, domain_id=DOMAIN)
    yield c
    rclpy.try_shutdown(context=c)


def _wait(cond, timeout=10.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.005)
    return False


def _node(ctx, cls, **params):
    node = cls(context=ctx, parameter_overrides=[
        Parameter(k, value=v) for k, v in dict(params, autostart=False).items()])
    assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
    assert node.trigger_activate() == TransitionCallbackReturn.SUCCESS
    return node


class BlockingWork:
    """Stands in for the node's frame processing: records each frame, the first one blocks
    until ``release`` is set."""

    def __init__(self, node):
        self.node, self.seen = node, []
        self.started, self.release = threading.Event(), threading.Event()
        node._process = self

    def __call__(self, received, msgs):
        self.seen.append(msgs[0])
        self.started.set()
        self.release.wait(10)
        self.node._count("frames")


def _close(node):
    node.on_shutdown(None)
    node.destroy_node()


def test_perception_drops_stale_frames_and_never_queues_them(ctx):
    from spatial_ros.nodes.perception_node import PerceptionNode

    node = _node(ctx, PerceptionNode, use_vlm=False)
    try:
        work = BlockingWork(node)
        node._on_synced(0, "cloud")
        assert work.started.wait(5)  # the worker holds frame 0
        pending = []
        for i in range(1, 6):  # five frames arrive while it is busy
            node._on_synced(i, "cloud")
            pending.append(len(node._frames))
        assert pending == [1] * 5  # one pending frame at most: nothing queues up
        assert node.counters["dropped_stale"] == 4  # 1..4 replaced, each counted
        work.release.set()
        assert _wait(lambda: node.counters["frames"] == 2)
        assert work.seen == [0, 5]  # the newest frame is the one processed
        time.sleep(0.1)
        st = node.stats()
        assert st["dropped_stale"] == 4 and st["pending"] == 0 and st["frames"] == 2
    finally:
        _close(node)


def test_reward_fifo_keeps_order_and_counts_overflow(ctx, tmp_path):
    from spatial_ros.nodes.reward_annotator import RewardAnnotatorNode

    truth = tmp_path / "truth.jsonl"
    truth.write_text('{"stamp_ns": 1, "frame_id": "base_link", "objects": []}\n')
    node = _node(ctx, RewardAnnotatorNode, grounding="truth", truth_path=str(truth),
                 cloud_topic="", max_pending=3)
    try:
        work = BlockingWork(node)
        node._on_synced(0)
        assert work.started.wait(5)
        for i in range(1, 6):
            node._on_synced(i)
        assert len(node._frames) == 3 and node.counters["dropped_full"] == 2
        node.on_time_jump()  # a new episode, after the frames already queued
        work.release.set()
        assert _wait(lambda: node.counters["frames"] == 4)
        assert work.seen == [0, 3, 4, 5] and node.counters["episodes"] >= 1
    finally:
        _close(node)


def test_frames_older_than_max_frame_age_are_dropped_and_counted(ctx):
    from sensor_msgs.msg import Image

    from spatial_ros.nodes.perception_node import PerceptionNode

    node = _node(ctx, PerceptionNode, use_vlm=False, max_frame_age=1.0)
    try:
        img = Image()
        img.header.stamp.sec = 100
        node._newest_image_ns = 102 * 10**9  # a newer image arrived 2 s (sensor time) later
        node._on_synced(img, None)
        assert _wait(lambda: node.counters["dropped_old"] == 1)
        assert node.counters["frames"] == 0 and node.counters["errors"] == 0
    finally:
        _close(node)


def test_node_parameters_int_for_float_and_typos(ctx):
    """slop: 1 (an int where a float is expected) is accepted as 1.0; a string for a float fails
    the configure with one line naming the key; a parameter that is no field (a typo, or a
    shared file's '/**' entry for other nodes) is logged naming the nearest field."""
    from spatial_ros.nodes.perception_node import PerceptionNode

    def node_with(params):
        node = PerceptionNode(context=ctx, parameter_overrides=[
            Parameter(k, value=v) for k, v in dict(params, autostart=False).items()])
        logged = {"error": [], "warning": []}
        logger = node.get_logger()
        logger.error, logger.warning = logged["error"].append, logged["warning"].append
        return node, logged

    node = _node(ctx, PerceptionNode, use_vlm=False, slop=1, time_jump=2)
    assert node.cfg.slop == 1.0 and isinstance(node.cfg.slop, float)
    _close(node)
    node, logged = node_with({"slop": "fast"})
    assert node.trigger_configure() == TransitionCallbackReturn.FAILURE
    assert len(logged["error"]) == 1 and "\n" not in logged["error"][0]
    assert "parameter 'slop': 'fast' is a str, expected a float" in logged["error"][0]
    node.destroy_node()
    node, logged = node_with({"use_vml": False, "use_vlm": False})
    assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
    assert [w for w in logged["warning"] if "'use_vml' (did you mean 'use_vlm'?)" in w]
    node.on_shutdown(None)
    node.destroy_node()
