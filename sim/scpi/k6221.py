"""A simulated Keithley 6221 AC and DC current source (one output), after its reference manual
(622x-901-01). docs/scpi-simulators.md lists every command with its *RST value, range and error
behaviour, and marks where the simulator had to choose because the manual is silent.

What it delivers goes through the electrode load model (sim/load.py) at the compliance voltage
set with SOUR:CURR:COMP, and every change is written to the output trace (sim/trace.py) by the
playback engine (sim/scpi/playback.py), which also plays the waveform mode:

- DC: while the output relay is closed (OUTP ON) the source delivers SOUR:CURR.
- Waveform mode: SOUR:WAVE:ARM then SOUR:WAVE:INIT closes the relay and starts the waveform
  (SIN, SQU, RAMP or ARB0..ARB4, amplitude AMPL plus offset OFFS) for DUR:TIME or DUR:CYCL;
  SOUR:WAVE:ABOR stops it. While the waveform runs the DC level is not delivered; once it
  stops (abort or end of duration) the source is back in DC mode and delivers SOUR:CURR if the
  relay is still closed, as the real instrument does.
- Compliance: when the load needs more than the compliance voltage the delivered current is
  limited and bit 3 (value 8) of the measurement condition register is set:
  STATus:MEASurement:CONDition? reads it, STATus:MEASurement[:EVENt]? latches it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np

from sim.faults import FaultSpec
from sim.load import DEFAULT_LOAD, ElectrodeLoad
from sim.scpi.errors import ScpiError
from sim.scpi.instrument import ScpiInstrument
from sim.scpi.playback import (
    PlaybackEngine,
    Segment,
    arb_envelope,
    continuous_segment,
    loop_segments,
)
from sim.scpi.tree import (
    Boolean,
    Call,
    Choice,
    Integer,
    Number,
    NumberList,
    format_bool,
    format_nr3,
)

MAX_CURRENT_A = 0.105
RANGES_A = (2e-9, 20e-9, 200e-9, 2e-6, 20e-6, 200e-6, 2e-3, 20e-3, 100e-3)
"""The 6221's source ranges; each allows 5 % over range (2.1 mA on 2 mA, 105 mA on 100 mA)."""
OVERRANGE = 1.05
ARB_MAX_POINTS = 65536
ARB_POINTS_PER_COMMAND = 100
ARB_SLOTS = 4
"""NVMEM1..NVMEM4, played as ARB1..ARB4; ARB0 plays the volatile edit buffer."""

MEAS_COMPLIANCE = 1 << 3
"""Measurement event register bit B3, "Comp" (622x manual, figure 11-6)."""
STB_MSB = 1 << 0
STB_QSB = 1 << 3
STB_OSB = 1 << 7

WAVEFORM_NAMES = {"SIN": "sine", "SQU": "square", "RAMP": "ramp"}


def _range_for(level_a: float) -> float:
    """The lowest range whose full scale (with over range) holds the level."""
    for r in RANGES_A:
        if abs(level_a) <= r * OVERRANGE:
            return r
    return RANGES_A[-1]


def _until(segments: Iterable[Segment], end_s: float) -> Iterator[Segment]:
    """Cut a program off at end_s (a finite waveform duration)."""
    for seg in segments:
        if seg.start_s >= end_s:
            return
        yield Segment(seg.start_s, min(seg.end_s, end_s), seg.peak, seg.phase_width_s)


class _EventRegister:
    """An SCPI status register set: condition, positive-transition event latch, enable."""

    def __init__(self) -> None:
        self.condition = 0
        self.event = 0
        self.enable = 0

    def update(self, condition: int) -> None:
        self.event |= condition & ~self.condition
        self.condition = condition

    def read_event(self) -> int:
        value = self.event
        self.event = 0
        return value

    @property
    def summary(self) -> bool:
        return bool(self.event & self.enable)


class K6221(ScpiInstrument):
    model = "k6221"
    trace_device = "k6221"
    channel_count = 1

    def __init__(
        self,
        *,
        serial: str = "4096001",
        firmware: str = "D04  /700x",
        load: ElectrodeLoad = DEFAULT_LOAD,
        **options: Any,
    ) -> None:
        self.serial = serial
        self.firmware = firmware
        self.base_load = load
        self.load = load
        self._pending_comp = False
        self.meas = _EventRegister()
        self.oper = _EventRegister()
        self.ques = _EventRegister()
        # Waveform memory survives *RST; NVMEM slots also survive a power cycle.
        self.arb_edit: list[float] = []
        self.arb_slots: dict[int, list[float]] = {}
        self._wave_end_timer: Any = None
        super().__init__(**options)
        self.engine.record = self._record

    # --- machinery ------------------------------------------------------------------------

    def setup(self) -> None:
        self.engine = PlaybackEngine(self.clock)
        self.engine.add_channel(1, self._deliver)
        self.trace_time = self.engine.trace_clock

    def _deliver(self, peak_ma: float, phase_width_us: float) -> tuple[float, bool]:
        delivered, comp = self.load.deliver(peak_ma, phase_width_us, self.compliance_v)
        self._pending_comp = comp
        return delivered, comp

    def _record(self, channel: int, on: bool, amplitude_ma: float, waveform: str) -> None:
        comp = on and self._pending_comp
        self._pending_comp = False
        self.trace.record(channel, on, amplitude_ma, waveform)
        self.meas.update(MEAS_COMPLIANCE if comp else 0)

    def identity(self) -> str:
        return f"KEITHLEY INSTRUMENTS INC.,MODEL 6221,{self.serial},{self.firmware}"

    def reset(self) -> None:
        """*RST: output off, DC 0 A on the 2 mA range, 10 V compliance, waveform idle."""
        self._stop_wave()
        self.engine.set_output(1, False)
        self.level_a = 0.0
        self.range_a = 2e-3
        self.auto_range = False
        self.compliance_v = 10.0
        self.output_low_earth = False
        self.inner_shield = "OLOW"
        self.delay_s = 1e-3
        self.wave_function = "SIN"
        self.wave_frequency_hz = 1e3
        self.wave_amplitude_a = 2e-12
        self.wave_offset_a = 0.0
        self.wave_duty_pct = 50.0
        self.wave_duration_s = math.inf
        self.wave_duration_cycles = math.inf
        self.wave_ranging = "BEST"
        self.pmark_state = False
        self.pmark_deg = 0.0
        self.pmark_line = 3
        self._update_program()

    def status_summary(self) -> int:
        self.engine.advance_to(self.clock.now())
        stb = 0
        if self.meas.summary:
            stb |= STB_MSB
        if self.ques.summary:
            stb |= STB_QSB
        if self.oper.summary:
            stb |= STB_OSB
        return stb

    def clear_status(self) -> None:
        self.meas.event = self.oper.event = self.ques.event = 0

    def all_outputs_off(self) -> None:
        self._stop_wave()
        self.engine.all_off()
        self._update_program()

    # --- output program -------------------------------------------------------------------

    armed: bool = False
    running: bool = False
    wave_t0_s: float = 0.0

    def _wave_points(self) -> list[float] | None:
        func = self.wave_function
        if func == "ARB0":
            return self.arb_edit or None
        if func.startswith("ARB"):
            return self.arb_slots.get(int(func[3:]))
        return None

    def _wave_end_s(self) -> float:
        if not math.isinf(self.wave_duration_cycles):
            return self.wave_t0_s + self.wave_duration_cycles / self.wave_frequency_hz
        return self.wave_t0_s + self.wave_duration_s

    def _update_program(self) -> None:
        now = self.clock.now()
        if self.running:
            end_s = self._wave_end_s()
            period_s = 1.0 / self.wave_frequency_hz
            points = self._wave_points()
            func = self.wave_function
            if points is not None:
                levels = (self.wave_offset_a + self.wave_amplitude_a * np.asarray(points)) * 1e3
                env = arb_envelope(levels, len(points) * self.wave_frequency_hz)
                segs: Iterable[Segment] = loop_segments(env, self.wave_t0_s, None, since_s=now)
                name = func.lower()
            else:
                peak_ma = (abs(self.wave_amplitude_a) + abs(self.wave_offset_a)) * 1e3
                if func == "SQU":
                    duty = self.wave_duty_pct / 100.0
                    width_s = period_s * max(duty, 1.0 - duty)
                else:
                    width_s = period_s / 2.0
                segs = continuous_segment(self.wave_t0_s, peak_ma, width_s)
                name = WAVEFORM_NAMES[func]
            self.engine.set_program(1, _until(segs, end_s), name)
        else:
            self.engine.set_program(1, continuous_segment(now, abs(self.level_a) * 1e3, math.inf), "dc")

    def _stop_wave(self) -> None:
        self.armed = False
        self.running = False
        if self._wave_end_timer is not None:
            self._wave_end_timer.cancel()
            self._wave_end_timer = None

    def _wave_finished(self) -> None:
        self._wave_end_timer = None
        self.engine.advance_to(self.clock.now())
        self._stop_wave()
        self._update_program()

    def _require_idle_wave(self, what: str) -> None:
        if self.armed:
            raise ScpiError(-221, f"{what} cannot change while the waveform is armed: send SOUR:WAVE:ABOR first")

    # --- faults ---------------------------------------------------------------------------

    def apply_channel_fault(self, fault: FaultSpec) -> None:
        if fault.kind == "lead-off":
            self.load = self.load.lead_off()
            self.engine.set_deliver(1, self._deliver)
        elif fault.kind == "short":
            self.load = self.load.shorted()
            self.engine.set_deliver(1, self._deliver)
        elif fault.kind == "stuck":
            self.engine.set_stuck(1, True)
        elif fault.kind == "overcurrent":
            self.all_outputs_off()
            self.push_error(-300, "output 1 over-current: the output was switched off; check the load")
        else:
            raise ValueError(f"k6221 does not simulate the fault {fault}")

    def clear_channel_faults(self) -> None:
        self.load = self.base_load
        self.engine.set_stuck(1, False)
        self.engine.set_deliver(1, self._deliver)

    def close(self) -> None:
        self._stop_wave()
        self.engine.close()
        super().close()

    # --- command table --------------------------------------------------------------------

    def declare(self) -> None:
        t = self.tree
        amps = Number("A", -MAX_CURRENT_A, MAX_CURRENT_A, default=0.0, name="current")
        # System and status ------------------------------------------------------------------
        t.add("SYSTem:ERRor[:NEXT]", query=lambda c: self.pop_error().response())
        t.add("STATus:QUEue[:NEXT]", query=lambda c: self.pop_error().response())
        t.add("SYSTem:ERRor:ALL", query=self._q_err_all)
        t.add("SYSTem:ERRor:COUNt", query=lambda c: str(len(self.errors)))
        t.add("SYSTem:ERRor:CLEar", set=lambda c: self.errors.clear())
        t.add("STATus:QUEue:CLEar", set=lambda c: self.errors.clear())
        t.add("SYSTem:VERSion", query=lambda c: "1999.0")
        t.add("SYSTem:PRESet", set=lambda c: self.reset())
        for name, reg in (("MEASurement", self.meas), ("OPERation", self.oper), ("QUEStionable", self.ques)):
            self._declare_register(name, reg)
        t.add("STATus:PRESet", set=self._status_preset)
        # Output -----------------------------------------------------------------------------
        t.add("OUTPut[:STATe]", Boolean(), set=self._set_output, query=lambda c: format_bool(self.engine.output_on(1)))
        t.add(
            "OUTPut:LTEarth", Boolean(),
            set=lambda c, v: self._set_attr("output_low_earth", v),
            query=lambda c: format_bool(self.output_low_earth),
        )
        t.add(
            "OUTPut:ISHield", Choice(("GUARd", "OLOW"), name="inner shield"),
            set=lambda c, v: self._set_attr("inner_shield", v),
            query=lambda c: self.inner_shield,
        )
        # DC source --------------------------------------------------------------------------
        t.add("[SOURce]:CURRent[:LEVel][:IMMediate][:AMPLitude]", amps, set=self._set_level, query=lambda c: format_nr3(self.level_a))
        t.add(
            "[SOURce]:CURRent:RANGe",
            Number("A", -MAX_CURRENT_A, MAX_CURRENT_A, default=2e-3, name="range"),
            set=self._set_range, query=lambda c: format_nr3(self.range_a),
        )
        t.add("[SOURce]:CURRent:RANGe:AUTO", Boolean(), set=self._set_auto_range, query=lambda c: format_bool(self.auto_range))
        t.add(
            "[SOURce]:CURRent:COMPliance",
            Number("V", 0.1, 105.0, default=10.0, name="compliance"),
            set=self._set_compliance, query=lambda c: format_nr3(self.compliance_v),
        )
        t.add("[SOURce]:CLEar[:IMMediate]", set=lambda c: self._set_output(c, False))
        t.add(
            "[SOURce]:DELay", Number("S", 1e-3, 999999.999, default=1e-3, name="delay"),
            set=lambda c, v: self._set_attr("delay_s", v), query=lambda c: format_nr3(self.delay_s),
        )
        # Waveform mode ----------------------------------------------------------------------
        w = "[SOURce]:WAVE"
        funcs = ("SINusoid", "SQUare", "RAMP") + tuple(f"ARB{i}" for i in range(ARB_SLOTS + 1))
        t.add(f"{w}:FUNCtion", Choice(funcs, name="waveform function"), set=self._set_function, query=lambda c: self.wave_function)
        t.add(
            f"{w}:FREQuency", Number("HZ", 1e-3, 1e5, default=1e3, name="frequency"),
            set=self._wave_setter("wave_frequency_hz", "the frequency"),
            query=lambda c: format_nr3(self.wave_frequency_hz),
        )
        t.add(
            f"{w}:AMPLitude", Number("A", 2e-12, MAX_CURRENT_A, default=2e-12, name="amplitude"),
            set=self._set_wave_amplitude, query=lambda c: format_nr3(self.wave_amplitude_a),
        )
        t.add(f"{w}:OFFSet", amps, set=self._set_wave_offset, query=lambda c: format_nr3(self.wave_offset_a))
        t.add(
            f"{w}:DCYCle", Number("PCT", 0.0, 100.0, default=50.0, name="duty cycle"),
            set=self._wave_setter("wave_duty_pct", "the duty cycle"),
            query=lambda c: format_nr3(self.wave_duty_pct),
        )
        t.add(
            f"{w}:PMARker[:LEVel]", Number("", -180.0, 180.0, default=0.0, name="phase marker"),
            set=self._wave_setter("pmark_deg", "the phase marker"),
            query=lambda c: format_nr3(self.pmark_deg),
        )
        t.add(
            f"{w}:PMARker:STATe", Boolean(),
            set=self._wave_setter("pmark_state", "the phase marker"),
            query=lambda c: format_bool(self.pmark_state),
        )
        t.add(
            f"{w}:PMARker:OLINe", Integer("", 1, 6, default=3, name="output line"),
            set=self._wave_setter("pmark_line", "the phase marker line"),
            query=lambda c: str(self.pmark_line),
        )
        t.add(
            f"{w}:DURation:TIME", Number("S", 100e-9, 999999.999, default=math.inf, allow_inf=True, name="duration"),
            set=self._set_duration_time, query=lambda c: format_nr3(self._duration_time()),
        )
        t.add(
            f"{w}:DURation:CYCLes", Number("", 1e-3, 99999999900.0, default=math.inf, allow_inf=True, name="cycles"),
            set=self._set_duration_cycles, query=lambda c: format_nr3(self._duration_cycles()),
        )
        t.add(
            f"{w}:RANGing", Choice(("BEST", "FIXed"), name="ranging"),
            set=self._wave_setter("wave_ranging", "the ranging"),
            query=lambda c: self.wave_ranging,
        )
        t.add(f"{w}:ARM", set=self._arm)
        t.add(f"{w}:INITiate", set=self._initiate)
        t.add(f"{w}:ABORt", set=self._abort)
        pts = NumberList("", -1.0, 1.0, name="point", max_count=ARB_POINTS_PER_COMMAND)
        t.add(f"{w}:ARBitrary:DATA", pts, set=self._arb_data, query=self._q_arb_data)
        t.add(f"{w}:ARBitrary:APPend", pts, set=self._arb_append)
        t.add(f"{w}:ARBitrary:POINts", query=lambda c: str(len(self.arb_edit)))
        t.add(f"{w}:ARBitrary:COPY", Integer("", 1, ARB_SLOTS, name="NVMEM slot"), set=self._arb_copy)

    def _declare_register(self, name: str, reg: _EventRegister) -> None:
        t = self.tree

        def set_enable(c: Call, v: int) -> None:
            reg.enable = v

        def condition(c: Call) -> str:
            self.engine.advance_to(self.clock.now())
            return str(reg.condition)

        def event(c: Call) -> str:
            self.engine.advance_to(self.clock.now())
            return str(reg.read_event())

        t.add(f"STATus:{name}[:EVENt]", query=event)
        t.add(f"STATus:{name}:CONDition", query=condition)
        t.add(
            f"STATus:{name}:ENABle", Integer("", 0, 65535, default=0, name="enable mask"),
            set=set_enable, query=lambda c: str(reg.enable),
        )

    # --- handlers -------------------------------------------------------------------------

    def _set_attr(self, name: str, value: object) -> None:
        setattr(self, name, value)

    def _q_err_all(self, c: Call) -> str:
        out = []
        while True:
            err = self.pop_error()
            out.append(err.response())
            if err.code == 0:
                break
        return ",".join(out)

    def _status_preset(self, c: Call) -> None:
        self.meas.enable = self.oper.enable = self.ques.enable = 0

    def _set_output(self, c: Call, on: bool) -> None:
        if not on and self.armed:
            # Opening the relay ends the waveform; a later OUTP ON must not resume it.
            self._stop_wave()
            self._update_program()
        self.engine.set_output(1, on)

    def _set_level(self, c: Call, level_a: float) -> None:
        if self.auto_range:
            self.range_a = _range_for(level_a)
        elif abs(level_a) > self.range_a * OVERRANGE * (1 + 1e-9):
            raise ScpiError(
                -222,
                f"{level_a:g} A exceeds the {self.range_a:g} A range: select a higher range "
                "(SOUR:CURR:RANG) or turn on SOUR:CURR:RANG:AUTO",
            )
        self.level_a = level_a
        if not self.running:
            self._update_program()

    def _set_range(self, c: Call, value_a: float) -> None:
        new_range = _range_for(value_a)
        if abs(self.level_a) > new_range * OVERRANGE * (1 + 1e-9):
            raise ScpiError(
                -221,
                f"the {new_range:g} A range cannot hold the present level {self.level_a:g} A: "
                "lower SOUR:CURR first",
            )
        self.range_a = new_range
        self.auto_range = False

    def _set_auto_range(self, c: Call, on: bool) -> None:
        self.auto_range = on
        if on:
            self.range_a = _range_for(self.level_a)

    def _set_compliance(self, c: Call, volts: float) -> None:
        self.compliance_v = volts
        self.engine.set_deliver(1, self._deliver)

    def _set_function(self, c: Call, func: str) -> None:
        self._require_idle_wave("the waveform function")
        self.wave_function = func

    def _wave_setter(self, attr: str, what: str) -> Any:
        def setter(c: Call, value: object) -> None:
            self._require_idle_wave(what)
            setattr(self, attr, value)

        return setter

    def _set_wave_amplitude(self, c: Call, amps: float) -> None:
        if amps + abs(self.wave_offset_a) > MAX_CURRENT_A * (1 + 1e-9):
            raise ScpiError(-221, f"amplitude {amps:g} A plus offset {self.wave_offset_a:g} A exceeds 0.105 A")
        self.wave_amplitude_a = amps
        if self.running:
            self._update_program()

    def _set_wave_offset(self, c: Call, amps: float) -> None:
        if abs(amps) + self.wave_amplitude_a > MAX_CURRENT_A * (1 + 1e-9):
            raise ScpiError(-221, f"offset {amps:g} A plus amplitude {self.wave_amplitude_a:g} A exceeds 0.105 A")
        self.wave_offset_a = amps
        if self.running:
            self._update_program()

    def _duration_time(self) -> float:
        if not math.isinf(self.wave_duration_cycles):
            return self.wave_duration_cycles / self.wave_frequency_hz
        return self.wave_duration_s

    def _duration_cycles(self) -> float:
        if math.isinf(self.wave_duration_s):
            return self.wave_duration_cycles
        return self.wave_duration_s * self.wave_frequency_hz

    def _set_duration_time(self, c: Call, seconds: float) -> None:
        self._require_idle_wave("the duration")
        self.wave_duration_s = seconds
        self.wave_duration_cycles = math.inf

    def _set_duration_cycles(self, c: Call, cycles: float) -> None:
        self._require_idle_wave("the duration")
        self.wave_duration_cycles = cycles
        self.wave_duration_s = math.inf

    def _arm(self, c: Call) -> None:
        if self.armed:
            return
        func = self.wave_function
        if func.startswith("ARB") and self._wave_points() is None:
            where = "send points with SOUR:WAVE:ARB:DATA" if func == "ARB0" else (
                f"copy a waveform into it with SOUR:WAVE:ARB:COPY {func[3:]}"
            )
            raise ScpiError(-221, f"{func} holds no waveform: {where}")
        self.armed = True

    def _initiate(self, c: Call) -> None:
        if not self.armed:
            raise ScpiError(-221, "the waveform is not armed: send SOUR:WAVE:ARM first")
        if self.running:
            return
        self.running = True
        self.wave_t0_s = self.clock.now()
        end_s = self._wave_end_s()
        self._update_program()
        self.engine.set_output(1, True)
        if not math.isinf(end_s):
            self._wave_end_timer = self.call_later(end_s - self.clock.now(), self._wave_finished)

    def _abort(self, c: Call) -> None:
        if not self.armed:
            return
        self._stop_wave()
        self._update_program()

    def _check_edit_buffer_free(self) -> None:
        if self.wave_function == "ARB0":
            self._require_idle_wave("the arbitrary waveform (ARB0 is playing it)")

    def _arb_data(self, c: Call, points: list[float]) -> None:
        self._check_edit_buffer_free()
        self.arb_edit = list(points)

    def _arb_append(self, c: Call, points: list[float]) -> None:
        self._check_edit_buffer_free()
        if len(self.arb_edit) + len(points) > ARB_MAX_POINTS:
            raise ScpiError(
                -225,
                f"the edit buffer holds {ARB_MAX_POINTS} points; {len(self.arb_edit)} are used "
                f"and {len(points)} more were sent",
            )
        self.arb_edit.extend(points)

    def _q_arb_data(self, c: Call) -> str:
        return ",".join(f"{p:.4f}" for p in self.arb_edit)

    def _arb_copy(self, c: Call, slot: int) -> None:
        if not self.arb_edit:
            raise ScpiError(-221, "the edit buffer is empty: send points with SOUR:WAVE:ARB:DATA first")
        if self.armed and self.wave_function == f"ARB{slot}":
            raise ScpiError(-221, f"ARB{slot} is playing: send SOUR:WAVE:ABOR first")
        self.arb_slots[slot] = list(self.arb_edit)
