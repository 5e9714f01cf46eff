"""The matching rules behind ``ApproximateTimeSynchronizer``: which stamps form a set, and when.

Two policies, each a stand-in for one upstream implementation (``message_filters`` cannot be
installed off-robot), working on integer-nanosecond stamps only (the synchronizer keeps the
messages, the lock and the callback):

* ``ApproximateTimePolicy`` ("cpp", the default): the C++ ``sync_policies::ApproximateTime``
  algorithm (pivot, candidate, age penalty, inter-message lower bounds, queue accounting over
  queued + examined messages), re-implemented from its published description and checked
  against every case of ``test/test_approximate_time_policy.cpp``. It emits a set as soon as the
  set is provably the best one still possible, and never a worse set because a better one was
  not waited for. Extension for streams the C++ policy assumes away (it expects each input in
  stamp order): a message that arrives out of order cancels the ongoing candidate search and
  is inserted in stamp order; a message too far (``slop``) from every partner, which C++ would
  delete, is kept (within ``queue_size``) as a *spare* that a late partner can still claim, the
  closest such set firing at once. On in-order streams spares can never complete a set, so the
  C++ behaviour is unchanged.
* ``GreedyPolicy`` ("python"): ``message_filters.ApproximateTimeSynchronizer`` of rclpy: each
  arriving message is matched at once with the closest queued message of every other input
  (first combination, nearest first, whose spread is below ``slop``), else it waits.

Both share the slop rule ``spread < slop`` (or all stamps equal; ``slop=None`` = unbounded).
Policies report decided sets and discarded stamps in ``sets`` / ``drops``; the caller drains
them after each call.
"""

from __future__ import annotations

import bisect
import itertools
import logging
from collections import deque

log = logging.getLogger("spatial_ros.sync")


class _Policy:
    """Shared state and the slop rule."""

    def __init__(self, num_inputs: int, queue_size: int, slop_ns: int | None) -> None:
        self.n = num_inputs
        self.qsize = queue_size
        self.slop = slop_ns
        self.sets: list[tuple[int, ...]] = []   # decided sets (stamps per input), in order
        self.drops: list[tuple[int, int]] = []  # (input, stamp) discarded without a set

    def fits(self, spread: int) -> bool:
        """True when a set with this stamp spread (ns) is allowed."""
        return self.slop is None or spread < self.slop or spread == 0


class ApproximateTimePolicy(_Policy):
    """message_filters' C++ ApproximateTime policy (see the module docstring).

    Args:
        num_inputs, queue_size: as the synchronizer.
        slop_ns: maximum set spread (C++ ``setMaxIntervalDuration``, but strict: ``<``); None =
            unbounded (the C++ default).
        age_penalty: C++ ``setAgePenalty`` (0.1 upstream): how much a newer candidate must beat
            an older one by.
        lower_bounds_ns: per input, the least time between two of its messages (C++
            ``setInterMessageLowerBound``); lets a set be proven best without waiting.
    """

    def __init__(self, num_inputs: int, queue_size: int, slop_ns: int | None,
                 age_penalty: float = 0.1, lower_bounds_ns: list[int] | None = None) -> None:
        super().__init__(num_inputs, queue_size, slop_ns)
        self.scale = 1.0 + float(age_penalty)
        self.bounds = list(lower_bounds_ns or [0] * num_inputs)
        self.clear()

    def clear(self) -> None:
        n = self.n
        self.deques: list[deque[int]] = [deque() for _ in range(n)]  # not yet examined
        self.past: list[list[int]] = [[] for _ in range(n)]  # examined for the candidate
        self.spare: list[list[int]] = [[] for _ in range(n)]  # too far for any in-order set
        self.pivot: int | None = None
        self.pivot_time = 0
        self.cand: tuple[int, ...] | None = None
        self.cand_start = self.cand_end = 0
        self.has_dropped = [False] * n
        self.warned = [False] * n
        self.newest: list[int | None] = [None] * n  # newest stamp seen per input

    def queued(self) -> list[int]:
        return [len(d) + len(p) + len(s)
                for d, p, s in zip(self.deques, self.past, self.spare, strict=True)]

    def oldest(self) -> int | None:
        firsts = [x[0] for x in (*self.deques, *self.past, *self.spare) if x]
        return min(firsts) if firsts else None

    # -- input ---------------------------------------------------------------------------------

    def add(self, i: int, t: int) -> None:
        dq = self.deques[i]
        newest = self.newest[i]
        late = newest is not None and t < newest
        if not late:
            self.newest[i] = t
        if late or self._spare_near(i, t):
            # Out of order, or a spare partner within reach: the closest set of queued messages
            # containing t fires at once; else the candidate search restarts with t in place.
            self._cancel_candidate()
            if not self._claim(i, t, keep_if_alone=False):
                dq.insert(bisect.bisect_left(dq, t), t)
                self._trim(i)
            self._process()
            return
        dq.append(t)
        if len(dq) == 1:
            if all(self.deques):
                self._process()
        else:
            self._check_bound(i)
        self._trim(i)

    def _spare_near(self, i: int, t: int) -> bool:
        for j, spare in enumerate(self.spare):
            if j == i or not spare:
                continue
            if self.slop is None:
                return True
            k = bisect.bisect_left(spare, t - self.slop)
            if k < len(spare) and spare[k] <= t + self.slop:
                return True
        return False

    def flush(self) -> None:
        """End of input: the pending candidate is the best that can still be made; then any
        remaining messages that form a set (out-of-order leftovers) fire, closest first."""
        while self.pivot is not None:
            self._publish()
            self._process()
        queued = sorted((t, j) for j in range(self.n)
                        for t in itertools.chain(self.spare[j], self.deques[j]))
        for t, j in queued:
            if self._holds(j, t):
                self._claim(j, t, keep_if_alone=True)

    # -- C++ ApproximateTime ---------------------------------------------------------------

    def _check_bound(self, i: int) -> None:
        """Warn once per input when its messages come closer than its declared lower bound."""
        if self.warned[i]:
            return
        dq = self.deques[i]
        prev = dq[-2] if len(dq) > 1 else (self.past[i][-1] if self.past[i] else None)
        if prev is None:
            return
        if dq[-1] < prev:
            self.warned[i] = True
            log.warning("sync input %d: messages arrived out of order (logged once)", i)
        elif dq[-1] - prev < self.bounds[i]:
            self.warned[i] = True
            log.warning("sync input %d: messages %d ns apart, closer than the declared lower "
                        "bound %d ns (logged once)", i, dq[-1] - prev, self.bounds[i])

    def _trim(self, i: int) -> None:
        dq, past, spare = self.deques[i], self.past[i], self.spare[i]
        while spare and len(spare) + len(dq) + len(past) > self.qsize:
            self.drops.append((i, spare.pop(0)))
        if len(dq) + len(past) <= self.qsize:
            return
        had_candidate = self.pivot is not None
        self._recover_all()
        self.drops.append((i, dq.popleft()))  # the oldest on the overflowing input
        self.has_dropped[i] = True
        if had_candidate:
            self.pivot, self.cand = None, None
            self._process()

    def _recover_all(self) -> None:
        for dq, past in zip(self.deques, self.past, strict=True):
            dq.extendleft(reversed(past))
            past.clear()

    def _cancel_candidate(self) -> None:
        self._recover_all()
        self.pivot, self.cand = None, None

    def _bounds_of(self, times: list[int]) -> tuple[int, int, int, int]:
        """(start index, start time, end index, end time): the earliest (first index on ties)
        and latest (last index on ties) of ``times``."""
        si = ei = 0
        st = et = times[0]
        for j in range(1, len(times)):
            x = times[j]
            if x < st:
                si, st = j, x
            if x >= et:
                ei, et = j, x
        return si, st, ei, et

    def _worse(self, end_t: int, other: int) -> bool:
        """C++ ``(end - candidate_end) * (1 + age_penalty) >= other`` (duration scaled, then
        truncated to whole nanoseconds as rclcpp does)."""
        return int((end_t - self.cand_end) * self.scale) >= other

    def _make_candidate(self, start_t: int, end_t: int) -> None:
        self.cand = tuple(dq[0] for dq in self.deques)
        for j, past in enumerate(self.past):  # beaten by the new candidate: discarded
            self.drops.extend((j, t) for t in past)
            past.clear()
        self.cand_start, self.cand_end = start_t, end_t

    def _process(self) -> None:
        deques, past = self.deques, self.past
        while all(deques):
            si, st, ei, et = self._bounds_of([dq[0] for dq in deques])
            for j in range(self.n):
                if j != ei:
                    self.has_dropped[j] = False
            if self.pivot is None:
                if not self.fits(et - st):
                    self._claim(si, deques[si].popleft(), keep_if_alone=True)
                    continue
                if self.has_dropped[ei]:  # not a trustworthy pivot
                    self.drops.append((si, deques[si].popleft()))
                    continue
                self._make_candidate(st, et)
                self.pivot, self.pivot_time = ei, et
            elif not self._worse(et, st - self.cand_start):
                self._make_candidate(st, et)
            past[si].append(deques[si].popleft())
            if si == self.pivot:  # every candidate for this pivot examined
                self._publish()
            elif self._worse(et, self.pivot_time - self.cand_start):  # provably the best
                self._publish()
            elif not all(deques):
                self._virtual_search()

    def _virtual_search(self) -> None:
        """With an input waiting, assume its next message comes as early as its lower bound
        allows; if even that cannot beat the candidate, publish it now."""
        deques, past = self.deques, self.past
        moves = [0] * self.n
        while True:
            times = [dq[0] if dq else max(past[j][-1] + self.bounds[j], self.pivot_time)
                     for j, dq in enumerate(deques)]
            si, st, ei, et = self._bounds_of(times)
            if self._worse(et, self.pivot_time - self.cand_start):
                self._publish()
                return
            if not self._worse(et, st - self.cand_start):  # an optimistic set is better: wait
                for j, k in enumerate(moves):
                    for _ in range(k):
                        deques[j].appendleft(past[j].pop())
                return
            past[si].append(deques[si].popleft())
            moves[si] += 1

    def _publish(self) -> None:
        cand = self.cand
        assert cand is not None
        self.sets.append(cand)
        self.pivot, self.cand = None, None
        self._recover_all()
        popped = tuple(dq.popleft() for dq in self.deques)  # each input's oldest examined
        assert popped == cand, (popped, cand)

    # -- out-of-order extension --------------------------------------------------------------

    def _holds(self, j: int, t: int) -> bool:
        s = self.spare[j]
        k = bisect.bisect_left(s, t)
        return (k < len(s) and s[k] == t) or t in self.deques[j]

    def _claim(self, i: int, t: int, keep_if_alone: bool) -> bool:
        """Fire the closest set of queued messages (spares and unexamined) that contains stamp
        ``t`` of input ``i``, if one fits the slop (True); else (False) keep ``t`` as a spare
        when ``keep_if_alone``. Only called without a candidate (nothing examined)."""
        pools = []
        lo, hi = (None, None) if self.slop is None else (t - self.slop, t + self.slop)
        for j in range(self.n):
            if j == i:
                pools.append([t])
                continue
            cands = sorted(x for x in itertools.chain(self.spare[j], self.deques[j])
                           if lo is None or lo <= x <= hi)
            if not cands:
                break
            pools.append(cands)
        else:
            best = _closest_set(pools, t)
            if best is not None and self.fits(max(best) - min(best)):
                self._remove(i, t)
                for j, x in enumerate(best):
                    if j != i:
                        self._remove(j, x)
                self.sets.append(best)
                return True
        if keep_if_alone and not self._holds(i, t):
            bisect.insort(self.spare[i], t)
        return False

    def _remove(self, j: int, t: int) -> None:
        s = self.spare[j]
        k = bisect.bisect_left(s, t)
        if k < len(s) and s[k] == t:
            del s[k]
        elif t in self.deques[j]:
            self.deques[j].remove(t)


def _closest_set(pools: list[list[int]], t: int) -> tuple[int, ...] | None:
    """The combination (one stamp per sorted pool, containing ``t``) with the smallest spread.

    For each candidate earliest stamp L <= t, the first stamp >= L of every pool gives the
    smallest spread among sets whose minimum is L, so the optimum is among these.
    """
    best: tuple[int, tuple[int, ...]] | None = None
    for lower in sorted({x for p in pools for x in p if x <= t}):
        chosen = []
        for p in pools:
            k = bisect.bisect_left(p, lower)
            if k == len(p):
                break
            chosen.append(p[k])
        else:
            if min(chosen) == lower and t in chosen:
                spread = max(chosen) - lower
                if best is None or spread < best[0]:
                    best = (spread, tuple(chosen))
    return None if best is None else best[1]


class GreedyPolicy(_Policy):
    """rclpy ``message_filters.ApproximateTimeSynchronizer`` (see the module docstring)."""

    def __init__(self, num_inputs: int, queue_size: int, slop_ns: int | None) -> None:
        super().__init__(num_inputs, queue_size, slop_ns)
        self.clear()

    def clear(self) -> None:
        # insertion-ordered, as upstream's dicts: ties in distance go to the earlier arrival
        self.queues: list[dict[int, None]] = [{} for _ in range(self.n)]

    def queued(self) -> list[int]:
        return [len(q) for q in self.queues]

    def oldest(self) -> int | None:
        firsts = [min(q) for q in self.queues if q]
        return min(firsts) if firsts else None

    def flush(self) -> None:
        """Nothing is held back by this policy."""

    def add(self, i: int, t: int) -> None:
        q = self.queues[i]
        q[t] = None
        while len(q) > self.qsize:
            oldest = min(q)
            del q[oldest]
            self.drops.append((i, oldest))
        if t not in q:
            return
        options = []
        for j, other in enumerate(self.queues):
            if j == i:
                options.append([t])
                continue
            near = [(abs(s - t), s) for s in other if self.slop is None or abs(s - t) <= self.slop]
            if not near:
                return
            near.sort(key=lambda d: d[0])  # stable: arrival order on ties
            options.append([s for _, s in near])
        for combo in itertools.product(*options):
            if self.fits(max(combo) - min(combo)):
                for j, s in enumerate(combo):
                    del self.queues[j][s]
                self.sets.append(tuple(combo))
                return
