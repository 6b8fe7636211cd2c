"""How fast the SCPI simulator core is, as three figures:

1. parse + execute: program messages per second through `K6221.process` in-process (the
   parser, command tree and handlers, no socket), for a mix of short sets and queries, and
   arbitrary-waveform points per second in 100-point SOUR:WAVE:ARB:DATA commands;
2. round trips: `*IDN?`-class queries per second through pyvisa-py over loopback TCP against
   `stimctl sim serve k6221` in its own process (what a driver sees);
3. virtual time: wall seconds to run a 20-minute waveform session through serve_tcp and an
   asyncio client under sim.virtual_time (the speed CI tests get).

Each figure is the best of several rounds (a shared machine makes the others noisy) with the
median beside it.

    python bench/scpi_sim_bench.py
    python bench/scpi_sim_bench.py --rounds 9 --messages 20000 --queries 2000
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import time

import pyvisa

from sim.scpi.clock import ManualClock
from sim.scpi.k6221 import K6221
from sim.scpi.server import serve_tcp
from sim.virtual_time import run_virtual

MIX = [
    b"SOUR:CURR 1.5e-3",
    b"SOUR:CURR?",
    b"OUTP?",
    b"STAT:MEAS:COND?",
    b"SOUR:WAVE:FREQ 50;AMPL 2e-3;OFFS 0",
    b"SYST:ERR?",
    b"*OPC?",
]
ARB_CHUNK = b"SOUR:WAVE:ARB:DATA " + b",".join([b"0.5", b"-0.5", b"0"] * 33 + [b"0"])


def bench_process(messages: int) -> float:
    inst = K6221(clock=ManualClock())
    inst.process(b"SOUR:CURR:RANG 20e-3")
    start = time.perf_counter()
    for i in range(messages):
        inst.process(MIX[i % len(MIX)])
    return messages / (time.perf_counter() - start)


def bench_arb_points(chunks: int) -> float:
    inst = K6221(clock=ManualClock())
    start = time.perf_counter()
    for _ in range(chunks):
        inst.process(ARB_CHUNK)
    return chunks * 100 / (time.perf_counter() - start)


def bench_round_trips(queries: int) -> float:
    code = "import sys; from controller.cli import main; sys.exit(main())"
    proc = subprocess.Popen(
        [sys.executable, "-c", code, "sim", "serve", "k6221"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stdout is not None
        resource = proc.stdout.readline().strip()
        rm = pyvisa.ResourceManager("@py")
        inst = rm.open_resource(resource)
        inst.read_termination = inst.write_termination = "\n"
        inst.timeout = 30_000
        inst.query("*IDN?")
        start = time.perf_counter()
        for _ in range(queries):
            inst.query("SOUR:CURR?")
        rate = queries / (time.perf_counter() - start)
        inst.close()
        rm.close()
        return rate
    finally:
        proc.terminate()
        proc.wait(30)


def bench_virtual_session(session_s: float) -> float:
    async def scenario() -> None:
        inst = K6221()
        server = await serve_tcp(inst)
        reader, writer = await asyncio.open_connection(server.host, server.port)
        writer.write(f"SOUR:WAVE:FREQ 50;AMPL 4e-3;DUR:TIME {session_s}\nSOUR:WAVE:ARM;INIT\n".encode())
        for _ in range(int(session_s)):  # one status poll per virtual second, as a controller
            writer.write(b"OUTP?;:STAT:MEAS:COND?\n")
            await reader.readline()
            await asyncio.sleep(1.0)
        writer.close()
        await writer.wait_closed()
        await server.close()
        inst.close()

    start = time.perf_counter()
    run_virtual(scenario())
    return time.perf_counter() - start


def report(name: str, values: list[float], unit: str, best: str) -> None:
    pick = max(values) if best == "max" else min(values)
    print(f"{name:<46} best {pick:>10.1f} {unit}   median {statistics.median(values):>10.1f} {unit}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--queries", type=int, default=1_000)
    parser.add_argument("--session-s", type=float, default=1200.0)
    args = parser.parse_args()
    report("parse+execute, in process (messages/s)",
           [bench_process(args.messages) for _ in range(args.rounds)], "msg/s", "max")
    report("arb upload, 100 points/command (points/s)",
           [bench_arb_points(args.messages // 20) for _ in range(args.rounds)], "pt/s", "max")
    report("pyvisa round trips over TCP (queries/s)",
           [bench_round_trips(args.queries) for _ in range(args.rounds)], "q/s", "max")
    report(f"virtual {args.session_s:g} s session, 1 poll/s (wall s)",
           [bench_virtual_session(args.session_s) for _ in range(args.rounds)], "s", "min")


if __name__ == "__main__":
    main()
