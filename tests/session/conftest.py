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


@dataclass
class Rig:
    board: SimulatedBoard
    trace: OutputTrace
    session: Session
    url: str
    log_path: Path


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
    log_path = tmp_path / "audit.jsonl"
    try:
        driver = SerialBoard(server.url)
        async with open_session(program, driver, log=log_path, confirm=confirm,
                                history=history, subject=subject, options=options,
                                profile=profile) as session:
            yield Rig(board, trace, session, server.url, log_path)
    finally:
        board.shutdown()
        await server.close()


def virtual(fn: Callable[[], Awaitable[T]]) -> T:
    async def main() -> T:
        return await fn()

    return run_virtual(main())
