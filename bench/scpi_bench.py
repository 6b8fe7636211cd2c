"""SCPI driver overhead: our driver against raw pyvisa (and PyMeasure) on the same simulator.

For each instrument (the simulated 6221 and 33522B, served by `stimctl sim serve` in a separate
process, so the simulator does not share this interpreter's GIL) it times two operations:

- status: what `status()` exchanges (output state, amplitude, the compliance register on the
  6221, the output-load setting on the 33500B, one error-queue read), and
- set amplitude with readback: set, read back, drain the error queue.

"raw pyvisa" sends exactly the same lines through one pyvisa resource; "stimctl" is the driver;
"PyMeasure" is pymeasure's Keithley6221 / Agilent33500 doing the same operation with its own
properties. Rounds alternate between the three so machine load hits them alike; the figure is
the median per-operation time, and the ratio stimctl/raw is computed within the same run
(target: at most 1.10). The best round is the headline figure on a shared machine.

    python bench/scpi_bench.py            # default 50 operations x 21 rounds
    python bench/scpi_bench.py --ops 100 --rounds 41
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import pyvisa

from drivers.base import ChannelConfig, Waveform
from drivers.scpi import K6221, K33500B

CONFIG = ChannelConfig(Waveform.BIPHASIC_SYMMETRIC, amplitude_ma=5.0, frequency_hz=50.0,
                       pulse_width_us=250.0)


def serve(model: str) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", "from controller.cli import main; main()", "sim", "serve", model,
         "--listen", "127.0.0.1:0"],
        stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    if "::" not in line:
        proc.terminate()
        raise SystemExit(f"simulator for {model} did not print a VISA resource (got {line!r})")
    return proc, line


def per_op_s(fn: Callable[[], Any], ops: int) -> float:
    t0 = time.perf_counter()
    for _ in range(ops):
        fn()
    return (time.perf_counter() - t0) / ops


def open_raw(resource: str) -> Any:
    rm = pyvisa.ResourceManager("@py")
    return rm.open_resource(resource, read_termination="\n", write_termination="\n",
                            timeout=5000)


def bench_model(model: str, ops: int, rounds: int) -> list[tuple[str, str, float, float, float]]:
    proc, resource = serve(model)
    rows: list[tuple[str, str, float, float, float]] = []
    try:
        loop = asyncio.new_event_loop()
        drv: K6221 | K33500B
        if model == "k6221":
            drv = K6221(resource, timeout_s=5.0)
        else:
            drv = K33500B(resource, timeout_s=5.0)
        loop.run_until_complete(drv.open())
        loop.run_until_complete(drv.configure_channel(1, CONFIG))
        # The driver holds the simulator's only connection slot while open, so the raw and
        # PyMeasure clients borrow the driver's own resource object: same socket, same bytes.
        raw: Any = drv.session.resource
        pym = pymeasure_for(model, resource, raw)

        if model == "k6221":
            amp_a = 0.005

            def raw_status() -> None:
                raw.query("OUTP?")
                raw.query("SOUR:WAVE:AMPL?")
                raw.query("STAT:MEAS:COND?")
                raw.query("SYST:ERR?")

            def raw_set() -> None:
                raw.write("SOUR:WAVE:AMPL 0.005")
                float(raw.query("SOUR:WAVE:AMPL?"))
                raw.query("SYST:ERR?")

            def pym_status() -> None:
                pym.source_enabled
                pym.waveform_amplitude
                pym.ask("STAT:MEAS:COND?")
                pym.check_errors()

            def pym_set() -> None:
                pym.waveform_amplitude = amp_a
                pym.waveform_amplitude
                pym.check_errors()
        else:
            def raw_status() -> None:
                raw.query("OUTP1?")
                raw.query("SOUR1:VOLT?")
                raw.query("OUTP1:LOAD?")
                raw.query("OUTP2?")
                raw.query("SOUR2:VOLT?")
                raw.query("OUTP2:LOAD?")
                raw.query("SYST:ERR?")

            def raw_set() -> None:
                raw.write("SOUR1:VOLT 2")
                float(raw.query("SOUR1:VOLT?"))
                raw.query("SYST:ERR?")

            def pym_status() -> None:
                pym.ch_1.output
                pym.ch_1.amplitude
                pym.ch_1.output_load
                pym.ch_2.output
                pym.ch_2.amplitude
                pym.ch_2.output_load
                pym.check_errors()

            def pym_set() -> None:
                pym.ch_1.amplitude = 2.0
                pym.ch_1.amplitude
                pym.check_errors()

        # The driver's calls are timed inside one coroutine, as a controller makes them from
        # its loop; one run_until_complete per call would time the event loop's start-up.
        async def drv_status_n(n: int) -> None:
            for _ in range(n):
                await drv.status()

        async def drv_set_n(n: int) -> None:
            for _ in range(n):
                await drv.set_amplitude(1, 5.0)

        def drv_status() -> None:
            loop.run_until_complete(drv_status_n(1))

        def drv_set() -> None:
            loop.run_until_complete(drv_set_n(1))

        batched = {drv_status: drv_status_n, drv_set: drv_set_n}

        def timed(fn: Callable[[], Any], n: int) -> float:
            if fn in batched:
                t0 = time.perf_counter()
                loop.run_until_complete(batched[fn](n))
                return (time.perf_counter() - t0) / n
            return per_op_s(fn, n)

        for op, raw_fn, drv_fn, pym_fn in (("status", raw_status, drv_status, pym_status),
                                           ("set amplitude + readback", raw_set, drv_set,
                                            pym_set)):
            samples: dict[str, list[float]] = {"raw": [], "drv": [], "pym": []}
            for fn in (raw_fn, drv_fn, pym_fn):
                timed(fn, max(ops // 10, 10))  # warm up
            for _ in range(rounds):
                samples["raw"].append(timed(raw_fn, ops))
                samples["drv"].append(timed(drv_fn, ops))
                samples["pym"].append(timed(pym_fn, ops))
            # Best round: the machine is shared, and the fastest round is the one least
            # disturbed by other work; the median is printed beside it.
            rows.append((model, op, min(samples["raw"]), min(samples["drv"]),
                         min(samples["pym"])))
            rows.append((model, op + " (median)", statistics.median(samples["raw"]),
                         statistics.median(samples["drv"]), statistics.median(samples["pym"])))
        loop.run_until_complete(drv.close())
        loop.close()
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    return rows


def pymeasure_for(model: str, resource: str, raw: Any) -> Any:
    from pymeasure.adapters import VISAAdapter

    adapter = VISAAdapter.__new__(VISAAdapter)
    # Reuse the open resource: PyMeasure's adapter only needs .connection for its I/O.
    adapter.connection = raw
    adapter.log = __import__("logging").getLogger("bench")
    adapter.query_delay = 0
    adapter._preprocess_reply = None
    if model == "k6221":
        from pymeasure.instruments.keithley import Keithley6221

        return Keithley6221(adapter)
    from pymeasure.instruments.agilent import Agilent33500

    return Agilent33500(adapter)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--ops", type=int, default=50, help="operations per timed round")
    ap.add_argument("--rounds", type=int, default=21,
                    help="timed rounds, interleaved raw / stimctl / PyMeasure")
    args = ap.parse_args()
    rows: list[tuple[str, str, float, float, float]] = []
    for model in ("k6221", "k33500b"):
        rows.extend(bench_model(model, args.ops, args.rounds))
    print(f"{'instrument':<9} {'operation':<35} {'raw pyvisa':>11} {'stimctl':>9} "
          f"{'ratio':>6} {'PyMeasure':>10} {'ratio':>6}")
    for model, op, r, d, p in rows:
        print(f"{model:<9} {op:<35} {r * 1e6:>9.0f}us {d * 1e6:>7.0f}us {d / r:>6.3f} "
              f"{p * 1e6:>8.0f}us {p / r:>6.3f}")
    print(f"({args.ops} operations x {args.rounds} interleaved rounds; per-operation time of the "
          "best round, then the median round; ratio = time / raw pyvisa time in the same run; "
          "target stimctl ratio <= 1.10)")


if __name__ == "__main__":
    main()
