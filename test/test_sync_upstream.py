"""message_filters' own test cases, re-expressed against ``ApproximateTimeSynchronizer``.

Spec: ros2/message_filters ``test/test_approximate_time_policy.cpp`` (C++ ApproximateTime
policy; our ``policy="cpp"``) and ``test/test_approxsync.py`` (rclpy's synchronizer; our
``policy="python"``). Inputs are (stamp in seconds, input index) in arrival order; expected sets
are the stamps per input, in the order upstream expects them. Like upstream, the C++ cases use
no slop (unbounded) and check the sets emitted while messages are added (no flush).
"""

from __future__ import annotations

import random

import pytest

from spatial_ros.sync import ApproximateTimeSynchronizer

S = 1_000_000_000


def run_cpp_case(num_inputs, queue_size, inputs, lower_bounds=0.0):
    """Feed (stamp_s, input) pairs; returns (sets emitted during the adds as stamp tuples in s,
    the (stamp_s, input) of the message whose add emitted each)."""
    out: list[tuple[float, ...]] = []
    emitted_at = []
    sync = ApproximateTimeSynchronizer(
        num_inputs, lambda *m: out.append(tuple(x / S for x in m)), queue_size=queue_size,
        slop_s=None, inter_message_lower_bound_s=lower_bounds)
    for stamp, topic in inputs:
        before = len(out)
        sync.add(topic, int(stamp * S), int(stamp * S))  # the message is its own stamp
        emitted_at += [(stamp, topic)] * (len(out) - before)
    return out, emitted_at


# name: (inputs, queue size, expected sets, arrival that emits each set where upstream's
# timeline diagram fixes it (None: the diagram is only indicative there))
DROPPED_INPUT = [(0, 0), (1, 1), (3, 1), (4, 0), (7, 1), (8, 0), (10, 0), (11, 1), (13, 0),
                 (14, 1)]
LONG_QUEUE_INPUT = ([(t, 0) for t in range(9)] + [(3, 1)] + [(t, 0) for t in range(9, 13)]
                    + [(10, 1), (13, 0)])
CPP_TWO_INPUT_CASES = {
    "ExactMatch": ([(0, 0), (0, 1), (3, 0), (3, 1), (6, 0), (6, 1)], 10,
                   [(0, 0), (3, 3), (6, 6)], [(0, 1), (3, 1), (6, 1)]),
    "PerfectMatch": ([(0, 0), (1, 1), (3, 0), (4, 1), (6, 0), (7, 1)], 10,
                     [(0, 1), (3, 4)], [(3, 0), (6, 0)]),
    "ImperfectMatch": ([(0, 0), (1, 1), (2, 0), (3, 0), (5, 1), (6, 0), (7, 1)], 10,
                       [(0, 1), (6, 5)], [(2, 0), (6, 0)]),
    "Acceleration": ([(0, 0), (7, 1), (12, 0), (15, 1), (17, 0), (18, 1)], 10,
                     [(12, 7), (17, 18)], [(12, 0), (18, 1)]),
    "DroppedMessages_queue1": (DROPPED_INPUT, 1, [(4, 3), (10, 11)], [(7, 1), (13, 0)]),
    "DroppedMessages_queue2": (DROPPED_INPUT, 2, [(0, 1), (4, 3), (8, 7), (10, 11)],
                               [(4, 0), (7, 1), (11, 1), (13, 0)]),
    "LongQueue": (LONG_QUEUE_INPUT, 5, [(10, 10)], None),
    "DoublePublish": ([(0, 0), (1, 1), (3, 1), (3, 0)], 10, [(0, 1), (3, 3)],
                      [(3, 0), (3, 0)]),
}


@pytest.mark.parametrize("name", list(CPP_TWO_INPUT_CASES))
def test_cpp_approximate_time_two_inputs(name):
    inputs, queue_size, expected, emitted_at = CPP_TWO_INPUT_CASES[name]
    out, at = run_cpp_case(2, queue_size, inputs)
    assert out == [tuple(float(x) for x in s) for s in expected]
    if emitted_at is not None:
        assert at == emitted_at


def test_cpp_four_topics():
    inputs = [(0, 0), (1, 1), (2, 2), (3, 3), (5, 0), (5, 3), (6, 1), (6, 2), (8, 0), (9, 1),
              (10, 2), (11, 3), (10, 0), (13, 0), (14, 1)]
    out, _ = run_cpp_case(4, 10, inputs)
    assert out == [(0, 1, 2, 3), (5, 6, 6, 5), (10, 9, 10, 11)]


def test_cpp_early_publish():
    """A set is published as soon as no later message can beat it (here: the first input
    moves past the whole set), without waiting for the other inputs."""
    out, at = run_cpp_case(4, 10, [(0, 0), (1, 1), (2, 2), (3, 3), (7, 0)])
    assert out == [(0, 1, 2, 3)] and at == [(7, 0)]


RATE_INPUT = [(0, 0), (1, 1), (3, 0), (4, 1), (6, 0), (7, 1)]


def test_cpp_rate_bound():
    # Input 0 at least 1.5 s apart: not enough to prove (6, 7) best before more input.
    out, _ = run_cpp_case(2, 10, RATE_INPUT, lower_bounds=[1.5, 0.0])
    assert out == [(0, 1), (3, 4)]
    # At least 2 s apart: every pair is proven best the moment its second message arrives.
    out, at = run_cpp_case(2, 10, RATE_INPUT, lower_bounds=[2.0, 0.0])
    assert out == [(0, 1), (3, 4), (6, 7)] and at == [(1, 1), (4, 1), (7, 1)]
    # The setter is the same bound.
    got = []
    sync = ApproximateTimeSynchronizer(2, lambda *m: got.append(m), slop_s=None)
    sync.set_inter_message_lower_bound(0, 2.0)
    for stamp, topic in RATE_INPUT:
        sync.add(topic, stamp, stamp * S)
    assert got == [(0, 1), (3, 4), (6, 7)]


def test_cpp_without_rate_bound_waits_then_flush_delivers():
    """Without a bound the last pair is not provably best while adding; flush() (end of a bag,
    our addition) delivers it."""
    out = []
    sync = ApproximateTimeSynchronizer(2, lambda *m: out.append(m), slop_s=None)
    for stamp, topic in RATE_INPUT:
        sync.add(topic, stamp, stamp * S)
    assert out == [(0, 1), (3, 4)]
    assert sync.flush() == 1 and out[-1] == (6, 7)


# ---- rclpy test_approxsync.py ---------------------------------------------------------------

class MockMessage:
    def __init__(self, stamp_ns, data):
        self.header = type("H", (), {})()
        self.header.stamp = type("T", (), {"sec": stamp_ns // S, "nanosec": stamp_ns % S})()
        self.data = data


class Collector(list):
    def append_set(self, *msgs):
        self.append(msgs)


class MockHeaderlessMessage:
    def __init__(self, data):
        self.data = data


@pytest.mark.parametrize("policy", ["cpp", "python"])
def test_py_pairs_fire_on_completion(policy):
    collector = []
    sync = ApproximateTimeSynchronizer(2, lambda *m: collector.append(m), queue_size=1,
                                       slop_s=0.1, policy=policy)
    for t in range(10):
        collector.clear()
        m0, m1 = MockMessage(t * S, 33), MockMessage(t * S, 34)
        sync.add(0, m0)
        assert collector == []
        sync.add(1, m1)
        assert collector == [(m0, m1)]


@pytest.mark.parametrize("policy", ["cpp", "python"])
def test_py_scrambled_sequences_recombine(policy):
    """Upstream: for N = 1..9, input 0 gets stamps 0..N-1 s in random order, then input 1 the
    same; every true pair must come out. With the default jump-back reset (1 s, below the
    8 s scrambles) nothing may be lost either: a message that can still join a queued one is
    never taken for a time jump."""
    rng = random.Random(0)
    for n in range(1, 10):
        seq0 = [MockMessage(t * S, rng.random()) for t in range(n)]
        seq1 = [MockMessage(t * S, rng.random()) for t in range(n)]
        collector = Collector()
        sync = ApproximateTimeSynchronizer(2, collector.append_set, queue_size=n,
                                           slop_s=0.1, policy=policy)
        for msg in rng.sample(seq0, n):
            sync.add(0, msg)
        assert collector == []
        for msg in rng.sample(seq1, n):
            sync.add(1, msg)
        assert set(collector) == set(zip(seq0, seq1, strict=True)), n
        assert sync.resets == 0 and sync.queued() == [0, 0]


def test_py_headerless_paired_on_arrival():
    """Upstream: input 0 carries headers stamped now + t s (t = 0..N-1, scrambled), input 1
    is headerless and stamped on arrival (``allow_headerless``); slop 10 s. rclpy pairs each
    arrival with the closest waiting message: the i-th headerless message with stamp now + i."""
    rng = random.Random(0)
    import time

    for n in range(1, 10):
        now = time.time_ns()
        seq0 = [MockMessage(now + t * S, rng.random()) for t in range(n)]
        seq1 = [MockHeaderlessMessage(rng.random()) for _ in range(n)]
        collector = Collector()
        sync = ApproximateTimeSynchronizer(2, collector.append_set, queue_size=n,
                                           slop_s=10, allow_headerless=True, policy="python")
        for msg in rng.sample(seq0, n):
            sync.add(0, msg)
        assert collector == []
        for msg in seq1:
            sync.add(1, msg)
        assert set(collector) == set(zip(seq0, seq1, strict=True)), n


def test_cpp_headerless_keeps_the_best_partner_deliberate_difference():
    """Deliberate difference (documented in spatial_ros/sync.py): the cpp policy judges
    arrival stamps like any others. For the upstream headerless case it pairs the first
    arrival with now + 0 s, then keeps replacing the partner of now + 1 s by each later (closer)
    arrival, and the earlier arrivals are dropped, as the C++ ApproximateTime would. Use
    policy="python" for rclpy's pairing on arrival."""
    n = 5
    base = 1_000 * S
    clock_ticks = iter(base + 1_000 + k for k in range(n))  # arrivals 1 us after "now"
    collector = Collector()
    sync = ApproximateTimeSynchronizer(2, collector.append_set, queue_size=n,
                                       slop_s=10, allow_headerless=True,
                                       clock=lambda: next(clock_ticks))
    seq0 = [MockMessage(base + t * S, t) for t in range(n)]
    seq1 = [MockHeaderlessMessage(k) for k in range(n)]
    for msg in (seq0[3], seq0[0], seq0[4], seq0[1], seq0[2]):
        sync.add(0, msg)
    for msg in seq1:
        sync.add(1, msg)
    assert collector == [(seq0[0], seq1[0])]
    sync.flush()
    assert collector == [(seq0[0], seq1[0]), (seq0[1], seq1[n - 1])]
    assert sync.dropped == n - 2  # seq1[1..n-2] beaten by later arrivals
