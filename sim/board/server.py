"""The board on real transports: a TCP socket on loopback, or a pseudo-terminal.

pyserial reaches the first with a `socket://127.0.0.1:PORT` URL and opens the second's slave
path as it would a USB serial adapter, so the driver under test runs its production code path.
"""

from __future__ import annotations

import asyncio
import errno
import os
import tty
from collections.abc import Awaitable, Callable

from sim.board.device import SimulatedBoard
from sim.board.link import BoardLink

PTY_BUFFER_LIMIT = 64 * 1024
"""Bytes held for a pty nobody reads; beyond it output is lost, as from a UART with no listener."""


class BoardServer:
    """A board being served. `url` is what pyserial.serial_for_url (and SerialBoard) takes."""

    def __init__(self, url: str, closer: Callable[[], Awaitable[None]]) -> None:
        self.url = url
        self._closer = closer
        self._closed = False

    async def close(self) -> None:
        """Stop serving (idempotent). The board itself keeps its state; shut it down first if
        the outputs must go off."""
        if not self._closed:
            self._closed = True
            await self._closer()


class _TcpProtocol(asyncio.Protocol):
    def __init__(self, board: SimulatedBoard, transports: set[asyncio.Transport]) -> None:
        self._board = board
        self._transports = transports
        self._transport: asyncio.Transport | None = None
        self._link: BoardLink | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        if self._board.connected:
            # One host at a time, as on a serial line.
            transport.close()
            return
        self._transport = transport
        self._transports.add(transport)
        self._link = BoardLink(self._board, self._write)
        self._board.attach(self._link)

    def _write(self, data: bytes) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.write(data)

    def data_received(self, data: bytes) -> None:
        if self._link is not None:
            self._link.data_received(data)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._link is not None:
            self._board.detach(self._link)
            self._link = None
        if self._transport is not None:
            self._transports.discard(self._transport)
            self._transport = None


async def serve_tcp(board: SimulatedBoard, host: str = "127.0.0.1", port: int = 0) -> BoardServer:
    """Serve the board on TCP; one client at a time (a second one is closed at once)."""
    board.start()
    loop = asyncio.get_running_loop()
    transports: set[asyncio.Transport] = set()
    server = await loop.create_server(lambda: _TcpProtocol(board, transports), host, port)
    bound_port = server.sockets[0].getsockname()[1]

    async def closer() -> None:
        server.close()
        for transport in list(transports):
            transport.close()
        await server.wait_closed()

    return BoardServer(f"socket://{host}:{bound_port}", closer)


class _PtyEnd:
    """The simulator's (master) end of a pseudo-terminal, non-blocking, on the loop."""

    def __init__(self, board: SimulatedBoard) -> None:
        self._loop = asyncio.get_running_loop()
        self.master_fd, self._slave_fd = os.openpty()
        # Raw: no echo, no line discipline, no CR/LF translation; a frame's bytes pass untouched.
        tty.setraw(self._slave_fd)
        os.set_blocking(self.master_fd, False)
        self.path = os.ttyname(self._slave_fd)
        self._pending = bytearray()
        self._writing = False
        self._link = BoardLink(board, self.write)
        self._board = board
        board.attach(self._link)
        self._loop.add_reader(self.master_fd, self._on_readable)

    def _on_readable(self) -> None:
        try:
            data = os.read(self.master_fd, 4096)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            # EIO: no process holds the slave open. We keep our own slave fd, so this is rare.
            if exc.errno != errno.EIO:
                raise
            return
        if data:
            self._link.data_received(data)

    def write(self, data: bytes) -> None:
        if self._pending:
            self._queue(data)
            return
        try:
            written = os.write(self.master_fd, data)
        except (BlockingIOError, InterruptedError):
            written = 0
        if written < len(data):
            self._queue(data[written:])

    def _queue(self, data: bytes) -> None:
        room = PTY_BUFFER_LIMIT - len(self._pending)
        self._pending += data[: max(room, 0)]
        if self._pending and not self._writing:
            self._writing = True
            self._loop.add_writer(self.master_fd, self._on_writable)

    def _on_writable(self) -> None:
        try:
            written = os.write(self.master_fd, self._pending)
        except (BlockingIOError, InterruptedError):
            return
        del self._pending[:written]
        if not self._pending:
            self._writing = False
            self._loop.remove_writer(self.master_fd)

    async def close(self) -> None:
        self._loop.remove_reader(self.master_fd)
        if self._writing:
            self._loop.remove_writer(self.master_fd)
            self._writing = False
        self._board.detach(self._link)
        os.close(self.master_fd)
        os.close(self._slave_fd)


async def serve_pty(board: SimulatedBoard) -> BoardServer:
    """Serve the board on a new pseudo-terminal; `url` is the slave's path (e.g. /dev/pts/5).

    The simulator keeps the slave open itself, so the host can close and reopen the port as
    often as it likes: like a real board, it never learns that the host went away.
    """
    board.start()
    end = _PtyEnd(board)
    return BoardServer(end.path, end.close)
