"""ApproximateTimeSynchronizer (message_filters semantics) and LatestBeforeCache."""

from __future__ import annotations

import itertools
import logging
import threading

import numpy as np
import pytest

from spatial_ros.errors import ConfigError
from spatial_ros.io.msgs import MessageFactory
from spatial_ros.sync import ApproximateTimeSynchronizer, LatestBeforeCache
from spatial_ros.sync_policies import ApproximateTimePolicy, _closest_set

MS = 1_000_000


class Msg:
    """A stand-in message: the synchronizer only needs a stamp (given explicitly)."""

    def __init__(self, source: int, index: int, stamp_ns: int):
        self.source, self.index, self.stamp_ns = source, index, stamp_ns

    def __repr__(self) -> str:
        return f"Msg({self.source}, {self.index}, {self.stamp_ns / 1e9:.4f})"


class Recorder:
    def __init__(self):
        self.sets: list[tuple] = []

    def __call__(self, *msgs):
        self.sets.append(msgs)

    def indices(self):
        return [tuple(m.index for m in s) for s in self.sets]


def _streams(n_inputs, n_sets, period_ms=100, jitter_ms=0.0, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n_sets):
        for src in range(n_inputs):
            j = rng.uniform(-jitter_ms, jitter_ms) if jitter_ms else 0.0
            out.append(Msg(src, i, int((1000 + i * period_ms + j) * MS)))
    return out


def _feed(sync, msgs):
    return [sync.add(m.source, m, m.stamp_ns) for m in msgs]


def test_exact_pairs_fire_immediately():
    rec = Recorder()
    sync = ApproximateTimeSynchronizer(2, rec, queue_size=5, slop_s=0.01)
    fired = _feed(sync, _streams(2, 10))
    assert fired == [0, 1] * 10  # each pair fires as soon as it is complete
    assert rec.indices() == [(i, i) for i in range(10)]
    assert (sync.fired, sync.dropped, sync.queued()) == (10, 0, [0, 0])


def test_exact_sync_with_zero_slop():
    rec = Recorder()
    sync = ApproximateTimeSynchronizer(2, rec, slop_s=0.0)
    sync.add(0, "a", 5)
    sync.add(1, "b", 6)
    sync.add(1, "c", 5)
    assert rec.sets == [("a", "c")]


def test_jitter_within_slop_matches_true_pairs():
    rec = Recorder()
    sync = ApproximateTimeSynchronizer(3, rec, queue_size=10, slop_s=0.03)
    _feed(sync, _streams(3, 40, jitter_ms=8.0, seed=1))
    sync.flush()
    assert rec.indices() == [(i, i, i) for i in range(40)]
    for s in rec.sets:
        stamps = [m.stamp_ns for m in s]
        assert max(stamps) - min(stamps) < 30 * MS


def test_offset_outside_slop_never_fires():
    rec = Recorder()
    sync = ApproximateTimeSynchronizer(2, rec, queue_size=4, slop_s=0.05)
    msgs = _streams(2, 10, period_ms=200)
    for m in msgs:
        if m.source == 1:
            m.stamp_ns += 60 * MS  # 60 ms late on input 1 (140 ms early for the next): > slop
    _feed(sync, msgs)
    sync.flush()
    assert rec.sets == [] and sync.fired == 0
    assert sync.dropped == 12 and sync.queued() == [4, 4]


@pytest.mark.parametrize("seed", range(4))
def test_shuffled_arrival(seed):
    rng = np.random.default_rng(seed)
    msgs = _streams(3, 30, jitter_ms=5.0, seed=seed)
    # Local shuffle: each message arrives up to ~3 sets late or early.
    key = [m.stamp_ns + rng.uniform(-300, 300) * MS for m in msgs]
    msgs = [msgs[i] for i in np.argsort(key)]
    rec = Recorder()
    sync = ApproximateTimeSynchronizer(3, rec, queue_size=10, slop_s=0.03)
    _feed(sync, msgs)
    sync.flush()
    assert sorted(rec.indices()) == [(i, i, i) for i in range(30)]
    # Fully shuffled with queues large enough: still every true triple.
    rec2 = Recorder()
    sync2 = ApproximateTimeSynchronizer(3, rec2, queue_size=100, slop_s=0.03,
                                        reset_on_jump_back_s=None)
    _feed(sync2, [msgs[i] for i in rng.permutation(len(msgs))])
    sync2.flush()
    assert sorted(rec2.indices()) == [(i, i, i) for i in range(30)]


def test_dropped_message_leaves_other_sets_intact():
    msgs = [m for m in _streams(2, 10, jitter_ms=3.0) if not (m.source == 1 and m.index == 4)]
    rec = Recorder()
    sync = ApproximateTimeSynchronizer(2, rec, queue_size=10, slop_s=0.04)
    _feed(sync, msgs)
    sync.flush()
    assert rec.indices() == [(i, i) for i in range(10) if i != 4]
    assert sync.queued() == [1, 0]  # the orphan waits until it ages out


def test_queue_overflow_drops_oldest():
    rec = Recorder()
    sync = ApproximateTimeSynchronizer(2, rec, queue_size=3, slop_s=0.01)
    for i in range(10):
        sync.add(0, Msg(0, i, i * 100 * MS), i * 100 * MS)
    assert sync.dropped == 7 and sync.queued() == [3, 0]
    sync.add(1, Msg(1, 2, 200 * MS), 200 * MS)  # its partner was evicted
    assert rec.sets == []
    sync.add(1, Msg(1, 8, 800 * MS), 800 * MS)
    assert rec.indices() == [(8, 8)]


def test_best_set_is_chosen_not_first_fit():
    """Camera 30 Hz and LiDAR 10 Hz in arrival order; each LiDAR scan arrives BEFORE the camera
    frame taken at the same time. A first-fit policy pairs it with the previous frame (33 ms
    off); the best-set policy waits and pairs it with the frame 1 ms away."""
    events = []
    for k in range(30):  # camera frames every 33.3 ms
        events.append((k * 100 / 3 * MS, 0, k))
    for k in range(10):  # lidar scans every 100 ms, stamped 1 ms before frame 3k, arriving first
        events.append((k * 100 * MS - 1 * MS - 0.5 * MS, 1, k))
    events.sort()
    rec = Recorder()
    sync = ApproximateTimeSynchronizer(2, rec, queue_size=10, slop_s=0.05)
    for t, src, k in events:
        stamp = int(t + 0.5 * MS) if src == 1 else int(t)
        sync.add(src, Msg(src, k, stamp), stamp)
    sync.flush()
    assert [(c.index, lid.index) for c, lid in rec.sets] == [(3 * k, k) for k in range(10)]
    # Out-of-order improvement: a closer partner arriving later still wins.
    rec = Recorder()
    sync = ApproximateTimeSynchronizer(2, rec, slop_s=0.05)
    sync.add(0, "a", 100 * MS)
    sync.add(1, "far", 130 * MS)
    sync.add(1, "near", 101 * MS)
    sync.add(0, "a2", 200 * MS)
    assert rec.sets == [("a", "near")]


def test_backwards_time_jump_resets_queues():
    rec = Recorder()
    sync = ApproximateTimeSynchronizer(2, rec, queue_size=10, slop_s=0.03,
                                       reset_on_jump_back_s=1.0)
    first = _streams(2, 20, jitter_ms=2.0, seed=3)
    _feed(sync, first[:-1])  # the last pair is left incomplete before the loop
    assert sync.resets == 0 and sync.queued() == [1, 0]
    second = _streams(2, 5, jitter_ms=2.0, seed=4)  # the bag starts again at 1.0 s
    for m in second:
        m.index += 100
    _feed(sync, second)
    sync.flush()
    assert sync.resets == 1
    assert rec.indices() == [(i, i) for i in range(19)] + [(i, i) for i in range(100, 105)]
    # Small out-of-order arrivals (within reset_on_jump_back_s) do not reset.
    sync.add(0, Msg(0, 0, 0), int(1.2e9))
    sync.add(1, Msg(1, 0, 0), int(1.0e9))
    assert sync.resets == 1


def test_jump_reset_is_compatible_with_a_large_slop():
    """A slop above the jump threshold is allowed; a message that could still join a queued
    one (within the slop) never counts as a jump, a far older one does."""
    rec = Recorder()
    sync = ApproximateTimeSynchronizer(2, rec, queue_size=10, slop_s=2.5,
                                       reset_on_jump_back_s=1.0)
    sync.add(0, "a10", 10 * 10**9)
    sync.add(0, "a12", 12 * 10**9)
    sync.add(1, "b8", 8 * 10**9)  # 4 s older than input 0's newest, 2 s from a queued message
    assert sync.resets == 0
    sync.flush()
    assert rec.sets == [("a10", "b8")]
    sync.add(1, "b1", 1 * 10**9)  # > 2.5 s older than everything queued (a12): a jump
    assert sync.resets == 1 and sync.queued() == [0, 1]


def test_raising_callback_is_logged_and_harmless(caplog):
    calls = []

    def cb(a, b):
        calls.append((a, b))
        if len(calls) == 1:
            raise RuntimeError("user bug")

    sync = ApproximateTimeSynchronizer(2, cb, slop_s=0.01)
    with caplog.at_level(logging.ERROR, logger="spatial_ros.sync"):
        for i in range(3):
            sync.add(0, f"a{i}", i * MS * 100)
            sync.add(1, f"b{i}", i * MS * 100)
    assert calls == [("a0", "b0"), ("a1", "b1"), ("a2", "b2")]
    assert sync.callback_errors == 1 and sync.fired == 3
    assert "user bug" in caplog.text


def test_stamps_from_headers_and_bad_input():
    f = MessageFactory.rosbags()
    rec = Recorder()
    sync = ApproximateTimeSynchronizer(2, rec, slop_s=0.01)
    img = f.new("sensor_msgs/msg/Image", header=f.header(1_000_000_000, "cam"))
    cloud = f.new("sensor_msgs/msg/PointCloud2", header=f.header(1_004_000_000, "lidar"))
    sync.add(0, img)
    sync.add(1, cloud)
    sync.flush()
    assert rec.sets == [(img, cloud)]
    with pytest.raises(ConfigError, match="out of range"):
        sync.add(2, img)
    with pytest.raises(ConfigError, match="allow_headerless"):
        sync.add(0, object())
    for kwargs, pat in (({"num_inputs": 0}, "num_inputs"), ({"slop_s": -1}, "slop_s"),
                        ({"queue_size": 0}, "queue_size"),
                        ({"reset_on_jump_back_s": -0.5}, "reset_on_jump_back_s"),
                        ({"policy": "fifo"}, "policy"), ({"age_penalty": -1}, "age_penalty"),
                        ({"inter_message_lower_bound_s": [0.1]}, "one per input"),
                        ({"inter_message_lower_bound_s": -0.1}, "lower_bound")):
        args = {"num_inputs": 2, "callback": rec, **kwargs}
        with pytest.raises(ConfigError, match=pat):
            ApproximateTimeSynchronizer(**args)


def test_closest_set_is_the_minimum_spread_set():
    """The window search used for late messages finds the same minimum spread as brute force
    over all combinations containing the late stamp."""
    rng = np.random.default_rng(7)
    for _ in range(300):
        pools = [sorted(int(t) * MS for t in rng.choice(100, size=rng.integers(1, 6),
                                                        replace=False)) for _ in range(3)]
        t = pools[1][rng.integers(len(pools[1]))]
        pools[1] = [t]
        brute = min(max(c) - min(c) for c in itertools.product(*pools))
        best = _closest_set(pools, t)
        assert best is not None and max(best) - min(best) == brute and best[1] == t


@pytest.mark.parametrize("seed", range(3))
def test_out_of_order_extension_never_changes_in_order_behaviour(seed, monkeypatch):
    """On streams in stamp order per input, the cpp policy gives exactly the sets of the plain
    C++ algorithm (spares and late claims disabled: a message too far from its partners is
    deleted, as upstream does)."""
    rng = np.random.default_rng(seed)

    def run(plain):
        if plain:
            def delete(self, i, t, keep_if_alone):
                self.drops.append((i, t))
                return False
            monkeypatch.setattr(ApproximateTimePolicy, "_claim", delete)
            monkeypatch.setattr(ApproximateTimePolicy, "_spare_near", lambda *a: False)
        out = []
        sync = ApproximateTimeSynchronizer(3, lambda *m: out.append(m), queue_size=4,
                                           slop_s=0.03)
        for t, src in events:
            sync.add(src, t, t)
        monkeypatch.undo()
        return out

    sets_seen = 0
    for _ in range(40):
        events = []  # (arrival, stamp, input): each input in stamp order, inputs interleaved
        for src, (period, latency) in enumerate(((33, 5), (100, 40), (50, 20))):
            t, arrival = rng.uniform(0, 20), 0.0
            while t < 3000:
                arrival = max(arrival, t + latency + rng.uniform(0, 30))  # never reorders
                events.append((arrival, int(t * MS), src))
                t += period + rng.uniform(-15, 15) + (200 if rng.random() < 0.05 else 0)
        events = [(stamp, src) for _, stamp, src in sorted(events)]
        plain, ours = run(True), run(False)
        assert ours == plain
        assert all(max(s) - min(s) < 30 * MS for s in ours)
        sets_seen += len(ours)
    assert sets_seen > 40 * 10  # the comparison covered many sets


@pytest.mark.parametrize("policy", ["cpp", "python"])
def test_slop_is_strict(policy):
    """A set fires when its spread is BELOW the slop (message_filters Python: ``< slop``);
    a spread equal to the slop does not fire."""
    for spread_ns, fires in ((50 * MS - 1, True), (50 * MS, False), (0, True)):
        rec = Recorder()
        sync = ApproximateTimeSynchronizer(2, rec, slop_s=0.05, policy=policy)
        sync.add(0, "a", 1_000 * MS)
        sync.add(1, "b", 1_000 * MS + spread_ns)
        sync.add(0, "a2", 2_000 * MS)
        sync.add(1, "b2", 2_000 * MS)
        sync.flush()
        assert (("a", "b") in rec.sets) is fires, (policy, spread_ns)
        assert ("a2", "b2") in rec.sets
    rec = Recorder()  # zero slop: exact stamps only
    sync = ApproximateTimeSynchronizer(2, rec, slop_s=0.0, policy=policy)
    sync.add(0, "a", 5)
    sync.add(1, "b", 6)
    sync.add(1, "c", 5)
    assert rec.sets == [("a", "c")]


def test_concurrent_adds():
    rec = Recorder()
    sync = ApproximateTimeSynchronizer(2, rec, queue_size=200, slop_s=0.01)
    msgs = _streams(2, 200)

    def worker(src):
        for m in msgs:
            if m.source == src:
                sync.add(src, m, m.stamp_ns)

    threads = [threading.Thread(target=worker, args=(s,)) for s in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    sync.flush()
    assert sorted(rec.indices()) == [(i, i) for i in range(200)]


def test_latest_before_cache():
    c = LatestBeforeCache()
    assert c.get(10) is None and c.latest() is None
    c.add("b", 200)
    c.add("a", 100)  # out of order
    c.add("c", 300)
    assert [c.get(t) for t in (99, 100, 150, 299, 300, 10**12)] == [None, "a", "a", "b", "c", "c"]
    assert c.latest() == "c" and len(c) == 3
    c.add("c2", 300)  # same stamp replaces
    assert c.get(300) == "c2" and len(c) == 3
    aged = LatestBeforeCache(max_age_s=0.5)
    aged.add("x", 1_000_000_000)
    assert aged.get(1_400_000_000) == "x" and aged.get(1_600_000_000) is None
    tol = LatestBeforeCache(tolerance_s=0.002)
    tol.add("info", 1_001_000_000)  # stamped 1 ms after the image
    assert tol.get(1_000_000_000) == "info" and LatestBeforeCache().get(0) is None
    small = LatestBeforeCache(max_size=2)
    for i in range(5):
        small.add(i, i)
    assert len(small) == 2 and small.get(2) is None and small.get(3) == 3
    f = MessageFactory.rosbags()
    hdr = LatestBeforeCache()
    info = f.new("sensor_msgs/msg/CameraInfo", header=f.header(5_000, "cam"))
    hdr.add(info)
    assert hdr.get(5_000) is info
    with pytest.raises(ConfigError, match="max_age_s"):
        LatestBeforeCache(max_age_s=-1)
