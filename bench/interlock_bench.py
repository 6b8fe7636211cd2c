"""How long the interlock and the audit log take, printed as a table.

    python bench/interlock_bench.py

check_setpoint runs on every live amplitude change (every ramp step), so it must stay far below
a ramp step (tens of ms). An audit append without fsync runs on every command; a durable append
(fsync) runs on state changes and faults. Figures are medians of repeated runs on this machine.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from controller.audit import AuditLog, verify_log
from controller.interlock import check_program, check_setpoint
from controller.profiles import load_profile, profile_for
from controller.program import load_program

ROOT = Path(__file__).resolve().parents[1]


def per_call_us(fn: Callable[[], object], number: int, repeats: int = 7) -> float:
    runs = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(number):
            fn()
        runs.append((time.perf_counter() - t0) / number * 1e6)
    return statistics.median(runs)


def main() -> None:
    body = load_program(ROOT / "examples" / "body.toml")
    body_profile = profile_for(body)
    face = load_program(ROOT / "examples" / "face.toml")
    face_profile = load_profile("face")
    spec = face.channels[0]

    rows: list[tuple[str, float, str]] = []
    rows.append(("check_setpoint (one channel)", per_call_us(lambda: check_setpoint(spec, 9.0, face_profile), 5000), "us"))
    rows.append(("check_program face.toml (2 ch)", per_call_us(lambda: check_program(face, face_profile), 500), "us"))
    rows.append(("check_program body.toml (4 ch, 2 pairs, 20 min timeline)",
                 per_call_us(lambda: check_program(body, body_profile), 100), "us"))
    rows.append(("load_program body.toml", per_call_us(lambda: load_program(ROOT / "examples" / "body.toml"), 200), "us"))

    with tempfile.TemporaryDirectory() as d:
        log = AuditLog(Path(d) / "bench.jsonl")
        rows.append(("AuditLog.append (flush)", per_call_us(
            lambda: log.append("set_amplitude", channel=1, amplitude_ma=12.5), 2000), "us"))
        rows.append(("AuditLog.append durable (fsync)", per_call_us(
            lambda: log.append("state_change", durable=True, src="a", dst="b"), 50, repeats=5), "us"))
        log.close()
        n = verify_log(Path(d) / "bench.jsonl").records
        t0 = time.perf_counter()
        verify_log(Path(d) / "bench.jsonl")
        rows.append((f"verify_log ({n} records)", (time.perf_counter() - t0) / n * 1e6, "us/record"))

    width = max(len(r[0]) for r in rows)
    print(f"{'operation':<{width}}  {'median':>10}")
    for name, value, unit in rows:
        print(f"{name:<{width}}  {value:>10.1f} {unit}")


if __name__ == "__main__":
    main()
