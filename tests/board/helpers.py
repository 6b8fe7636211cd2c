"""Shared pieces of the board tests: a board served on loopback TCP in the test's own loop, and
a raw protocol host that can send what the driver never would (out-of-range values, garbage)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass

from drivers.base import ChannelConfig, FaultReport, Waveform
from drivers.serial_board import SerialBoard
from firmware_protocol import Connection, Received, Role
from firmware_protocol import messages as m
from sim.board import BoardConfig, BoardServer, SimulatedBoard, serve_tcp
from sim.faults import FaultSpec
from sim.trace import OutputTrace

CFG_10MA = ChannelConfig(Waveform.BIPHASIC_SYMMETRIC, 10.0, 50.0, 200.0)


@dataclass
class Rig:
    board: SimulatedBoard
    server: BoardServer
    trace: OutputTrace
    driver: SerialBoard
    faults: list[FaultReport]

    def now(self) -> float:
        return asyncio.get_running_loop().time()


@asynccontextmanager
async def tcp_rig(
    config: BoardConfig | None = None,
    faults: Iterable[FaultSpec] = (),
    open_driver: bool = True,
    **driver_kwargs: float,
) -> AsyncIterator[Rig]:
    loop = asyncio.get_running_loop()
    trace = OutputTrace(loop.time, device="board")
    board = SimulatedBoard(config or BoardConfig(), trace, faults)
    server = await serve_tcp(board)
    driver = SerialBoard(server.url, **driver_kwargs)  # type: ignore[arg-type]
    seen: list[FaultReport] = []
    driver.add_fault_listener(seen.append)
    if open_driver:
        await driver.open()
    try:
        yield Rig(board, server, trace, driver, seen)
    finally:
        await driver.close()
        await server.close()
        board.shutdown()


class RawHost:
    """The host end of the protocol over a plain asyncio TCP stream."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.conn = Connection(Role.HOST)
        self.inbox: list[m.Message] = []

    @classmethod
    async def connect(cls, url: str) -> RawHost:
        host, port = url.removeprefix("socket://").rsplit(":", 1)
        reader, writer = await asyncio.open_connection(host, int(port))
        return cls(reader, writer)

    async def send_raw(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def request(self, msg: m.HostMessage, timeout_s: float = 0.5) -> m.Message:
        seq, data = self.conn.send(msg)
        await self.send_raw(data)
        return await self.reply_to(seq, timeout_s)

    async def reply_to(self, seq: int, timeout_s: float = 0.5) -> m.Message:
        async def wait() -> m.Message:
            while True:
                for i, msg in enumerate(self.inbox):
                    if getattr(msg, "acked_seq", None) == seq:
                        return self.inbox.pop(i)
                chunk = await self.reader.read(4096)
                if not chunk:
                    raise ConnectionError("board closed the connection")
                for ev in self.conn.receive_data(chunk):
                    if isinstance(ev, Received):
                        self.inbox.append(ev.message)

        return await asyncio.wait_for(wait(), timeout_s)

    async def hello(self) -> m.HelloReply:
        reply = await self.request(m.Hello(m.PROTOCOL_VERSION))
        assert isinstance(reply, m.HelloReply), reply
        return reply

    async def close(self) -> None:
        self.writer.close()
        try:
            await self.writer.wait_closed()
        except ConnectionError:
            pass
