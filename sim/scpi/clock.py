"""Clocks for simulated instruments: the asyncio loop's (virtual or real) or a manual one.

An instrument never reads the wall clock itself. Served over TCP it uses its event loop's clock,
so under `sim.virtual_time.run_virtual` a 20-minute waveform takes no real time; in unit tests
of a single model a `ManualClock` is advanced by hand.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Callable
from typing import Protocol


class TimerHandle(Protocol):
    def cancel(self) -> None: ...


class Clock(Protocol):
    def now(self) -> float: ...

    def call_later(self, delay_s: float, callback: Callable[[], None]) -> TimerHandle: ...


class LoopClock:
    """The clock of an asyncio loop; callbacks run in that loop's thread."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop

    def now(self) -> float:
        return self.loop.time()

    def call_later(self, delay_s: float, callback: Callable[[], None]) -> TimerHandle:
        return self.loop.call_later(max(delay_s, 0.0), callback)


class _ManualHandle:
    __slots__ = ("cancelled",)

    def __init__(self) -> None:
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class ManualClock:
    """A clock that moves only when told to; `advance` fires due callbacks in time order."""

    def __init__(self, start_s: float = 0.0) -> None:
        self._now = start_s
        self._seq = itertools.count()
        self._heap: list[tuple[float, int, _ManualHandle, Callable[[], None]]] = []

    def now(self) -> float:
        return self._now

    def call_later(self, delay_s: float, callback: Callable[[], None]) -> TimerHandle:
        handle = _ManualHandle()
        heapq.heappush(self._heap, (self._now + max(delay_s, 0.0), next(self._seq), handle, callback))
        return handle

    def advance(self, seconds: float) -> None:
        target = self._now + seconds
        while self._heap and self._heap[0][0] <= target:
            when, _, handle, callback = heapq.heappop(self._heap)
            self._now = max(self._now, when)
            if not handle.cancelled:
                callback()
        self._now = target
