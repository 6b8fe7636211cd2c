"""Keysight 33500B-class two-channel waveform generator driving voltage-to-current stages.

The rig puts an isolated voltage-to-current stage after each channel; its transconductance
(mA per V) and compliance voltage come from the rig and are constructor arguments. The driver
works in milliamps and converts: peak volts = amplitude_ma / transconductance_ma_per_v.

A monophasic train plays as the generator's own pulse function (FUNC PULS, FREQ,
FUNC:PULS:WIDT, VOLT:LOW 0 and VOLT:HIGH the peak). Every other shape plays as an arbitrary
waveform (the built-in pulse has no second phase): one period sampled by drivers.waveforms, sent as 16-bit DAC codes in a binary block (SOURn:DATA:ARB:DAC, little-endian
after FORM:BORD SWAP), played at a sample rate chosen for it. The generator maps the codes
-32767..32767 to -Vpp/2..+Vpp/2, so SOURn:VOLT = 2 x peak volts. The output load is set to
High-Z (OUTPn:LOAD INF): the stage input is high impedance, and with the 50 ohm setting the
generator would put out half the voltage it displays.

Hardware-timed alternation (`program_alternation` / `start_alternation`): one whole cycle of
both channels is built as two arbitrary waveforms, complementary in time with the dead time
built in, and the two are restarted together with FUNC:ARB:SYNC, so the generator's sample clock
keeps the pair apart, not Python.
"""

from __future__ import annotations

import math

import numpy as np

from drivers import waveforms
from drivers.base import (
    AlternationSchedule,
    Capabilities,
    ChannelCapability,
    ChannelConfig,
    ChannelStatus,
    DeviceIdentity,
    DeviceStatus,
    Waveform,
)
from drivers.errors import CapabilityError, ReadbackMismatch
from drivers.scpi.common import ScpiStimulator
from drivers.scpi.session import DEFAULT_BACKEND, DEFAULT_TIMEOUT_S, Resource, format_number

DEFAULT_TRANSCONDUCTANCE_MA_PER_V = 5.0
DEFAULT_STAGE_COMPLIANCE_V = 60.0
HIGH_Z = 9.9e37
"""What OUTPn:LOAD? reports for INFinity."""
ALTERNATION_POINTS_PER_FEATURE = 8
"""Samples across the shortest phase in an alternation cycle: a whole cycle of many seconds must
fit in the arb memory, so it gets fewer points per phase than a one-period waveform."""


class K33500B(ScpiStimulator):
    FAMILY = "k33500b"

    def __init__(self, resource: str | Resource, *,
                 transconductance_ma_per_v: float = DEFAULT_TRANSCONDUCTANCE_MA_PER_V,
                 stage_compliance_v: float = DEFAULT_STAGE_COMPLIANCE_V,
                 timeout_s: float = DEFAULT_TIMEOUT_S, backend: str = DEFAULT_BACKEND) -> None:
        super().__init__(resource, timeout_s=timeout_s, backend=backend)
        if not transconductance_ma_per_v > 0 or not math.isfinite(transconductance_ma_per_v):
            raise ValueError("transconductance_ma_per_v must be a positive number (the rig's "
                             f"V->I stage, e.g. 5.0), got {transconductance_ma_per_v}")
        if not stage_compliance_v > 0:
            raise ValueError(f"stage_compliance_v must be > 0, got {stage_compliance_v}")
        self.gm_ma_per_v = transconductance_ma_per_v
        self.stage_compliance_v = stage_compliance_v
        self._configs: dict[int, ChannelConfig] = {}
        self._sampled: dict[int, waveforms.SampledWaveform] = {}
        self._alternation: AlternationSchedule | None = None
        self._alternation_running = False
        self._pulse_channels: set[int] = set()

    # ---- setup ------------------------------------------------------------------------------

    def _channels(self) -> range:
        return range(1, self.spec.channels + 1)

    def _off_commands(self) -> list[str]:
        n = self._spec.channels if self._spec is not None else 2
        return [f"OUTP{ch} OFF" for ch in range(1, n + 1)]

    def _setup(self) -> None:
        s = self.session
        for command in self._off_commands():
            s.write(command)
        s.write("*CLS")
        s.write("FORM:BORD SWAP")
        for ch in self._channels():
            if s.query_bool(f"OUTP{ch}?"):
                raise ReadbackMismatch(f"output {ch} state after OUTP{ch} OFF", False, True)
            s.write(f"OUTP{ch}:LOAD INF")
            self._check(f"output {ch} load (ohm)", HIGH_Z, s.query_float(f"OUTP{ch}:LOAD?"))
        s.check_errors("setup")
        self._alternation_running = False
        self._pulse_channels.clear()

    def _abs_tolerance(self, what: str) -> float:
        return self.spec.abs_resolution if "(V" in what else 0.0

    @property
    def max_amplitude_ma(self) -> float:
        return self.spec.max_vpp_high_z / 2 * self.gm_ma_per_v

    def _build_capabilities(self, ident: DeviceIdentity) -> Capabilities:
        spec = self.spec
        caps = tuple(
            ChannelCapability(
                channel=ch,
                max_amplitude_ma=self.max_amplitude_ma,
                amplitude_resolution_ma=spec.abs_resolution / 2 * self.gm_ma_per_v,
                min_frequency_hz=spec.min_frequency_hz,
                max_frequency_hz=spec.max_frequency_hz,
                min_pulse_width_us=spec.min_pulse_width_us,
                max_pulse_width_us=spec.max_pulse_width_us,
                compliance_v=self.stage_compliance_v,
                waveforms=frozenset(Waveform),
                measures_current=False,
            )
            for ch in self._channels()
        )
        return Capabilities(identity=ident, channels=caps, watchdog_timeout_s=None,
                            hardware_alternation=spec.channels >= 2,
                            recommended_heartbeat_s=1.0)

    # ---- conversions ------------------------------------------------------------------------

    def vpp_for(self, amplitude_ma: float) -> float:
        """SOURn:VOLT for a peak current: the codes span +-Vpp/2 = +-peak volts."""
        vpp = 2.0 * amplitude_ma / self.gm_ma_per_v
        return max(vpp, self.spec.min_vpp_high_z)

    def ma_for(self, vpp: float) -> float:
        return vpp / 2.0 * self.gm_ma_per_v

    def _validate(self, channel: int, amplitude_ma: float) -> None:
        self._check_channel(channel)
        if not 0.0 <= amplitude_ma <= self.max_amplitude_ma:
            raise CapabilityError(
                f"amplitude {amplitude_ma} mA is outside 0-{self.max_amplitude_ma:g} mA: the "
                f"{self.spec.model} gives at most {self.spec.max_vpp_high_z / 2:g} V peak into "
                f"High-Z, times the stage's {self.gm_ma_per_v:g} mA/V")

    # ---- configuration ----------------------------------------------------------------------

    def sample_config(self, config: ChannelConfig) -> waveforms.SampledWaveform:
        """The arbitrary waveform configure_channel would upload (no I/O)."""
        try:
            return waveforms.build(config, self.spec.arb)
        except waveforms.WaveformError as exc:
            raise CapabilityError(str(exc)) from None

    async def configure_channel(self, channel: int, config: ChannelConfig) -> None:
        self._validate(channel, config.amplitude_ma)
        if self._alternation_running:
            raise CapabilityError("stop the alternation before configuring a channel")
        sampled = self.sample_config(config)
        with self._guard(changes_output=True, channel=channel):
            # Clearing arb memory makes a running channel play the built-in arb (a monophasic
            # ramp) at the present amplitude: never reconfigure under a live output.
            if self.session.query_bool(f"OUTP{channel}?"):
                raise CapabilityError(
                    f"output {channel} is on; switch it off before configuring the channel")
            if config.waveform is Waveform.MONOPHASIC:
                self._configure_pulse(channel, config)
            else:
                self._load_arb(channel, f"STIM{channel}", sampled.dac_codes,
                               sampled.sample_rate_hz)
            self._set_amplitude(channel, config.amplitude_ma)
        self._configs[channel] = config
        self._sampled[channel] = sampled
        self._alternation = None

    def _configure_pulse(self, ch: int, config: ChannelConfig) -> None:
        """A monophasic train is the generator's own pulse function: exact edges, no samples.
        Levels go from 0 V (VOLT:LOW) to the peak (VOLT:HIGH), set by _set_amplitude."""
        s = self.session
        width_s = config.pulse_width_us * 1e-6
        s.write(f"SOUR{ch}:FUNC PULS")
        s.write(f"SOUR{ch}:FREQ {format_number(config.frequency_hz)}")
        s.write(f"SOUR{ch}:FUNC:PULS:WIDT {format_number(width_s)}")
        s.write(f"SOUR{ch}:VOLT:LOW 0")
        s.check_errors(f"pulse setup on channel {ch}")
        func = s.query(f"SOUR{ch}:FUNC?").upper()
        if func != "PULS":
            raise ReadbackMismatch(f"channel {ch} function", "PULS", func)
        self._check(f"channel {ch} frequency (Hz)", config.frequency_hz,
                    s.query_float(f"SOUR{ch}:FREQ?"))
        self._check(f"channel {ch} pulse width (s)", width_s,
                    s.query_float(f"SOUR{ch}:FUNC:PULS:WIDT?"))
        self._check(f"channel {ch} low level (V)", 0.0, s.query_float(f"SOUR{ch}:VOLT:LOW?"))
        self._pulse_channels.add(ch)

    def _load_arb(self, ch: int, name: str, codes: np.ndarray, sample_rate_hz: float) -> None:
        """Clear the channel's volatile arb memory, send the codes, select and play them."""
        self._pulse_channels.discard(ch)
        s = self.session
        spec = self.spec
        if not spec.arb.min_points <= codes.size <= spec.arb.max_points:
            raise CapabilityError(f"{codes.size} arb points; the {spec.model} takes "
                                  f"{spec.arb.min_points}-{spec.arb.max_points}")
        s.write(f"SOUR{ch}:DATA:VOL:CLE")
        s.write_block(f"SOUR{ch}:DATA:ARB:DAC {name},", codes.astype("<i2").tobytes())
        s.write(f'SOUR{ch}:FUNC:ARB {name}')
        s.write(f"SOUR{ch}:FUNC ARB")
        s.write(f"SOUR{ch}:FUNC:ARB:SRAT {format_number(sample_rate_hz)}")
        s.write(f"SOUR{ch}:VOLT:OFFS 0")
        s.check_errors(f"arb upload to channel {ch}")
        func = s.query(f"SOUR{ch}:FUNC?").upper()
        if func != "ARB":
            raise ReadbackMismatch(f"channel {ch} function", "ARB", func)
        selected = s.query(f"SOUR{ch}:FUNC:ARB?").strip('"').upper()
        if not _names_match(selected, name):
            raise ReadbackMismatch(f"channel {ch} arb", name, selected)
        points = s.query_int(f"SOUR{ch}:FUNC:ARB:POIN?")
        if points != codes.size:
            raise ReadbackMismatch(f"channel {ch} arb points", int(codes.size), points)
        self._check(f"channel {ch} sample rate (Sa/s)", sample_rate_hz,
                    s.query_float(f"SOUR{ch}:FUNC:ARB:SRAT?"))
        self._check(f"channel {ch} offset (V)", 0.0, s.query_float(f"SOUR{ch}:VOLT:OFFS?"))
        s.check_errors(f"channel {ch} arb readback")

    # ---- live control -----------------------------------------------------------------------

    def _set_amplitude(self, ch: int, amplitude_ma: float) -> float:
        s = self.session
        if ch in self._pulse_channels:
            high = self.vpp_for(amplitude_ma) / 2.0
            s.write(f"SOUR{ch}:VOLT:HIGH {format_number(high)}")
            back = s.query_float(f"SOUR{ch}:VOLT:HIGH?")
            self._check(f"channel {ch} high level (V)", high, back)
            s.check_errors(f"set amplitude on channel {ch}")
            return back * self.gm_ma_per_v
        vpp = self.vpp_for(amplitude_ma)
        s.write(f"SOUR{ch}:VOLT {format_number(vpp)}")
        back = s.query_float(f"SOUR{ch}:VOLT?")
        self._check(f"channel {ch} amplitude (Vpp)", vpp, back)
        s.check_errors(f"set amplitude on channel {ch}")
        return self.ma_for(back)

    async def set_amplitude(self, channel: int, amplitude_ma: float) -> float:
        self._validate(channel, amplitude_ma)
        with self._guard(changes_output=True, channel=channel):
            return self._set_amplitude(channel, amplitude_ma)

    async def set_output(self, channel: int, on: bool) -> None:
        self._check_channel(channel)
        with self._guard(changes_output=True, channel=channel):
            s = self.session
            if on:
                # OUTPn:LOAD scales what VOLT means: changed to 50 ohm (front panel, another
                # client) the same VOLT puts out twice the current. Check before enabling.
                self._check(f"output {channel} load (ohm)", HIGH_Z,
                            s.query_float(f"OUTP{channel}:LOAD?"))
            s.write(f"OUTP{channel} {'ON' if on else 'OFF'}")
            state = s.query_bool(f"OUTP{channel}?")
            if state != on:
                raise ReadbackMismatch(f"output {channel} state", on, state)
            s.check_errors(f"output {channel} {'on' if on else 'off'}")

    async def all_outputs_off(self) -> None:
        with self._guard(changes_output=True):
            s = self.session
            for command in self._off_commands():
                s.write(command)
            self._alternation_running = False
            for ch in self._channels():
                if s.query_bool(f"OUTP{ch}?"):
                    raise ReadbackMismatch(f"output {ch} state after all off", False, True)
            s.check_errors("all outputs off")

    def _best_effort_off(self) -> None:
        super()._best_effort_off()
        self._alternation_running = False

    # ---- generator extras: burst, trigger, phase --------------------------------------------

    async def configure_burst(self, channel: int, cycles: int | None,
                              trigger_source: str = "BUS") -> None:
        """Triggered burst of `cycles` periods (None: infinite, gated by the trigger) from
        trigger_source (BUS: `trigger()`, IMM, EXT, TIM)."""
        self._check_channel(channel)
        source = trigger_source.upper()
        if source not in ("BUS", "IMM", "EXT", "TIM"):
            raise CapabilityError(f"trigger source {trigger_source!r}: use BUS, IMM, EXT or TIM")
        if cycles is not None and not 1 <= cycles <= 100_000_000:
            raise CapabilityError(f"burst cycles {cycles}: use 1..100000000 or None (infinite)")
        with self._guard(changes_output=True, channel=channel):
            s = self.session
            s.write(f"TRIG{channel}:SOUR {source}")
            s.write(f"SOUR{channel}:BURS:MODE TRIG")
            s.write(f"SOUR{channel}:BURS:NCYC {'INF' if cycles is None else cycles}")
            s.write(f"SOUR{channel}:BURS:STAT ON")
            s.check_errors(f"burst setup on channel {channel}")
            if not s.query_bool(f"SOUR{channel}:BURS:STAT?"):
                raise ReadbackMismatch(f"channel {channel} burst state", True, False)
            got = s.query(f"TRIG{channel}:SOUR?").upper()
            if got != source:
                raise ReadbackMismatch(f"channel {channel} trigger source", source, got)

    async def trigger(self) -> None:
        """A bus trigger (*TRG) for every channel whose trigger source is BUS."""
        with self._guard(changes_output=True):
            self.session.write("*TRG")
            self.session.check_errors("*TRG")

    # ---- hardware-timed alternation ---------------------------------------------------------

    def build_alternation(self, schedule: AlternationSchedule
                          ) -> tuple[float, np.ndarray, np.ndarray]:
        """(sample rate, DAC codes for channel_a, DAC codes for channel_b) of one cycle.

        Only whole pulse periods are placed inside an on-window, so no pulse is cut in half
        (which would leave a net charge) and the dead time is at least the schedule's. Ramps
        scale whole pulses (one envelope value per period) to keep each pulse balanced."""
        a, b = schedule.channel_a, schedule.channel_b
        for ch in (a, b):
            self._check_channel(ch)
            if ch not in self._configs:
                raise CapabilityError(
                    f"channel {ch} is not configured; configure_channel() both channels "
                    "before program_alternation()")
        if a == b:
            raise CapabilityError("alternation needs two different channels")
        if schedule.on_s <= 0 or schedule.dead_time_s < 0 or schedule.rest_s < 0:
            raise CapabilityError("alternation times must be on_s > 0, dead_time_s >= 0, "
                                  "rest_s >= 0")
        if schedule.rest_s < schedule.dead_time_s:
            raise CapabilityError(
                f"rest_s ({schedule.rest_s} s) must be >= dead_time_s ({schedule.dead_time_s} s):"
                " the rest is the dead time from channel_b back to channel_a")
        if schedule.ramp_up_s + schedule.ramp_down_s > schedule.on_s:
            raise CapabilityError("ramp_up_s + ramp_down_s must fit inside on_s")
        designs = {ch: waveforms.design(self._configs[ch]) for ch in (a, b)}
        shortest = min(d.shortest_feature_s for d in designs.values())
        cycle = schedule.cycle_s
        wanted = ALTERNATION_POINTS_PER_FEATURE / shortest
        limit = min(self.spec.arb.max_points / cycle, self.spec.arb.max_sample_rate_hz)
        if wanted > limit:
            raise CapabilityError(
                f"a {cycle:g} s alternation cycle with {shortest * 1e6:.0f} us phases needs "
                f"{math.ceil(wanted * cycle)} points; the {self.spec.model} holds "
                f"{self.spec.arb.max_points}. Shorten on_s/rest_s or widen the pulses")
        rate = float(math.ceil(wanted))
        n = int(round(cycle * rate))
        full = self.spec.arb.full_scale_code
        out: list[np.ndarray] = []
        for ch, start in ((a, 0.0), (b, schedule.on_s + schedule.dead_time_s)):
            d = designs[ch]
            window = _whole_periods(d, rate, schedule)
            codes = np.zeros(n, dtype=np.int16)
            first = int(round(start * rate))
            norm = window / d.peak_ma if d.peak_ma > 0 else window
            codes[first:first + window.size] = np.clip(np.rint(norm * full), -full, full
                                                       ).astype(np.int16)
            out.append(codes)
        _assert_complementary(out[0], out[1], schedule, rate)
        return rate, out[0], out[1]

    async def program_alternation(self, schedule: AlternationSchedule) -> None:
        if self._alternation_running:
            raise CapabilityError("an alternation is running; stop_alternation() first")
        rate, codes_a, codes_b = self.build_alternation(schedule)
        with self._guard(changes_output=True):
            s = self.session
            for ch in (schedule.channel_a, schedule.channel_b):
                s.write(f"OUTP{ch} OFF")
            for ch, codes in ((schedule.channel_a, codes_a), (schedule.channel_b, codes_b)):
                self._load_arb(ch, f"ALT{ch}", codes, rate)
                self._set_amplitude(ch, self._configs[ch].amplitude_ma)
        self._alternation = schedule

    async def start_alternation(self) -> None:
        sched = self._alternation
        if sched is None:
            raise CapabilityError("no alternation programmed; call program_alternation() first")
        with self._guard(changes_output=True):
            s = self.session
            # Restart both arbs at their first point together; from here the generator's clock
            # keeps them apart, whatever the delay between the two OUTP commands.
            for ch in (sched.channel_a, sched.channel_b):
                self._check(f"output {ch} load (ohm)", HIGH_Z, s.query_float(f"OUTP{ch}:LOAD?"))
            s.write(f"SOUR{sched.channel_a}:FUNC:ARB:SYNC")
            for ch in (sched.channel_a, sched.channel_b):
                s.write(f"OUTP{ch} ON")
            for ch in (sched.channel_a, sched.channel_b):
                if not s.query_bool(f"OUTP{ch}?"):
                    raise ReadbackMismatch(f"output {ch} state", True, False)
            s.check_errors("start alternation")
            self._alternation_running = True

    async def stop_alternation(self) -> None:
        sched = self._alternation
        if sched is None:
            raise CapabilityError("no alternation programmed")
        with self._guard(changes_output=True):
            s = self.session
            for ch in (sched.channel_a, sched.channel_b):
                s.write(f"OUTP{ch} OFF")
            self._alternation_running = False
            for ch in (sched.channel_a, sched.channel_b):
                if s.query_bool(f"OUTP{ch}?"):
                    raise ReadbackMismatch(f"output {ch} state", False, True)
            s.check_errors("stop alternation")

    # ---- status -----------------------------------------------------------------------------

    async def status(self) -> DeviceStatus:
        chans: list[ChannelStatus] = []
        with self._guard(changes_output=False):
            s = self.session
            for ch in self._channels():
                on = s.query_bool(f"OUTP{ch}?")
                if ch in self._pulse_channels:
                    amplitude_ma = s.query_float(f"SOUR{ch}:VOLT:HIGH?") * self.gm_ma_per_v
                else:
                    amplitude_ma = self.ma_for(s.query_float(f"SOUR{ch}:VOLT?"))
                self._check(f"output {ch} load (ohm)", HIGH_Z, s.query_float(f"OUTP{ch}:LOAD?"))
                chans.append(ChannelStatus(channel=ch, output_on=on,
                                           set_amplitude_ma=amplitude_ma))
            s.check_errors("status")
        return DeviceStatus(channels=tuple(chans), alternation_running=self._alternation_running,
                            faults=tuple(self._faults))

    def last_waveform(self, channel: int) -> waveforms.SampledWaveform | None:
        return self._sampled.get(channel)


def _names_match(reported: str, name: str) -> bool:
    # The instrument may report the name with a memory prefix or extension: INT:\ALT1.ARB.
    base = reported.replace("\\", "/").rsplit("/", 1)[-1].rsplit(":", 1)[-1]
    if base.endswith(".ARB"):
        base = base[:-4]
    return base == name.upper()


def _whole_periods(d: waveforms.WaveformDesign, rate: float, sched: AlternationSchedule
                   ) -> np.ndarray:
    """The pulse train of one on-window in mA: whole periods only, each pulse scaled by the
    ramp envelope at its start."""
    periods = int(math.floor(sched.on_s / d.period_s + 1e-9))
    if periods < 1:
        raise CapabilityError(
            f"on_s {sched.on_s} s is shorter than one period ({d.period_s:g} s) of the "
            f"{d.config.waveform.value} waveform")
    n = int(math.floor(periods * d.period_s * rate + 1e-9))
    oversample = 8
    t = (np.arange(n * oversample, dtype=np.float64) + 0.5) / (rate * oversample)
    k = np.floor(t / d.period_s)
    starts = k * d.period_s
    env = np.ones_like(t)
    if sched.ramp_up_s > 0:
        env = np.minimum(env, (starts + d.period_s) / sched.ramp_up_s)
    if sched.ramp_down_s > 0:
        env = np.minimum(env, (sched.on_s - starts) / sched.ramp_down_s)
    values = d.current_ma(t - starts) * np.clip(env, 0.0, 1.0)
    return np.asarray(values.reshape(n, oversample).mean(axis=1), dtype=np.float64)


def _assert_complementary(a: np.ndarray, b: np.ndarray, sched: AlternationSchedule,
                          rate: float) -> None:
    """Refuse to load a pair that overlaps or breaks the dead time, cyclically."""
    on_a, on_b = a != 0, b != 0
    if np.any(on_a & on_b):
        raise CapabilityError("internal: alternation waveforms overlap; refusing to load them")
    if not on_a.any() or not on_b.any():
        return
    need = sched.dead_time_s * rate - 1e-6
    ia, ib = np.flatnonzero(on_a), np.flatnonzero(on_b)
    n = a.size
    gaps = (ib[0] - ia[-1] - 1, ia[0] + n - ib[-1] - 1)
    if min(gaps) < need:
        raise CapabilityError(
            f"internal: alternation dead time {min(gaps) / rate:g} s < {sched.dead_time_s} s")
