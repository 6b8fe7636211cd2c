"""The board in a background thread on its own real-time loop, for `stimctl run` without a
device and for the benchmarks (the board runs apart from the host, as in reality)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Literal

from sim.board.config import BoardConfig
from sim.board.device import SimulatedBoard
from sim.board.server import BoardServer, serve_pty, serve_tcp
from sim.faults import FaultSpec
from sim.trace import OutputTrace

_START_TIMEOUT_S = 10.0


class BoardThread:
    """A served board in a daemon thread.

        sim = BoardThread(transport="pty")
        url = sim.start()          # pass it to SerialBoard(url)
        ...
        sim.stop()                 # outputs off in the trace, port closed
        sim.trace.events
    """

    def __init__(
        self,
        config: BoardConfig | None = None,
        trace_path: str | Path | None = None,
        faults: Iterable[FaultSpec] = (),
        transport: Literal["tcp", "pty"] = "tcp",
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        if transport not in ("tcp", "pty"):
            raise ValueError(f"transport must be 'tcp' or 'pty', got {transport!r}")
        self._config = config or BoardConfig()
        self._trace_path = trace_path
        self._faults = tuple(faults)
        self._transport = transport
        self._host = host
        self._port = port
        self._ready = threading.Event()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._trace: OutputTrace | None = None
        self._board: SimulatedBoard | None = None
        self._url: str | None = None
        self._error: BaseException | None = None

    @property
    def url(self) -> str:
        if self._url is None:
            raise RuntimeError("BoardThread is not started: call start() first")
        return self._url

    @property
    def trace(self) -> OutputTrace:
        if self._trace is None:
            raise RuntimeError("BoardThread is not started: call start() first")
        return self._trace

    @property
    def board(self) -> SimulatedBoard:
        """For reading state only: its methods must run in the board's own thread (use
        `inject` / `clear_injected` here for faults)."""
        if self._board is None:
            raise RuntimeError("BoardThread is not started: call start() first")
        return self._board

    def start(self) -> str:
        """Start serving; returns the URL (pyserial URL or pty path) to connect to."""
        if self._thread is not None:
            return self.url
        self._thread = threading.Thread(target=self._run, name="sim-board", daemon=True)
        self._thread.start()
        if not self._ready.wait(_START_TIMEOUT_S):
            raise RuntimeError("the simulated board did not start within 10 s")
        if self._error is not None:
            raise RuntimeError(f"the simulated board failed to start: {self._error}") from self._error
        return self.url

    def stop(self) -> None:
        """Power the board off (every output off in the trace), close its port, end the thread."""
        loop, stop, thread = self._loop, self._stop, self._thread
        if loop is None or stop is None or thread is None:
            return
        if not loop.is_closed():
            try:
                loop.call_soon_threadsafe(stop.set)
            except RuntimeError:
                pass  # the loop ended already
        thread.join(_START_TIMEOUT_S)

    def inject(self, spec: FaultSpec) -> None:
        self._call(lambda: self.board.inject(spec))

    def clear_injected(self) -> None:
        self._call(lambda: self.board.clear_injected())

    def _call(self, fn: Callable[[], None]) -> None:
        loop = self._loop
        if loop is None:
            raise RuntimeError("BoardThread is not started: call start() first")

        async def run() -> None:
            fn()

        asyncio.run_coroutine_threadsafe(run(), loop).result(_START_TIMEOUT_S)

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._main())
        except BaseException as exc:  # noqa: BLE001  (reported to start(); never die silently)
            self._error = exc
            self._ready.set()
        finally:
            loop.close()

    async def _main(self) -> None:
        loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        trace = OutputTrace(loop.time, self._trace_path, device="board")
        self._trace = trace
        board = SimulatedBoard(self._config, trace, self._faults)
        self._board = board
        server: BoardServer
        if self._transport == "pty":
            server = await serve_pty(board)
        else:
            server = await serve_tcp(board, self._host, self._port)
        self._url = server.url
        self._ready.set()
        try:
            await self._stop.wait()
        finally:
            board.shutdown()
            await server.close()
            trace.close()


