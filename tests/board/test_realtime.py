"""The board on a pseudo-terminal, in a background thread and as a CLI process: real time, so
short, with generous timeouts and assertions on the simulator's own timestamps only."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from drivers.base import AlternationSchedule, FaultKind
from drivers.serial_board import SerialBoard
from sim.board import BoardConfig, BoardThread, SimulatedBoard, serve_pty
from sim.faults import parse_fault
from sim.trace import OutputTrace, all_off_at, load_trace, min_dead_time_s, overlap_s
from tests.board.helpers import CFG_10MA

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="pseudo-terminals are POSIX")

# Under a loaded CI machine the loop may run late; these margins only absorb that.
LOAD_MARGIN_S = 0.5
PATIENT = {"reply_timeout_s": 1.0, "open_timeout_s": 5.0}


def test_pty_session_with_alternation() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        trace = OutputTrace(loop.time, device="board")
        # A long watchdog: this test is about the transport, not about surviving load.
        board = SimulatedBoard(BoardConfig(watchdog_ms=5000), trace)
        server = await serve_pty(board)
        assert server.url.startswith("/dev/")
        d = SerialBoard(server.url, **PATIENT)
        await d.open()
        try:
            await d.configure_channel(1, CFG_10MA)
            await d.configure_channel(2, CFG_10MA)
            await d.set_output(1, True)
            assert await d.set_amplitude(1, 7.5) == 7.5
            st = await d.status()
            assert st.channel(1).output_on and st.channel(1).measured_amplitude_ma == 7.5
            await d.set_output(1, False)
            await d.program_alternation(AlternationSchedule(1, 2, 0.06, 0.02, 0.03, 0.02, 0.02))
            await d.start_alternation()
            await asyncio.sleep(0.4)
            await d.stop_alternation()
        finally:
            await d.close()
            await server.close()
        ev = trace.events
        assert overlap_s(ev, 1, 2) == 0.0
        dead = min_dead_time_s(ev, 1, 2)
        assert dead is not None and dead >= 0.02 - 1e-9
        assert not any(board.output_states.values())
        assert [e.amplitude_ma for e in ev if e.channel == 1 and e.on][:2] == [10.0, 7.5]

    asyncio.run(main())


def test_pty_host_vanishing_leaves_nothing_on() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        trace = OutputTrace(loop.time, device="board")
        board = SimulatedBoard(BoardConfig(), trace)
        server = await serve_pty(board)
        d = SerialBoard(server.url, **PATIENT)
        await d.open()
        await d.configure_channel(1, CFG_10MA)
        await d.set_output(1, True)
        last = board.last_frame_s
        d._release()  # the host process dies: port closed, no goodbye
        for _ in range(100):
            await asyncio.sleep(0.02)
            if board.fault_latched:
                break
        await server.close()
        assert last is not None
        off = all_off_at(trace.events, last)
        assert off is not None
        # The board timestamps its own trip: the watchdog period, plus only what load adds.
        assert off - last <= 0.075 + LOAD_MARGIN_S
        assert not board.watchdog_armed and board.fault_latched

    asyncio.run(main())


def test_board_thread_serves_a_pty_and_stops_with_outputs_off(tmp_path: Path) -> None:
    trace_file = tmp_path / "board.jsonl"
    sim = BoardThread(BoardConfig(watchdog_ms=5000), trace_path=trace_file, transport="pty")
    url = sim.start()
    seen: list[FaultKind] = []

    async def main() -> None:
        d = SerialBoard(url, **PATIENT)
        d.add_fault_listener(lambda f: seen.append(f.kind))
        await d.open()
        await d.configure_channel(2, CFG_10MA)
        await d.set_output(2, True)
        sim.inject(parse_fault("overcurrent:2"))
        for _ in range(100):
            if seen:
                break
            await asyncio.sleep(0.02)
        await d.close()

    try:
        asyncio.run(main())
    finally:
        sim.stop()
    assert seen == [FaultKind.OVERCURRENT]
    events = load_trace(trace_file)
    assert events == sim.trace.events
    assert any(e.active and e.channel == 2 for e in events)
    assert all_off_at(events, events[-1].t_s) is not None


def test_board_thread_over_tcp() -> None:
    sim = BoardThread(BoardConfig(watchdog_ms=5000), transport="tcp")
    url = sim.start()
    assert url.startswith("socket://127.0.0.1:")

    async def main() -> None:
        d = SerialBoard(url, **PATIENT)
        await d.open()
        await d.configure_channel(1, CFG_10MA)
        await d.set_output(1, True)
        # Left on when the simulator stops: powering it off must switch it off in the trace.

    try:
        asyncio.run(main())
    finally:
        sim.stop()
    last = [e for e in sim.trace.events if e.channel == 1][-1]
    assert not last.on


def _stimctl_sim(*args: str) -> list[str]:
    # `stimctl sim ...` without importing the whole controller: a quicker start on a busy box.
    return [sys.executable, "-c", "from sim.cli import sim_group; sim_group(prog_name='stimctl sim')", *args]


def test_cli_serves_prints_the_address_first_and_stops_cleanly(tmp_path: Path) -> None:
    trace_file = tmp_path / "cli.jsonl"
    proc = subprocess.Popen(
        _stimctl_sim("serve", "firmware", "--pty", "--trace", str(trace_file),
                 "--watchdog-ms", "5000", "--channels", "2"),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        assert url.startswith("/dev/"), url

        async def main() -> None:
            d = SerialBoard(url, **PATIENT)
            caps = await d.open()
            assert len(caps.channels) == 2 and caps.watchdog_timeout_s == 5.0
            await d.configure_channel(1, CFG_10MA)
            await d.set_output(1, True)
            d._release()  # leave it on; Ctrl-C on the simulator must still end with it off

        asyncio.run(main())
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    events = load_trace(trace_file)
    assert any(e.active for e in events)
    assert not [e for e in events if e.channel == 1][-1].on


def test_cli_rejects_bad_arguments_with_advice() -> None:
    from click.testing import CliRunner

    from sim.board.cli import firmware_command

    runner = CliRunner()
    for args, needle in (
        (["--fault", "lead-off:9"], "channels 1..4"),
        (["--fault", "garble"], "SCPI"),
        (["--fault", "nonsense"], "unknown fault"),
        (["--pty", "--listen", "127.0.0.1:0"], "not both"),
        (["--listen", "127.0.0.1:http"], "port must be a number"),
        (["--watchdog-ms", "1"], "5<=x<=60000"),
    ):
        result = runner.invoke(firmware_command, args)
        assert result.exit_code == 2, (args, result.output)
        assert needle in result.stderr, (args, result.stderr)
        assert result.stdout == ""
