"""NodeStats: the counters and timing windows behind a sensor node's /diagnostics."""

from __future__ import annotations

import math
import threading

from spatial_ros.nodes.node_stats import NodeStats


def test_counts_from_many_threads_add_up():
    stats = NodeStats()

    def bump():
        for _ in range(1000):
            stats.count("frames")

    threads = [threading.Thread(target=bump) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stats.count("errors", 0)  # a zero count adds no key
    assert stats.counter_snapshot() == {"frames": 4000}


def test_summary_names_every_counter_and_window():
    stats = NodeStats(window=3)
    out = stats.summary(("frames", "errors"))
    assert out["frames"] == 0.0 and out["errors"] == 0.0
    assert all(math.isnan(out[k]) for k in ("latency_p50_ms", "request_max_ms",
                                            "request_cpu_max_ms"))
    for k in range(5):  # the window keeps the last 3: 2, 3, 4
        stats.record_frame(processing_ms=10.0 * k, latency_ms=k, end_to_end_ms=100.0 + k)
        stats.record_request(wall_ms=50.0 - k, cpu_ms=float(k))
    stats.count("frames", 5)
    out = stats.summary(("frames",))
    assert out["frames"] == 5.0
    assert out["processing_p50_ms"] == 30.0 and out["latency_p50_ms"] == 3.0
    assert out["end_to_end_p95_ms"] == 103.9  # numpy's linear interpolation of 102, 103, 104
    assert out["request_max_ms"] == 48.0 and out["request_p50_ms"] == 47.0
    assert out["request_cpu_max_ms"] == 4.0
