"""`ScpiInstrument`: a `Stimulator` for any supported SCPI instrument, chosen by `*IDN?`.

The factory cannot know from a VISA address whether a 6221 or a 33500B answers there, so this
front opens the resource, asks `*IDN?`, builds the matching driver on the same session and
delegates every call to it. Before open() only the constructor arguments exist.
"""

from __future__ import annotations

from drivers.base import (
    AlternationSchedule,
    Capabilities,
    ChannelConfig,
    DeviceStatus,
    FaultListener,
    Stimulator,
)
from drivers.errors import ConnectionLost
from drivers.scpi.common import ScpiStimulator
from drivers.scpi.k6221 import DEFAULT_COMPLIANCE_V, K6221
from drivers.scpi.k33500b import (
    DEFAULT_STAGE_COMPLIANCE_V,
    DEFAULT_TRANSCONDUCTANCE_MA_PER_V,
    K33500B,
)
from drivers.scpi.models import parse_idn, spec_for
from drivers.scpi.session import (
    DEFAULT_BACKEND,
    DEFAULT_TIMEOUT_S,
    Resource,
    ScpiSession,
    open_resource,
)


class ScpiInstrument(Stimulator):
    """Identifies the instrument at open() and drives it with K6221 or K33500B.

    transconductance_ma_per_v and stage_compliance_v describe the rig's V->I stage and apply
    to a generator; compliance_v is the 6221's compliance voltage."""

    def __init__(self, resource: str | Resource, *,
                 transconductance_ma_per_v: float = DEFAULT_TRANSCONDUCTANCE_MA_PER_V,
                 stage_compliance_v: float = DEFAULT_STAGE_COMPLIANCE_V,
                 compliance_v: float = DEFAULT_COMPLIANCE_V,
                 timeout_s: float = DEFAULT_TIMEOUT_S,
                 backend: str = DEFAULT_BACKEND) -> None:
        self._resource = resource
        self._gm = transconductance_ma_per_v
        self._stage_v = stage_compliance_v
        self._compliance_v = compliance_v
        self._timeout_s = timeout_s
        self._backend = backend
        self._driver: ScpiStimulator | None = None
        self._listeners: list[FaultListener] = []

    @property
    def driver(self) -> ScpiStimulator:
        if self._driver is None:
            raise ConnectionLost(f"{self._resource!r} is not open; call open() first")
        return self._driver

    async def open(self) -> Capabilities:
        if self._driver is not None and self._driver.is_open:
            return await self._driver.open()
        # First open, or after close(): identify again, the instrument may have changed.
        self._driver = None
        if isinstance(self._resource, str):
            res = open_resource(self._resource, backend=self._backend, timeout_s=self._timeout_s)
            name = self._resource
        else:
            res = self._resource
            name = type(res).__name__
        session = ScpiSession(res, name=name)
        try:
            idn = parse_idn(session.query("*IDN?"))
            family = spec_for(idn).family
            driver: ScpiStimulator
            if family == "k6221":
                driver = K6221(res, compliance_v=self._compliance_v, timeout_s=self._timeout_s)
            else:
                driver = K33500B(res, transconductance_ma_per_v=self._gm,
                                 stage_compliance_v=self._stage_v, timeout_s=self._timeout_s)
            driver.attach(session, idn)
        except BaseException:
            session.close()
            raise
        for listener in self._listeners:
            driver.add_fault_listener(listener)
        self._driver = driver
        return await driver.open()

    async def close(self) -> None:
        if self._driver is not None:
            await self._driver.close()

    @property
    def capabilities(self) -> Capabilities:
        return self.driver.capabilities

    async def configure_channel(self, channel: int, config: ChannelConfig) -> None:
        await self.driver.configure_channel(channel, config)

    async def set_amplitude(self, channel: int, amplitude_ma: float) -> float:
        return await self.driver.set_amplitude(channel, amplitude_ma)

    async def set_output(self, channel: int, on: bool) -> None:
        await self.driver.set_output(channel, on)

    async def all_outputs_off(self) -> None:
        await self.driver.all_outputs_off()

    async def emergency_stop(self) -> None:
        await self.driver.emergency_stop()

    async def status(self) -> DeviceStatus:
        return await self.driver.status()

    async def heartbeat(self) -> None:
        await self.driver.heartbeat()

    async def program_alternation(self, schedule: AlternationSchedule) -> None:
        await self.driver.program_alternation(schedule)

    async def start_alternation(self) -> None:
        await self.driver.start_alternation()

    async def stop_alternation(self) -> None:
        await self.driver.stop_alternation()

    async def clear_faults(self) -> None:
        await self.driver.clear_faults()

    def add_fault_listener(self, listener: FaultListener) -> None:
        self._listeners.append(listener)
        if self._driver is not None:
            self._driver.add_fault_listener(listener)
