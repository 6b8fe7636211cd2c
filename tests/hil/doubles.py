"""A controller test double without the interlock, to prove each scenario can fail.

`UnguardedController` drives the drivers directly, the way a naive script would: no static
check, no gate, no latching, no session timer, no readback judgement, and (by choice) no ramp
or a slow e-stop. It still heartbeats, so the board's own watchdog does not mask what the
controller fails to do. Only the flags a test sets make it worse; none makes it safer.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from drivers.base import FaultReport, Stimulator


@dataclass(frozen=True)
class Flaws:
    ramp: bool = True
    """False: jump straight to the target amplitude."""
    slow_estop: bool = False
    """True: the e-stop ramps down over the program's ramp instead of cutting at once."""
    pair_together: bool = True
    """True: both channels of a pair run at once (no alternation at all)."""


class UnguardedController:
    def __init__(self, program: Any, devices: Mapping[str, Stimulator], flaws: Flaws) -> None:
        self._program = program
        self._devices = dict(devices)
        self._flaws = flaws
        self.state = "idle"
        self.fault_reason: str | None = None
        self._runner: asyncio.Task[None] | None = None
        self._hb: list[asyncio.Task[None]] = []
        self._done = asyncio.Event()
        self.ignored_faults: list[FaultReport] = []

    async def open(self) -> None:
        for dev in self._devices.values():
            await dev.open()
            dev.add_fault_listener(self.ignored_faults.append)
            period = dev.capabilities.recommended_heartbeat_s
            if period:
                self._hb.append(
                    asyncio.get_running_loop().create_task(self._heartbeat(dev, period))
                )

    async def _heartbeat(self, dev: Stimulator, period_s: float) -> None:
        while True:
            with contextlib.suppress(Exception):
                await dev.heartbeat()
            await asyncio.sleep(period_s)

    async def close(self) -> None:
        tasks = [*self._hb, *([self._runner] if self._runner is not None else [])]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for dev in self._devices.values():
            with contextlib.suppress(Exception):
                await dev.close()

    def _dev(self, spec: Any) -> Stimulator:
        return self._devices[spec.device]

    async def arm(self) -> None:
        self.state = "armed"

    async def start(self) -> None:
        self.state = "stimulating"
        self._done.clear()
        for spec in self._program.channels:
            first = spec.config if not self._flaws.ramp else spec.config.with_amplitude(0.0)
            with contextlib.suppress(Exception):
                await self._dev(spec).configure_channel(spec.output, first)
                await self._dev(spec).set_output(spec.output, True)
        self._runner = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        if self._flaws.ramp:
            steps = 10
            ramp_s = max(s.ramp_up_s for s in self._program.channels)
            for i in range(1, steps + 1):
                await asyncio.sleep(ramp_s / steps)
                for spec in self._program.channels:
                    with contextlib.suppress(Exception):
                        await self._dev(spec).set_amplitude(
                            spec.output, spec.config.amplitude_ma * i / steps
                        )
        await asyncio.sleep(self._program.session.duration_s)
        await self.stop("program duration")

    async def wait(self) -> str:
        await self._done.wait()
        return self.state

    async def stop(self, reason: str = "operator") -> None:
        if self._runner is not None and self._runner is not asyncio.current_task():
            self._runner.cancel()
        for spec in self._program.channels:
            with contextlib.suppress(Exception):
                await self._dev(spec).set_amplitude(spec.output, 0.0)
            with contextlib.suppress(Exception):
                await self._dev(spec).set_output(spec.output, False)
        self.state = "done"
        self._done.set()

    async def emergency_stop(self, reason: str = "operator") -> None:
        if self._runner is not None:
            self._runner.cancel()
        if self._flaws.slow_estop:
            ramp_s = max(s.ramp_down_s for s in self._program.channels)
            for i in range(9, -1, -1):
                for spec in self._program.channels:
                    with contextlib.suppress(Exception):
                        await self._dev(spec).set_amplitude(
                            spec.output, spec.config.amplitude_ma * i / 10
                        )
                await asyncio.sleep(ramp_s / 10)
        for dev in self._devices.values():
            with contextlib.suppress(Exception):
                await dev.all_outputs_off()
        self.state = "done"
        self._done.set()

    async def reset(self, reason: str) -> None:
        self.state = "idle"


def unguarded_factory(flaws: Flaws = Flaws()) -> Any:
    @contextlib.asynccontextmanager
    async def factory(
        program: Any,
        devices: Mapping[str, Stimulator],
        profile: Any,
        log_path: Path,
        software_alternation: bool = False,
    ) -> AsyncIterator[UnguardedController]:
        ctl = UnguardedController(program, devices, flaws)
        await ctl.open()
        try:
            yield ctl
        finally:
            await ctl.close()

    return factory
