"""A small in-memory Stimulator for unit tests of the gate and the session logic alone.

It records what it "delivers" to a real `OutputTrace` on the loop's clock. The acceptance tests
do not use it: they run against the simulated board over a socket.
"""

from __future__ import annotations

import asyncio

from drivers.base import (
    Capabilities,
    ChannelCapability,
    ChannelConfig,
    ChannelStatus,
    DeviceIdentity,
    DeviceStatus,
    FaultListener,
    FaultReport,
    Stimulator,
    Waveform,
)
from drivers.errors import CommandRejected, DeviceTimeout
from sim.trace import OutputTrace


class FakeStimulator(Stimulator):
    def __init__(self, channels: int = 2, max_ma: float = 100.0, trace: OutputTrace | None = None,
                 watchdog_s: float | None = None) -> None:
        self.n = channels
        self.max_ma = max_ma
        self.trace = trace
        self.watchdog_s = watchdog_s
        self.on = {c: False for c in range(1, channels + 1)}
        self.amp = {c: 0.0 for c in range(1, channels + 1)}
        self.cfg: dict[int, ChannelConfig] = {}
        self.compliance = {c: False for c in range(1, channels + 1)}
        self.stalled = False
        self.stuck: set[int] = set()
        self.calls: list[tuple[str, object]] = []
        self.listeners: list[FaultListener] = []
        self.opened = False
        self.closed = False
        self.latched = False

    def _record(self, ch: int) -> None:
        if self.trace is not None:
            wf = self.cfg[ch].waveform.value if ch in self.cfg else "none"
            self.trace.record(ch, self.on[ch], self.amp[ch] if self.on[ch] else 0.0, wf)

    async def _io(self, what: str, arg: object = None) -> None:
        self.calls.append((what, arg))
        if self.stalled:
            await asyncio.sleep(0.2)
            raise DeviceTimeout(f"fake: {what} timed out")
        await asyncio.sleep(0.001)

    async def open(self) -> Capabilities:
        self.opened = True
        return self.capabilities

    async def close(self) -> None:
        for ch in self.on:
            if ch not in self.stuck:
                self.on[ch] = False
                self._record(ch)
        self.closed = True

    @property
    def capabilities(self) -> Capabilities:
        caps = tuple(
            ChannelCapability(c, self.max_ma, 0.001, 0.5, 10000.0, 10.0, 2000.0, 100.0,
                              frozenset(Waveform), measures_current=True)
            for c in range(1, self.n + 1)
        )
        return Capabilities(DeviceIdentity("fake", "Fake", "0", "1"), caps, self.watchdog_s,
                            False, None)

    async def configure_channel(self, channel: int, config: ChannelConfig) -> None:
        await self._io("configure", (channel, config.amplitude_ma))
        self.cfg[channel] = config
        self.amp[channel] = config.amplitude_ma
        self._record(channel)

    async def set_amplitude(self, channel: int, amplitude_ma: float) -> float:
        await self._io("amp", (channel, amplitude_ma))
        if amplitude_ma > self.max_ma:
            raise CommandRejected("out of range")
        self.amp[channel] = amplitude_ma
        self._record(channel)
        return amplitude_ma

    async def set_output(self, channel: int, on: bool) -> None:
        await self._io("output", (channel, on))
        if on and self.latched:
            raise CommandRejected("fault latched")
        if channel in self.stuck and not on:
            return
        self.on[channel] = on
        self._record(channel)

    async def all_outputs_off(self) -> None:
        await self._io("all_off")
        for ch in self.on:
            if ch not in self.stuck:
                self.on[ch] = False
                self._record(ch)

    async def emergency_stop(self) -> None:
        await self.all_outputs_off()
        self.latched = True

    async def clear_faults(self) -> None:
        await self._io("clear")
        self.latched = False

    async def status(self) -> DeviceStatus:
        await self._io("status")
        return DeviceStatus(tuple(
            ChannelStatus(c, self.on[c], self.amp[c],
                          measured_amplitude_ma=(self.amp[c] if self.on[c] and not self.compliance[c]
                                                 else 0.0),
                          compliance=self.compliance[c] and self.on[c])
            for c in self.on
        ), fault_latched=self.latched)

    async def heartbeat(self) -> None:
        await self._io("heartbeat")

    def add_fault_listener(self, listener: FaultListener) -> None:
        self.listeners.append(listener)

    def report(self, report: FaultReport) -> None:
        for listener in self.listeners:
            listener(report)
