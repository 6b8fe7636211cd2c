"""Session benchmarks: fault-to-off latency at the trace, and CPU/memory over a long session.

    python bench/session_bench.py                 # everything
    python bench/session_bench.py latency --trials 50
    python bench/session_bench.py soak --minutes 30

latency: the simulated board runs in its own thread on a real-time loop (as a real board runs
apart from the host), the session and the production driver in the main thread. For each trial
a session is stimulating on two channels, a fault is injected into the board, and the latency
is measured on the board's own trace clock: from the first trace event the fault causes (the
lead-off channel's current collapsing) to the moment no channel is active any more.
  - lead-off, board acts:      the board's own firmware switches off (off_on_compliance=True)
  - lead-off, controller acts: the board only reports (off_on_compliance=False); the session
                               must switch everything off on the asynchronous fault report
  - over-current:              the board reports and switches off (it always does)
Target: p99 <= 10 ms.

soak: a session of the given length in virtual time (an antagonist pair in software
alternation plus a single channel, on the board over a loopback socket), sampling the
process's CPU time, its RSS and tracemalloc's view of memory allocated by controller/ and
drivers/ code every simulated minute. Flat memory means no growth with session length.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import statistics
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from controller.api import open_session  # noqa: E402
from controller.machine import State  # noqa: E402
from controller.program import Program, parse_program  # noqa: E402
from controller.session import SessionOptions  # noqa: E402
from drivers.serial_board import SerialBoard  # noqa: E402
from sim.board import BoardConfig, BoardThread, SimulatedBoard, serve_tcp  # noqa: E402
from sim.faults import FaultSpec  # noqa: E402
from sim.trace import OutputTrace  # noqa: E402
from sim.virtual_time import run_virtual  # noqa: E402


def _channel(name: str, output: int, amplitude_ma: float, **kw: Any) -> dict[str, Any]:
    ch = {"name": name, "output": output, "electrode": {"kind": "pad", "area_cm2": 9.0},
          "waveform": "biphasic_symmetric", "amplitude_ma": amplitude_ma, "frequency_hz": 50,
          "pulse_width_us": 200, "ramp_up_s": 0.5, "ramp_down_s": 0.5}
    ch.update(kw)
    return ch


def latency_program() -> Program:
    return parse_program({
        "session": {"name": "latency", "profile": "body", "duration_s": 600},
        "channel": [_channel("quad", 1, 8.0), _channel("hamstring", 2, 8.0)],
    }, "<bench latency>")


def soak_program(minutes: float) -> Program:
    return parse_program({
        "session": {"name": "soak", "profile": "needle", "duration_s": minutes * 60},
        "channel": [
            _channel("a", 1, 3.0, electrode={"kind": "needle"}),
            _channel("b", 2, 3.0, electrode={"kind": "needle"}),
            _channel("c", 3, 3.0, electrode={"kind": "needle"}),
        ],
        "pair": [{"agonist": "a", "antagonist": "b", "on_s": 5, "off_s": 10,
                  "dead_time_s": 0.5, "ramp_up_s": 1, "ramp_down_s": 1}],
    }, "<bench soak>")


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1)))))
    return ordered[k]


async def _latency_trials(kind: str, board_acts: bool, trials: int, tmp: Path) -> list[float]:
    bt = BoardThread(BoardConfig(off_on_compliance=board_acts))
    url = bt.start()
    out: list[float] = []
    try:
        async with open_session(latency_program(), SerialBoard(url), log=tmp / f"{kind}.jsonl",
                                confirm=True, history=False,
                                options=SessionOptions(probe_impedance=False)) as s:
            for _ in range(trials):
                await s.arm()
                await s.start()
                while s.state is not State.STIMULATING:
                    await asyncio.sleep(0.02)
                await asyncio.sleep(0.2)
                before = len(bt.trace.events)
                await asyncio.to_thread(bt.inject, FaultSpec(kind, channel=1))
                await asyncio.wait_for(s.wait(), 5)
                await asyncio.sleep(0.05)
                after = bt.trace.events[before:]
                if not after:
                    raise RuntimeError(f"{kind}: the fault left no trace")
                t_fault = after[0].t_s
                active: dict[int, bool] = {}
                for e in bt.trace.events[:before]:
                    active[e.channel] = e.active
                t_off = None
                for e in after:
                    active[e.channel] = e.active
                    if not any(active.values()):
                        t_off = e.t_s
                        break
                if t_off is None:
                    raise RuntimeError(f"{kind}: outputs still on after the fault")
                out.append((t_off - t_fault) * 1000)
                await asyncio.to_thread(bt.clear_injected)
                await s.reset("bench: next trial")
    finally:
        bt.stop()
    return out


def run_latency(trials: int) -> None:
    print(f"fault-to-off latency at the board's trace, real time, {trials} trials each "
          "(board in its own thread)")
    with tempfile.TemporaryDirectory() as d:
        for label, kind, board_acts in (
            ("lead-off, board acts", "lead-off", True),
            ("lead-off, controller acts", "lead-off", False),
            ("over-current", "overcurrent", True),
        ):
            values = asyncio.run(_latency_trials(kind, board_acts, trials, Path(d)))
            print(f"  {label:28s} p50 {statistics.median(values):7.3f} ms   "
                  f"p99 {_percentile(values, 99):7.3f} ms   max {max(values):7.3f} ms")


def run_soak(minutes: float) -> None:
    samples: list[tuple[float, float, float, float]] = []

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        trace = OutputTrace(loop.time, device="board")
        board = SimulatedBoard(BoardConfig(), trace)
        server = await serve_tcp(board)
        filters = [tracemalloc.Filter(True, str(Path(__file__).resolve().parents[1] / p))
                   for p in ("controller/*", "drivers/*")]

        async def sampler() -> None:
            while True:
                snap = tracemalloc.take_snapshot().filter_traces(filters)
                ours = sum(s.size for s in snap.statistics("filename"))
                rss_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
                samples.append((loop.time(), time.process_time(), ours / 1024, rss_kb / 1024))
                await asyncio.sleep(60)

        with tempfile.TemporaryDirectory() as d:
            try:
                async with open_session(
                        soak_program(minutes), SerialBoard(server.url),
                        log=Path(d) / "soak.jsonl", confirm=True, history=False,
                        options=SessionOptions(software_alternation=True)) as s:
                    await s.arm()
                    task = loop.create_task(sampler())
                    await s.start()
                    final = await s.wait()
                    task.cancel()
                    print(f"  final state {final.value}, {len(trace.events)} trace events, "
                          f"audit log {os.path.getsize(Path(d) / 'soak.jsonl') / 1e6:.1f} MB")
            finally:
                board.shutdown()
                await server.close()

    tracemalloc.start()
    wall0, cpu0 = time.perf_counter(), time.process_time()
    print(f"soak: {minutes:g} min session in virtual time (software alternation + one single)")
    run_virtual(scenario())
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    tracemalloc.stop()
    print(f"  wall {wall:.1f} s, CPU {cpu:.1f} s for {minutes:g} simulated minutes "
          f"({cpu / minutes:.2f} CPU s per simulated minute)")
    print("  t_sim_s   cpu_s   controller+drivers KiB   max RSS MiB")
    for t, c, k, r in samples:
        print(f"  {t:7.0f} {c - cpu0:7.1f} {k:24.1f} {r:13.1f}")
    if len(samples) >= 4:
        mid = samples[len(samples) // 4][2]
        print(f"  growth from minute {len(samples) // 4} to the end: {samples[-1][2] - mid:+.1f} KiB")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="what")
    lat = sub.add_parser("latency")
    lat.add_argument("--trials", type=int, default=50)
    soak = sub.add_parser("soak")
    soak.add_argument("--minutes", type=float, default=30.0)
    args = ap.parse_args()
    if args.what in (None, "latency"):
        run_latency(getattr(args, "trials", 50))
    if args.what in (None, "soak"):
        run_soak(getattr(args, "minutes", 30.0))


if __name__ == "__main__":
    main()
