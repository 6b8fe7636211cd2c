"""The data behind `stimctl plot`: what it reads from a trace and from an audit log."""

from __future__ import annotations

import asyncio
from pathlib import Path

from controller.plot import load_plot_data
from sim.board import BoardConfig, SimulatedBoard, serve_tcp
from sim.trace import OutputTrace
from sim.virtual_time import run_virtual
from tests.session.programs import antagonists


def write_sample_trace_and_log(tmp_path: Path) -> tuple[Path, Path]:
    """A short alternating session on the board; returns (trace file, audit log)."""
    from controller.api import open_session
    from drivers.serial_board import SerialBoard

    trace_path = tmp_path / "trace.jsonl"
    log_path = tmp_path / "audit.jsonl"

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        trace = OutputTrace(loop.time, trace_path, device="board")
        board = SimulatedBoard(BoardConfig(), trace)
        server = await serve_tcp(board)
        try:
            async with open_session(antagonists(duration_s=30), SerialBoard(server.url),
                                    log=log_path, confirm=True, history=False) as s:
                await s.arm()
                await s.start()
                await s.wait()
        finally:
            board.shutdown()
            await server.close()
            trace.close()

    run_virtual(scenario())
    return trace_path, log_path


def test_trace_and_log_give_the_same_pair_timing(tmp_path: Path) -> None:
    trace, log = write_sample_trace_and_log(tmp_path)
    from_log = load_plot_data(log)
    assert from_log.what == "commanded"
    assert from_log.pairs == (("biceps", "triceps"),)
    assert {s.key for s in from_log.series} == {"biceps", "triceps"}
    names = {("board", 1): "biceps", ("board", 2): "triceps"}
    from_trace = load_plot_data(trace, names, [("biceps", "triceps")])
    assert from_trace.what == "delivered"
    assert {s.key for s in from_trace.series} == {"biceps", "triceps"}
    for data in (from_log, from_trace):
        peak = {s.key: max(s.amplitudes_ma) for s in data.series}
        assert peak["biceps"] == 8.0 and peak["triceps"] == 8.0
