"""A loopback TCP relay between the controller and a simulated device that can be cut.

Cutting it is the software twin of pulling a serial cable: both sides keep their sockets open
but nothing arrives any more in either direction, so neither side learns of it from the
transport. Only the device's watchdog (outputs off) and the controller's reply timeouts can
notice, which is exactly what the comms-loss scenario measures. It runs on the event loop, so
it works under virtual time with the simulator and the driver in the same loop.
"""

from __future__ import annotations

import asyncio
import contextlib


class CuttableLink:
    def __init__(self, target_host: str, target_port: int) -> None:
        self._target = (target_host, target_port)
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: list[asyncio.StreamWriter] = []
        self.cut_at_s: float | None = None
        self.bytes_dropped = 0

    @property
    def cut(self) -> bool:
        return self.cut_at_s is not None

    async def start(self) -> str:
        """Listen on 127.0.0.1; returns the pyserial URL to connect to."""
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        return f"socket://127.0.0.1:{port}"

    def cut_now(self) -> float:
        """Stop forwarding both ways from now on. Returns the loop time of the cut."""
        if self.cut_at_s is None:
            self.cut_at_s = asyncio.get_running_loop().time()
        return self.cut_at_s

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self._target)
        self._writers += [writer, up_writer]
        for src, dst in ((reader, up_writer), (up_reader, writer)):
            task = asyncio.get_running_loop().create_task(self._pump(src, dst))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _pump(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, OSError):
            while True:
                data = await src.read(4096)
                if not data:
                    break
                if self.cut_at_s is not None:
                    self.bytes_dropped += len(data)
                    continue
                dst.write(data)
                await dst.drain()
        if self.cut_at_s is None:
            with contextlib.suppress(ConnectionError, OSError):
                dst.close()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for w in self._writers:
            with contextlib.suppress(ConnectionError, OSError, RuntimeError):
                w.close()
        for t in list(self._tasks):
            t.cancel()
        for t in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
