"""What the SCPI drivers share: opening the link, identity, readback checks, fault handling."""

from __future__ import annotations

import math
from abc import abstractmethod
from types import TracebackType

from drivers.base import (
    Capabilities,
    DeviceIdentity,
    FaultKind,
    FaultListener,
    FaultReport,
    Stimulator,
)
from drivers.errors import (
    CapabilityError,
    CommandRejected,
    ConnectionLost,
    DeviceError,
    DeviceTimeout,
    ReadbackMismatch,
)
from drivers.scpi.models import Idn, ModelSpec, parse_idn, spec_for
from drivers.scpi.session import (
    DEFAULT_BACKEND,
    DEFAULT_TIMEOUT_S,
    Resource,
    ScpiSession,
    open_resource,
)


class _Guard:
    """The context of one driver call (a plain class: cheaper per call than a generator-based
    contextmanager, and this wraps every status and set)."""

    __slots__ = ("_drv", "_changes_output", "_channel")

    def __init__(self, drv: ScpiStimulator, changes_output: bool, channel: int | None) -> None:
        self._drv = drv
        self._changes_output = changes_output
        self._channel = channel

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if isinstance(exc, DeviceError) and not isinstance(exc, CapabilityError):
            self._drv._on_failure(exc, self._changes_output, self._channel)


def fault_kind_for(exc: DeviceError) -> FaultKind:
    if isinstance(exc, ReadbackMismatch):
        return FaultKind.READBACK
    if isinstance(exc, CommandRejected):
        return FaultKind.DEVICE_ERROR
    if isinstance(exc, (DeviceTimeout, ConnectionLost)):
        return FaultKind.COMMS
    return FaultKind.INTERNAL


class ScpiStimulator(Stimulator):
    """Base of the SCPI drivers. `resource` is a VISA resource string (opened with pyvisa at
    `open()`) or an already-open resource-like object (a transcript double in unit tests)."""

    FAMILY = ""

    def __init__(self, resource: str | Resource, *, timeout_s: float = DEFAULT_TIMEOUT_S,
                 backend: str = DEFAULT_BACKEND) -> None:
        if timeout_s <= 0 or not math.isfinite(timeout_s):
            raise ValueError(f"timeout_s must be a positive number of seconds, got {timeout_s}")
        self._resource_arg = resource
        self._timeout_s = timeout_s
        self._backend = backend
        self._session: ScpiSession | None = None
        self._spec: ModelSpec | None = None
        self._caps: Capabilities | None = None
        self._listeners: list[FaultListener] = []
        self._faults: list[FaultReport] = []

    # ---- plumbing ---------------------------------------------------------------------------

    @property
    def resource_name(self) -> str:
        r = self._resource_arg
        return r if isinstance(r, str) else type(r).__name__

    @property
    def is_open(self) -> bool:
        return self._session is not None and not self._session.closed

    @property
    def session(self) -> ScpiSession:
        if self._session is None or self._session.closed:
            raise ConnectionLost(f"{self.resource_name} is not open; call open() first")
        return self._session

    @property
    def spec(self) -> ModelSpec:
        if self._spec is None:
            raise ConnectionLost(f"{self.resource_name} is not open; call open() first")
        return self._spec

    @property
    def capabilities(self) -> Capabilities:
        if self._caps is None:
            raise ConnectionLost(f"{self.resource_name} is not open; call open() first")
        return self._caps

    def _connect(self) -> ScpiSession:
        if isinstance(self._resource_arg, str):
            res = open_resource(self._resource_arg, backend=self._backend,
                                timeout_s=self._timeout_s)
        else:
            res = self._resource_arg
            try:
                res.timeout = int(self._timeout_s * 1000)
            except Exception:  # noqa: BLE001 - a double may not model timeouts
                pass
        return ScpiSession(res, name=self.resource_name)

    def attach(self, session: ScpiSession, idn: Idn) -> None:
        """Adopt a session already identified (the factory's front identifies first)."""
        self._session = session
        self._spec = self._checked_spec(idn)
        self._idn = idn

    def _checked_spec(self, idn: Idn) -> ModelSpec:
        spec = spec_for(idn)
        if spec.family != self.FAMILY:
            raise CapabilityError(
                f"{self.resource_name} is a {idn.manufacturer} {idn.model}, which "
                f"{type(self).__name__} does not drive; use drivers.factory.open_stimulator, "
                "which picks the driver from *IDN?")
        return spec

    async def open(self) -> Capabilities:
        if self._session is None or self._session.closed:
            self._session = self._connect()
            try:
                idn = parse_idn(self._session.query("*IDN?"))
                self._spec = self._checked_spec(idn)
                self._idn = idn
            except BaseException:
                self._session.close()
                raise
        try:
            self._setup()
        except DeviceError as exc:
            self._report(exc)
            self._best_effort_off()
            raise
        ident = DeviceIdentity(self._idn.manufacturer, self._idn.model, self._idn.serial,
                               self._idn.firmware, protocol_version="SCPI")
        self._caps = self._build_capabilities(ident)
        return self._caps

    async def close(self) -> None:
        if self._session is None or self._session.closed:
            return
        try:
            if self._spec is not None and not self._session.desynchronised:
                # Confirmed off (readback) while the link works; the close must not return
                # before the instrument has actually processed the off commands.
                try:
                    await self.all_outputs_off()
                except DeviceError:
                    pass  # all_outputs_off already reported it and sent the best-effort off
            else:
                self._best_effort_off()
        finally:
            self._session.close()

    def add_fault_listener(self, listener: FaultListener) -> None:
        self._listeners.append(listener)

    def _report(self, exc: DeviceError, channel: int | None = None) -> None:
        report = FaultReport(fault_kind_for(exc), channel, str(exc))
        self._faults.append(report)
        for listener in list(self._listeners):
            try:
                listener(report)
            except Exception:  # noqa: BLE001 - a broken listener must not mask the fault
                pass

    def _guard(self, *, changes_output: bool, channel: int | None = None) -> _Guard:
        """Report any device failure to the listeners; after a failure in a call that can
        change an output, switch everything off before the error propagates."""
        return _Guard(self, changes_output, channel)

    def _on_failure(self, exc: DeviceError, changes_output: bool, channel: int | None) -> None:
        self._report(exc, channel)
        if changes_output:
            self._best_effort_off()

    def _check(self, what: str, expected: float, actual: float) -> None:
        spec = self.spec
        tol = max(abs(expected) * spec.rel_resolution, self._abs_tolerance(what))
        if not math.isfinite(actual) or abs(actual - expected) > tol:
            raise ReadbackMismatch(what, expected, actual)

    def _abs_tolerance(self, what: str) -> float:
        return 0.0

    def _check_channel(self, channel: int) -> None:
        n = self.spec.channels
        if not isinstance(channel, int) or not 1 <= channel <= n:
            raise CapabilityError(
                f"{self.spec.model} has channel(s) 1..{n}; channel {channel!r} does not exist")

    async def heartbeat(self) -> None:
        """Instruments of this kind have no watchdog: prove the link with one error-queue read
        (cheap, and it surfaces any error the instrument logged since the last call)."""
        with self._guard(changes_output=False):
            self.session.check_errors("heartbeat")

    async def emergency_stop(self) -> None:
        await self.all_outputs_off()

    async def clear_faults(self) -> None:
        with self._guard(changes_output=False):
            self.session.write("*CLS")
            self.session.check_errors("*CLS")
        self._faults.clear()

    # ---- per family -------------------------------------------------------------------------

    @abstractmethod
    def _setup(self) -> None:
        """Bring a freshly identified instrument to a known, all-off state."""

    @abstractmethod
    def _build_capabilities(self, ident: DeviceIdentity) -> Capabilities: ...

    @abstractmethod
    def _off_commands(self) -> list[str]:
        """The writes that switch every output off, in order, with no reads."""

    def _best_effort_off(self) -> None:
        """Send the all-off writes whatever state the link is in; if it still answers, wait for
        *OPC? so the caller only goes on once the instrument has processed them."""
        s = self._session
        if s is None:
            return
        for command in self._off_commands():
            s.write_unchecked(command)
        if not s.desynchronised and not s.closed:
            try:
                s.query("*OPC?")
            except DeviceError:
                pass  # the fault being handled already says the link is in trouble
