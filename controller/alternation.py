"""Antagonist alternation in software, break-before-make, for devices that cannot run it on
their own clock.

One cycle: the agonist ramps up, holds and ramps down inside on_s; it is switched off and that
off is confirmed twice (the driver's readback, then a status read); only then does the dead time
start; then the antagonist does the same; then both rest for off_s. The gate independently
refuses to switch one channel of a pair on while the other is not confirmed off, so a bug here
cannot overlap them either.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

from controller.gate import Gate
from controller.program import PairSpec
from controller.ramp import ramp_levels
from drivers.errors import ReadbackMismatch

PhaseListener = Callable[[str, str], None]


class SoftwareAlternation:
    """Runs one pair's cycle as a task until stopped (ramped down) or cancelled (after a
    fault, when the outputs are already off)."""

    def __init__(
        self,
        gate: Gate,
        pair: PairSpec,
        step_s: float = 0.05,
        on_phase: PhaseListener | None = None,
    ) -> None:
        self._gate = gate
        self._pair = pair
        self._step_s = step_s
        self._on_phase = on_phase or (lambda _n, _p: None)
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.cycles = 0

    @property
    def pair(self) -> PairSpec:
        return self._pair

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._task = loop.create_task(self._run(), name=f"alternation:{self._pair.agonist}")

    async def stop(self) -> None:
        """Finish the current on-phase early with a ramp down, switch off, and return. Errors
        of the running cycle (a refused or failed command) are raised here."""
        self._stopping.set()
        if self._task is not None:
            await self._task

    def cancel(self) -> None:
        if self._task is not None:
            self._task.cancel()

    async def _pause(self, seconds: float) -> bool:
        """Sleep, waking early if a stop is requested. True if stopping."""
        if seconds > 0 and not self._stopping.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(seconds):
                    await self._stopping.wait()
        return self._stopping.is_set()

    async def _run(self) -> None:
        p = self._pair
        while not self._stopping.is_set():
            await self._phase(p.agonist)
            if await self._pause(p.dead_time_s):
                break
            await self._phase(p.antagonist)
            self.cycles += 1
            self._on_phase(p.agonist, "rest")
            self._on_phase(p.antagonist, "rest")
            if await self._pause(p.off_s):
                break
        for name in (p.agonist, p.antagonist):
            self._on_phase(name, "off")

    async def _phase(self, name: str) -> None:
        if self._stopping.is_set():
            return
        p = self._pair
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        target = self._gate.target_ma(name)
        other = p.antagonist if name == p.agonist else p.agonist
        self._on_phase(other, "dead time" if name == p.antagonist else "waiting")
        self._on_phase(name, "ramping up")
        await self._gate.set_output(name, True)
        for level, delay in ramp_levels(0.0, target, p.ramp_up_s, self._step_s):
            await self._gate.set_amplitude(name, level)
            if await self._pause(delay):
                break
        if not self._stopping.is_set():
            self._on_phase(name, "on")
            hold_until = t0 + p.on_s - p.ramp_down_s
            await self._pause(hold_until - loop.time())
        self._on_phase(name, "ramping down")
        current = self._gate.setpoint_ma(name)
        for level, delay in ramp_levels(current, 0.0, p.ramp_down_s, self._step_s):
            await self._gate.set_amplitude(name, level)
            if delay > 0:
                await asyncio.sleep(delay)
        await self._gate.set_output(name, False)
        # Break before make: the driver confirmed the off by readback; a status read confirms
        # it once more before the dead time may begin.
        spec = self._gate.spec(name)
        status = await self._gate.status(spec.device)
        if status.channel(spec.output).output_on:
            raise ReadbackMismatch(f"{name} output", False, True)
        self._on_phase(name, "off")
