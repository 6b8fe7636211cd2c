"""The board's own checks of a command's fields against its hard limits.

Each check returns None when the request is acceptable, else the (NackCode, field_index) the
board answers with. Field indices are 1-based in the order the message dataclass declares them,
as the protocol's Nack.field_index defines.
"""

from __future__ import annotations

from firmware_protocol.messages import (
    ConfigureChannel,
    NackCode,
    ProgramAlternation,
    WaveformCode,
)
from sim.board.config import ChannelLimits

Refusal = tuple[NackCode, int]

_BIPHASIC = (
    WaveformCode.BIPHASIC_SYMMETRIC,
    WaveformCode.BIPHASIC_ASYMMETRIC,
    WaveformCode.NEURON_LIKE,
    WaveformCode.MICROCURRENT,
)


def amplitude_refusal(amplitude_ua: int, limits: ChannelLimits, field_index: int) -> Refusal | None:
    # Off-grid values are rounded by the device (the protocol says so), not refused.
    if not 0 <= amplitude_ua <= limits.max_amplitude_ua:
        return NackCode.OUT_OF_RANGE, field_index
    return None


def configure_refusal(msg: ConfigureChannel, limits: ChannelLimits) -> Refusal | None:
    if msg.waveform not in limits.waveforms:
        return NackCode.OUT_OF_RANGE, 2
    refused = amplitude_refusal(msg.amplitude_ua, limits, 3)
    if refused:
        return refused
    if msg.waveform is WaveformCode.AMPLIPULSE:
        if not 1 <= msg.carrier_hz <= limits.max_carrier_hz:
            return NackCode.OUT_OF_RANGE, 8
        if not limits.min_frequency_mhz <= msg.modulation_mhz <= limits.max_frequency_mhz:
            return NackCode.OUT_OF_RANGE, 9
        if msg.modulation_mhz >= msg.carrier_hz * 1000:
            return NackCode.OUT_OF_RANGE, 9
        if not 0 <= msg.modulation_depth_pct <= 100:
            return NackCode.OUT_OF_RANGE, 10
        return None
    if not limits.min_frequency_mhz <= msg.frequency_mhz <= limits.max_frequency_mhz:
        return NackCode.OUT_OF_RANGE, 4
    if not limits.min_pulse_width_us <= msg.pulse_width_us <= limits.max_pulse_width_us:
        return NackCode.OUT_OF_RANGE, 5
    if not 0 <= msg.interphase_gap_us <= limits.max_pulse_width_us:
        return NackCode.OUT_OF_RANGE, 6
    if not 100 <= msg.asymmetry_ratio_pct <= 1000:
        return NackCode.OUT_OF_RANGE, 7
    if pulse_duration_us(msg) * msg.frequency_mhz >= 1_000_000_000:
        # The whole pulse (both phases and the gap) must end before the next one starts.
        return NackCode.OUT_OF_RANGE, 5
    return None


def pulse_duration_us(msg: ConfigureChannel) -> float:
    if msg.waveform is WaveformCode.MONOPHASIC:
        return float(msg.pulse_width_us)
    recovery_us: float = msg.pulse_width_us
    if msg.waveform is WaveformCode.BIPHASIC_ASYMMETRIC:
        recovery_us = msg.pulse_width_us * msg.asymmetry_ratio_pct / 100
    return msg.pulse_width_us + msg.interphase_gap_us + recovery_us


def phase_width_us(msg: ConfigureChannel) -> float:
    """How long one constant-current phase lasts: what the load model charges the double layer
    for. A sinusoidal carrier's half period stands in for AMPLIPULSE."""
    if msg.waveform is WaveformCode.AMPLIPULSE:
        return 500_000.0 / max(msg.carrier_hz, 1)
    return float(msg.pulse_width_us)


def alternation_refusal(msg: ProgramAlternation, channels: int) -> Refusal | None:
    for index, ch in ((1, msg.channel_a), (2, msg.channel_b)):
        if not 1 <= ch <= channels:
            return NackCode.BAD_CHANNEL, index
    if msg.channel_a == msg.channel_b:
        return NackCode.BAD_CHANNEL, 2
    if not 1 <= msg.on_ms <= 3_600_000:
        return NackCode.OUT_OF_RANGE, 3
    # At least 1 ms between one channel ending and the other starting (Digitimer D188 practice).
    if not 1 <= msg.dead_time_ms <= 3_600_000:
        return NackCode.OUT_OF_RANGE, 4
    if not msg.dead_time_ms <= msg.rest_ms <= 3_600_000:
        return NackCode.OUT_OF_RANGE, 5
    if msg.ramp_up_ms < 0 or msg.ramp_up_ms > msg.on_ms:
        return NackCode.OUT_OF_RANGE, 6
    if msg.ramp_down_ms < 0 or msg.ramp_up_ms + msg.ramp_down_ms > msg.on_ms:
        return NackCode.OUT_OF_RANGE, 7
    return None
