"""What the simulated board is: its channels' hard limits, loads, watchdog and policies.

All limits are in the board's wire units (uA, mHz, us, mV, ms) so the simulator compares the
integers it receives against integers, exactly as firmware would.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from firmware_protocol.messages import WaveformCode
from sim.load import DEFAULT_LOAD, ElectrodeLoad


@dataclass(frozen=True)
class ChannelLimits:
    """One output's hard limits, enforced by the board whatever the host asks for."""

    max_amplitude_ua: int = 100_000
    resolution_ua: int = 10
    min_frequency_mhz: int = 1_000
    max_frequency_mhz: int = 200_000
    max_carrier_hz: int = 10_000
    min_pulse_width_us: int = 20
    max_pulse_width_us: int = 1000
    compliance_mv: int = 80_000
    waveforms: frozenset[WaveformCode] = field(default_factory=lambda: frozenset(WaveformCode))

    def __post_init__(self) -> None:
        if self.resolution_ua <= 0 or self.max_amplitude_ua <= 0:
            raise ValueError("max_amplitude_ua and resolution_ua must be > 0")
        if self.max_amplitude_ua % self.resolution_ua:
            raise ValueError("max_amplitude_ua must be a whole number of resolution steps")
        if not 0 < self.min_frequency_mhz <= self.max_frequency_mhz:
            raise ValueError("need 0 < min_frequency_mhz <= max_frequency_mhz")
        if not 0 < self.min_pulse_width_us <= self.max_pulse_width_us:
            raise ValueError("need 0 < min_pulse_width_us <= max_pulse_width_us")
        if self.compliance_mv <= 0 or self.max_carrier_hz <= 0:
            raise ValueError("compliance_mv and max_carrier_hz must be > 0")
        if not self.waveforms:
            raise ValueError("a channel must support at least one waveform")


@dataclass(frozen=True)
class BoardConfig:
    """The simulated stimulator board. Defaults: 4 channels of 100 mA peak at 10 uA resolution,
    1-200 Hz, carrier up to 10 kHz, 20-1000 us, 80 V compliance, a 75 ms watchdog, all outputs
    off on compliance, hardware alternation, the IEC test load on every channel."""

    channels: int = 4
    limits: ChannelLimits = field(default_factory=ChannelLimits)
    """Limits of every channel not listed in channel_limits."""
    channel_limits: tuple[tuple[int, ChannelLimits], ...] = ()
    """(channel, limits) overrides for single channels."""
    loads: tuple[tuple[int, ElectrodeLoad], ...] = ()
    """(channel, load) for channels that do not see sim.load.DEFAULT_LOAD."""
    default_load: ElectrodeLoad = DEFAULT_LOAD
    watchdog_ms: int = 75
    off_on_compliance: bool = True
    """True: compliance (lead-off) switches every output off and latches, as a careful firmware
    does. False: only the status flag and a FaultReport, so the host must act by itself."""
    hardware_alternation: bool = True
    ramp_step_ms: int = 10
    """Alternation ramps move in steps no longer than this (each step is one trace event)."""
    firmware_version: str = "sim-1.0"
    serial: str = "SIM-0001"
    seed: int = 0
    """Seeds the random draws of the corrupt and drop faults, so runs repeat exactly."""

    def __post_init__(self) -> None:
        if not 1 <= self.channels <= 16:
            raise ValueError(f"channels must be within 1..16, got {self.channels}")
        if not 5 <= self.watchdog_ms <= 60_000:
            raise ValueError(f"watchdog_ms must be within 5..60000, got {self.watchdog_ms}")
        if not 1 <= self.ramp_step_ms <= 1000:
            raise ValueError(f"ramp_step_ms must be within 1..1000, got {self.ramp_step_ms}")
        for ch in [c for c, _ in self.channel_limits] + [c for c, _ in self.loads]:
            if not 1 <= ch <= self.channels:
                raise ValueError(f"override for channel {ch}, but the board has 1..{self.channels}")

    def limits_for(self, channel: int) -> ChannelLimits:
        for ch, lim in self.channel_limits:
            if ch == channel:
                return lim
        return self.limits

    def load_for(self, channel: int) -> ElectrodeLoad:
        for ch, load in self.loads:
            if ch == channel:
                return load
        return self.default_load
