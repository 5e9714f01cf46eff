"""Approximate time synchronization of N message streams, and a latest-before cache.

A ROS-free stand-in for ``message_filters``' approximate-time synchronizers (not installable
off-robot, and unusable in bag replay) that live nodes and bag replay share.

Semantics: one queue per input, at most ``queue_size`` messages each (the oldest dropped on
overflow); a set is one message per input whose stamps spread less than ``slop`` (or are all
equal). Which set fires, and when, follows one of two upstream implementations (``policy``; the
rules live in ``spatial_ros.sync_policies``):

* ``"cpp"`` (default): the C++ ``ApproximateTime`` policy. It chooses the BEST set, not the
  first one that fits, and fires it as soon as it is provably the best one still possible
  (a later message on an input cannot improve it). ``inter_message_lower_bound_s`` (C++
  ``setInterMessageLowerBound``) lets it prove that sooner; ``age_penalty`` is C++'s. Extension:
  messages may arrive out of order (the candidate search restarts with them in place), and a
  message too far from every partner waits as a spare for a late partner (within
  ``queue_size``) instead of being deleted. ``flush()`` at the end of a bag fires the set still
  waiting for proof.
* ``"python"``: rclpy's ``ApproximateTimeSynchronizer``: each message is matched on arrival with
  the closest queued message of every other input, else it waits.

``allow_headerless`` (as upstream Python): a message without ``header.stamp`` is stamped on
arrival by ``clock`` (default: system time, ns). Deliberate difference: without it such a
message raises ``ConfigError`` (upstream logs and ignores it), so a wiring bug cannot pass
silently. A repeated stamp on an input replaces the queued message (as upstream Python).
Optional (``reset_on_jump_back_s``, off by default as upstream has no such reset): a stamp more
than max(reset_on_jump_back_s, slop) older than every queued message and than the newest seen on
its input is a time jump (bag loop, simulator reset) and clears the queues; a message that could
still join a queued one never resets, whatever the slop. Off, scrambled arrival never loses a
set (the upstream Python cases scramble by up to 8 s).
The user callback runs outside the lock; one that raises is logged and
counted, never propagated.

Stamps are integer nanoseconds (``header.stamp`` unless given).
"""

from __future__ import annotations

import bisect
import logging
import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from spatial_ros.errors import ConfigError
from spatial_ros.io.msgs import NS_PER_S, stamp_to_ns
from spatial_ros.sync_policies import ApproximateTimePolicy, GreedyPolicy

log = logging.getLogger(__name__)

POLICIES = ("cpp", "python")


@dataclass
class SyncConfig:
    """Parameters of ``ApproximateTimeSynchronizer``.

    Attributes:
        num_inputs: number of synchronized streams (>= 1).
        queue_size: messages kept per input (>= 1).
        slop_s: maximum spread of a set's stamps, seconds (>= 0; 0 = exact stamps only;
            None or inf = unbounded, the C++ default).
        reset_on_jump_back_s: a stamp more than max(this, slop) seconds older than every queued
            message and the newest seen on its input clears all queues (bag loop, simulator
            reset); None (default) disables.
        policy: "cpp" (C++ ApproximateTime) or "python" (rclpy's greedy matcher).
        allow_headerless: stamp messages without a header on arrival.
        inter_message_lower_bound_s: per input (or one value for all), the least time between
            two of its messages, seconds (cpp policy only; 0 = no bound).
        age_penalty: C++ age penalty (>= 0; cpp policy only).
    """

    num_inputs: int
    queue_size: int = 10
    slop_s: float | None = 0.05
    reset_on_jump_back_s: float | None = None
    policy: str = "cpp"
    allow_headerless: bool = False
    inter_message_lower_bound_s: float | Sequence[float] = 0.0
    age_penalty: float = 0.1

    def __post_init__(self) -> None:
        if int(self.num_inputs) < 1:
            raise ConfigError(f"num_inputs must be >= 1, got {self.num_inputs}")
        if int(self.queue_size) < 1:
            raise ConfigError(f"queue_size must be >= 1, got {self.queue_size}")
        if self.slop_s is not None and not self.slop_s >= 0:
            raise ConfigError(f"slop_s must be >= 0 seconds (or None: unbounded), "
                              f"got {self.slop_s}")
        jump = self.reset_on_jump_back_s
        if jump is not None and not jump >= 0:
            raise ConfigError(f"reset_on_jump_back_s must be >= 0 seconds or None, got {jump}")
        if self.policy not in POLICIES:
            raise ConfigError(f"policy must be one of {POLICIES}, got {self.policy!r}")
        if not self.age_penalty >= 0:
            raise ConfigError(f"age_penalty must be >= 0, got {self.age_penalty}")
        for b in self.lower_bounds_s():
            if not b >= 0 or math.isinf(b):
                raise ConfigError(f"inter_message_lower_bound_s must be finite and >= 0, got {b}")

    def lower_bounds_s(self) -> list[float]:
        b = self.inter_message_lower_bound_s
        if isinstance(b, (int, float)):
            return [float(b)] * int(self.num_inputs)
        b = [float(x) for x in b]
        if len(b) != int(self.num_inputs):
            raise ConfigError(f"inter_message_lower_bound_s needs {self.num_inputs} values "
                              f"(one per input), got {len(b)}")
        return b

    def slop_ns(self) -> int | None:
        if self.slop_s is None or math.isinf(self.slop_s):
            return None
        return int(round(self.slop_s * NS_PER_S))


class ApproximateTimeSynchronizer:
    """Groups one message per input with nearly equal stamps (see module docstring).

    Args:
        num_inputs: number of inputs; ``add`` takes indices ``0..num_inputs-1``.
        callback: called as ``callback(msg_0, ..., msg_{N-1})`` for each synchronized set.
        queue_size, slop_s, reset_on_jump_back_s, policy, allow_headerless,
        inter_message_lower_bound_s, age_penalty: see ``SyncConfig``.
        clock: arrival stamp (ns) for headerless messages; default ``time.time_ns``.

    Attributes (counters):
        fired: sets delivered to the callback.
        dropped: messages discarded without being delivered (overflow, replaced duplicates,
            beaten candidates, cleared by a reset).
        resets: queue resets caused by a backwards time jump (or ``reset()``).
        callback_errors: callbacks that raised (logged, not propagated).
    """

    def __init__(
        self,
        num_inputs: int,
        callback: Callable[..., Any],
        queue_size: int = 10,
        slop_s: float | None = 0.05,
        reset_on_jump_back_s: float | None = None,
        *,
        policy: str = "cpp",
        allow_headerless: bool = False,
        inter_message_lower_bound_s: float | Sequence[float] = 0.0,
        age_penalty: float = 0.1,
        clock: Callable[[], int] | None = None,
    ) -> None:
        self.config = SyncConfig(num_inputs, queue_size, slop_s, reset_on_jump_back_s, policy,
                                 allow_headerless, inter_message_lower_bound_s, age_penalty)
        if not callable(callback):
            raise ConfigError(f"callback must be callable, got {type(callback).__name__}")
        self._callback = callback
        self._clock = clock or time.time_ns
        self._n = int(num_inputs)
        slop = self.config.slop_ns()
        self._slop = slop
        self._jump = None if reset_on_jump_back_s is None else int(reset_on_jump_back_s * NS_PER_S)
        if policy == "cpp":
            bounds = [int(round(b * NS_PER_S)) for b in self.config.lower_bounds_s()]
            self._policy: ApproximateTimePolicy | GreedyPolicy = ApproximateTimePolicy(
                self._n, int(queue_size), slop, age_penalty, bounds)
        else:
            self._policy = GreedyPolicy(self._n, int(queue_size), slop)
        self._lock = threading.Lock()
        self.fired = 0
        self.dropped = 0
        self.resets = 0
        self.callback_errors = 0
        self._msgs: list[dict[int, Any]] = [{} for _ in range(self._n)]
        self._newest: list[int | None] = [None] * self._n

    # -- public ------------------------------------------------------------------------------

    def add(self, input_index: int, msg: Any, stamp_ns: int | None = None) -> int:
        """Queue ``msg`` on input ``input_index`` and fire every set the policy decides.

        Args:
            input_index: which input (0-based).
            msg: the message.
            stamp_ns: its stamp; default ``msg.header.stamp`` (or the arrival time for a
                headerless message when ``allow_headerless``).

        Returns:
            Number of sets delivered by this call.

        Raises:
            ConfigError: bad index, or no stamp given, the message has no header and
                ``allow_headerless`` is off.
        """
        if not 0 <= input_index < self._n:
            raise ConfigError(f"input_index {input_index} out of range 0..{self._n - 1}")
        t = self._stamp(msg) if stamp_ns is None else int(stamp_ns)
        with self._lock:
            self._check_jump(input_index, t)
            queue = self._msgs[input_index]
            if t in queue:
                queue[t] = msg  # replaces the queued message with the same stamp
                self.dropped += 1
                return 0
            queue[t] = msg
            newest = self._newest[input_index]
            if newest is None or t > newest:
                self._newest[input_index] = t
            self._policy.add(input_index, t)
            ready = self._drain()
        return self._deliver(ready)

    def set_inter_message_lower_bound(self, input_index: int, bound_s: float) -> None:
        """C++ ``setInterMessageLowerBound``: input ``input_index`` never sends two messages
        closer than ``bound_s`` seconds (cpp policy; lets a set be proven best sooner)."""
        if not 0 <= input_index < self._n:
            raise ConfigError(f"input_index {input_index} out of range 0..{self._n - 1}")
        if not bound_s >= 0 or math.isinf(bound_s):
            raise ConfigError(f"inter-message lower bound must be finite and >= 0, got {bound_s}")
        if isinstance(self._policy, ApproximateTimePolicy):
            with self._lock:
                self._policy.bounds[input_index] = int(round(bound_s * NS_PER_S))

    def flush(self) -> int:
        """No more input (end of a bag): fire the sets still waiting for a better match.
        Returns the number of sets delivered."""
        with self._lock:
            self._policy.flush()
            ready = self._drain()
        return self._deliver(ready)

    def reset(self) -> None:
        """Drop every queued message (counted in ``dropped``)."""
        with self._lock:
            self._reset_locked()

    def queued(self) -> list[int]:
        """Number of messages waiting on each input."""
        with self._lock:
            return [len(q) for q in self._msgs]

    # -- internals ---------------------------------------------------------------------------

    def _stamp(self, msg: Any) -> int:
        header = getattr(msg, "header", None)
        if header is None or not hasattr(header, "stamp"):
            if self.config.allow_headerless:
                return int(self._clock())
            raise ConfigError(f"{type(msg).__name__} has no header.stamp: pass stamp_ns, or "
                              "allow_headerless=True to stamp such messages on arrival")
        return stamp_to_ns(msg)

    def _check_jump(self, i: int, t: int) -> None:
        newest = self._newest[i]
        if self._jump is None or newest is None:
            return
        reach = self._jump if self._slop is None else max(self._jump, self._slop)
        oldest = self._policy.oldest()
        if t >= newest - reach or (oldest is not None and t >= oldest - reach):
            return  # out of order, or close enough to join queued messages: not a jump
        log.info("input %d stamp jumped back %.3f s (bag loop?): clearing sync queues",
                 i, (newest - t) / NS_PER_S)
        self._reset_locked()

    def _reset_locked(self) -> None:
        self.dropped += sum(len(q) for q in self._msgs)
        self.resets += 1
        self._policy.clear()
        self._policy.sets.clear()
        self._policy.drops.clear()
        self._msgs = [{} for _ in range(self._n)]
        self._newest = [None] * self._n

    def _drain(self) -> list[tuple[Any, ...]]:
        p = self._policy
        for j, t in p.drops:
            del self._msgs[j][t]
        self.dropped += len(p.drops)
        p.drops.clear()
        ready = [tuple(self._msgs[j].pop(t) for j, t in enumerate(s)) for s in p.sets]
        p.sets.clear()
        return ready

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
