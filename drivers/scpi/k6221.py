"""Keithley 6221 AC/DC current source, one output, as a `Stimulator`.

Stimulation runs in the 6221's waveform mode: one period of the pulse shape is uploaded as an
arbitrary waveform (normalized -1..1, 100 points per SOUR:WAVE:ARB:DATA / :APPend command, as
the instrument accepts) into the volatile buffer and played as ARB0 at the pulse frequency with
SOUR:WAVE:AMPL as its peak current. `configure_dc` selects the DC mode instead (SOUR:CURR).

Compliance is read from the measurement condition register (STAT:MEAS:COND?), the bit named in
drivers.scpi.models; the 6221 does not measure the current it delivers, so the measured value
is None.

Alternation across two single-channel 6221s is break-before-make in the controller, so
`program_alternation` raises NotSupported (the inherited default).
"""

from __future__ import annotations

from drivers import waveforms
from drivers.base import (
    Capabilities,
    ChannelCapability,
    ChannelConfig,
    ChannelStatus,
    DeviceIdentity,
    DeviceStatus,
    Waveform,
)
from drivers.errors import CapabilityError, ProtocolError, ReadbackMismatch
from drivers.scpi.common import ScpiStimulator
from drivers.scpi.session import DEFAULT_BACKEND, DEFAULT_TIMEOUT_S, Resource, format_number

ARB_SLOT = 0
"""ARB0 plays the volatile edit buffer the upload fills; copying to ARB1..ARB4 would write the
6221's non-volatile memory on every configure for no gain."""
DEFAULT_COMPLIANCE_V = 10.0
INFINITE_DURATION = 9.9e37
"""What the 6221 reports for SOUR:WAVE:DUR:TIME INF (the SCPI 'infinity')."""
MIN_WAVE_AMPLITUDE_A = 2e-12
"""The 6221 cannot set a waveform amplitude of 0; this is its smallest one (2 pA)."""


class K6221(ScpiStimulator):
    FAMILY = "k6221"

    def __init__(self, resource: str | Resource, *, compliance_v: float = DEFAULT_COMPLIANCE_V,
                 timeout_s: float = DEFAULT_TIMEOUT_S, backend: str = DEFAULT_BACKEND) -> None:
        super().__init__(resource, timeout_s=timeout_s, backend=backend)
        self.compliance_v = compliance_v
        self._mode = "wave"
        self._config: ChannelConfig | None = None
        self._last_waveform: waveforms.SampledWaveform | None = None

    # ---- setup ------------------------------------------------------------------------------

    def _off_commands(self) -> list[str]:
        # Relay first: ABOR alone returns the source to DC mode, which would deliver SOUR:CURR
        # through a closed relay. (OUTP OFF also aborts an armed waveform.)
        return ["OUTP OFF", "SOUR:WAVE:ABOR"]

    def _setup(self) -> None:
        s = self.session
        spec = self.spec
        if not spec.min_compliance_v <= self.compliance_v <= spec.max_compliance_v:
            raise CapabilityError(
                f"compliance_v {self.compliance_v} V is outside the {spec.model}'s "
                f"{spec.min_compliance_v}-{spec.max_compliance_v} V")
        for command in self._off_commands():
            s.write(command)
        s.write("*CLS")
        if s.query_bool("OUTP?"):
            raise ReadbackMismatch("output 1 state after OUTP OFF", False, True)
        # DC level 0, so that leaving waveform mode (ABOR, end of duration) delivers nothing;
        # auto range so a later DC level is not refused for the *RST 2 mA range.
        s.write("SOUR:CURR:RANG:AUTO ON")
        s.write("SOUR:CURR 0")
        self._check("DC level (A)", 0.0, s.query_float("SOUR:CURR?"))
        s.write(f"SOUR:CURR:COMP {format_number(self.compliance_v)}")
        self._check("compliance voltage (V)", self.compliance_v,
                    s.query_float("SOUR:CURR:COMP?"))
        s.check_errors("setup")

    def _abs_tolerance(self, what: str) -> float:
        return self.spec.abs_resolution * 1e-3 if "(A)" in what else 0.0

    def _build_capabilities(self, ident: DeviceIdentity) -> Capabilities:
        spec = self.spec
        cap = ChannelCapability(
            channel=1,
            max_amplitude_ma=spec.max_current_ma,
            amplitude_resolution_ma=spec.abs_resolution,
            min_frequency_hz=spec.min_frequency_hz,
            max_frequency_hz=spec.max_frequency_hz,
            min_pulse_width_us=spec.min_pulse_width_us,
            max_pulse_width_us=spec.max_pulse_width_us,
            compliance_v=self.compliance_v,
            waveforms=frozenset(Waveform),
            measures_current=False,
        )
        return Capabilities(identity=ident, channels=(cap,), watchdog_timeout_s=None,
                            hardware_alternation=False, recommended_heartbeat_s=1.0)

    # ---- configuration ----------------------------------------------------------------------

    def _validate(self, channel: int, amplitude_ma: float) -> None:
        self._check_channel(channel)
        if not 0.0 <= amplitude_ma <= self.spec.max_current_ma:
            raise CapabilityError(
                f"amplitude {amplitude_ma} mA is outside the {self.spec.model}'s "
                f"0-{self.spec.max_current_ma} mA")

    def sample_config(self, config: ChannelConfig) -> waveforms.SampledWaveform:
        """The arbitrary waveform configure_channel would upload (no I/O)."""
        if not self.spec.min_frequency_hz <= _rep_frequency(config) <= self.spec.max_frequency_hz:
            raise CapabilityError(
                f"repetition frequency {_rep_frequency(config):g} Hz is outside the "
                f"{self.spec.model}'s {self.spec.min_frequency_hz:g}-"
                f"{self.spec.max_frequency_hz:g} Hz")
        try:
            return waveforms.build(config, self.spec.arb)
        except waveforms.WaveformError as exc:
            raise CapabilityError(str(exc)) from None

    async def configure_channel(self, channel: int, config: ChannelConfig) -> None:
        self._validate(channel, config.amplitude_ma)
        sampled = self.sample_config(config)
        with self._guard(changes_output=True, channel=channel):
            s = self.session
            # An armed waveform refuses new data (-221); say so plainly instead.
            if s.query_bool("OUTP?"):
                raise CapabilityError("output 1 is on; switch it off before configuring")
            self.upload_arb(sampled.normalized.tolist())
            s.write(f"SOUR:WAVE:FUNC ARB{ARB_SLOT}")
            reply = s.query("SOUR:WAVE:FUNC?").upper()
            if reply != f"ARB{ARB_SLOT}":
                raise ReadbackMismatch("waveform function", f"ARB{ARB_SLOT}", reply)
            freq = _rep_frequency(config)
            s.write(f"SOUR:WAVE:FREQ {format_number(freq)}")
            self._check("waveform frequency (Hz)", freq, s.query_float("SOUR:WAVE:FREQ?"))
            s.write("SOUR:WAVE:OFFS 0")
            self._check("waveform offset (A)", 0.0, s.query_float("SOUR:WAVE:OFFS?"))
            s.write("SOUR:WAVE:DUR:TIME INF")
            self._check("waveform duration (s)", INFINITE_DURATION,
                        s.query_float("SOUR:WAVE:DUR:TIME?"))
            s.check_errors("waveform upload and setup")
            self._mode = "wave"
            self._config = config
            self._last_waveform = sampled
            self._set_amplitude(config.amplitude_ma)

    def upload_arb(self, points: list[float]) -> None:
        """Send normalized points to the 6221's arb edit buffer, 100 per command (the first with
        SOUR:WAVE:ARB:DATA, the rest with :APPend), then check the point count and errors."""
        spec = self.spec
        if not spec.arb.min_points <= len(points) <= spec.arb.max_points:
            raise CapabilityError(
                f"{len(points)} arb points; the {spec.model} takes "
                f"{spec.arb.min_points}-{spec.arb.max_points}")
        if any(abs(p) > 1.0 for p in points):
            raise CapabilityError("arb points must lie within -1..1 (normalized)")
        s = self.session
        chunk = spec.arb_chunk_points
        for start in range(0, len(points), chunk):
            head = "SOUR:WAVE:ARB:DATA" if start == 0 else "SOUR:WAVE:ARB:APP"
            body = ",".join(_fmt_point(p) for p in points[start:start + chunk])
            s.write(f"{head} {body}")
        count = s.query_int("SOUR:WAVE:ARB:POIN?")
        if count != len(points):
            raise ReadbackMismatch("arb point count", len(points), count)
        s.check_errors("arb upload")

    async def configure_dc(self, channel: int, amplitude_ma: float) -> None:
        """DC mode: a constant current of amplitude_ma while the output is on. Net DC; only for
        programs whose limits profile allows it (the interlock decides)."""
        self._validate(channel, amplitude_ma)
        with self._guard(changes_output=True, channel=channel):
            s = self.session
            if s.query_bool("OUTP?"):
                raise CapabilityError("output 1 is on; switch it off before changing to DC mode")
            s.write("SOUR:WAVE:ABOR")
            self._mode = "dc"
            self._config = None
            self._set_amplitude(amplitude_ma)

    # ---- live control -----------------------------------------------------------------------

    def _set_amplitude(self, amplitude_ma: float) -> float:
        s = self.session
        amps = amplitude_ma * 1e-3
        if self._mode == "wave":
            amps = max(amps, MIN_WAVE_AMPLITUDE_A)
            s.write(f"SOUR:WAVE:AMPL {format_number(amps)}")
            back = s.query_float("SOUR:WAVE:AMPL?")
        else:
            s.write(f"SOUR:CURR {format_number(amps)}")
            back = s.query_float("SOUR:CURR?")
        self._check("amplitude (A)", amps, back)
        s.check_errors("set amplitude")
        return back * 1e3

    async def set_amplitude(self, channel: int, amplitude_ma: float) -> float:
        self._validate(channel, amplitude_ma)
        with self._guard(changes_output=True, channel=channel):
            return self._set_amplitude(amplitude_ma)

    async def set_output(self, channel: int, on: bool) -> None:
        self._check_channel(channel)
        with self._guard(changes_output=True, channel=channel):
            s = self.session
            if on and self._mode == "wave":
                # INIT closes the output relay and starts the armed waveform.
                s.write("SOUR:WAVE:ARM")
                s.write("SOUR:WAVE:INIT")
            elif on:
                s.write("OUTP ON")
            else:
                for command in self._off_commands():
                    s.write(command)
            state = s.query_bool("OUTP?")
            if state != on:
                raise ReadbackMismatch("output 1 state", on, state)
            s.check_errors("output on" if on else "output off")

    async def all_outputs_off(self) -> None:
        with self._guard(changes_output=True):
            s = self.session
            for command in self._off_commands():
                s.write(command)
            if s.query_bool("OUTP?"):
                raise ReadbackMismatch("output 1 state after all off", False, True)
            s.check_errors("all outputs off")

    # ---- status -----------------------------------------------------------------------------

    async def status(self) -> DeviceStatus:
        with self._guard(changes_output=False):
            s = self.session
            on = s.query_bool("OUTP?")
            query = "SOUR:WAVE:AMPL?" if self._mode == "wave" else "SOUR:CURR?"
            amplitude_ma = s.query_float(query) * 1e3
            condition = s.query_int("STAT:MEAS:COND?")
            if condition < 0:
                raise ProtocolError(f"STAT:MEAS:COND? answered {condition}, a negative register")
            s.check_errors("status")
        compliance = bool(condition >> self.spec.compliance_bit & 1)
        ch = ChannelStatus(channel=1, output_on=on, set_amplitude_ma=amplitude_ma,
                           measured_amplitude_ma=None, compliance=compliance)
        return DeviceStatus(channels=(ch,), faults=tuple(self._faults))

    @property
    def last_waveform(self) -> waveforms.SampledWaveform | None:
        """The waveform last uploaded, with its charge figures and resampling error."""
        return self._last_waveform


def _rep_frequency(config: ChannelConfig) -> float:
    if config.waveform is Waveform.AMPLIPULSE:
        return float(config.modulation_hz or 0.0)
    return float(config.frequency_hz)


def _fmt_point(value: float) -> str:
    text = f"{value:.5f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "", "0") else text
