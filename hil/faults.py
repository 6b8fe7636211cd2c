"""Fault injectors: how a scenario makes something go wrong on purpose.

On a simulated rig they call the simulators' own fault injection (sim/faults.py spellings), cut
the loopback link, or press a loop:// e-stop. On a bench nothing can be injected by software, so
each fault becomes a timed prompt to the operator ("disconnect the electrode lead of channel
biceps now"), and the time of the action is taken from the monitor: the first change it sees
after the prompt. Without an interactive operator a bench fault is skipped, saying why.

Every injector returns the loop time at which the fault took effect (or was asked for), the
reference point of the latency a scenario then measures.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from typing import Protocol, TextIO

from hil.rig import Rig
from sim.faults import FaultSpec


class FaultUnavailable(Exception):
    """This rig cannot produce this fault (the message says why); the scenario is skipped."""


class FaultInjector(Protocol):
    async def lead_off(self, channel: str) -> float: ...

    async def reconnect(self, channel: str) -> float:
        """Undo lead_off (the electrode is back) without touching the controller."""
        ...

    async def stuck(self, channel: str) -> float: ...

    async def overcurrent(self, channel: str) -> float: ...

    async def cut_link(self, device: str) -> float: ...

    async def press_estop(self) -> float: ...

    async def release_estop(self) -> float: ...


class SimDeviceFaults(Protocol):
    """What the harness gives the injector for one simulated device."""

    def inject(self, spec: FaultSpec) -> None: ...

    def clear_injected(self) -> None: ...

    def cut_link(self) -> float: ...


class SimFaults:
    """Injects into the simulators of a simulated rig."""

    def __init__(
        self,
        rig: Rig,
        devices: dict[str, SimDeviceFaults],
        press: Callable[[bool], None] | None,
    ) -> None:
        self._rig = rig
        self._devices = devices
        self._press = press

    def _now(self) -> float:
        return asyncio.get_running_loop().time()

    def _device(self, name: str) -> SimDeviceFaults:
        dev = self._devices.get(name)
        if dev is None:
            raise FaultUnavailable(f"device {name!r} is not simulated: nothing to inject into")
        return dev

    def _inject(self, kind: str, channel: str) -> float:
        wiring = self._rig.channel(channel)
        self._device(wiring.device).inject(FaultSpec(kind, channel=wiring.output))
        return self._now()

    async def lead_off(self, channel: str) -> float:
        return self._inject("lead-off", channel)

    async def reconnect(self, channel: str) -> float:
        self._device(self._rig.channel(channel).device).clear_injected()
        return self._now()

    async def stuck(self, channel: str) -> float:
        return self._inject("stuck", channel)

    async def overcurrent(self, channel: str) -> float:
        return self._inject("overcurrent", channel)

    async def cut_link(self, device: str) -> float:
        return self._device(device).cut_link()

    async def press_estop(self) -> float:
        if self._press is None:
            raise FaultUnavailable("the rig has no [estop] input to press")
        self._press(True)
        return self._now()

    async def release_estop(self) -> float:
        if self._press is None:
            raise FaultUnavailable("the rig has no [estop] input to release")
        self._press(False)
        return self._now()


class ManualFaults:
    """Prompts the operator of a bench. `interactive` is False under CI or with no terminal;
    then every fault is unavailable (the scenario skips) rather than waiting for nobody."""

    def __init__(
        self,
        rig: Rig,
        interactive: bool,
        out: TextIO | None = None,
        countdown_s: float = 3.0,
    ) -> None:
        self._rig = rig
        self._interactive = interactive
        self._out = out or sys.__stderr__ or sys.stderr
        self.countdown_s = countdown_s

    async def _prompt(self, action: str) -> float:
        if not self._interactive:
            raise FaultUnavailable(
                f"needs an operator to {action}; run interactively with --hil-manual"
            )
        loop = asyncio.get_running_loop()
        self._out.write(f"\n[stimctl hil] Get ready to {action}.\n")
        remaining = int(self.countdown_s)
        while remaining > 0:
            self._out.write(f"  {remaining}...\n")
            self._out.flush()
            await asyncio.sleep(1.0)
            remaining -= 1
        self._out.write(f"[stimctl hil] NOW: {action}.\n")
        self._out.flush()
        return loop.time()

    async def lead_off(self, channel: str) -> float:
        return await self._prompt(f"disconnect the electrode lead of channel {channel!r}")

    async def reconnect(self, channel: str) -> float:
        return await self._prompt(f"reconnect the electrode lead of channel {channel!r}")

    async def stuck(self, channel: str) -> float:
        raise FaultUnavailable(
            "a stuck output cannot be made on a real device without modifying it; "
            "this scenario runs on the simulator"
        )

    async def overcurrent(self, channel: str) -> float:
        raise FaultUnavailable("an overcurrent cannot be provoked safely on a bench")

    async def cut_link(self, device: str) -> float:
        wiring = self._rig.device(device)
        return await self._prompt(f"pull the cable of device {device!r} ({wiring.resource})")

    async def press_estop(self) -> float:
        if self._rig.estop is None:
            raise FaultUnavailable("the rig has no [estop] input")
        return await self._prompt("press the emergency-stop button")

    async def release_estop(self) -> float:
        return await self._prompt("release the emergency-stop button")
