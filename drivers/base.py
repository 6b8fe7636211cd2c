"""The `Stimulator` interface that every device family implements, and the value types it speaks.

Channels are numbered from 1, as on the instruments' front panels and the board's connectors.
Currents are in milliamps at this interface whatever the device works in (microamps on the
board's wire, volts on a generator behind a transconductance stage): drivers convert.

Only the controller's interlock holds a `Stimulator`; nothing else calls these methods on a
device that may be connected to a person.
"""

from __future__ import annotations

import enum
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field


class Waveform(str, enum.Enum):
    """Pulse shapes. Every one but MONOPHASIC is charge-balanced by construction."""

    BIPHASIC_SYMMETRIC = "biphasic_symmetric"
    """Cathodic phase, optional interphase gap, equal and opposite anodic phase."""
    BIPHASIC_ASYMMETRIC = "biphasic_asymmetric"
    """Cathodic phase, then a longer, lower recovery phase of equal charge (see asymmetry_ratio)."""
    MONOPHASIC = "monophasic"
    """One polarity only: net DC. Allowed only where a limits profile says so."""
    NEURON_LIKE = "neuron_like"
    """A spike-shaped biphasic pulse (fast rise, exponential decay), charge-balanced."""
    AMPLIPULSE = "amplipulse"
    """A sinusoidal carrier (2-10 kHz) amplitude-modulated at 10-150 Hz."""
    MICROCURRENT = "microcurrent"
    """Low-level alternating-polarity square current (uA range), charge-balanced."""

    @property
    def charge_balanced(self) -> bool:
        return self is not Waveform.MONOPHASIC


@dataclass(frozen=True)
class ChannelConfig:
    """What one output should deliver. Validated by the interlock before any driver sees it.

    amplitude_ma is the peak current of the first (cathodic) phase; for AMPLIPULSE it is the
    peak of the modulated carrier.
    """

    waveform: Waveform
    amplitude_ma: float
    frequency_hz: float
    pulse_width_us: float
    interphase_gap_us: float = 0.0
    asymmetry_ratio: float = 1.0
    """BIPHASIC_ASYMMETRIC: the recovery phase is ratio times longer at 1/ratio the current."""
    carrier_hz: float | None = None
    """AMPLIPULSE only: the sinusoidal carrier frequency."""
    modulation_hz: float | None = None
    """AMPLIPULSE only: the modulation (beat) frequency; frequency_hz is ignored for it."""
    modulation_depth: float = 1.0
    """AMPLIPULSE only: 0..1, fraction of the carrier that is modulated."""

    def with_amplitude(self, amplitude_ma: float) -> ChannelConfig:
        from dataclasses import replace

        return replace(self, amplitude_ma=amplitude_ma)


@dataclass(frozen=True)
class ChannelCapability:
    """What one output of a device can do, as the device itself reports it."""

    channel: int
    max_amplitude_ma: float
    amplitude_resolution_ma: float
    min_frequency_hz: float
    max_frequency_hz: float
    min_pulse_width_us: float
    max_pulse_width_us: float
    compliance_v: float
    waveforms: frozenset[Waveform]
    measures_current: bool = False
    measures_impedance: bool = False


@dataclass(frozen=True)
class DeviceIdentity:
    manufacturer: str
    model: str
    serial: str
    firmware_version: str
    protocol_version: str = ""


@dataclass(frozen=True)
class AlternationSchedule:
    """An antagonist pair run by the device's own timer.

    One cycle: channel_a on for on_s (ramp_up_s and ramp_down_s inside it), dead_time_s with
    both off, channel_b on for on_s, then rest_s with both off (rest_s >= dead_time_s). The two
    channels are never on at the same time, ramps included.
    """

    channel_a: int
    channel_b: int
    on_s: float
    dead_time_s: float
    rest_s: float
    ramp_up_s: float = 0.0
    ramp_down_s: float = 0.0

    @property
    def cycle_s(self) -> float:
        return 2 * self.on_s + self.dead_time_s + self.rest_s


@dataclass(frozen=True)
class Capabilities:
    identity: DeviceIdentity
    channels: tuple[ChannelCapability, ...]
    watchdog_timeout_s: float | None
    """The device's own watchdog: outputs off if it hears nothing for this long. None: it has none."""
    hardware_alternation: bool
    """The device can run an `AlternationSchedule` on its own clock."""
    recommended_heartbeat_s: float | None = None

    def channel(self, number: int) -> ChannelCapability:
        for cap in self.channels:
            if cap.channel == number:
                return cap
        raise KeyError(f"device {self.identity.model} has no channel {number}")


@dataclass(frozen=True)
class ChannelStatus:
    channel: int
    output_on: bool
    set_amplitude_ma: float
    measured_amplitude_ma: float | None = None
    """What the device measured it delivered; None if it cannot measure."""
    compliance: bool = False
    """The output hit its compliance voltage: it delivers less than set (lead-off, high load)."""
    load_ohm: float | None = None


class FaultKind(str, enum.Enum):
    OVERCURRENT = "overcurrent"
    LEAD_OFF = "lead_off"
    WATCHDOG = "watchdog"
    INTERNAL = "internal"
    COMMS = "comms"
    """Link lost or timed out, as seen by the driver."""
    DEVICE_ERROR = "device_error"
    """An instrument error (SCPI error queue entry, firmware nack where it means a fault)."""
    READBACK = "readback"
    RESET = "reset"
    """The device restarted on its own; whatever it was told before is gone."""


@dataclass(frozen=True)
class FaultReport:
    kind: FaultKind
    channel: int | None = None
    detail: str = ""


@dataclass(frozen=True)
class DeviceStatus:
    channels: tuple[ChannelStatus, ...]
    alternation_running: bool = False
    fault_latched: bool = False
    faults: tuple[FaultReport, ...] = field(default_factory=tuple)

    def channel(self, number: int) -> ChannelStatus:
        for st in self.channels:
            if st.channel == number:
                return st
        raise KeyError(f"status has no channel {number}")


FaultListener = Callable[[FaultReport], None]


class Stimulator(ABC):
    """One connected device. All methods are coroutines and every one of them has a timeout:
    a device that does not answer raises `DeviceTimeout`, never hangs.

    Lifecycle: `await open()` -> configure / output calls -> `await close()` (which switches
    every output off first). Usable as `async with`.
    """

    @abstractmethod
    async def open(self) -> Capabilities:
        """Connect, handshake, read identity and capabilities. Leaves every output off."""

    @abstractmethod
    async def close(self) -> None:
        """Switch every output off (best effort), say goodbye where the protocol has one, and
        release the transport. Safe to call twice and after a failure."""

    @property
    @abstractmethod
    def capabilities(self) -> Capabilities:
        """As read by `open()`. Raises if not open."""

    @abstractmethod
    async def configure_channel(self, channel: int, config: ChannelConfig) -> None:
        """Load waveform, frequency and pulse width. Amplitude is set to config.amplitude_ma,
        the output state is not changed. Read back and checked."""

    @abstractmethod
    async def set_amplitude(self, channel: int, amplitude_ma: float) -> float:
        """Change the amplitude live (ramps). Returns the amplitude the device reports back."""

    @abstractmethod
    async def set_output(self, channel: int, on: bool) -> None:
        """Switch one output on or off; confirmed by readback before returning."""

    @abstractmethod
    async def all_outputs_off(self) -> None:
        """Every output off, as fast as the device allows, no ramp. Used on every fault."""

    @abstractmethod
    async def emergency_stop(self) -> None:
        """Immediate stop. Where the device has a latched e-stop, use it; else all_outputs_off."""

    @abstractmethod
    async def status(self) -> DeviceStatus:
        """Per-channel output state, set and measured current, compliance, load estimate."""

    @abstractmethod
    async def heartbeat(self) -> None:
        """Tell the device the host is alive (feeds its watchdog); raises if it does not answer."""

    async def program_alternation(self, schedule: AlternationSchedule) -> None:
        """Load an antagonist schedule for the device's own timer. Default: not supported."""
        from drivers.errors import NotSupported

        raise NotSupported(f"{type(self).__name__} cannot run alternation on its own clock")

    async def start_alternation(self) -> None:
        from drivers.errors import NotSupported

        raise NotSupported(f"{type(self).__name__} cannot run alternation on its own clock")

    async def stop_alternation(self) -> None:
        from drivers.errors import NotSupported

        raise NotSupported(f"{type(self).__name__} cannot run alternation on its own clock")

    async def clear_faults(self) -> None:
        """Clear a fault latched in the device (after the controller's own reset). Default: no-op
        for devices that latch nothing themselves."""

    @abstractmethod
    def add_fault_listener(self, listener: FaultListener) -> None:
        """Call listener (in the event loop) for every fault the device reports asynchronously
        and for every link failure the driver detects between calls."""

    async def __aenter__(self) -> Stimulator:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
