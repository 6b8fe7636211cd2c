"""Benchmarks of the board driver against the simulated board, in real time.

The board runs apart from the host, as a real board does: by default in a child process
(`stimctl sim serve firmware`), or with --board thread in a thread with its own event loop. The
driver runs in this process's main loop and talks to it over a pseudo-terminal (or loopback TCP
with --transport tcp). Prints its figures; asserts nothing.

    python bench/board_bench.py                       # pty, defaults below
    python bench/board_bench.py --transport tcp --iterations 5000 --trials 50

Figures:
- set_amplitude round trip: one acknowledged SetAmplitude, host call to host return.
- watchdog: from just before the host's last frame (then it goes silent) to the moment the
  board's own trace shows every output off. Both are CLOCK_MONOTONIC readings.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from drivers.base import ChannelConfig, Waveform
from drivers.serial_board import SerialBoard
from sim.board import BoardConfig, BoardThread
from sim.trace import TraceEvent, all_off_at, load_trace

CONFIG = ChannelConfig(Waveform.BIPHASIC_SYMMETRIC, 5.0, 50.0, 200.0)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1))))
    return ordered[k]


async def round_trips(driver: SerialBoard, iterations: int) -> list[float]:
    await driver.configure_channel(1, CONFIG)
    await driver.set_output(1, True)
    samples: list[float] = []
    for i in range(iterations):
        amplitude_ma = 1.0 + (i % 400) * 0.01
        t0 = time.perf_counter()
        await driver.set_amplitude(1, amplitude_ma)
        samples.append(time.perf_counter() - t0)
    await driver.set_output(1, False)
    return samples


class BoardProcess:
    """`stimctl sim serve firmware` in a child process: no GIL shared with the host."""

    def __init__(self, transport: str, watchdog_ms: int, trace_path: Path) -> None:
        where = ["--pty"] if transport == "pty" else ["--listen", "127.0.0.1:0"]
        self.trace_path = trace_path
        self.proc = subprocess.Popen(
            [sys.executable, "-c", "from sim.cli import sim_group; sim_group()", "serve", "firmware",
             *where, "--trace", str(trace_path), "--watchdog-ms", str(watchdog_ms)],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        )
        assert self.proc.stdout is not None
        self.url = self.proc.stdout.readline().strip()
        if not self.url:
            raise RuntimeError("the board simulator did not start")

    def events(self) -> list[TraceEvent]:
        return load_trace(self.trace_path)

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class BoardInThread:
    def __init__(self, transport: str, watchdog_ms: int) -> None:
        self.sim = BoardThread(BoardConfig(watchdog_ms=watchdog_ms), transport=transport)  # type: ignore[arg-type]
        self.url = self.sim.start()

    def events(self) -> list[TraceEvent]:
        return self.sim.trace.events

    def stop(self) -> None:
        self.sim.stop()


async def watchdog_trials(
    board: BoardProcess | BoardInThread, driver: SerialBoard, trials: int, heartbeat_s: float
) -> list[float]:
    samples: list[float] = []
    for _ in range(trials):
        await driver.clear_faults()
        await driver.configure_channel(1, CONFIG)
        await driver.set_output(1, True)
        for _ in range(4):  # a few healthy heartbeats first
            await asyncio.sleep(heartbeat_s)
            await driver.heartbeat()
        await asyncio.sleep(heartbeat_s)
        # The last frame the host sends; the clock is CLOCK_MONOTONIC, which the board's loop
        # (in this process or another) also uses. Taken before sending: a conservative start.
        silent_from_s = time.monotonic()
        await driver.heartbeat()
        off_s = None
        deadline = time.monotonic() + 2.0
        while off_s is None and time.monotonic() < deadline:
            await asyncio.sleep(0.005)
            events = board.events()
            if events and events[-1].t_s >= silent_from_s:
                off_s = all_off_at(events, silent_from_s)
        if off_s is None:
            raise RuntimeError("the board's watchdog did not switch the outputs off within 2 s")
        samples.append(off_s - silent_from_s)
    return samples


async def run(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        board: BoardProcess | BoardInThread
        if args.board == "process":
            board = BoardProcess(args.transport, args.watchdog_ms, Path(tmp) / "trace.jsonl")
        else:
            board = BoardInThread(args.transport, args.watchdog_ms)
        try:
            driver = SerialBoard(board.url, reply_timeout_s=0.5, open_timeout_s=5.0)
            caps = await driver.open()
            heartbeat_s = args.heartbeat_ms / 1000 if args.heartbeat_ms else caps.recommended_heartbeat_s or 0.025
            rt = await round_trips(driver, args.iterations)
            wd = await watchdog_trials(board, driver, args.trials, heartbeat_s)
            await driver.clear_faults()
            await driver.close()
        finally:
            board.stop()
    print(f"transport: {args.transport} ({board.url}); board in its own {args.board}")
    print(f"set_amplitude acked round trip over {len(rt)} calls: "
          f"p50 {statistics.median(rt) * 1e3:.3f} ms, p99 {percentile(rt, 99) * 1e3:.3f} ms, "
          f"max {max(rt) * 1e3:.3f} ms (target p99 <= 2 ms)")
    print(f"host silent -> all outputs off (board trace) over {len(wd)} trials: "
          f"p50 {statistics.median(wd) * 1e3:.1f} ms, p99 {percentile(wd, 99) * 1e3:.1f} ms, "
          f"max {max(wd) * 1e3:.1f} ms (watchdog {args.watchdog_ms} ms; target <= 100 ms)")
    recommended = caps.recommended_heartbeat_s or 0.0
    print(f"heartbeat period used: {heartbeat_s * 1e3:.1f} ms (board recommends {recommended * 1e3:.1f} ms)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--transport", choices=("pty", "tcp"), default="pty")
    parser.add_argument("--board", choices=("process", "thread"), default="process",
                        help="run the simulated board in a child process (default) or a thread")
    parser.add_argument("--iterations", type=int, default=2000, help="set_amplitude round trips (default 2000)")
    parser.add_argument("--trials", type=int, default=30, help="watchdog trials (default 30, at least 20)")
    parser.add_argument("--watchdog-ms", type=int, default=75, help="the board's watchdog (default 75)")
    parser.add_argument("--heartbeat-ms", type=float, default=0.0,
                        help="heartbeat period; default: what the board recommends (watchdog/3)")
    args = parser.parse_args()
    if args.trials < 1 or args.iterations < 1:
        parser.error("--trials and --iterations must be >= 1")
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
