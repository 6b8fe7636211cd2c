"""The hardware emergency-stop input: a button wired to a modem-status line (CTS or DSR) of a
serial port, polled on the event loop.

Polling, not a thread: the monitor is a task on the same loop as the session it stops, so under
virtual time it runs in step with the simulators and its reaction time is measurable on their
clock. Its worst-case detection delay is one poll interval.

Fail safe: a line that cannot be read any more (the adapter unplugged, the port gone) counts as
a press. A port that has no modem-status lines at all (a pseudo-terminal, where TIOCMGET fails
with ENOTTY, or a raw TCP socket) is refused when the monitor starts, with a message saying so,
because such an input could never be pressed.

On pyserial's ``loop://`` URL RTS drives CTS and DTR drives DSR, which is the one transport on
which the line can be toggled without hardware: tests and the simulated rig press the button by
writing RTS/DTR on the same port object.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal

import serial

EstopLine = Literal["cts", "dsr"]
EstopActive = Literal["low", "high"]


class EstopUnavailable(RuntimeError):
    """The port cannot serve as an e-stop input (missing, or without modem-status lines)."""


@dataclass(frozen=True)
class EstopEvent:
    t_s: float
    """The loop time at which the press was seen."""
    reason: str
    """"pressed", "held at start" or "input lost: ..."."""


EstopCallback = Callable[[EstopEvent], Awaitable[None] | None]


class EstopMonitor:
    """Watches one modem-status line and calls on_press once per press (edge, not level).

    With active="low" (a normally-closed button fed from RTS/DTR, the fail-safe wiring) the
    button counts as pressed while the line is deasserted.
    """

    def __init__(
        self,
        port: serial.SerialBase,
        on_press: EstopCallback,
        *,
        line: EstopLine = "cts",
        active: EstopActive = "low",
        poll_interval_s: float = 0.005,
    ) -> None:
        if line not in ("cts", "dsr"):
            raise ValueError(f"e-stop line must be 'cts' or 'dsr', got {line!r}")
        if active not in ("low", "high"):
            raise ValueError(f"e-stop active level must be 'low' or 'high', got {active!r}")
        if not poll_interval_s > 0:
            raise ValueError(f"poll_interval_s must be > 0, got {poll_interval_s!r}")
        self._port = port
        self._on_press = on_press
        self._line = line
        self._active_high = active == "high"
        self.poll_interval_s = poll_interval_s
        self._task: asyncio.Task[None] | None = None
        self._callbacks: set[asyncio.Task[None]] = set()
        self._pressed = False
        self.events: list[EstopEvent] = []
        self.callback_errors: list[BaseException] = []

    @classmethod
    def open(
        cls,
        url: str,
        on_press: EstopCallback,
        *,
        line: EstopLine = "cts",
        active: EstopActive = "low",
        poll_interval_s: float = 0.005,
    ) -> EstopMonitor:
        """Open the port by pyserial URL or path. On a real port RTS and DTR are driven high
        so they can feed a normally-closed button."""
        try:
            port = serial.serial_for_url(url, timeout=0, do_not_open=True)
            port.rts = True
            port.dtr = True
            port.open()
        except (serial.SerialException, OSError, ValueError) as exc:
            raise EstopUnavailable(f"cannot open e-stop port {url!r}: {exc}") from None
        return cls(port, on_press, line=line, active=active, poll_interval_s=poll_interval_s)

    @property
    def port(self) -> serial.SerialBase:
        return self._port

    @property
    def pressed(self) -> bool:
        return self._pressed

    def read_pressed(self) -> bool:
        """Read the line once. Raises OSError/SerialException if it cannot be read."""
        level = bool(self._port.cts if self._line == "cts" else self._port.dsr)
        return level if self._active_high else not level

    def start(self) -> None:
        """Check the line can be read, then start polling. A button already pressed at start
        fires at once."""
        if self._task is not None:
            return
        try:
            self.read_pressed()
        except (OSError, serial.SerialException) as exc:
            raise EstopUnavailable(
                f"e-stop port {self._port.name or self._port.port!r} has no readable "
                f"{self._line.upper()} line ({exc}); a pseudo-terminal or TCP socket has no "
                "modem-status lines: wire the button to a real serial adapter, or use loop:// "
                "in a simulated rig"
            ) from None
        self._task = asyncio.get_running_loop().create_task(self._poll(), name="estop-monitor")

    async def _poll(self) -> None:
        loop = asyncio.get_running_loop()
        first = True
        while True:
            try:
                now_pressed = self.read_pressed()
                reason = "held at start" if first else "pressed"
            except (OSError, serial.SerialException) as exc:
                now_pressed = True
                reason = f"input lost: {exc}"
            first = False
            if now_pressed and not self._pressed:
                self._fire(EstopEvent(loop.time(), reason))
            self._pressed = now_pressed
            await asyncio.sleep(self.poll_interval_s)

    def _fire(self, event: EstopEvent) -> None:
        self.events.append(event)
        try:
            result = self._on_press(event)
        except Exception as exc:  # noqa: BLE001 - keep polling: the next press must still count
            self.callback_errors.append(exc)
            return
        if inspect.isawaitable(result):
            task = asyncio.ensure_future(result)
            self._callbacks.add(task)
            task.add_done_callback(self._handler_done)

    def _handler_done(self, task: asyncio.Task[None]) -> None:
        self._callbacks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            exc = task.exception()
            assert exc is not None
            self.callback_errors.append(exc)

    async def stop(self) -> None:
        """Stop polling and wait for any press handler still running."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass
        if self._callbacks:
            await asyncio.gather(*self._callbacks, return_exceptions=True)

    async def aclose(self) -> None:
        await self.stop()
        self._port.close()


def press_loopback(
    port: serial.SerialBase, line: EstopLine = "cts", active: EstopActive = "low"
) -> None:
    """Press the button of a loop:// e-stop (the simulated rig's way to hit the e-stop)."""
    level = active == "high"
    if line == "cts":
        port.rts = level
    else:
        port.dtr = level


def release_loopback(
    port: serial.SerialBase, line: EstopLine = "cts", active: EstopActive = "low"
) -> None:
    level = active != "high"
    if line == "cts":
        port.rts = level
    else:
        port.dtr = level
