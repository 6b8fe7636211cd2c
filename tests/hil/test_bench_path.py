"""The bench path, end to end in real time: a board that is not "sim" to the rig (a simulated
board in its own thread, reached by URL like real hardware) and an independent meter read
over pyvisa (a DMM stand-in on a loopback socket that reads the board's delivered current).

This is the code path a real bench takes: MeterMonitor polling VisaMeter in a thread, RMS
converted to peak, ManualFaults without an operator (fault scenarios skip, saying why).
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator

import pytest

from hil.context import run_scenario
from hil.faults import FaultUnavailable
from hil.monitor import rms_to_peak_factor
from hil.rig import load_rig
from hil.scenarios.library import SCENARIOS


class FakeDmm:
    """Answers *IDN? and READ? over raw TCP, like an LXI DMM on port 5025; READ? returns the AC
    RMS volts across a shunt carrying the current read_peak_ma() reports."""

    def __init__(self, read_peak_ma: Callable[[], float], shunt_ohm: float, rms_factor: float):
        self._read = read_peak_ma
        self._shunt = shunt_ohm
        self._rms = rms_factor
        self._sock = socket.create_server(("127.0.0.1", 0))
        self.port = self._sock.getsockname()[1]
        self.commands: list[str] = []
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        try:
            conn, _ = self._sock.accept()
        except OSError:
            return
        buf = b""
        with conn:
            while True:
                try:
                    data = conn.recv(1024)
                except OSError:
                    return
                if not data:
                    return
                buf += data
                while b"\n" in buf:
                    line, buf = buf.split(b"\n", 1)
                    cmd = line.decode().strip()
                    self.commands.append(cmd)
                    if cmd == "*IDN?":
                        conn.sendall(b"FAKE,DMM-34465A,0001,1.0\n")
                    elif cmd == "READ?":
                        volts = self._read() * self._rms * 1e-3 * self._shunt
                        conn.sendall(f"{volts:+.6E}\n".encode())

    def close(self) -> None:
        self._sock.close()


RIG = """
[rig]
name = "bench-like"
[[device]]
name = "main"
family = "board"
resource = "{url}"
[[channel]]
name = "quad"
output = 1
electrode = {{ kind = "pad", area_cm2 = 25.0 }}
[meter]
kind = "dmm"
resource = "TCPIP0::127.0.0.1::{port}::SOCKET"
channel = "quad"
shunt_ohm = 10.0
poll_interval_s = 0.02
[scenario]
agonist = "quad"
amplitude_ma = 8.0
ramp_s = 1.0
on_s = 3.0
estop_latency_limit_s = 0.25
"""


@pytest.fixture
def bench(tmp_path) -> Iterator[object]:  # type: ignore[no-untyped-def]
    from sim.board import BoardThread

    board = BoardThread()
    url = board.start()
    rig_path = tmp_path / "rig.toml"
    rig_path.write_text(RIG.format(url=url, port=0))
    factor = 1.0 / rms_to_peak_factor(load_rig(rig_path))
    dmm = FakeDmm(lambda: abs(board.board.delivered_ma.get(1, 0.0)), 10.0, factor)
    rig_path.write_text(RIG.format(url=url, port=dmm.port))
    try:
        yield load_rig(rig_path), dmm
    finally:
        dmm.close()
        board.stop()


def test_start_ramp_on_the_bench_path(bench) -> None:  # type: ignore[no-untyped-def]
    rig, dmm = bench
    rec = run_scenario(rig, SCENARIOS["start_ramp"].run)
    assert rec.monitor.startswith("meter:TCPIP0::127.0.0.1")
    first = next(m for m in rec.measurements if m.name == "first output / target")
    assert first.verdict == "info" and "not judged" in first.note
    peak = next(m for m in rec.measurements if m.name == "peak / target")
    assert peak.value == pytest.approx(100.0, rel=0.02), "RMS reading converted back to peak"
    assert "CONF:VOLT:AC" in dmm.commands and "READ?" in dmm.commands
    assert "WARNING" not in rec.message, "the final all-off on the real device worked"


def test_fault_scenarios_skip_without_an_operator(bench) -> None:  # type: ignore[no-untyped-def]
    rig, _ = bench
    with pytest.raises(FaultUnavailable, match="--hil-manual"):
        run_scenario(rig, SCENARIOS["lead_off"].run)


def test_estop_through_the_api_measured_by_the_meter(bench) -> None:  # type: ignore[no-untyped-def]
    rig, _ = bench
    rec = run_scenario(rig, SCENARIOS["emergency_stop_latency"].run)
    latency = next(m for m in rec.measurements if m.name == "e-stop to all outputs off")
    assert latency.passed and latency.note == "controller API emergency_stop()"
