"""A simulated Keysight 33522B two-channel function / arbitrary waveform generator.

The model follows the 33500B series user's guide and programming reference for the commands the
project uses (docs/scpi-simulators.md lists every one with its *RST default, range and error
behaviour). Each channel drives the rig's isolated voltage-to-current stage (sim/scpi/stage.py)
and, after it, the electrode load (sim/load.py); the output trace records milliamps delivered.

How the real instrument treats bad values, and so the model:
- A number outside a setting's hardware range is *clipped to the limit* and -222 "Data out of
  range; value clipped to upper/lower limit" is queued (the 33500B does this for frequency,
  amplitude, offset, sample rate, pulse width, periods). Drivers must read back after every
  set; pass out_of_range="reject" to make the model refuse such values instead.
- A value that cannot coexist with the other settings (offset plus amplitude beyond the
  output's reach, levels outside VOLT:LIMit while it is on, a pulse wider than its period, dBm
  into high impedance, an infinite burst on the immediate trigger) is refused with -221
  "Settings conflict" and nothing changes. APPLy is all or nothing.
- A too-short internal burst period is raised to the shortest that fits, with -221, as the
  manual describes.
- Arbitrary waveform data with a point outside -1..+1 (or a DAC code outside +-32767) is
  refused whole with -222; memory exhaustion is -225; an unknown arb name -224.

Channel outputs play on the simulator's clock through sim/scpi/playback.py. Changing amplitude,
offset, load or frequency keeps the waveform's phase (as the instrument does); changing the
function, the arb, the sample rate, the burst or trigger setup restarts it. FUNC:ARB:SYNC and
PHAS:SYNC restart both channels at the same instant.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt

from sim.faults import FaultSpec
from sim.load import DEFAULT_LOAD, ElectrodeLoad
from sim.scpi.clock import Clock
from sim.scpi.errors import ScpiError
from sim.scpi.instrument import ScpiInstrument
from sim.scpi.parser import BlockParam, CharParam, NumericParam, Param, StringParam, describe
from sim.scpi.playback import (
    ZERO_LEVEL,
    ArbEnvelope,
    PlaybackEngine,
    Segment,
    arb_envelope,
    burst_segments,
    continuous_segment,
    loop_segments,
)
from sim.scpi.stage import VIStage, open_circuit_v
from sim.scpi.tree import Boolean, Call, Choice, Raw, scale_suffix
from sim.trace import OutputTrace

# --- the instrument's ranges (33522B, standard memory) ---------------------------------------

FUNCTIONS = ("SINusoid", "SQUare", "TRIangle", "RAMP", "PULSe", "PRBS", "NOISe", "DC", "ARBitrary")
FREQ_MIN_HZ = 1e-6
FREQ_MAX_HZ = {"SIN": 30e6, "SQU": 30e6, "PULS": 30e6, "RAMP": 200e3, "TRI": 200e3, "PRBS": 50e6}
"""Per function; PRBS's "frequency" is its bit rate. NOIS, DC and ARB have no FREQ."""
AMPLITUDE_OC_MIN_VPP = 2e-3
"""1 mVpp into 50 ohm: 2 mVpp open circuit."""
AMPLITUDE_OC_MAX_VPP = 20.0
"""10 Vpp into 50 ohm: 20 Vpp open circuit."""
PEAK_OC_MAX_V = 10.0
"""|offset| + amplitude/2 must stay within +-5 V into 50 ohm, +-10 V open circuit."""
SRATE_MIN = 1e-6
SRATE_MAX = 250e6
SRATE_DEFAULT = 40e3
PULSE_WIDTH_MIN_S = 16e-9
PULSE_EDGE_MIN_S = 8.4e-9
PULSE_EDGE_MAX_S = 1e-6
BURST_PERIOD_MIN_S = 1e-6
BURST_PERIOD_MAX_S = 8000.0
BURST_NCYC_MAX = 100_000_000
ARB_MIN_POINTS = 8
ARB_MEMORY_POINTS = 1_000_000
"""Standard arbitrary-waveform memory per channel (the MEM option raises it to 16 MSa)."""
ARB_NAME_MAX = 12
LOAD_MIN_OHM = 1.0
LOAD_MAX_OHM = 10e3
DAC_FULL_SCALE = 32767
BUILTIN_ARB = "INT:\\BUILTIN\\EXP_RISE.ARB"

_INF_RESPONSE = 9.9e37


def nr3(value: float) -> str:
    """Numbers as the 33500B prints them: +1.000000000000000E+03; infinity as 9.9E+37."""
    if math.isinf(value):
        value = math.copysign(_INF_RESPONSE, value)
    return f"{value:+.15E}"


def _builtin_exp_rise() -> npt.NDArray[np.float64]:
    x = np.linspace(0.0, 1.0, 8192, endpoint=False)
    curve = (1.0 - np.exp(-5.0 * x)) / (1.0 - math.exp(-5.0))
    return 2.0 * curve - 1.0


@dataclass
class _Channel:
    """One channel's settings. Voltages are kept open-circuit (what the generator actually
    makes); what a query shows depends on OUTPut:LOAD, as on the instrument."""

    number: int
    function: str = "SIN"
    frequency_hz: float = 1e3
    amplitude_oc_vpp: float = 0.2
    offset_oc_v: float = 0.0
    unit: str = "VPP"
    load_setting_ohm: float = 50.0
    limit_on: bool = False
    limit_high_v: float = 5.0
    limit_low_v: float = -5.0
    """VOLT:LIM: displayed volts for the load setting (it cannot change while limits are on)."""
    phase_deg: float = 0.0
    square_duty_pct: float = 50.0
    pulse_width_s: float = 100e-6
    pulse_edge_s: float = 10e-9
    burst_on: bool = False
    burst_mode: str = "TRIG"
    burst_ncycles: float = 1.0
    burst_period_s: float = 10e-3
    burst_phase_deg: float = 0.0
    trigger_source: str = "IMM"
    trigger_timer_s: float = 1.0
    srate: float = SRATE_DEFAULT
    arb_name: str = BUILTIN_ARB
    output: bool = False
    epoch_s: float = 0.0
    triggered_at_s: float | None = None
    arbs: dict[str, npt.NDArray[np.float64]] = field(default_factory=dict)


class K33500B(ScpiInstrument):
    """The simulated 33522B. Options (ScpiServerThread("k33500b", **options)):

    transconductance_ma_per_v, stage_compliance_v: the rig's V->I stage (sim/scpi/stage.py);
    load: the electrode load on both channels (default sim.load.DEFAULT_LOAD);
    serial, firmware: the *IDN? fields; arb_memory_points: per channel (1 MSa standard);
    out_of_range: "clip" (the instrument's behaviour, with -222) or "reject" (-222, no change).
    """

    model: ClassVar[str] = "k33500b"
    trace_device: ClassVar[str] = "k33500b"
    channel_count: ClassVar[int] = 2

    def __init__(
        self,
        *,
        clock: Clock | None = None,
        trace: OutputTrace | None = None,
        trace_path: str | Path | None = None,
        faults: Iterable[FaultSpec] = (),
        transconductance_ma_per_v: float = 5.0,
        stage_compliance_v: float = 60.0,
        stage_input_ohm: float = math.inf,
        load: ElectrodeLoad = DEFAULT_LOAD,
        serial: str = "MY52600001",
        firmware: str = "4.00-1.19-2.00-52-00",
        arb_memory_points: int = ARB_MEMORY_POINTS,
        out_of_range: str = "clip",
        error_queue_size: int = 32,
        seed: int = 0,
    ) -> None:
        if out_of_range not in ("clip", "reject"):
            raise ValueError(f"out_of_range must be 'clip' or 'reject', got {out_of_range!r}")
        if arb_memory_points < ARB_MIN_POINTS:
            raise ValueError(f"arb_memory_points must be >= {ARB_MIN_POINTS}")
        self.stage = VIStage(transconductance_ma_per_v, stage_compliance_v, stage_input_ohm)
        self.serial = serial
        self.firmware = firmware
        self.arb_memory_points = arb_memory_points
        self.out_of_range = out_of_range
        self._base_load = load
        self._loads: dict[int, ElectrodeLoad] = {1: load, 2: load}
        self._stuck: set[int] = set()
        self._byte_order = "NORM"
        self._ch: dict[int, _Channel] = {n: _Channel(n) for n in (1, 2)}
        self._builtin = _builtin_exp_rise()
        self._envelopes: dict[tuple[int, str, float, float, float], ArbEnvelope] = {}
        super().__init__(
            clock=clock,
            trace=trace,
            trace_path=trace_path,
            faults=faults,
            error_queue_size=error_queue_size,
            seed=seed,
        )
        if self.clock_attached:
            self.engine.record = self.trace.record
        # else: nothing is recorded until a server attaches its clock, so the trace does not
        # begin with records stamped on the placeholder clock's zero.
        self._restart((1, 2))

    # --- hooks -----------------------------------------------------------------------------

    def setup(self) -> None:
        self.engine = PlaybackEngine(self.clock)
        for n in (1, 2):
            self.engine.add_channel(n, self._deliverer(n))
        self.trace_time = self.engine.trace_clock

    def identity(self) -> str:
        return f"Keysight Technologies,33522B,{self.serial},{self.firmware}"

    def reset(self) -> None:
        """*RST: every setting to its default, outputs off. Arb memory survives *RST on the
        instrument only as far as the selected arb goes; the model keeps volatile arbs (the
        manual: *RST does not clear volatile memory)."""
        for n in (1, 2):
            arbs = self._ch[n].arbs
            self._ch[n] = _Channel(n, arbs=arbs, epoch_s=self.clock.now())
        self._byte_order = "NORM"
        for n in (1, 2):
            self.engine.set_output(n, False)
        self._restart((1, 2))

    def trigger(self) -> None:
        """*TRG: a bus trigger for every channel whose trigger source is BUS."""
        for n in (1, 2):
            if self._ch[n].trigger_source == "BUS":
                self._fire(n)

    def all_outputs_off(self) -> None:
        for ch in self._ch.values():
            ch.output = False
        self.engine.all_off()

    def apply_channel_fault(self, fault: FaultSpec) -> None:
        n = int(fault.channel or 1)
        if fault.kind == "lead-off":
            self._loads[n] = self._loads[n].lead_off()
            self.engine.set_deliver(n, self._deliverer(n))
        elif fault.kind == "short":
            self._loads[n] = self._loads[n].shorted()
            self.engine.set_deliver(n, self._deliverer(n))
        elif fault.kind == "stuck":
            self._stuck.add(n)
            self.engine.set_stuck(n, True)
        elif fault.kind == "overcurrent":
            # The output protection opens the channel's relay (a welded one stays closed).
            self._ch[n].output = False
            self.engine.set_output(n, False)
            self.push_error(-300, f"channel {n} output overload: output switched off")
        else:
            super().apply_channel_fault(fault)

    def clear_channel_faults(self) -> None:
        for n in (1, 2):
            self._loads[n] = self._base_load
            self.engine.set_stuck(n, False)
            self.engine.set_deliver(n, self._deliverer(n))
        self._stuck.clear()

    def attach_clock(self, clock: Clock) -> None:
        super().attach_clock(clock)
        self.engine.record = self.trace.record
        self.engine.close()
        now = clock.now()
        for ch in self._ch.values():
            ch.epoch_s = now
            ch.triggered_at_s = None
        self._restart((1, 2))

    def close(self) -> None:
        self.engine.close()
        super().close()

    # --- observation (tests, the rig) ------------------------------------------------------

    def channel_settings(self, channel: int) -> dict[str, Any]:
        """A snapshot of one channel's settings, in display units for its OUTPut:LOAD."""
        ch = self._ch[channel]
        return {
            "function": ch.function,
            "frequency_hz": ch.frequency_hz,
            "amplitude_vpp": self._display(ch, ch.amplitude_oc_vpp),
            "offset_v": self._display(ch, ch.offset_oc_v),
            "load_ohm": ch.load_setting_ohm,
            "output": ch.output,
            "arb": ch.arb_name,
            "srate": ch.srate,
            "burst": ch.burst_on,
        }

    def delivered_ma(self, channel: int) -> float:
        return self.engine.delivered_ma(channel)

    def compliance(self, channel: int) -> bool:
        """The V->I stage is at its rail on this channel (not visible over SCPI: a 33500B
        cannot see past its own connector)."""
        return self.engine.compliance(channel)

    # --- helpers ---------------------------------------------------------------------------

    def _deliverer(self, n: int) -> Callable[[float, float], tuple[float, bool]]:
        def deliver(level_v: float, width_us: float) -> tuple[float, bool]:
            return self.stage.deliver_ma(level_v, width_us, self._loads[n])

        return deliver

    @staticmethod
    def _factor(ch: _Channel) -> float:
        """Displayed volts per open-circuit volt for the channel's OUTPut:LOAD setting."""
        return 1.0 / open_circuit_v(1.0, ch.load_setting_ohm)

    def _display(self, ch: _Channel, oc: float) -> float:
        return oc * self._factor(ch)

    def _number(
        self,
        param: Param,
        what: str,
        units: tuple[str, ...],
        lo: float,
        hi: float,
        default: float,
        *,
        clip: bool = True,
        allow_inf: bool = False,
    ) -> float:
        """Convert a numeric parameter with this setting's present range (ranges on the
        33500B depend on the function and the load setting, so they are checked here)."""
        if isinstance(param, CharParam):
            word = param.mnemonic
            if word in ("MIN", "MINIMUM"):
                return lo
            if word in ("MAX", "MAXIMUM"):
                return hi
            if word in ("DEF", "DEFAULT"):
                return default
            if allow_inf and word in ("INF", "INFINITY"):
                return math.inf
            raise ScpiError(-224, f"{word} is not valid for {what}; give a number, MIN, MAX or DEF")
        if not isinstance(param, NumericParam):
            raise ScpiError(-104, f"{what} must be a number, got {describe(param)}")
        value = scale_suffix(param.value, param.suffix, units)
        if allow_inf and value >= _INF_RESPONSE:
            return math.inf
        if lo <= value <= hi:
            return value
        span = f"{lo:g} to {hi:g} {units[0] if units else ''}".rstrip()
        if clip and self.out_of_range == "clip":
            limit, side = (hi, "upper") if value > hi else (lo, "lower")
            self.push_error(
                -222, f"value clipped to {side} limit: {what} {value:g} is outside {span}"
            )
            return limit
        raise ScpiError(-222, f"{what} {value:g} is outside {span}; nothing was changed")

    def _query_bound(self, which: str | None, lo: float, hi: float, default: float, now: float) -> str:
        if which == "MIN":
            return nr3(lo)
        if which == "MAX":
            return nr3(hi)
        if which == "DEF":
            return nr3(default)
        return nr3(now)

    def _check_levels(
        self, ch: _Channel, amp_oc: float, off_oc: float, function: str | None = None
    ) -> None:
        if (function or ch.function) == "DC":
            peak = abs(off_oc)
            high, low = off_oc, off_oc
        else:
            peak = abs(off_oc) + amp_oc / 2
            high, low = off_oc + amp_oc / 2, off_oc - amp_oc / 2
        if ch.limit_on:
            k = self._factor(ch)
            tol = 1e-9 * max(1.0, abs(ch.limit_high_v), abs(ch.limit_low_v))
            if high * k > ch.limit_high_v + tol or low * k < ch.limit_low_v - tol:
                raise ScpiError(
                    -221,
                    f"the output would span {low * k:g} V to {high * k:g} V, outside the voltage "
                    f"limits {ch.limit_low_v:g} V to {ch.limit_high_v:g} V (VOLT:LIM); nothing "
                    "was changed",
                )
        if peak > PEAK_OC_MAX_V * (1 + 1e-12):
            limit = PEAK_OC_MAX_V * self._factor(ch)
            raise ScpiError(
                -221,
                f"|offset| + amplitude/2 would be {peak * self._factor(ch):g} V, beyond the "
                f"{limit:g} V the output reaches into its {self._load_text(ch)} load setting; "
                "lower the offset or the amplitude first. Nothing was changed",
            )

    @staticmethod
    def _load_text(ch: _Channel) -> str:
        return "high-Z" if math.isinf(ch.load_setting_ohm) else f"{ch.load_setting_ohm:g} ohm"

    def _vpp_per_unit(self, ch: _Channel, unit: str, value: float) -> float:
        """Convert an amplitude given in `unit` to Vpp (displayed, at the load setting)."""
        if unit == "VPP":
            return value
        crest = self._crest_factor(ch)
        if unit == "VRMS":
            return value * 2 * crest
        # dBm: power into the load setting
        r = ch.load_setting_ohm
        vrms = math.sqrt(10 ** (value / 10) * 1e-3 * r)
        return vrms * 2 * crest

    def _from_vpp(self, ch: _Channel, unit: str, vpp: float) -> float:
        if unit == "VPP":
            return vpp
        crest = self._crest_factor(ch)
        vrms = vpp / (2 * crest)
        if unit == "VRMS":
            return vrms
        if vrms <= 0:
            return -math.inf
        return 10 * math.log10(vrms**2 / ch.load_setting_ohm / 1e-3)

    def _crest_factor(self, ch: _Channel) -> float:
        """Peak over RMS of the channel's waveform shape (amplitude = 2 * peak)."""
        if ch.function == "SIN":
            return math.sqrt(2)
        if ch.function in ("SQU", "PRBS", "DC"):
            return 1.0
        if ch.function in ("RAMP", "TRI", "NOIS"):
            return math.sqrt(3)
        if ch.function == "PULS":
            period = 1 / ch.frequency_hz
            duty = min(max(ch.pulse_width_s / period, 1e-9), 1.0)
            return 1.0 / math.sqrt(duty) if duty < 1 else 1.0
        samples = self._arb_samples(ch)
        rms = float(np.sqrt(np.mean(samples**2)))
        return 1.0 / rms if rms > 0 else 1.0

    def _arb_samples(self, ch: _Channel) -> npt.NDArray[np.float64]:
        if ch.arb_name == BUILTIN_ARB:
            return self._builtin
        return ch.arbs[ch.arb_name]

    def _points_used(self, ch: _Channel) -> int:
        return sum(int(a.size) for a in ch.arbs.values())

    # --- playback --------------------------------------------------------------------------

    def _label(self, ch: _Channel) -> str:
        if ch.function == "ARB":
            name = ch.arb_name.rsplit("\\", 1)[-1]
            return f"arb:{name}"
        return ch.function.lower()

    def _arb_envelope(self, ch: _Channel) -> ArbEnvelope:
        key = (ch.number, ch.arb_name, ch.srate, ch.amplitude_oc_vpp, ch.offset_oc_v)
        env = self._envelopes.get(key)
        if env is None:
            levels = ch.offset_oc_v + self._arb_samples(ch) * (ch.amplitude_oc_vpp / 2)
            env = arb_envelope(levels, ch.srate)
            if len(self._envelopes) > 16:
                self._envelopes.clear()
            self._envelopes[key] = env
        return env

    def _function_shape(self, ch: _Channel) -> tuple[float, float, float]:
        """(peak |V|, phase width s, idle level V between bursts) of a standard function."""
        amp, off = ch.amplitude_oc_vpp, ch.offset_oc_v
        f = ch.frequency_hz
        if ch.function == "DC":
            return abs(off), math.inf, off
        peak = abs(off) + amp / 2
        if ch.function == "SIN" or ch.function in ("RAMP", "TRI"):
            return peak, 0.5 / f, off
        if ch.function == "SQU":
            duty = max(ch.square_duty_pct, 100 - ch.square_duty_pct) / 100
            return peak, duty / f, off
        if ch.function == "PULS":
            low, high = off - amp / 2, off + amp / 2
            return max(abs(low), abs(high)), ch.pulse_width_s, low
        if ch.function == "PRBS":
            return peak, 1.0 / f, off
        return peak, 1e-6, off  # NOIS: broadband, no phase to speak of

    def _burst_length_s(self, ch: _Channel) -> float:
        if ch.function == "ARB":
            n = int(self._arb_samples(ch).size)
            return ch.burst_ncycles * n / ch.srate
        return ch.burst_ncycles / ch.frequency_hz

    def _burst_body(self, ch: _Channel) -> Callable[[float], Iterator[Segment]]:
        ncyc = ch.burst_ncycles
        if ch.function == "ARB":
            env = self._arb_envelope(ch)
            count = None if math.isinf(ncyc) else int(ncyc)

            def arb_body(start: float) -> Iterator[Segment]:
                return loop_segments(env, start, count)

            return arb_body
        peak, width, _idle = self._function_shape(ch)
        f = ch.frequency_hz
        if ch.function == "PULS" and abs(ch.offset_oc_v - ch.amplitude_oc_vpp / 2) <= ZERO_LEVEL:
            # Pulses from 0 V: the envelope ends with the last pulse, not its period.
            length = math.inf if math.isinf(ncyc) else (ncyc - 1) / f + ch.pulse_width_s
        else:
            length = ncyc / f

        def body(start: float) -> Iterator[Segment]:
            if peak > ZERO_LEVEL:
                yield Segment(start, start + length, peak, width)

        return body

    def _idle_level(self, ch: _Channel) -> float:
        if ch.function == "ARB":
            return float(ch.offset_oc_v + self._arb_samples(ch)[0] * ch.amplitude_oc_vpp / 2)
        return self._function_shape(ch)[2]

    def _segments(self, ch: _Channel, since: float) -> Iterator[Segment] | None:
        """The channel's envelope from its epoch, skipping what ended before `since`."""
        shift = 0.0
        if ch.function == "ARB":
            period = self._arb_samples(ch).size / ch.srate
            shift = -(ch.phase_deg / 360.0) * period
        if not ch.burst_on:
            if ch.function == "ARB":
                return loop_segments(self._arb_envelope(ch), ch.epoch_s + shift, None, since)
            peak, width, _ = self._function_shape(ch)
            return continuous_segment(ch.epoch_s, peak, width)
        idle = abs(self._idle_level(ch))
        if idle > ZERO_LEVEL:
            # Between bursts the output rests at a non-zero level: it never stops delivering.
            if ch.function == "ARB":
                segs = self._arb_envelope(ch).segments
                peak = max([idle] + [s.peak for s in segs])
                width = max([1e-6] + [s.phase_width_s for s in segs])
            else:
                shape_peak, width, _ = self._function_shape(ch)
                peak = max(idle, shape_peak)
            return continuous_segment(ch.epoch_s, peak, width)
        if ch.burst_mode == "GAT":
            return None  # no gate signal reaches a simulated rear panel: the burst never opens
        body = self._burst_body(ch)
        if ch.trigger_source in ("IMM", "TIM"):
            period = ch.burst_period_s if ch.trigger_source == "IMM" else ch.trigger_timer_s
            period = max(period, self._burst_length_s(ch))
            return burst_segments(body, ch.epoch_s, period, None, since)
        if ch.triggered_at_s is None:
            return None
        return iter(body(ch.triggered_at_s))

    def _restart(self, channels: Iterable[int]) -> None:
        """Restart channels' waveforms from now (phase reset), at the same instant."""
        now = self.clock.now()
        for n in channels:
            self._ch[n].epoch_s = now
            self._ch[n].triggered_at_s = None
        self._replay(channels)

    def _replay(self, channels: Iterable[int]) -> None:
        """Rebuild channels' envelopes keeping their phase (a level or load change)."""
        now = self.clock.now()
        programs: dict[int, tuple[Iterable[Segment] | None, str]] = {}
        for n in channels:
            ch = self._ch[n]
            programs[n] = (self._segments(ch, now), self._label(ch))
        self.engine.set_programs(programs)

    def _fire(self, n: int) -> None:
        ch = self._ch[n]
        if not ch.burst_on or ch.trigger_source in ("IMM", "TIM") or ch.burst_mode == "GAT":
            return
        now = self.clock.now()
        if ch.triggered_at_s is not None:
            busy_until = ch.triggered_at_s + self._burst_length_s(ch)
            if now < busy_until:
                return  # a trigger during a burst is ignored, as on the instrument
        ch.triggered_at_s = now
        self._replay((n,))

    # --- command declarations --------------------------------------------------------------

    def declare(self) -> None:
        t = self.tree
        src = "[SOURce#]:"
        two = (1, 2)
        opt = (Choice(options=("MINimum", "MAXimum", "DEFault"), name="bound", required=False),)
        t.add(src + "FUNCtion[:SHAPe]", Choice(options=FUNCTIONS, name="function"),
              set=self._set_function, query=self._get_function, suffixes=two)
        t.add(src + "FREQuency[:CW]", Raw(name="frequency"), set=self._set_frequency,
              query=self._get_frequency, query_params=opt, suffixes=two)
        t.add(src + "VOLTage:OFFSet", Raw(name="offset"), set=self._set_offset,
              query=self._get_offset, query_params=opt, suffixes=two)
        t.add(src + "VOLTage:HIGH", Raw(name="high level"), set=self._set_high,
              query=self._get_high, suffixes=two)
        t.add(src + "VOLTage:LOW", Raw(name="low level"), set=self._set_low,
              query=self._get_low, suffixes=two)
        t.add(src + "VOLTage:LIMit:HIGH", Raw(name="high limit"), set=self._set_limit_high,
              query=self._get_limit_high, suffixes=two)
        t.add(src + "VOLTage:LIMit:LOW", Raw(name="low limit"), set=self._set_limit_low,
              query=self._get_limit_low, suffixes=two)
        t.add(src + "VOLTage:LIMit:STATe", Boolean(), set=self._set_limit_state,
              query=self._get_limit_state, suffixes=two)
        t.add(src + "VOLTage:UNIT", Choice(options=("VPP", "VRMS", "DBM"), name="unit"),
              set=self._set_unit, query=self._get_unit, suffixes=two)
        t.add(src + "VOLTage[:LEVel][:IMMediate][:AMPLitude]", Raw(name="amplitude"),
              set=self._set_amplitude, query=self._get_amplitude, query_params=opt, suffixes=two)
        t.add(src + "FUNCtion:SQUare:DCYCle", Raw(name="duty cycle"), set=self._set_sq_duty,
              query=self._get_sq_duty, suffixes=two)
        t.add(src + "FUNCtion:PULSe:WIDTh", Raw(name="pulse width"), set=self._set_pulse_width,
              query=self._get_pulse_width, query_params=opt, suffixes=two)
        t.add(src + "FUNCtion:PULSe:DCYCle", Raw(name="pulse duty cycle"),
              set=self._set_pulse_duty, query=self._get_pulse_duty, suffixes=two)
        t.add(src + "FUNCtion:PULSe:TRANsition[:BOTH]", Raw(name="edge time"),
              set=self._set_pulse_edge, query=self._get_pulse_edge, suffixes=two)
        t.add(src + "BURSt:STATe", Boolean(), set=self._set_burst_state,
              query=self._get_burst_state, suffixes=two)
        t.add(src + "BURSt:MODE", Choice(options=("TRIGgered", "GATed"), name="burst mode"),
              set=self._set_burst_mode, query=self._get_burst_mode, suffixes=two)
        t.add(src + "BURSt:NCYCles", Raw(name="burst count"), set=self._set_ncycles,
              query=self._get_ncycles, query_params=opt, suffixes=two)
        t.add(src + "BURSt:INTernal:PERiod", Raw(name="burst period"),
              set=self._set_burst_period, query=self._get_burst_period, query_params=opt,
              suffixes=two)
        t.add(src + "BURSt:PHASe", Raw(name="burst phase"), set=self._set_burst_phase,
              query=self._get_burst_phase, suffixes=two)
        t.add("TRIGger#:SOURce", Choice(options=("IMMediate", "EXTernal", "TIMer", "BUS"),
              name="trigger source"), set=self._set_trigger_source,
              query=self._get_trigger_source, suffixes=two)
        t.add("TRIGger#:TIMer", Raw(name="trigger timer"), set=self._set_trigger_timer,
              query=self._get_trigger_timer, suffixes=two)
        t.add("TRIGger#[:IMMediate]", set=self._trigger_now, suffixes=two)
        t.add(src + "DATA:ARBitrary:DAC", Raw(name="arb name"),
              Raw(name="DAC codes", repeat=True), set=self._load_dac, suffixes=two)
        t.add(src + "DATA:ARBitrary", Raw(name="arb name"), Raw(name="points", repeat=True),
              set=self._load_floats, suffixes=two)
        t.add(src + "DATA:VOLatile:CLEar", set=self._clear_volatile, suffixes=two)
        t.add(src + "DATA:VOLatile:CATalog", query=self._catalog, suffixes=two)
        t.add(src + "DATA:VOLatile:FREE", query=self._free, suffixes=two)
        t.add(src + "FUNCtion:ARBitrary:SRATe", Raw(name="sample rate"), set=self._set_srate,
              query=self._get_srate, query_params=opt, suffixes=two)
        t.add(src + "FUNCtion:ARBitrary:POINts", query=self._get_points, suffixes=two)
        t.add(src + "FUNCtion:ARBitrary:PTS", query=self._get_points, suffixes=two)
        t.add(src + "FUNCtion:ARBitrary:SYNChronize", set=self._sync, suffixes=two)
        t.add(src + "FUNCtion:ARBitrary", Raw(name="arb name"), set=self._select_arb,
              query=self._get_arb, suffixes=two)
        t.add(src + "PHASe:SYNChronize", set=self._sync, suffixes=two)
        t.add(src + "PHASe[:ADJust]", Raw(name="phase"), set=self._set_phase,
              query=self._get_phase, suffixes=two)
        t.add("OUTPut#:LOAD", Raw(name="load"), set=self._set_load, query=self._get_load,
              query_params=opt, suffixes=two)
        t.add("OUTPut#[:STATe]", Boolean(), set=self._set_output, query=self._get_output,
              suffixes=two)
        t.add("FORMat:BORDer", Choice(options=("NORMal", "SWAPped"), name="byte order"),
              set=self._set_border, query=lambda call: self._byte_order)
        t.add("SYSTem:ERRor[:NEXT]", query=self._next_error)
        for word in ("SINusoid", "SQUare", "TRIangle", "RAMP", "PULSe", "PRBS", "NOISe", "DC",
                     "ARBitrary"):
            t.add(src + "APPLy:" + word, Raw(name="frequency", required=False),
                  Raw(name="amplitude", required=False), Raw(name="offset", required=False),
                  set=self._applier(word), suffixes=two)
        t.add(src + "APPLy", query=self._get_apply, suffixes=two)

    # --- handlers: function and frequency --------------------------------------------------

    def _set_function(self, call: Call, name: str) -> None:
        ch = self._ch[call.channel]
        if ch.burst_on and name in ("NOIS", "DC"):
            raise ScpiError(-221, f"{name} cannot be burst; turn BURSt:STATe OFF first")
        new = replace(ch, function=name)
        fmax = FREQ_MAX_HZ.get(name)
        if fmax is not None and new.frequency_hz > fmax:
            new.frequency_hz = fmax
            self.push_error(-221, f"frequency reduced to {fmax:g} Hz, the {name} maximum")
        if name == "PULS" and new.pulse_width_s >= 1 / new.frequency_hz:
            new.pulse_width_s = 0.5 / new.frequency_hz
            self.push_error(-221, "pulse width reduced to half the period to fit it")
        if ch.limit_on:
            self._check_levels(new, new.amplitude_oc_vpp, new.offset_oc_v, name)
        if ch.function == "DC" and name != "DC":
            reach = PEAK_OC_MAX_V - new.amplitude_oc_vpp / 2
            if abs(new.offset_oc_v) > reach:
                # DC ignored the amplitude; the new shape swings around the offset again.
                new.offset_oc_v = math.copysign(reach, new.offset_oc_v)
                self.push_error(-221, "offset changed on exit from the DC function to fit the amplitude")
        self._ch[call.channel] = new
        self._restart((call.channel,))

    def _get_function(self, call: Call) -> str:
        return self._ch[call.channel].function

    def _freq_max(self, ch: _Channel) -> float:
        return FREQ_MAX_HZ.get(ch.function, FREQ_MAX_HZ["SIN"])

    def _set_frequency(self, call: Call, param: Param) -> None:
        ch = self._ch[call.channel]
        f = self._number(param, "frequency", ("HZ",), FREQ_MIN_HZ, self._freq_max(ch), 1e3)
        if ch.function == "PULS" and ch.pulse_width_s >= 1 / f:
            raise ScpiError(
                -221,
                f"a {ch.pulse_width_s:g} s pulse does not fit a {1 / f:g} s period; shorten "
                "FUNC:PULS:WIDT first. Nothing was changed",
            )
        ch.frequency_hz = f
        self._replay((call.channel,))

    def _get_frequency(self, call: Call, bound: str | None) -> str:
        ch = self._ch[call.channel]
        return self._query_bound(bound, FREQ_MIN_HZ, self._freq_max(ch), 1e3, ch.frequency_hz)

    # --- handlers: levels ------------------------------------------------------------------

    def _amp_limits_display(self, ch: _Channel) -> tuple[float, float]:
        k = self._factor(ch)
        return (
            self._from_vpp(ch, ch.unit, AMPLITUDE_OC_MIN_VPP * k),
            self._from_vpp(ch, ch.unit, AMPLITUDE_OC_MAX_VPP * k),
        )

    def _set_amplitude(self, call: Call, param: Param) -> None:
        ch = self._ch[call.channel]
        lo, hi = self._amp_limits_display(ch)
        units = {"VPP": ("VPP", "V"), "VRMS": ("VRMS", "V"), "DBM": ("DBM",)}[ch.unit]
        value = self._number(param, "amplitude", units, lo, hi, self._from_vpp(ch, ch.unit, 0.1))
        amp_oc = self._vpp_per_unit(ch, ch.unit, value) / self._factor(ch)
        amp_oc = min(max(amp_oc, AMPLITUDE_OC_MIN_VPP), AMPLITUDE_OC_MAX_VPP)
        self._check_levels(ch, amp_oc, ch.offset_oc_v)
        ch.amplitude_oc_vpp = amp_oc
        self._replay((call.channel,))

    def _get_amplitude(self, call: Call, bound: str | None) -> str:
        ch = self._ch[call.channel]
        lo, hi = self._amp_limits_display(ch)
        now = self._from_vpp(ch, ch.unit, self._display(ch, ch.amplitude_oc_vpp))
        return self._query_bound(bound, lo, hi, self._from_vpp(ch, ch.unit, 0.1), now)

    def _set_offset(self, call: Call, param: Param) -> None:
        ch = self._ch[call.channel]
        k = self._factor(ch)
        reach = PEAK_OC_MAX_V * k
        value = self._number(param, "offset", ("V",), -reach, reach, 0.0)
        off_oc = value / k
        self._check_levels(ch, ch.amplitude_oc_vpp, off_oc)
        ch.offset_oc_v = off_oc
        self._replay((call.channel,))

    def _get_offset(self, call: Call, bound: str | None) -> str:
        ch = self._ch[call.channel]
        k = self._factor(ch)
        reach = PEAK_OC_MAX_V * k
        return self._query_bound(bound, -reach, reach, 0.0, ch.offset_oc_v * k)

    def _set_level(self, call: Call, param: Param, which: str) -> None:
        ch = self._ch[call.channel]
        k = self._factor(ch)
        reach = PEAK_OC_MAX_V * k
        value = self._number(param, f"{which} level", ("V",), -reach, reach, 0.0) / k
        high = ch.offset_oc_v + ch.amplitude_oc_vpp / 2
        low = ch.offset_oc_v - ch.amplitude_oc_vpp / 2
        if which == "high":
            high = value
        else:
            low = value
        if high - low < AMPLITUDE_OC_MIN_VPP * (1 - 1e-9):
            raise ScpiError(
                -221,
                f"the high level must exceed the low level by at least "
                f"{AMPLITUDE_OC_MIN_VPP * k:g} V; nothing was changed",
            )
        amp, off = high - low, (high + low) / 2
        if amp > AMPLITUDE_OC_MAX_VPP * (1 + 1e-12):
            raise ScpiError(
                -221, f"high - low would exceed {AMPLITUDE_OC_MAX_VPP * k:g} Vpp; nothing was changed"
            )
        self._check_levels(ch, amp, off)
        ch.amplitude_oc_vpp, ch.offset_oc_v = amp, off
        self._replay((call.channel,))

    def _set_high(self, call: Call, param: Param) -> None:
        self._set_level(call, param, "high")

    def _set_low(self, call: Call, param: Param) -> None:
        self._set_level(call, param, "low")

    def _get_high(self, call: Call) -> str:
        ch = self._ch[call.channel]
        return nr3(self._display(ch, ch.offset_oc_v + ch.amplitude_oc_vpp / 2))

    def _get_low(self, call: Call) -> str:
        ch = self._ch[call.channel]
        return nr3(self._display(ch, ch.offset_oc_v - ch.amplitude_oc_vpp / 2))

    def _set_limit(self, call: Call, param: Param, which: str) -> None:
        ch = self._ch[call.channel]
        reach = PEAK_OC_MAX_V * self._factor(ch)
        value = self._number(param, f"{which} voltage limit", ("V",), -reach, reach,
                             reach / 2 if which == "high" else -reach / 2)
        high = value if which == "high" else ch.limit_high_v
        low = value if which == "low" else ch.limit_low_v
        if high <= low:
            raise ScpiError(-221, "the high limit must be above the low limit; nothing was changed")
        if ch.limit_on:
            trial = replace(ch, limit_high_v=high, limit_low_v=low)
            self._check_levels(trial, ch.amplitude_oc_vpp, ch.offset_oc_v)
        ch.limit_high_v, ch.limit_low_v = high, low

    def _set_limit_high(self, call: Call, param: Param) -> None:
        self._set_limit(call, param, "high")

    def _set_limit_low(self, call: Call, param: Param) -> None:
        self._set_limit(call, param, "low")

    def _get_limit_high(self, call: Call) -> str:
        return nr3(self._ch[call.channel].limit_high_v)

    def _get_limit_low(self, call: Call) -> str:
        return nr3(self._ch[call.channel].limit_low_v)

    def _set_limit_state(self, call: Call, on: bool) -> None:
        ch = self._ch[call.channel]
        if on:
            self._check_levels(replace(ch, limit_on=True), ch.amplitude_oc_vpp, ch.offset_oc_v)
        ch.limit_on = on

    def _get_limit_state(self, call: Call) -> str:
        return "1" if self._ch[call.channel].limit_on else "0"

    def _set_unit(self, call: Call, unit: str) -> None:
        ch = self._ch[call.channel]
        if unit == "DBM" and math.isinf(ch.load_setting_ohm):
            raise ScpiError(-221, "dBm needs a finite OUTPut:LOAD; set a load first")
        ch.unit = unit

    def _get_unit(self, call: Call) -> str:
        return self._ch[call.channel].unit

    # --- handlers: square and pulse --------------------------------------------------------

    def _set_sq_duty(self, call: Call, param: Param) -> None:
        ch = self._ch[call.channel]
        ch.square_duty_pct = self._number(param, "square duty cycle", ("PCT",), 0.01, 99.99, 50.0)
        self._replay((call.channel,))

    def _get_sq_duty(self, call: Call) -> str:
        return nr3(self._ch[call.channel].square_duty_pct)

    def _set_pulse_width(self, call: Call, param: Param) -> None:
        ch = self._ch[call.channel]
        width = self._number(param, "pulse width", ("S",), PULSE_WIDTH_MIN_S, 1e6, 100e-6)
        if width >= 1 / ch.frequency_hz:
            raise ScpiError(
                -221,
                f"a {width:g} s pulse does not fit the {1 / ch.frequency_hz:g} s period; "
                "lower FREQ first. Nothing was changed",
            )
        ch.pulse_width_s = width
        self._replay((call.channel,))

    def _get_pulse_width(self, call: Call, bound: str | None) -> str:
        ch = self._ch[call.channel]
        return self._query_bound(bound, PULSE_WIDTH_MIN_S, 1e6, 100e-6, ch.pulse_width_s)

    def _set_pulse_duty(self, call: Call, param: Param) -> None:
        ch = self._ch[call.channel]
        duty = self._number(param, "pulse duty cycle", ("PCT",), 0.0, 100.0, 10.0)
        width = duty / 100 / ch.frequency_hz
        if not PULSE_WIDTH_MIN_S <= width < 1 / ch.frequency_hz:
            raise ScpiError(
                -221,
                f"{duty:g} % of a {1 / ch.frequency_hz:g} s period is not a pulse width the "
                "instrument can make; nothing was changed",
            )
        ch.pulse_width_s = width
        self._replay((call.channel,))

    def _get_pulse_duty(self, call: Call) -> str:
        ch = self._ch[call.channel]
        return nr3(ch.pulse_width_s * ch.frequency_hz * 100)

    def _set_pulse_edge(self, call: Call, param: Param) -> None:
        ch = self._ch[call.channel]
        ch.pulse_edge_s = self._number(
            param, "edge time", ("S",), PULSE_EDGE_MIN_S, PULSE_EDGE_MAX_S, 10e-9
        )

    def _get_pulse_edge(self, call: Call) -> str:
        return nr3(self._ch[call.channel].pulse_edge_s)

    # --- handlers: burst and trigger -------------------------------------------------------

    def _set_burst_state(self, call: Call, on: bool) -> None:
        ch = self._ch[call.channel]
        if on and ch.function in ("NOIS", "DC"):
            raise ScpiError(-221, f"{ch.function} cannot be burst; choose another function first")
        if on and math.isinf(ch.burst_ncycles) and ch.trigger_source == "IMM":
            raise ScpiError(
                -221,
                "an infinite burst needs a BUS, EXT or TIM trigger (TRIG:SOUR BUS); "
                "nothing was changed",
            )
        ch.burst_on = on
        self._restart((call.channel,))

    def _get_burst_state(self, call: Call) -> str:
        return "1" if self._ch[call.channel].burst_on else "0"

    def _set_burst_mode(self, call: Call, mode: str) -> None:
        self._ch[call.channel].burst_mode = mode
        self._restart((call.channel,))

    def _get_burst_mode(self, call: Call) -> str:
        return self._ch[call.channel].burst_mode

    def _set_ncycles(self, call: Call, param: Param) -> None:
        ch = self._ch[call.channel]
        value = self._number(param, "burst count", (), 1, BURST_NCYC_MAX, 1, allow_inf=True)
        if not math.isinf(value):
            value = float(round(value))
        if math.isinf(value) and ch.burst_on and ch.trigger_source == "IMM":
            raise ScpiError(
                -221, "an infinite burst needs TRIG:SOUR BUS, EXT or TIM; nothing was changed"
            )
        ch.burst_ncycles = value
        self._fit_burst_period(ch)
        self._restart((call.channel,))

    def _get_ncycles(self, call: Call, bound: str | None) -> str:
        ch = self._ch[call.channel]
        return self._query_bound(bound, 1, BURST_NCYC_MAX, 1, ch.burst_ncycles)

    def _fit_burst_period(self, ch: _Channel) -> None:
        if math.isinf(ch.burst_ncycles):
            return
        needed = self._burst_length_s(ch) + 1e-6
        if ch.burst_on and ch.trigger_source == "IMM" and ch.burst_period_s < needed:
            ch.burst_period_s = min(needed, BURST_PERIOD_MAX_S)
            self.push_error(
                -221, f"burst period raised to {ch.burst_period_s:g} s to fit the burst"
            )

    def _set_burst_period(self, call: Call, param: Param) -> None:
        ch = self._ch[call.channel]
        value = self._number(
            param, "burst period", ("S",), BURST_PERIOD_MIN_S, BURST_PERIOD_MAX_S, 10e-3
        )
        needed = (
            self._burst_length_s(ch) + 1e-6 if not math.isinf(ch.burst_ncycles) else value
        )
        if value < needed:
            value = min(needed, BURST_PERIOD_MAX_S)
            self.push_error(
                -221,
                f"burst period raised to {value:g} s: {ch.burst_ncycles:g} cycles need "
                f"{self._burst_length_s(ch):g} s",
            )
        ch.burst_period_s = value
        self._restart((call.channel,))

    def _get_burst_period(self, call: Call, bound: str | None) -> str:
        ch = self._ch[call.channel]
        return self._query_bound(
            bound, BURST_PERIOD_MIN_S, BURST_PERIOD_MAX_S, 10e-3, ch.burst_period_s
        )

    def _set_burst_phase(self, call: Call, param: Param) -> None:
        ch = self._ch[call.channel]
        ch.burst_phase_deg = self._number(param, "burst phase", ("DEG",), -360, 360, 0)

    def _get_burst_phase(self, call: Call) -> str:
        return nr3(self._ch[call.channel].burst_phase_deg)

    def _set_trigger_source(self, call: Call, source: str) -> None:
        ch = self._ch[call.channel]
        if source == "IMM" and ch.burst_on and math.isinf(ch.burst_ncycles):
            raise ScpiError(
                -221, "an infinite burst cannot run on the immediate trigger; set NCYC first"
            )
        ch.trigger_source = source
        self._restart((call.channel,))

    def _get_trigger_source(self, call: Call) -> str:
        return self._ch[call.channel].trigger_source

    def _set_trigger_timer(self, call: Call, param: Param) -> None:
        ch = self._ch[call.channel]
        ch.trigger_timer_s = self._number(param, "trigger timer", ("S",), 1e-6, 8000.0, 1.0)
        if ch.trigger_source == "TIM":
            self._restart((call.channel,))

    def _get_trigger_timer(self, call: Call) -> str:
        return nr3(self._ch[call.channel].trigger_timer_s)

    def _trigger_now(self, call: Call) -> None:
        ch = self._ch[call.channel]
        if ch.trigger_source == "IMM":
            return  # already triggering continuously
        self._fire(call.channel)

    # --- handlers: arbitrary waveforms -----------------------------------------------------

    def _arb_name(self, param: Param) -> str:
        if isinstance(param, CharParam):
            name = param.mnemonic
        elif isinstance(param, StringParam):
            name = param.value.upper()
        else:
            raise ScpiError(-104, f"expected an arb name, got {describe(param)}")
        ok = name[:1].isalpha() and all(c.isalnum() or c == "_" for c in name)
        if not ok or len(name) > ARB_NAME_MAX:
            raise ScpiError(
                -224,
                f"arb name {name!r} is not valid: up to {ARB_NAME_MAX} letters, digits or _, "
                "starting with a letter",
            )
        return name

    def _store(self, n: int, name: str, samples: npt.NDArray[np.float64]) -> None:
        ch = self._ch[n]
        if samples.size < ARB_MIN_POINTS:
            raise ScpiError(
                -222, f"an arb needs at least {ARB_MIN_POINTS} points, got {samples.size}"
            )
        if name in ch.arbs:
            raise ScpiError(
                -221,
                f"an arb named {name} is already loaded on channel {n}; clear volatile memory "
                "(DATA:VOL:CLE) or use another name",
            )
        free = self.arb_memory_points - self._points_used(ch)
        if samples.size > free:
            raise ScpiError(
                -225,
                f"{samples.size} points do not fit: channel {n} has {free} of "
                f"{self.arb_memory_points} points free; DATA:VOL:CLE frees them",
            )
        ch.arbs[name] = samples

    def _load_floats(self, call: Call, name_param: Param, points: list[Param]) -> None:
        name = self._arb_name(name_param)
        if len(points) == 1 and isinstance(points[0], BlockParam):
            data = points[0].data
            if len(data) % 4:
                raise ScpiError(-161, f"a float block holds 4 bytes per point, got {len(data)} bytes")
            fmt = ">" if self._byte_order == "NORM" else "<"
            samples = np.frombuffer(data, dtype=fmt + "f4").astype(np.float64)
        else:
            values: list[float] = []
            for i, p in enumerate(points):
                if not isinstance(p, NumericParam) or p.suffix:
                    raise ScpiError(-104, f"point {i + 1} must be a plain number, got {describe(p)}")
                values.append(p.value)
            samples = np.asarray(values, dtype=np.float64)
        if samples.size and (not np.all(np.isfinite(samples)) or np.max(np.abs(samples)) > 1.0):
            bad = int(np.flatnonzero(~(np.abs(samples) <= 1.0))[0])
            raise ScpiError(
                -222,
                f"point {bad + 1} is {samples[bad]:g}; arb points must lie within -1 to +1. "
                "Nothing was loaded",
            )
        self._store(call.channel, name, samples)

    def _load_dac(self, call: Call, name_param: Param, points: list[Param]) -> None:
        name = self._arb_name(name_param)
        if len(points) == 1 and isinstance(points[0], BlockParam):
            data = points[0].data
            if len(data) % 2:
                raise ScpiError(-161, f"a DAC block holds 2 bytes per point, got {len(data)} bytes")
            fmt = ">" if self._byte_order == "NORM" else "<"
            codes = np.frombuffer(data, dtype=fmt + "i2").astype(np.int64)
        else:
            ints: list[int] = []
            for i, p in enumerate(points):
                if not isinstance(p, NumericParam) or p.suffix or p.value != int(p.value):
                    raise ScpiError(-104, f"DAC code {i + 1} must be an integer, got {describe(p)}")
                ints.append(int(p.value))
            codes = np.asarray(ints, dtype=np.int64)
        if codes.size and np.max(np.abs(codes)) > DAC_FULL_SCALE:
            bad = int(np.flatnonzero(np.abs(codes) > DAC_FULL_SCALE)[0])
            raise ScpiError(
                -222,
                f"DAC code {bad + 1} is {int(codes[bad])}; codes must lie within "
                f"-{DAC_FULL_SCALE} to +{DAC_FULL_SCALE}. Nothing was loaded",
            )
        self._store(call.channel, name, codes.astype(np.float64) / DAC_FULL_SCALE)

    def _clear_volatile(self, call: Call) -> None:
        # The manual: clears the channel's waveform memory and reloads the default waveform.
        # With FUNC ARB and the output on, the built-in plays at once at the present
        # amplitude; the trace shows it, which is what a driver must be careful of.
        ch = self._ch[call.channel]
        ch.arbs.clear()
        self._envelopes.clear()
        if ch.arb_name != BUILTIN_ARB:
            ch.arb_name = BUILTIN_ARB
            if ch.function == "ARB":
                self._restart((ch.number,))

    def _catalog(self, call: Call) -> str:
        names = list(self._ch[call.channel].arbs)
        return ",".join(f'"{n}"' for n in names) if names else '""'

    def _free(self, call: Call) -> str:
        return str(self.arb_memory_points - self._points_used(self._ch[call.channel]))

    def _set_srate(self, call: Call, param: Param) -> None:
        ch = self._ch[call.channel]
        ch.srate = self._number(param, "sample rate", ("SA/S", "HZ"), SRATE_MIN, SRATE_MAX, SRATE_DEFAULT)
        self._fit_burst_period(ch)
        self._restart((call.channel,))

    def _get_srate(self, call: Call, bound: str | None) -> str:
        ch = self._ch[call.channel]
        return self._query_bound(bound, SRATE_MIN, SRATE_MAX, SRATE_DEFAULT, ch.srate)

    def _get_points(self, call: Call) -> str:
        ch = self._ch[call.channel]
        return str(int(self._arb_samples(ch).size))

    def _select_arb(self, call: Call, param: Param) -> None:
        ch = self._ch[call.channel]
        if isinstance(param, StringParam) and param.value.upper() == BUILTIN_ARB:
            name = BUILTIN_ARB
        else:
            name = self._arb_name(param)
            if name not in ch.arbs:
                loaded = ", ".join(ch.arbs) or "none"
                raise ScpiError(
                    -224,
                    f"no arb named {name} in channel {ch.number}'s volatile memory (loaded: "
                    f"{loaded}); load it with DATA:ARB first",
                )
        ch.arb_name = name
        self._fit_burst_period(ch)
        self._restart((call.channel,))

    def _get_arb(self, call: Call) -> str:
        return f'"{self._ch[call.channel].arb_name}"'

    def _sync(self, call: Call) -> None:
        self._restart((1, 2))

    def _set_phase(self, call: Call, param: Param) -> None:
        ch = self._ch[call.channel]
        ch.phase_deg = self._number(param, "phase", ("DEG",), -360, 360, 0)
        self._replay((call.channel,))

    def _get_phase(self, call: Call) -> str:
        return nr3(self._ch[call.channel].phase_deg)

    # --- handlers: output ------------------------------------------------------------------

    def _set_load(self, call: Call, param: Param) -> None:
        ch = self._ch[call.channel]
        if ch.limit_on:
            raise ScpiError(
                -221,
                "the output load cannot change while voltage limits are on (the limits hold "
                "for one load); VOLT:LIM:STAT OFF, set the load, set the limits, turn them on",
            )
        ohm = self._number(
            param, "output load", ("OHM",), LOAD_MIN_OHM, LOAD_MAX_OHM, 50.0,
            clip=False, allow_inf=True,
        )
        ch.load_setting_ohm = ohm
        if math.isinf(ohm) and ch.unit == "DBM":
            ch.unit = "VPP"  # the manual: units become Vpp at high impedance
        # The actual output is unchanged: only what is displayed and queried moves.

    def _get_load(self, call: Call, bound: str | None) -> str:
        ch = self._ch[call.channel]
        return self._query_bound(bound, LOAD_MIN_OHM, LOAD_MAX_OHM, 50.0, ch.load_setting_ohm)

    def _applier(self, word: str) -> Callable[[Call, Param | None, Param | None, Param | None], None]:
        function = "".join(c for c in word if c.isupper())

        def apply(call: Call, freq: Param | None, amp: Param | None, off: Param | None) -> None:
            self._apply(call, function, freq, amp, off)

        return apply

    def _apply(
        self, call: Call, function: str, freq: Param | None, amp: Param | None, off: Param | None
    ) -> None:
        """APPLy: function, frequency (sample rate for ARB), amplitude and offset in one go,
        burst off, trigger immediate, then the output on, as the manual describes. All or
        nothing: a refused part restores the channel as it was."""
        n = call.channel
        saved = replace(self._ch[n])

        def given(p: Param | None) -> Param | None:
            if p is None or (isinstance(p, CharParam) and p.mnemonic in ("DEF", "DEFAULT")):
                return None
            return p

        try:
            ch = self._ch[n]
            ch.burst_on = False
            ch.trigger_source = "IMM"
            self._set_function(call, function)
            ch = self._ch[n]
            f = given(freq)
            if f is not None and function == "ARB":
                self._set_srate(call, f)
            elif f is not None and function not in ("NOIS", "DC"):
                self._set_frequency(call, f)
            a = given(amp)
            if a is not None and function != "DC":
                self._set_amplitude(call, a)
            o = given(off)
            if o is not None:
                self._set_offset(call, o)
        except ScpiError:
            self._ch[n] = saved
            self._restart((n,))
            raise
        self._ch[n].output = True
        self.engine.set_output(n, True)

    def _get_apply(self, call: Call) -> str:
        ch = self._ch[call.channel]
        rate = ch.srate if ch.function == "ARB" else ch.frequency_hz
        amp = self._display(ch, ch.amplitude_oc_vpp)
        off = self._display(ch, ch.offset_oc_v)
        return f'"{ch.function} {nr3(rate)},{nr3(amp)},{nr3(off)}"'

    def _set_output(self, call: Call, on: bool) -> None:
        ch = self._ch[call.channel]
        ch.output = on
        self.engine.set_output(call.channel, on)

    def _get_output(self, call: Call) -> str:
        return "1" if self._ch[call.channel].output else "0"

    def _set_border(self, call: Call, order: str) -> None:
        self._byte_order = order

    def _next_error(self, call: Call) -> str:
        return self.pop_error().response()
