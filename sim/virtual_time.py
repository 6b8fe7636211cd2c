"""An asyncio event loop whose clock jumps ahead whenever nothing is ready to run.

A 20-minute session then takes as long as its work, not as long as its waits, and runs the same
way every time. Real I/O still happens: the loop polls its sockets and pipes with a zero timeout
and only when none is ready (and no callback is pending) does it move its clock to the next
timer. So the simulator and the driver must both run in this loop on a transport whose bytes are
readable as soon as they are written: a TCP socket on loopback is; a pseudo-terminal is not
(the kernel forwards pty bytes from a work queue), so pty tests run in real time.

Do not use threads (run_in_executor, to_thread) under this loop: work done in another thread is
invisible to it and the clock would race past it.
"""

from __future__ import annotations

import asyncio
import selectors
from collections.abc import Coroutine, Mapping
from typing import Any, TypeVar

T = TypeVar("T")


class _WarpSelector(selectors.BaseSelector):
    def __init__(self) -> None:
        self._real = selectors.DefaultSelector()
        self.loop: VirtualTimeLoop | None = None

    def register(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        return self._real.register(fileobj, events, data)

    def unregister(self, fileobj: Any) -> selectors.SelectorKey:
        return self._real.unregister(fileobj)

    def modify(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        return self._real.modify(fileobj, events, data)

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        ready = self._real.select(0)
        if ready or timeout == 0:
            return ready
        if timeout is None:
            # No timer is pending: only real I/O can wake us, so wait for it for real.
            return self._real.select(None)
        assert self.loop is not None
        self.loop.advance(timeout)
        return []

    def close(self) -> None:
        self._real.close()

    def get_map(self) -> Mapping[Any, selectors.SelectorKey]:
        return self._real.get_map()


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    def __init__(self, start_s: float = 0.0) -> None:
        selector = _WarpSelector()
        super().__init__(selector)
        selector.loop = self
        self._now_s = start_s

    def time(self) -> float:
        return self._now_s

    def advance(self, seconds: float) -> None:
        if seconds > 0:
            self._now_s += seconds


def run_virtual(coro: Coroutine[Any, Any, T], start_s: float = 0.0) -> T:
    """Run coro to completion on a fresh VirtualTimeLoop and close the loop."""
    loop = VirtualTimeLoop(start_s)
    try:
        asyncio.set_event_loop(loop)
        return loop.run_until_complete(coro)
    finally:
        try:
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            asyncio.set_event_loop(None)
            loop.close()
