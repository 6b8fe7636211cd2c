"""The e-stop input monitor against pyserial's loop:// (where RTS drives CTS and DTR drives DSR,
so the line really toggles) and against a pty (which has no modem-status lines)."""

from __future__ import annotations

import asyncio
import os
import pty

import pytest
import serial

from hil.estop import EstopEvent, EstopMonitor, EstopUnavailable, press_loopback, release_loopback
from sim.virtual_time import run_virtual


def _run(coro):  # type: ignore[no-untyped-def]
    return run_virtual(coro)


@pytest.mark.parametrize("line", ["cts", "dsr"])
def test_press_is_seen_within_one_poll_interval(line: str) -> None:
    async def main() -> list[tuple[float, float]]:
        loop = asyncio.get_running_loop()
        seen: list[EstopEvent] = []
        mon = EstopMonitor.open("loop://", seen.append, line=line, poll_interval_s=0.005)  # type: ignore[arg-type]
        mon.start()
        await asyncio.sleep(0.1)
        assert seen == []
        out = []
        for _ in range(3):
            t_press = loop.time()
            press_loopback(mon.port, line)  # type: ignore[arg-type]
            await asyncio.sleep(0.05)
            out.append((t_press, seen[-1].t_s))
            release_loopback(mon.port, line)  # type: ignore[arg-type]
            await asyncio.sleep(0.05)
        await mon.aclose()
        assert len(seen) == 3, "one callback per press, not per poll"
        return out

    for t_press, t_seen in _run(main()):
        assert 0.0 <= t_seen - t_press <= 0.005 + 1e-9


def test_active_high_wiring() -> None:
    async def main() -> int:
        seen: list[EstopEvent] = []
        mon = EstopMonitor(serial.serial_for_url("loop://", timeout=0), seen.append, active="high")
        mon.port.rts = False
        mon.start()
        await asyncio.sleep(0.05)
        assert not seen
        press_loopback(mon.port, "cts", "high")
        await asyncio.sleep(0.05)
        await mon.aclose()
        return len(seen)

    assert _run(main()) == 1


def test_button_held_at_start_fires_at_once() -> None:
    async def main() -> list[EstopEvent]:
        seen: list[EstopEvent] = []
        port = serial.serial_for_url("loop://", timeout=0)
        port.rts = False  # normally-closed button already open
        mon = EstopMonitor(port, seen.append)
        mon.start()
        await asyncio.sleep(0.02)
        await mon.aclose()
        return seen

    seen = _run(main())
    assert [e.reason for e in seen] == ["held at start"]


def test_async_handler_is_awaited_and_handler_errors_do_not_stop_polling() -> None:
    async def main() -> tuple[int, int]:
        calls: list[float] = []

        async def handler(ev: EstopEvent) -> None:
            await asyncio.sleep(0.01)
            calls.append(ev.t_s)
            raise RuntimeError("session already closed")

        mon = EstopMonitor.open("loop://", handler)
        mon.start()
        for _ in range(2):
            press_loopback(mon.port)
            await asyncio.sleep(0.03)
            release_loopback(mon.port)
            await asyncio.sleep(0.03)
        await mon.aclose()
        return len(calls), len(mon.callback_errors)

    assert _run(main()) == (2, 2)


def test_lost_input_counts_as_press() -> None:
    async def main() -> list[EstopEvent]:
        seen: list[EstopEvent] = []
        mon = EstopMonitor.open("loop://", seen.append)
        mon.start()
        await asyncio.sleep(0.02)
        mon.port.close()  # adapter unplugged: reading CTS now raises
        await asyncio.sleep(0.02)
        await mon.stop()
        return seen

    seen = _run(main())
    assert len(seen) == 1 and seen[0].reason.startswith("input lost")


def test_pty_has_no_modem_lines_and_is_refused() -> None:
    master, slave = pty.openpty()
    try:
        port = serial.Serial(os.ttyname(slave), timeout=0)

        async def main() -> None:
            mon = EstopMonitor(port, lambda ev: None)
            with pytest.raises(EstopUnavailable, match="no readable CTS line"):
                mon.start()

        asyncio.run(main())
        port.close()
    finally:
        os.close(master)
        os.close(slave)


def test_bad_arguments_are_refused() -> None:
    port = serial.serial_for_url("loop://", timeout=0)
    with pytest.raises(ValueError, match="cts"):
        EstopMonitor(port, lambda ev: None, line="ri")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="poll_interval_s"):
        EstopMonitor(port, lambda ev: None, poll_interval_s=0)
    with pytest.raises(EstopUnavailable, match="cannot open"):
        EstopMonitor.open("/dev/does-not-exist-stimctl", lambda ev: None)
