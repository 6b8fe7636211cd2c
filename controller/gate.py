"""The runtime interlock gate: the only holder of drivers.

Every command that can change an output goes through `Gate`. It refuses anything that could
turn current on while a fault is latched, checks every amplitude against the static interlock's
`check_setpoint`, and never lets both channels of an antagonist pair be on: it tracks each
output's *confirmed* state (from the driver's readback and from status polls), and an output
whose state is unknown (a command that failed half-way) counts as on.

Commands that switch things off are never refused.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from controller.interlock import Finding, check_setpoint
from controller.limits import Profile
from controller.program import ChannelSpec, PairSpec, Program
from drivers.base import (
    AlternationSchedule,
    Capabilities,
    DeviceStatus,
    FaultReport,
    Stimulator,
)
from drivers.errors import DeviceError, ReadbackMismatch


class InterlockRefused(Exception):
    """The gate refused a command; nothing was sent to the device."""

    def __init__(self, message: str, findings: tuple[Finding, ...] = ()) -> None:
        super().__init__(message)
        self.findings = findings


@dataclass(frozen=True)
class ChannelRef:
    name: str
    device: str
    output: int


DeviceFaultListener = Callable[[str, FaultReport], None]
CommandObserver = Callable[[str, str, float], None]
"""(what, channel or device name, value): called after each command the device confirmed:
("amplitude", channel, mA), ("output", channel, 1.0/0.0), ("all_off", device, 0.0)."""


class Gate:
    """Holds the open devices of one session, by the device names the program uses."""

    def __init__(
        self,
        devices: Mapping[str, Stimulator],
        program: Program,
        profile: Profile,
        on_device_fault: DeviceFaultListener | None = None,
    ) -> None:
        self._devices = dict(devices)
        self._observers: list[CommandObserver] = []
        self._program = program
        self._profile = profile
        self._specs: dict[str, ChannelSpec] = {c.name: c for c in program.channels}
        self._partner: dict[str, str] = {}
        for pair in program.pairs:
            self._partner[pair.agonist] = pair.antagonist
            self._partner[pair.antagonist] = pair.agonist
        # True/False: confirmed by the device. None: unknown, which counts as on.
        self._on: dict[str, bool | None] = {name: False for name in self._specs}
        self._setpoint_ma: dict[str, float] = {name: 0.0 for name in self._specs}
        self._target_ma: dict[str, float] = {
            name: spec.config.amplitude_ma for name, spec in self._specs.items()
        }
        self._configured: set[str] = set()
        self._hw_alternating: set[str] = set()
        # While the device alternates, a lowered plateau applies from its next phase: until
        # then it may still drive the highest plateau commanded since the alternation began.
        self._hw_peak_ma: dict[str, float] = {}
        # Bumped by every command that may change a channel's output, so a status read can
        # tell whether the state it reports raced with a command.
        self._generation: dict[str, int] = {name: 0 for name in self._specs}
        self._latched_reason: str | None = None
        for name, spec in self._specs.items():
            if spec.device not in self._devices:
                raise InterlockRefused(
                    f"channel {name!r} names device {spec.device!r}, which is not connected; "
                    f"connected: {', '.join(sorted(self._devices)) or 'none'}"
                )
        if on_device_fault is not None:
            for dev_name, dev in self._devices.items():
                dev.add_fault_listener(_bind(on_device_fault, dev_name))

    # ---- state -----------------------------------------------------------------------------

    @property
    def program(self) -> Program:
        return self._program

    @property
    def profile(self) -> Profile:
        return self._profile

    @property
    def device_names(self) -> tuple[str, ...]:
        return tuple(self._devices)

    @property
    def latched(self) -> bool:
        return self._latched_reason is not None

    @property
    def latched_reason(self) -> str | None:
        return self._latched_reason

    def observe(self, observer: CommandObserver) -> None:
        self._observers.append(observer)

    def _confirmed(self, what: str, name: str, value: float) -> None:
        for obs in self._observers:
            obs(what, name, value)

    def latch(self, reason: str) -> None:
        """Refuse every command that could turn current on, from now until `unlatch`."""
        if self._latched_reason is None:
            self._latched_reason = reason

    def unlatch(self) -> None:
        self._latched_reason = None

    def capabilities(self, device: str) -> Capabilities:
        return self._devices[device].capabilities

    def all_capabilities(self) -> dict[str, Capabilities]:
        return {name: dev.capabilities for name, dev in self._devices.items()}

    def spec(self, name: str) -> ChannelSpec:
        try:
            return self._specs[name]
        except KeyError:
            raise InterlockRefused(
                f"no channel named {name!r}; the program has: {', '.join(self._specs)}"
            ) from None

    def partner(self, name: str) -> str | None:
        return self._partner.get(name)

    def confirmed_on(self, name: str) -> bool | None:
        return self._on[name]

    def setpoint_ma(self, name: str) -> float:
        return self._setpoint_ma[name]

    def target_ma(self, name: str) -> float:
        """The plateau a channel ramps to: the program's amplitude until the operator adjusts
        it live (through `set_target`, which the interlock checks)."""
        return self._target_ma[name]

    def set_target(self, name: str, amplitude_ma: float) -> None:
        spec = self.spec(name)
        if amplitude_ma > 0:
            self._refuse_if_latched(f"set the target of {name!r}")
        self._check_amplitude(spec, amplitude_ma)
        self._target_ma[name] = amplitude_ma

    def channels_on(self) -> list[str]:
        """Channels that are, or may be, on."""
        return [n for n, on in self._on.items() if on is not False]

    def allowed_drive_ma(self, name: str) -> float:
        """The most the device may be driving this channel at now, by what it was told."""
        return max(self._setpoint_ma[name], self._hw_peak_ma.get(name, 0.0))

    def command_generation(self) -> dict[str, int]:
        return dict(self._generation)

    def _bump(self, *names: str) -> None:
        for n in names:
            self._generation[n] += 1

    def hw_alternating(self, name: str) -> bool:
        return name in self._hw_alternating

    def channel_for(self, device: str, output: int) -> str | None:
        for spec in self._specs.values():
            if spec.device == device and spec.output == output:
                return spec.name
        return None

    # ---- commands that can turn current on ------------------------------------------------

    def _refuse_if_latched(self, what: str) -> None:
        if self._latched_reason is not None:
            raise InterlockRefused(
                f"refused to {what}: a fault is latched ({self._latched_reason}); "
                "reset with a reason first"
            )

    def _check_amplitude(self, spec: ChannelSpec, amplitude_ma: float) -> None:
        if not math.isfinite(amplitude_ma) or amplitude_ma < 0:
            raise InterlockRefused(
                f"channel {spec.name!r}: amplitude must be a finite number >= 0 mA, "
                f"got {amplitude_ma!r}"
            )
        if amplitude_ma == 0:
            return
        findings = check_setpoint(spec, amplitude_ma, self._profile)
        if findings:
            detail = "; ".join(f.message for f in findings)
            raise InterlockRefused(
                f"channel {spec.name!r}: {amplitude_ma:g} mA refused by the interlock: {detail}",
                tuple(findings),
            )

    async def configure(self, name: str, amplitude_ma: float = 0.0) -> None:
        """Load the channel's waveform from the program with the given starting amplitude
        (zero by default: stimulation always starts from nothing and ramps)."""
        spec = self.spec(name)
        amplitude_ma = _quantise_down(self._devices[spec.device], spec.output, amplitude_ma)
        if amplitude_ma > 0:
            self._refuse_if_latched(f"configure {name!r}")
        self._check_amplitude(spec, amplitude_ma)
        if name in self._hw_alternating:
            raise InterlockRefused(f"channel {name!r} is alternating on the device; stop it first")
        dev = self._devices[spec.device]
        self._bump(name)
        await dev.configure_channel(spec.output, spec.config.with_amplitude(amplitude_ma))
        self._configured.add(name)
        self._setpoint_ma[name] = amplitude_ma
        self._confirmed("amplitude", name, amplitude_ma)

    async def set_amplitude(self, name: str, amplitude_ma: float) -> float:
        spec = self.spec(name)
        amplitude_ma = _quantise_down(self._devices[spec.device], spec.output, amplitude_ma)
        if amplitude_ma > 0:
            self._refuse_if_latched(f"raise {name!r} to {amplitude_ma:g} mA")
        self._check_amplitude(spec, amplitude_ma)
        dev = self._devices[spec.device]
        previous = self._setpoint_ma[name]
        # Record the higher of old and new first: while the command is in flight, either may
        # be what the device delivers.
        self._setpoint_ma[name] = max(previous, amplitude_ma)
        self._bump(name)
        actual = await dev.set_amplitude(spec.output, amplitude_ma)
        tolerance = _resolution(dev, spec.output) + 1e-6
        self._setpoint_ma[name] = actual
        if name in self._hw_alternating:
            self._hw_peak_ma[name] = max(self._hw_peak_ma.get(name, 0.0), previous, actual)
        self._confirmed("amplitude", name, actual)
        if abs(actual - amplitude_ma) > tolerance:
            raise ReadbackMismatch(f"{name} amplitude_ma", amplitude_ma, actual)
        return actual

    async def set_output(self, name: str, on: bool) -> None:
        spec = self.spec(name)
        dev = self._devices[spec.device]
        if on:
            self._refuse_if_latched(f"switch {name!r} on")
            if name not in self._configured:
                raise InterlockRefused(f"channel {name!r} is not configured; configure it first")
            if name in self._hw_alternating:
                raise InterlockRefused(f"channel {name!r} is alternating on the device")
            self._check_amplitude(spec, self._setpoint_ma[name])
            partner = self._partner.get(name)
            if partner is not None and self._on[partner] is not False:
                state = "on" if self._on[partner] else "in an unknown state"
                raise InterlockRefused(
                    f"refused to switch {name!r} on: its antagonist {partner!r} is {state}; "
                    "it must be confirmed off first"
                )
        # Unknown while in flight: a partner's switch-on is refused until this one settles,
        # and stays unknown if the command fails.
        self._on[name] = None
        self._bump(name)
        await dev.set_output(spec.output, on)
        self._on[name] = on
        self._confirmed("output", name, 1.0 if on else 0.0)

    # ---- alternation on the device's own clock --------------------------------------------

    def _pair_refs(self, pair: PairSpec) -> tuple[ChannelSpec, ChannelSpec]:
        a, b = self.spec(pair.agonist), self.spec(pair.antagonist)
        if a.device != b.device:
            raise InterlockRefused(
                f"pair {a.name}/{b.name} spans two devices; it can only alternate in software"
            )
        return a, b

    async def program_alternation(self, pair: PairSpec) -> AlternationSchedule:
        a, b = self._pair_refs(pair)
        self._refuse_if_latched(f"program alternation {a.name}/{b.name}")
        for spec in (a, b):
            if self._on[spec.name] is not False:
                raise InterlockRefused(f"channel {spec.name!r} must be off to program alternation")
        schedule = pair.schedule(a.output, b.output)
        await self._devices[a.device].program_alternation(schedule)
        return schedule

    async def start_alternation(self, pair: PairSpec) -> None:
        a, b = self._pair_refs(pair)
        self._refuse_if_latched(f"start alternation {a.name}/{b.name}")
        for spec in (a, b):
            self._check_amplitude(spec, self._setpoint_ma[spec.name])
        self._hw_alternating.update((a.name, b.name))
        for spec in (a, b):
            self._hw_peak_ma[spec.name] = self._setpoint_ma[spec.name]
        self._bump(a.name, b.name)
        self._on[a.name] = None
        self._on[b.name] = None
        await self._devices[a.device].start_alternation()

    async def stop_alternation(self, pair: PairSpec) -> None:
        a, b = self._pair_refs(pair)
        self._bump(a.name, b.name)
        try:
            await self._devices[a.device].stop_alternation()
        finally:
            for spec in (a, b):
                self._hw_alternating.discard(spec.name)
                self._hw_peak_ma.pop(spec.name, None)
        self._on[a.name] = False
        self._on[b.name] = False

    # ---- switching off: never refused -----------------------------------------------------

    async def all_off(self) -> list[tuple[str, BaseException]]:
        """Every output of every device off at once, no ramp. Returns the devices that failed
        (they are also marked unknown, so nothing is switched on next to them)."""
        names = list(self._devices)
        self._bump(*self._specs)
        results = await asyncio.gather(
            *(self._devices[n].all_outputs_off() for n in names), return_exceptions=True
        )
        return self._settle(names, results)

    async def emergency_stop(self) -> list[tuple[str, BaseException]]:
        names = list(self._devices)
        self._bump(*self._specs)
        results = await asyncio.gather(
            *(self._devices[n].emergency_stop() for n in names), return_exceptions=True
        )
        failed = self._settle(names, results)
        if failed:
            # An e-stop that a device did not take still gets the plain off as a second try.
            retry = [n for n, _ in failed]
            again = await asyncio.gather(
                *(self._devices[n].all_outputs_off() for n in retry), return_exceptions=True
            )
            failed = self._settle(retry, again)
        return failed

    def _settle(
        self, names: list[str], results: Iterable[object]
    ) -> list[tuple[str, BaseException]]:
        failed: list[tuple[str, BaseException]] = []
        for dev_name, res in zip(names, results):
            ok = not isinstance(res, BaseException)
            for spec in self._specs.values():
                if spec.device == dev_name:
                    self._on[spec.name] = False if ok else None
                    if ok:
                        self._hw_alternating.discard(spec.name)
                        self._hw_peak_ma.pop(spec.name, None)
            if isinstance(res, BaseException):
                failed.append((dev_name, res))
            else:
                self._confirmed("all_off", dev_name, 0.0)
        return failed

    async def clear_faults(self) -> None:
        for dev in self._devices.values():
            await dev.clear_faults()

    # ---- reads -------------------------------------------------------------------------------

    async def status(self, device: str) -> DeviceStatus:
        """Read a device's status and fold each output's state into the confirmed states."""
        before = dict(self._generation)
        st = await self._devices[device].status()
        for ch in st.channels:
            name = self.channel_for(device, ch.channel)
            if (name is not None and name not in self._hw_alternating
                    and before[name] == self._generation[name]):
                self._on[name] = ch.output_on
        return st

    async def heartbeat(self, device: str) -> None:
        await self._devices[device].heartbeat()

    async def close(self) -> list[tuple[str, BaseException]]:
        """Close every device (each switches its outputs off first)."""
        names = list(self._devices)
        results = await asyncio.gather(
            *(self._devices[n].close() for n in names), return_exceptions=True
        )
        return self._settle(names, results)


def _resolution(dev: Stimulator, output: int) -> float:
    try:
        return dev.capabilities.channel(output).amplitude_resolution_ma
    except (KeyError, DeviceError, RuntimeError):
        return 0.01


def _quantise_down(dev: Stimulator, output: int, amplitude_ma: float) -> float:
    """Round an amplitude down onto the device's grid. Ramps and probes compute levels (2% of
    a target, linear steps) that fall between a device's steps; a driver rightly refuses those,
    and rounding down never gives more than the interlock allowed."""
    try:
        step = dev.capabilities.channel(output).amplitude_resolution_ma
    except (KeyError, DeviceError, RuntimeError):
        return amplitude_ma
    if step <= 0 or amplitude_ma <= 0 or not math.isfinite(amplitude_ma):
        return amplitude_ma
    return round(math.floor(amplitude_ma / step + 1e-9) * step, 9)


def _bind(listener: DeviceFaultListener, device: str) -> Callable[[FaultReport], None]:
    def forward(report: FaultReport) -> None:
        listener(device, report)

    return forward
