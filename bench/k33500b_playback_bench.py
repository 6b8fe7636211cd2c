"""Speed of the 33500B simulator's playback and arb handling.

    python bench/k33500b_playback_bench.py [--repeats 3] [--minutes 20]

Three figures, each the best of --repeats runs (the least disturbed by other processes):

1. virtual-time playback: a complementary pair of 50 Hz biphasic trains (antagonists with a
   dead time), loaded over loopback TCP, FUNC:ARB:SYNC, both outputs on for --minutes of
   simulated time, under sim.virtual_time. Printed as simulated seconds per wall second and
   trace records per wall second.
2. envelope extraction (sim.scpi.playback.arb_envelope) of a 1 MSa pulse-train waveform, in
   samples per second.
3. a 1 MSa DATA:ARB:DAC binary block through pyvisa over TCPIP SOCKET to a real-time server
   thread, until DATA:VOL:FREE? answers, in samples per second.
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sim.scpi.k33500b import K33500B
from sim.scpi.playback import arb_envelope
from sim.scpi.server import ScpiServerThread, serve_tcp
from sim.virtual_time import run_virtual

SRATE = 20_000


def _train(pulses: int, slot: int = 400, phase: int = 4, gap: int = 1) -> np.ndarray:
    out = np.zeros(pulses * slot)
    for k in range(pulses):
        b = k * slot
        out[b : b + phase] = 1.0
        out[b + phase + gap : b + 2 * phase + gap] = -1.0
    return out


def _block(command: str, wave: np.ndarray) -> bytes:
    codes = np.round(wave * 32767).astype(">i2").tobytes()
    n = str(len(codes)).encode()
    return command.encode() + b" #" + str(len(n)).encode() + n + codes + b"\n"


def virtual_session(minutes: float) -> tuple[float, int]:
    """(wall seconds, trace records) for one simulated session."""
    t = _train(25)
    z = np.zeros_like(t)
    a = np.concatenate([t, np.zeros(200), z, np.zeros(4000)])
    b = np.concatenate([z, np.zeros(200), t, np.zeros(4000)])

    async def main() -> int:
        inst = K33500B()
        server = await serve_tcp(inst)
        reader, writer = await asyncio.open_connection(server.host, server.port)
        writer.write(_block("SOUR1:DATA:ARB:DAC FLEX,", a) + _block("SOUR2:DATA:ARB:DAC EXTEN,", b))
        for ch, name in ((1, "FLEX"), (2, "EXTEN")):
            for cmd in (f"SOUR{ch}:FUNC:ARB {name}", f"SOUR{ch}:FUNC ARB", f"SOUR{ch}:FUNC:ARB:SRAT {SRATE}"):
                writer.write(cmd.encode() + b"\n")
        writer.write(b"FUNC:ARB:SYNC\nOUTP1 ON\nOUTP2 ON\n*OPC?\n")
        await reader.readline()
        await asyncio.sleep(minutes * 60)
        writer.write(b"OUTP1 OFF\nOUTP2 OFF\n*OPC?\n")
        await reader.readline()
        writer.close()
        await writer.wait_closed()
        await server.close()
        n = len(inst.trace.events)
        inst.close()
        return n

    start = time.perf_counter()
    records = run_virtual(main())
    return time.perf_counter() - start, records


def envelope_1msa() -> float:
    wave = np.concatenate([_train(1250), np.zeros(500_000)])
    start = time.perf_counter()
    arb_envelope(wave, SRATE)
    return time.perf_counter() - start


def upload_1msa() -> float:
    import pyvisa

    wave = np.concatenate([_train(1250), np.zeros(500_000)])
    codes = list(np.round(wave * 32767).astype(int))
    with ScpiServerThread("k33500b") as sim:
        rm = pyvisa.ResourceManager("@py")
        inst = rm.open_resource(sim.resource)
        inst.read_termination = inst.write_termination = "\n"  # type: ignore[attr-defined]
        inst.timeout = 120_000
        start = time.perf_counter()
        inst.write_binary_values(  # type: ignore[attr-defined]
            "DATA:ARB:DAC BIG, ", codes, datatype="h", is_big_endian=True
        )
        free = inst.query("DATA:VOL:FREE?")  # type: ignore[attr-defined]
        elapsed = time.perf_counter() - start
        inst.close()
        rm.close()
    if int(free) != 0:
        raise SystemExit(f"upload failed: DATA:VOL:FREE? answered {free}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--minutes", type=float, default=20.0)
    args = parser.parse_args()
    print(f"python {platform.python_version()} on {platform.machine()}, best of {args.repeats}")

    runs = [virtual_session(args.minutes) for _ in range(args.repeats)]
    wall, records = min(runs)
    sim_s = args.minutes * 60
    print(
        f"virtual-time playback: {sim_s:.0f} s simulated in {wall:.3f} s wall = "
        f"{sim_s / wall:,.0f} simulated s per wall s; {records} trace records "
        f"({records / wall:,.0f} per wall s)"
    )
    env = min(envelope_1msa() for _ in range(args.repeats))
    print(f"arb_envelope of 1 MSa: {env * 1e3:.1f} ms = {1e6 / env:,.0f} samples/s")
    up = min(upload_1msa() for _ in range(args.repeats))
    print(f"1 MSa DATA:ARB:DAC block via pyvisa TCPIP SOCKET: {up:.3f} s = {1e6 / up:,.0f} samples/s")


if __name__ == "__main__":
    main()
