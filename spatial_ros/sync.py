"""Approximate time synchronization of N message streams, and a latest-before cache.

A ROS-free stand-in for ``message_filters.ApproximateTimeSynchronizer`` (not installable
off-robot, and unusable in bag replay) that live nodes and bag replay share.

Semantics (as message_filters): one queue per input keyed by header stamp, at most
``queue_size`` messages each (the oldest is dropped on overflow); a set of one message per input
fires when ``max(stamp) - min(stamp) < slop`` (or all stamps are equal), and its messages leave
the queues. Like the C++ ``ApproximateTime`` policy, it chooses the BEST set, not the first one
that fits: among all candidate sets the one with the smallest spread wins, and a set is held back
while a message that could still improve it may arrive (an input whose message is the set's
earliest has not yet delivered anything at or after the set's latest stamp). A held set fires
anyway once stream time has moved ``slop`` past it, or on ``flush()``, so an input that stops
cannot stall the others. Messages may arrive out of order; a repeated stamp on an input replaces
the queued message; a stamp far older than the newest seen on the same input (a bag loop, a
simulator reset) clears the queues. The user callback runs outside the lock; one that raises is
logged and counted, never propagated.

For bag replay call ``flush()`` at the end: the last set may still be waiting for a better match.

Stamps are integer nanoseconds (``header.stamp`` unless given).
"""

from __future__ import annotations

import bisect
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from spatial_ros.errors import ConfigError
from spatial_ros.io.msgs import NS_PER_S, stamp_to_ns

log = logging.getLogger(__name__)


@dataclass
class SyncConfig:
    """Parameters of ``ApproximateTimeSynchronizer``.

    Attributes:
        num_inputs: number of synchronized streams (>= 1).
        queue_size: messages kept per input (>= 1).
        slop_s: maximum spread of a set's stamps, seconds (>= 0; 0 = exact stamps only).
        reset_on_jump_back_s: a stamp this many seconds older than the newest seen on its input
            clears all queues (bag loop); None disables.
    """

    num_inputs: int
    queue_size: int = 10
    slop_s: float = 0.05
    reset_on_jump_back_s: float | None = 1.0

    def __post_init__(self) -> None:
        if int(self.num_inputs) < 1:
            raise ConfigError(f"num_inputs must be >= 1, got {self.num_inputs}")
        if int(self.queue_size) < 1:
            raise ConfigError(f"queue_size must be >= 1, got {self.queue_size}")
        if not self.slop_s >= 0:
            raise ConfigError(f"slop_s must be >= 0 seconds, got {self.slop_s}")
        jump = self.reset_on_jump_back_s
        if jump is not None and not jump > self.slop_s:
            raise ConfigError(f"reset_on_jump_back_s ({jump}) must be > slop_s ({self.slop_s}) "
                              "or None, else out-of-order messages would reset the queues")


class ApproximateTimeSynchronizer:
    """Groups one message per input with nearly equal stamps (see module docstring).

    Args:
        num_inputs: number of inputs; ``add`` takes indices ``0..num_inputs-1``.
        callback: called as ``callback(msg_0, ..., msg_{N-1})`` for each synchronized set.
        queue_size: messages kept per input.
        slop_s: maximum stamp spread of a set, seconds.
        reset_on_jump_back_s: backwards jump (seconds) that clears the queues; None disables.

    Attributes (counters):
        fired: sets delivered to the callback.
        dropped: messages discarded without being delivered (overflow, replaced duplicates,
            cleared by a reset).
        resets: queue resets caused by a backwards time jump (or ``reset()``).
        callback_errors: callbacks that raised (logged, not propagated).
    """

    def __init__(
        self,
        num_inputs: int,
        callback: Callable[..., Any],
        queue_size: int = 10,
        slop_s: float = 0.05,
        reset_on_jump_back_s: float | None = 1.0,
    ) -> None:
        self.config = SyncConfig(num_inputs, queue_size, slop_s, reset_on_jump_back_s)
        if not callable(callback):
            raise ConfigError(f"callback must be callable, got {type(callback).__name__}")
        self._callback = callback
        self._n = int(num_inputs)
        self._qsize = int(queue_size)
        self._slop = int(round(slop_s * NS_PER_S))
        self._jump = None if reset_on_jump_back_s is None else int(reset_on_jump_back_s * NS_PER_S)
        self._lock = threading.Lock()
        self.fired = 0
        self.dropped = 0
        self.resets = 0
        self.callback_errors = 0
        self._clear()

    # -- public ------------------------------------------------------------------------------

    def add(self, input_index: int, msg: Any, stamp_ns: int | None = None) -> int:
        """Queue ``msg`` on input ``input_index`` and fire every set that is ready.

        Args:
            input_index: which input (0-based).
            msg: the message.
            stamp_ns: its stamp; default ``msg.header.stamp``.

        Returns:
            Number of sets delivered by this call.

        Raises:
            ConfigError: bad index, or no stamp given and the message has no header.
        """
        if not 0 <= input_index < self._n:
            raise ConfigError(f"input_index {input_index} out of range 0..{self._n - 1}")
        t = stamp_to_ns(msg) if stamp_ns is None else int(stamp_ns)
        with self._lock:
            last = self._watermark[input_index]
            if self._jump is not None and last is not None and t < last - self._jump:
                log.info("input %d stamp jumped back %.3f s (bag loop?): clearing sync queues",
                         input_index, (last - t) / NS_PER_S)
                self._reset_locked()
            q, st = self._queues[input_index], self._stamps[input_index]
            if t in q:
                self.dropped += 1  # replaced by the newer message with the same stamp
            else:
                bisect.insort(st, t)
            q[t] = msg
            while len(st) > self._qsize:
                del q[st.pop(0)]
                self.dropped += 1
            if self._watermark[input_index] is None or t > self._watermark[input_index]:
                self._watermark[input_index] = t
            if self._newest is None or t > self._newest:
                self._newest = t
            ready = self._take_sets(force=False)
        return self._deliver(ready)

    def flush(self) -> int:
        """Fire the best remaining sets without waiting for better matches (end of a bag).
        Returns the number of sets delivered."""
        with self._lock:
            ready = self._take_sets(force=True)
        return self._deliver(ready)

    def reset(self) -> None:
        """Drop every queued message (counted in ``dropped``)."""
        with self._lock:
            self._reset_locked()

    def queued(self) -> list[int]:
        """Number of messages waiting on each input."""
        with self._lock:
            return [len(s) for s in self._stamps]

    # -- internals ---------------------------------------------------------------------------

    def _clear(self) -> None:
        self._queues: list[dict[int, Any]] = [{} for _ in range(self._n)]
        self._stamps: list[list[int]] = [[] for _ in range(self._n)]
        self._watermark: list[int | None] = [None] * self._n
        self._newest: int | None = None

    def _reset_locked(self) -> None:
        self.dropped += sum(len(s) for s in self._stamps)
        self.resets += 1
        self._clear()

    def _candidates(self) -> list[tuple[int, int, tuple[int, ...]]]:
        """All sets worth considering as (spread, min stamp, stamps per input), best first.

        For each possible earliest stamp L, taking the first stamp >= L on every input gives the
        set with the smallest spread among those whose minimum is L, so the optimum is in here.
        """
        if any(not s for s in self._stamps):
            return []
        out = []
        for L in sorted({t for s in self._stamps for t in s}):
            chosen = []
            for s in self._stamps:
                k = bisect.bisect_left(s, L)
                if k == len(s):
                    break
                chosen.append(s[k])
            else:
                if min(chosen) != L:
                    continue  # found again with its true minimum
                spread = max(chosen) - L
                if spread < self._slop or spread == 0:
                    out.append((spread, L, tuple(chosen)))
        out.sort()
        return out

    def _settled(self, L: int, chosen: tuple[int, ...]) -> bool:
        U = max(chosen)
        if self._newest is not None and self._newest >= U + self._slop:
            return True  # stream time moved on: a better partner would be implausibly late
        # Only replacing an earliest member could shrink the spread; an input can still deliver
        # that replacement unless it has already delivered something at or after U.
        return all(self._watermark[j] >= U for j, t in enumerate(chosen) if t == L)

    def _take_sets(self, force: bool) -> list[tuple[Any, ...]]:
        used: set[tuple[int, int]] = set()
        fire: list[tuple[int, tuple[int, ...]]] = []
        for _, L, chosen in self._candidates():
            keys = [(j, t) for j, t in enumerate(chosen)]
            if any(k in used for k in keys):
                continue  # conflicts with a better set (fired or still waiting)
            used.update(keys)  # fired now, or reserved for this better set
            if force or self._settled(L, chosen):
                fire.append((L, chosen))
        fire.sort()
        sets = []
        for _, chosen in fire:
            sets.append(tuple(self._queues[j].pop(t) for j, t in enumerate(chosen)))
            for j, t in enumerate(chosen):
                st = self._stamps[j]
                del st[bisect.bisect_left(st, t)]
        return sets

    def _deliver(self, sets: list[tuple[Any, ...]]) -> int:
        for msgs in sets:
            self.fired += 1
            try:
                self._callback(*msgs)
            except Exception:  # a user callback must never break the synchronizer
                self.callback_errors += 1
                log.exception("synchronizer callback raised; continuing with the next set")
        return len(sets)


class LatestBeforeCache:
    """The newest message with stamp <= t, for slow or static topics (CameraInfo, extrinsics).

    Args:
        max_age_s: ``get`` returns None when the newest candidate is older than ``t - max_age_s``
            (None = any age, e.g. for static transforms).
        tolerance_s: also accept messages stamped up to this much AFTER t (clock jitter between
            a camera's image and its CameraInfo).
        max_size: messages kept (oldest evicted).
    """

    def __init__(self, max_age_s: float | None = None, tolerance_s: float = 0.0,
                 max_size: int = 64) -> None:
        if max_age_s is not None and not max_age_s >= 0:
            raise ConfigError(f"max_age_s must be >= 0 or None, got {max_age_s}")
        if not tolerance_s >= 0:
            raise ConfigError(f"tolerance_s must be >= 0, got {tolerance_s}")
        if int(max_size) < 1:
            raise ConfigError(f"max_size must be >= 1, got {max_size}")
        self._max_age = None if max_age_s is None else int(round(max_age_s * NS_PER_S))
        self._tol = int(round(tolerance_s * NS_PER_S))
        self._max_size = int(max_size)
        self._stamps: list[int] = []
        self._msgs: list[Any] = []
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._stamps)

    def add(self, msg: Any, stamp_ns: int | None = None) -> None:
        """Store ``msg`` (stamp from its header unless given; same stamp replaces)."""
        t = stamp_to_ns(msg) if stamp_ns is None else int(stamp_ns)
        with self._lock:
            k = bisect.bisect_left(self._stamps, t)
            if k < len(self._stamps) and self._stamps[k] == t:
                self._msgs[k] = msg
                return
            self._stamps.insert(k, t)
            self._msgs.insert(k, msg)
            if len(self._stamps) > self._max_size:
                del self._stamps[0], self._msgs[0]

    def get(self, stamp_ns: int) -> Any | None:
        """Newest message with stamp <= ``stamp_ns`` (+ tolerance), or None (none yet, or too
        old for ``max_age_s``)."""
        t = int(stamp_ns)
        with self._lock:
            k = bisect.bisect_right(self._stamps, t + self._tol) - 1
            if k < 0:
                return None
            if self._max_age is not None and t - self._stamps[k] > self._max_age:
                return None
            return self._msgs[k]

    def latest(self) -> Any | None:
        """The newest message stored (any stamp), or None."""
        with self._lock:
            return self._msgs[-1] if self._msgs else None

    def clear(self) -> None:
        with self._lock:
            self._stamps.clear()
            self._msgs.clear()
