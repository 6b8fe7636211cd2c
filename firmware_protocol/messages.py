"""Every message of the stimctl board protocol, in wire units.

Fields are integers in the units their names carry (uA, mHz, us, ms, mV, ohm), exactly as they
travel, so encode/decode round-trips are exact and the test vectors are byte-stable. Drivers
convert to and from the milliamp/hertz floats of `drivers.base`.

Host -> device messages are commands; the device answers each one with `Ack` or `Nack`
carrying the command's sequence number (`HelloReply` and `StatusReport` are answers that
stand in for the ack of `Hello` and `StatusRequest`). `FaultReport` is sent by the device
unprompted. The byte layout of each one is in docs/firmware-protocol.md.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class WaveformCode(enum.IntEnum):
    BIPHASIC_SYMMETRIC = 0
    BIPHASIC_ASYMMETRIC = 1
    MONOPHASIC = 2
    NEURON_LIKE = 3
    AMPLIPULSE = 4
    MICROCURRENT = 5


class NackCode(enum.IntEnum):
    UNKNOWN_MESSAGE = 1
    MALFORMED = 2
    BAD_CHANNEL = 3
    OUT_OF_RANGE = 4
    """A field is outside the device's own hard limits; nothing was changed."""
    UNSUPPORTED = 5
    BAD_STATE = 6
    """Not allowed now (e.g. output on while a fault is latched, configure while alternating)."""
    FAULT_LATCHED = 7
    VERSION = 8
    BUSY = 9


class FaultCode(enum.IntEnum):
    OVERCURRENT = 1
    LEAD_OFF = 2
    """Compliance reached / open circuit: the load needs more voltage than the output has."""
    WATCHDOG = 3
    INTERNAL = 4
    ESTOP = 5
    RESET = 6
    """Sent once after the device (re)started on its own."""


# ---- host -> device ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Hello:
    protocol_version: int
    """The host's major protocol version; the device refuses a different major with Nack(VERSION)."""
    protocol_minor: int = 0
    """Minor versions only add message types, so a different minor is accepted."""


@dataclass(frozen=True)
class Goodbye:
    """The host leaves on purpose: the device switches outputs off and disarms its watchdog."""


@dataclass(frozen=True)
class ConfigureChannel:
    channel: int
    waveform: WaveformCode
    amplitude_ua: int
    frequency_mhz: int
    pulse_width_us: int
    interphase_gap_us: int = 0
    asymmetry_ratio_pct: int = 100
    carrier_hz: int = 0
    modulation_mhz: int = 0
    modulation_depth_pct: int = 0


@dataclass(frozen=True)
class SetAmplitude:
    channel: int
    amplitude_ua: int


@dataclass(frozen=True)
class SetOutput:
    channel: int
    on: bool


@dataclass(frozen=True)
class ProgramAlternation:
    channel_a: int
    channel_b: int
    on_ms: int
    dead_time_ms: int
    rest_ms: int
    ramp_up_ms: int = 0
    ramp_down_ms: int = 0


@dataclass(frozen=True)
class StartAlternation:
    pass


@dataclass(frozen=True)
class StopAlternation:
    pass


@dataclass(frozen=True)
class EmergencyStop:
    """All outputs off at once; latched until ClearFaults."""


@dataclass(frozen=True)
class ClearFaults:
    pass


@dataclass(frozen=True)
class Heartbeat:
    counter: int


@dataclass(frozen=True)
class StatusRequest:
    pass


# ---- device -> host ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ChannelInfo:
    channel: int
    max_amplitude_ua: int
    resolution_ua: int
    min_frequency_mhz: int
    max_frequency_mhz: int
    min_pulse_width_us: int
    max_pulse_width_us: int
    compliance_mv: int
    waveforms: frozenset[WaveformCode]


@dataclass(frozen=True)
class HelloReply:
    acked_seq: int
    protocol_version: int
    firmware_version: str
    serial: str
    watchdog_timeout_ms: int
    can_alternate: bool
    channels: tuple[ChannelInfo, ...]
    protocol_minor: int = 0


@dataclass(frozen=True)
class Ack:
    acked_seq: int


@dataclass(frozen=True)
class Nack:
    acked_seq: int
    code: NackCode
    field_index: int = 0
    """Which field of the command was wrong (1-based), 0 if none in particular."""


@dataclass(frozen=True)
class ChannelState:
    channel: int
    output_on: bool
    set_ua: int
    measured_ua: int
    compliance: bool
    load_ohm: int
    """Load impedance estimate; 0 if unknown (output off)."""


@dataclass(frozen=True)
class StatusReport:
    acked_seq: int
    uptime_ms: int
    alternation_running: bool
    fault_latched: bool
    channels: tuple[ChannelState, ...]


@dataclass(frozen=True)
class FaultReport:
    code: FaultCode
    channel: int
    """0: the whole device."""
    detail: int = 0


HostMessage = (
    Hello
    | Goodbye
    | ConfigureChannel
    | SetAmplitude
    | SetOutput
    | ProgramAlternation
    | StartAlternation
    | StopAlternation
    | EmergencyStop
    | ClearFaults
    | Heartbeat
    | StatusRequest
)
DeviceMessage = HelloReply | Ack | Nack | StatusReport | FaultReport
Message = HostMessage | DeviceMessage

PROTOCOL_VERSION = 1
"""Major version: a device answers a Hello with another major by Nack(VERSION)."""
PROTOCOL_MINOR = 0
