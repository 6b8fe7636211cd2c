"""Serve a simulated SCPI instrument over raw TCP, as an LXI instrument serves port 5025.

Clients connect with the VISA resource `TCPIP0::127.0.0.1::<port>::SOCKET` and terminate lines
with "\n" both ways. Many clients may connect one after another; while one is connected, a
second one waits (its bytes are not read) until the first leaves, because a real instrument has
one parser and one output queue.

A client that disconnects leaves the instrument exactly as it was: a real current source keeps
its output on when the cable or the program goes away. Switching outputs off is the
controller's job.

- `await serve_tcp(instrument)` serves in the running loop (virtual time works: run the driver
  in the same loop).
- `ScpiServerThread("k6221")` runs its own real-time loop in a background thread, for tests
  with blocking clients (pyvisa) and for `stimctl sim serve`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Self

from sim.faults import FaultSpec
from sim.scpi.clock import LoopClock
from sim.scpi.instrument import ScpiInstrument, ScpiSession
from sim.scpi.models import create_instrument
from sim.trace import OutputTrace


def resource_string(host: str, port: int) -> str:
    return f"TCPIP0::{host}::{port}::SOCKET"


class _Connection(asyncio.Protocol):
    def __init__(self, server: ScpiTcpServer) -> None:
        self.server = server
        self.transport: asyncio.Transport | None = None
        self.session: ScpiSession | None = None
        self._paused_writing = False
        self._waiting = False
        self.closed = asyncio.get_running_loop().create_future()

    # asyncio callbacks -----------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.session = ScpiSession(
            self.server.instrument,
            transport.write,
            lambda: not self._paused_writing,
            unterminated_timeout_s=self.server.unterminated_timeout_s,
        )
        self.server._connected(self)

    def data_received(self, data: bytes) -> None:
        assert self.session is not None
        self.session.feed(data)

    def pause_writing(self) -> None:
        self._paused_writing = True

    def resume_writing(self) -> None:
        self._paused_writing = False
        if self.session is not None:
            self.session.writable()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.session is not None:
            self.session.close()
        if not self.closed.done():
            self.closed.set_result(None)
        self.server._disconnected(self)

    # server control --------------------------------------------------------------------

    def hold(self) -> None:
        """Another client is being served: do not read this one yet."""
        self._waiting = True
        assert self.transport is not None
        self.transport.pause_reading()

    def activate(self) -> None:
        self._waiting = False
        assert self.transport is not None
        if not self.server.instrument.stalled and not self.transport.is_closing():
            self.transport.resume_reading()

    def on_stall(self, stalled: bool) -> None:
        if self.transport is None or self.transport.is_closing() or self._waiting:
            return
        if stalled:
            self.transport.pause_reading()
        else:
            self.transport.resume_reading()
            assert self.session is not None
            self.session.feed(b"")  # run what arrived before the stall


class ScpiTcpServer:
    """A listening instrument. `resource` is the VISA resource string to open."""

    def __init__(
        self,
        instrument: ScpiInstrument,
        server: asyncio.Server,
        host: str,
        port: int,
        unterminated_timeout_s: float,
    ) -> None:
        self.instrument = instrument
        self._server = server
        self.host = host
        self.port = port
        self.unterminated_timeout_s = unterminated_timeout_s
        self._active: _Connection | None = None
        self._waiting: list[_Connection] = []
        self.connections_served = 0

    @property
    def resource(self) -> str:
        return resource_string(self.host, self.port)

    def _connected(self, conn: _Connection) -> None:
        if self._active is None:
            self._activate(conn)
        else:
            conn.hold()
            self._waiting.append(conn)

    def _activate(self, conn: _Connection) -> None:
        self._active = conn
        self.connections_served += 1
        self.instrument.add_stall_listener(conn.on_stall)
        conn.activate()

    def _disconnected(self, conn: _Connection) -> None:
        if conn in self._waiting:
            self._waiting.remove(conn)
            return
        if conn is self._active:
            self.instrument.remove_stall_listener(conn.on_stall)
            self._active = None
            while self._waiting:
                nxt = self._waiting.pop(0)
                if nxt.transport is not None and not nxt.transport.is_closing():
                    self._activate(nxt)
                    break

    async def close(self) -> None:
        """Stop listening and drop the clients. The instrument's outputs stay as they are."""
        self._server.close()
        conns = ([self._active] if self._active else []) + list(self._waiting)
        for conn in conns:
            if conn.transport is not None:
                conn.transport.abort()
        for conn in conns:
            await conn.closed
        await self._server.wait_closed()


async def serve_tcp(
    instrument: ScpiInstrument,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    unterminated_timeout_s: float = 2.0,
) -> ScpiTcpServer:
    """Listen for SCPI clients in the running loop; port 0 picks a free port."""
    loop = asyncio.get_running_loop()
    if not instrument.clock_attached:
        instrument.attach_clock(LoopClock(loop))
    holder: list[ScpiTcpServer] = []

    def factory() -> _Connection:
        return _Connection(holder[0])

    server = await loop.create_server(factory, host, port)
    sock = server.sockets[0]
    actual_port = int(sock.getsockname()[1])
    tcp = ScpiTcpServer(instrument, server, host, actual_port, unterminated_timeout_s)
    holder.append(tcp)
    return tcp


class ScpiServerThread:
    """A simulated instrument served from a background thread on a real-time loop.

        with ScpiServerThread("k6221", trace_path="trace.jsonl") as sim:
            inst = pyvisa.ResourceManager("@py").open_resource(sim.resource)
    """

    def __init__(
        self,
        model: str,
        *,
        trace_path: str | Path | None = None,
        faults: Iterable[FaultSpec] = (),
        port: int = 0,
        host: str = "127.0.0.1",
        **model_options: Any,
    ) -> None:
        self.instrument: ScpiInstrument = create_instrument(
            model, trace_path=trace_path, faults=tuple(faults), **model_options
        )
        self.host = host
        self.port = port
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: ScpiTcpServer | None = None
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._error: OSError | None = None
        self.resource = ""

    @property
    def trace(self) -> OutputTrace:
        return self.instrument.trace

    def start(self, timeout_s: float = 30.0) -> str:
        """Start serving; returns the VISA resource string."""
        if self._thread is not None:
            raise RuntimeError("this server thread was already started")
        self._thread = threading.Thread(
            target=self._run, name=f"scpi-sim-{self.instrument.model}", daemon=True
        )
        self._thread.start()
        if not self._ready.wait(timeout_s):
            raise RuntimeError(f"the {self.instrument.model} simulator did not start in {timeout_s} s")
        if self._error is not None:
            raise RuntimeError(f"the {self.instrument.model} simulator failed to start: {self._error}")
        return self.resource

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._main())
        finally:
            loop.close()

    async def _main(self) -> None:
        self._stop = asyncio.Event()
        try:
            self._server = await serve_tcp(self.instrument, self.host, self.port)
        except OSError as exc:  # e.g. the port is taken: reported to start()'s caller
            self._error = exc
            self._ready.set()
            return
        self.port = self._server.port
        self.resource = self._server.resource
        self._ready.set()
        await self._stop.wait()
        await self._server.close()

    def call(self, fn: Any, *args: Any, timeout_s: float = 10.0) -> Any:
        """Run fn(*args) in the instrument's loop thread and return its result."""
        loop = self._loop
        if loop is None or self._thread is None or not self._thread.is_alive():
            return fn(*args)

        async def run() -> Any:
            return fn(*args)

        fut: concurrent.futures.Future[Any] = asyncio.run_coroutine_threadsafe(run(), loop)
        return fut.result(timeout_s)

    def inject(self, fault: FaultSpec) -> None:
        """Make a fault take effect now (thread-safe; returns once it has)."""
        if fault.kind == "delay-after":
            raise ValueError("delay-after only delays other faults; pass faults=[...] instead")
        self.call(self.instrument.inject, fault)

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop serving and close the trace file. Outputs are left as they were."""
        loop, stop = self._loop, self._stop
        if loop is not None and stop is not None and self._thread is not None and self._thread.is_alive():
            loop.call_soon_threadsafe(stop.set)
            self._thread.join(timeout_s)
        self.instrument.close()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
