"""Counters and timing windows of a sensor node (ROS-free; thread-safe).

The node's callbacks, worker and request handlers count events (``count``) and record
durations (``record_frame``, ``record_request``) from different executor threads; ``summary``
turns them into the flat ``{name: float}`` map published on /diagnostics. Durations are kept
in fixed-length windows (the last ``window`` samples), so memory is constant on a robot that
runs for days.

Stats (milliseconds):

- ``latency_p50/p95_ms``: a synchronized frame's arrival -> its outputs published;
- ``end_to_end_p50/p95_ms``: the frame's sensor stamp -> its outputs published (node clock);
- ``processing_p50/p95_ms``: the worker's time on one frame;
- ``request_p50_ms``, ``request_max_ms``: wall time inside a service handler (parsing,
  refusing, answering), from the handler's entry to the reply handed back to rclpy;
  ``request_cpu_max_ms``: the CPU time the handler's thread spent on it (the work itself,
  unlike the wall time not inflated while the thread waits for a core or the GIL on a busy
  machine). The transport's share of a round trip (e.g. Fast DDS re-sending a dropped fragment
  of a large request at its next heartbeat) is not the node's and is in neither.
"""

from __future__ import annotations

import threading
from collections import Counter, deque

import numpy as np

__all__ = ["NodeStats"]


def _pct(values, q: float) -> float:
    return float(np.percentile(list(values), q)) if values else float("nan")


class NodeStats:
    """The counters (``counters``: name -> count) and duration windows of one node."""

    def __init__(self, window: int = 500) -> None:
        self.counters: Counter = Counter()
        self._lock = threading.Lock()
        self._latency_ms: deque[float] = deque(maxlen=window)
        self._e2e_ms: deque[float] = deque(maxlen=window)
        self._proc_ms: deque[float] = deque(maxlen=window)
        self._request_ms: deque[float] = deque(maxlen=window)
        self._request_cpu_ms: deque[float] = deque(maxlen=window)

    def count(self, name: str, n: int = 1) -> None:
        if n:
            with self._lock:
                self.counters[name] += n

    def counter_snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self.counters)

    def record_frame(self, processing_ms: float, latency_ms: float, end_to_end_ms: float) -> None:
        self._proc_ms.append(processing_ms)
        self._latency_ms.append(latency_ms)
        self._e2e_ms.append(end_to_end_ms)

    def record_request(self, wall_ms: float, cpu_ms: float) -> None:
        self._request_ms.append(wall_ms)
        self._request_cpu_ms.append(cpu_ms)

    def summary(self, names: tuple[str, ...] = ()) -> dict[str, float]:
        """Every counter (``names`` as 0 when never counted) and the window percentiles."""
        counters = self.counter_snapshot()
        out = {k: float(counters.get(k, 0)) for k in names}
        out.update({k: float(v) for k, v in counters.items()})
        requests, cpu = list(self._request_ms), list(self._request_cpu_ms)
        out.update(
            latency_p50_ms=_pct(self._latency_ms, 50),
            latency_p95_ms=_pct(self._latency_ms, 95),
            end_to_end_p50_ms=_pct(self._e2e_ms, 50),
            end_to_end_p95_ms=_pct(self._e2e_ms, 95),
            processing_p50_ms=_pct(self._proc_ms, 50),
            processing_p95_ms=_pct(self._proc_ms, 95),
            request_p50_ms=_pct(requests, 50),
            request_max_ms=max(requests) if requests else float("nan"),
            request_cpu_max_ms=max(cpu) if cpu else float("nan"),
        )
        return out
