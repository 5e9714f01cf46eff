"""The bounded hand-over between a sensor node's callbacks and its worker thread (ROS-free).

Callbacks put synchronized frames; one worker takes them in order. When the queue holds
``capacity`` frames, a new frame pushes the OLDEST one out and :meth:`put` says so, so the node
counts it (perception: capacity 1 and the count is ``dropped_stale``, the worker always gets the
newest frame; reward: capacity ``max_pending`` and the count is ``dropped_full``). Control items
(e.g. "start a new episode" after a time jump) keep their place between frames, are never pushed
out and do not use capacity.

A ``queue.Queue`` cannot drop its oldest item on overflow, hence this small class.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from typing import Any


class FrameQueue:
    """Bounded FIFO of frames (plus control items), thread-safe.

    Args:
        capacity: frames held at most (>= 1).
    """

    def __init__(self, capacity: int = 1) -> None:
        if capacity < 1:
            raise ValueError(f"FrameQueue capacity must be >= 1, got {capacity}")
        self.capacity = int(capacity)
        self._items: deque[tuple[bool, Any]] = deque()  # (is_control, payload)
        self._frames = 0
        self._cond = threading.Condition()

    def __len__(self) -> int:
        """Frames waiting (control items not counted)."""
        with self._cond:
            return self._frames

    def put(self, frame: Any) -> int:
        """Append ``frame``; returns how many older frames it pushed out (0 or 1)."""
        with self._cond:
            dropped = 0
            if self._frames >= self.capacity:
                for i, (control, _) in enumerate(self._items):
                    if not control:
                        del self._items[i]
                        self._frames -= 1
                        dropped = 1
                        break
            self._items.append((False, frame))
            self._frames += 1
            self._cond.notify()
            return dropped

    def put_control(self, action: Callable[[], None]) -> None:
        """Append a control item (run by the worker in order with the frames)."""
        with self._cond:
            self._items.append((True, action))
            self._cond.notify()

    def get(self, timeout: float | None = None) -> tuple[bool, Any] | None:
        """The oldest item as ``(is_control, payload)``, waiting up to ``timeout`` s; None when
        nothing came."""
        with self._cond:
            if not self._items:
                self._cond.wait(timeout)
            if not self._items:
                return None
            control, payload = self._items.popleft()
            self._frames -= not control
            return control, payload

    def clear(self) -> int:
        """Forget every waiting frame and control item; returns the frames forgotten."""
        with self._cond:
            n = self._frames
            self._items.clear()
            self._frames = 0
            return n

    def wake(self) -> None:
        """Wake a waiting :meth:`get` (shutdown)."""
        with self._cond:
            self._cond.notify_all()
