"""Output monitors: what the scenarios believe about the outputs, independent of the controller.

On a simulated rig the monitor reads the simulators' own output traces (sim/trace.py), which
they write from what each channel actually delivers. On a bench it polls an independent
measurement instrument over pyvisa (a DMM across a shunt, or an oscilloscope) and turns its
readings into the same `TraceEvent` records, so every scenario analyses both the same way.

Both speak logical channel names (the rig's wiring), and both report `resolution_s`: the time
uncertainty of their events, which scenarios add to their limits.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import Any, Protocol, cast

from hil.rig import ChannelWiring, MeterSpec, Rig
from sim.trace import OutputTrace, TraceEvent


class OutputMonitor(Protocol):
    source: str
    """"sim-trace" or "meter:<resource>"."""
    resolution_s: float

    def channels(self) -> tuple[str, ...]:
        """The logical channels this monitor can see."""
        ...

    def events(self, channel: str) -> list[TraceEvent]:
        """The channel's output changes, in time order, with channel numbers as wired."""
        ...

    def all_events(self) -> list[TraceEvent]:
        """Every watched channel's events merged in time order (for all-off questions)."""
        ...


def _of_output(events: Sequence[TraceEvent], wiring: ChannelWiring) -> list[TraceEvent]:
    # One trace per device, so the output number alone picks the channel (a simulator may
    # label its records with its own model name rather than the rig's device name).
    return [e for e in events if e.channel == wiring.output]


class TraceMonitor:
    """Reads the simulators' traces. Resolution: the simulators record every change at once."""

    source = "sim-trace"

    def __init__(self, rig: Rig, traces: dict[str, OutputTrace]) -> None:
        self._rig = rig
        self._traces = traces
        self.resolution_s = 0.0

    def channels(self) -> tuple[str, ...]:
        return tuple(c.name for c in self._rig.channels if c.device in self._traces)

    def events(self, channel: str) -> list[TraceEvent]:
        wiring = self._rig.channel(channel)
        trace = self._traces.get(wiring.device)
        if trace is None:
            raise KeyError(f"no trace for device {wiring.device!r}")
        return _of_output(trace.events, wiring)

    def all_events(self) -> list[TraceEvent]:
        out: list[TraceEvent] = []
        for trace in self._traces.values():
            out.extend(trace.events)
        out.sort(key=lambda e: e.t_s)
        return out


class MeterReader(Protocol):
    def read_ma(self) -> float: ...

    def close(self) -> None: ...


class VisaMeter:
    """An instrument across a shunt, read over pyvisa (blocking; used from the poll thread).

    dmm: ``MEAS:VOLT:AC?``-style single readings re-configure the meter every time, too slow for
    latency figures, so it is set up once for AC RMS readings (``CONF:VOLT:AC``, 200 Hz
    bandwidth filter) and each poll sends ``READ?``; `read_ma` returns the RMS current. scope:
    ``:MEAS:VPP? <source>`` per poll; the current is Vpp / 2 / shunt, the peak (a
    charge-balanced biphasic pulse swings +-peak).
    """

    def __init__(self, spec: MeterSpec) -> None:
        import pyvisa

        self._spec = spec
        rm = pyvisa.ResourceManager("@py")
        self._res: Any = cast(Any, rm.open_resource(spec.resource))
        self._res.timeout = int(spec.timeout_s * 1000)
        self._res.read_termination = "\n"
        self._res.write_termination = "\n"
        self.identity = str(self._res.query("*IDN?")).strip()
        if spec.kind == "dmm":
            self._res.write("*RST")
            self._res.write("CONF:VOLT:AC")
            self._res.write("VOLT:AC:BAND 200")
            self._res.write("TRIG:SOUR IMM")

    def read_ma(self) -> float:
        if self._spec.kind == "dmm":
            volts = float(self._res.query("READ?"))
            return volts / self._spec.shunt_ohm * 1e3
        vpp = float(self._res.query(f":MEAS:VPP? {self._spec.scope_source}"))
        return vpp / 2.0 / self._spec.shunt_ohm * 1e3

    def close(self) -> None:
        self._res.close()


def rms_to_peak_factor(rig: Rig) -> float:
    """A DMM reads RMS; the scenarios compare pulse peaks. Their waveform is known (biphasic
    symmetric at the rig's frequency and pulse width), so peak = RMS / sqrt(duty) with duty =
    2 * pulse width * frequency (I_rms = I_pk * sqrt(phase time * f), both phases counted)."""
    s = rig.scenario
    duty = 2.0 * s.pulse_width_us * 1e-6 * s.frequency_hz
    return 1.0 / duty**0.5 if 0.0 < duty <= 1.0 else 1.0


class MeterMonitor:
    """Polls a measurement instrument in a thread (real time only: benches never run on
    virtual time) and records the watched channel as active above a threshold, as a peak
    current (a DMM's RMS reading is converted with `rms_to_peak_factor`).

    Timestamps are time.monotonic(), the clock of asyncio's default loop, so they compare with
    the loop times at which a scenario pressed the stop or injected a fault.
    """

    def __init__(self, rig: Rig, reader: MeterReader, spec: MeterSpec) -> None:
        self._rig = rig
        self._reader = reader
        self._spec = spec
        self._factor = rms_to_peak_factor(rig) if spec.kind == "dmm" else 1.0
        self._wiring = rig.channel(spec.channel)
        self.source = f"meter:{spec.resource}"
        self.resolution_s = spec.poll_interval_s
        self._events: list[TraceEvent] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.errors: list[str] = []

    def start(self) -> None:
        self._thread = threading.Thread(target=self._poll, name="hil-meter", daemon=True)
        self._thread.start()

    def _poll(self) -> None:
        last: tuple[bool, float] | None = None
        while not self._stop.is_set():
            t = time.monotonic()
            try:
                ma = abs(self._reader.read_ma()) * self._factor
            except Exception as exc:  # noqa: BLE001 - a meter error is reported, not fatal
                self.errors.append(f"{t:.3f}: {exc}")
                self._stop.wait(self._spec.poll_interval_s)
                continue
            on = ma >= self._spec.active_threshold_ma
            state = (on, round(ma, 3) if on else 0.0)
            if state != last:
                with self._lock:
                    self._events.append(
                        TraceEvent(t, "meter", self._wiring.output, on, state[1], "measured")
                    )
                last = state
            self._stop.wait(self._spec.poll_interval_s)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5 * self._spec.poll_interval_s + self._spec.timeout_s)
        self._reader.close()

    def channels(self) -> tuple[str, ...]:
        return (self._spec.channel,)

    def events(self, channel: str) -> list[TraceEvent]:
        if channel != self._spec.channel:
            raise KeyError(f"the meter watches only {self._spec.channel!r}, not {channel!r}")
        with self._lock:
            return list(self._events)

    def all_events(self) -> list[TraceEvent]:
        with self._lock:
            return list(self._events)
