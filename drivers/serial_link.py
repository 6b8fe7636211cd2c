"""A pyserial port driven by the asyncio loop: no threads, so it also runs under virtual time.

pyserial opens the port (a device path, `socket://host:port`, or anything else with a file
descriptor); from then on the loop watches the descriptor and this class moves the bytes itself
with os.read/os.write. pyserial's own non-blocking write retries EAGAIN in a busy loop, and its
read cannot tell "nothing yet" from "peer gone" on every port type, so neither is used here.
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Callable

import serial

from drivers.errors import ConnectionLost

WRITE_BUFFER_LIMIT = 64 * 1024
"""Bytes the link will queue for a port that does not drain; past it the link is declared lost."""


class SerialLink:
    def __init__(
        self,
        on_data: Callable[[bytes], None],
        on_lost: Callable[[Exception], None],
    ) -> None:
        self._on_data = on_data
        self._on_lost = on_lost
        self._port: serial.SerialBase | None = None
        self._fd: int | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pending = bytearray()
        self._writing = False
        self._lost: Exception | None = None

    @property
    def is_open(self) -> bool:
        return self._fd is not None and self._lost is None

    def open(self, url: str, baudrate: int = 115_200) -> None:
        """Open the port and start watching it. Raises ConnectionLost with what to check."""
        try:
            port = serial.serial_for_url(url, baudrate=baudrate, timeout=0, write_timeout=0)
        except (serial.SerialException, OSError, ValueError) as exc:
            raise ConnectionLost(
                f"cannot open {url!r}: {exc}. Check the device path or socket:// URL, that the "
                "board (or `stimctl sim serve firmware`) is running, and that no other program "
                "holds the port."
            ) from exc
        try:
            fd = port.fileno()
        except Exception as exc:
            port.close()
            raise ConnectionLost(
                f"{url!r} opens a port without a file descriptor ({type(port).__name__}); the "
                "board driver needs a serial device path or a socket:// URL"
            ) from exc
        sock = getattr(port, "_socket", None)
        if isinstance(sock, socket.socket):
            # pyserial leaves Nagle on: a small frame sent while an earlier one is unacked (a
            # retry to a board that did not answer) would wait for the peer's delayed ACK.
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if hasattr(port, "reset_input_buffer"):
            port.reset_input_buffer()  # stale bytes from an earlier session
        os.set_blocking(fd, False)
        self._port, self._fd = port, fd
        self._loop = asyncio.get_running_loop()
        self._lost = None
        self._loop.add_reader(fd, self._on_readable)

    def write(self, data: bytes) -> None:
        """Queue bytes for the port; raises ConnectionLost if the link is gone."""
        if self._lost is not None:
            raise ConnectionLost(f"the serial link is down: {self._lost}")
        if self._fd is None:
            raise ConnectionLost("the serial link is not open")
        if self._pending:
            self._queue(data)
            return
        try:
            written = os.write(self._fd, data)
        except (BlockingIOError, InterruptedError):
            written = 0
        except OSError as exc:
            self._fail(exc)
            raise ConnectionLost(f"write to the serial port failed: {exc}") from exc
        if written < len(data):
            self._queue(data[written:])

    def _queue(self, data: bytes) -> None:
        if len(self._pending) + len(data) > WRITE_BUFFER_LIMIT:
            exc = ConnectionLost("the port accepted nothing for 64 KiB of output: peer not reading")
            self._fail(exc)
            raise exc
        self._pending += data
        if not self._writing and self._loop is not None and self._fd is not None:
            self._writing = True
            self._loop.add_writer(self._fd, self._on_writable)

    def _on_writable(self) -> None:
        if self._fd is None:
            return
        try:
            written = os.write(self._fd, self._pending)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self._fail(exc)
            return
        del self._pending[:written]
        if not self._pending:
            self._stop_writing()

    def _stop_writing(self) -> None:
        if self._writing and self._loop is not None and self._fd is not None:
            self._loop.remove_writer(self._fd)
        self._writing = False

    def _on_readable(self) -> None:
        if self._fd is None:
            return
        try:
            data = os.read(self._fd, 4096)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:  # EIO on a tty whose other end went away, ECONNRESET, ...
            self._fail(exc)
            return
        if not data:
            self._fail(ConnectionLost("the peer closed the connection"))
            return
        self._on_data(data)

    def _fail(self, exc: Exception) -> None:
        if self._lost is not None:
            return
        self._lost = exc
        self._detach()
        self._on_lost(exc)

    def _detach(self) -> None:
        if self._loop is not None and self._fd is not None and not self._loop.is_closed():
            self._loop.remove_reader(self._fd)
            self._stop_writing()
        self._writing = False

    async def drain(self, timeout_s: float) -> None:
        """Wait until queued bytes are handed to the OS (bounded: a port that never drains
        is a dead link anyway)."""
        deadline = asyncio.get_running_loop().time() + timeout_s
        while self._pending and self._lost is None:
            if asyncio.get_running_loop().time() >= deadline:
                return
            await asyncio.sleep(0.001)

    def close(self) -> None:
        """Release the port (idempotent)."""
        self._detach()
        port, self._port, self._fd = self._port, None, None
        self._pending.clear()
        if port is None:
            return
        sock = getattr(port, "_socket", None)
        if sock is not None:
            # pyserial's socket:// close() sleeps 0.3 s "for quick reconnects", which would
            # freeze the whole event loop (the controller's interlock included): close it here.
            try:
                sock.close()
            except OSError:
                pass
            port._socket = None
            port.is_open = False
            return
        try:
            port.close()
        except (serial.SerialException, OSError):
            pass  # the port is going away either way
