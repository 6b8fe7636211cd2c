"""The acceptance harness: the simulated board served on a loopback TCP socket in the same
virtual-time loop as the session and the production driver (drivers.serial_board), so every
test asserts on the board's own output trace."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from controller.api import open_session
from controller.history import SessionHistory
from controller.program import Program
from controller.session import Session, SessionOptions
from drivers.serial_board import SerialBoard
from sim.board import BoardConfig, SimulatedBoard, serve_tcp
from sim.faults import FaultSpec
from sim.trace import OutputTrace
from sim.virtual_time import run_virtual

T = TypeVar("T")


class CuttableLink:
    """A TCP relay between the driver and the board that can be cut: from `cut()` on, bytes in
    either direction vanish, as with a pulled cable or a hung USB adapter. The board itself
    keeps running, so its watchdog is what must switch the outputs off."""

    def __init__(self, target_port: int) -> None:
        self._target_port = target_port
        self._server: asyncio.AbstractServer | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._writers: list[asyncio.StreamWriter] = []
        self.is_cut = False
        self.url = ""

    async def start(self) -> str:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        self.url = f"socket://127.0.0.1:{port}"
        return self.url

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self._target_port)
        self._writers += [writer, up_writer]
        loop = asyncio.get_running_loop()
        self._tasks.append(loop.create_task(self._pump(reader, up_writer)))
        self._tasks.append(loop.create_task(self._pump(up_reader, writer)))

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, OSError):
            while True:
                data = await reader.read(4096)
                if not data:
                    break
                if not self.is_cut:
                    writer.write(data)
                    await writer.drain()
        with contextlib.suppress(Exception):
            writer.close()

    def cut(self) -> None:
        self.is_cut = True

    async def close(self) -> None:
        for t in self._tasks:
            t.cancel()
        for w in self._writers:
            with contextlib.suppress(Exception):
                w.close()
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await self._server.wait_closed()


@dataclass
class Rig:
    board: SimulatedBoard
    trace: OutputTrace
    session: Session
    url: str
    log_path: Path
    link: CuttableLink


@contextlib.asynccontextmanager
async def board_session(
    program: Program,
    tmp_path: Path,
    *,
    config: BoardConfig | None = None,
    faults: tuple[FaultSpec, ...] = (),
    options: SessionOptions = SessionOptions(),
    confirm: Any = True,
    history: SessionHistory | bool = False,
    subject: str | None = None,
    profile: Any = None,
) -> AsyncIterator[Rig]:
    loop = asyncio.get_running_loop()
    trace = OutputTrace(loop.time, device="board")
    board = SimulatedBoard(config or BoardConfig(), trace, faults)
    server = await serve_tcp(board)
    link = CuttableLink(int(server.url.rsplit(":", 1)[1]))
    url = await link.start()
    log_path = tmp_path / "audit.jsonl"
    try:
        driver = SerialBoard(url)
        async with open_session(program, driver, log=log_path, confirm=confirm,
                                history=history, subject=subject, options=options,
                                profile=profile) as session:
            yield Rig(board, trace, session, url, log_path, link)
    finally:
        board.shutdown()
        await link.close()
        await server.close()


def virtual(fn: Callable[[], Awaitable[T]]) -> T:
    async def main() -> T:
        return await fn()

    return run_virtual(main())
