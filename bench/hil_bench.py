"""HIL benchmarks: print figures, assert nothing (speed targets live here, not in tests).

    python bench/hil_bench.py [--rounds N] [--presses N]

1. Wall time of each safety scenario on the default simulated rig (virtual time), and of the
   whole library: the CI cost of `tests/hil/` and `stimctl hil run`.
2. The e-stop input's detection latency in real time: a loop:// port whose line is dropped by
   a timer, polled by `hil.estop.EstopMonitor` at its default 5 ms, p50/p99/max over many
   presses (target: p99 <= one poll interval plus loop jitter, about 6 ms).
3. The scenario figures themselves (latencies, dead times) as measured on the simulator.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

from hil.context import run_scenario
from hil.estop import EstopEvent, EstopMonitor, press_loopback, release_loopback
from hil.rig import default_rig
from hil.scenarios.library import SCENARIOS


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def scenario_walltimes(rounds: int) -> None:
    rig = default_rig()
    print(f"scenario wall time on the simulated rig (virtual time), {rounds} round(s)")
    print(f"  {'scenario':<32} {'median s':>9} {'max s':>7}")
    total: list[float] = []
    figures: dict[str, list[str]] = {}
    for _ in range(rounds):
        t_all = time.perf_counter()
        for name, info in SCENARIOS.items():
            t0 = time.perf_counter()
            rec = run_scenario(rig, info.run)
            figures.setdefault(name, []).append(f"{time.perf_counter() - t0:.3f}")
            figures[name + ":figures"] = [
                m.describe() for m in rec.measurements if m.limit is not None
            ]
        total.append(time.perf_counter() - t_all)
    for name in SCENARIOS:
        times = [float(x) for x in figures[name]]
        print(f"  {name:<32} {statistics.median(times):9.3f} {max(times):7.3f}")
    print(f"  {'whole library':<32} {statistics.median(total):9.3f} {max(total):7.3f}")
    print("\nfigures measured on the simulated rig (virtual time, deterministic)")
    for name in SCENARIOS:
        print(f"  {name}")
        for line in figures[name + ":figures"]:
            print(f"    {line}")


async def _estop_latency(presses: int) -> list[float]:
    loop = asyncio.get_running_loop()
    seen: asyncio.Queue[EstopEvent] = asyncio.Queue()
    mon = EstopMonitor.open("loop://", seen.put_nowait)
    mon.start()
    out: list[float] = []
    try:
        for i in range(presses):
            # Press at an offset that drifts across the poll period, as a hand would.
            await asyncio.sleep(0.02 + (i % 7) * 0.0007)
            t_press = loop.time()
            press_loopback(mon.port)
            ev = await asyncio.wait_for(seen.get(), 1.0)
            out.append(ev.t_s - t_press)
            release_loopback(mon.port)
            await asyncio.sleep(0.012)
    finally:
        await mon.aclose()
    return out


def estop_latency(presses: int) -> None:
    lat = asyncio.run(_estop_latency(presses))
    ms = [x * 1e3 for x in lat]
    print(f"\ne-stop input detection latency, real time, loop://, poll 5 ms, {presses} presses")
    print(f"  p50 {_pct(ms, 0.5):.2f} ms  p99 {_pct(ms, 0.99):.2f} ms  max {max(ms):.2f} ms")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--presses", type=int, default=200)
    args = ap.parse_args()
    scenario_walltimes(args.rounds)
    estop_latency(args.presses)


if __name__ == "__main__":
    main()
