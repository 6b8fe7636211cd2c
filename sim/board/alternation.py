"""The board's antagonist alternation schedule, as a list of timed output steps per cycle.

One cycle: channel A on for on_ms (ramp up, hold, ramp down, all inside on_ms), dead_time_ms
with both off, channel B likewise, then rest_ms with both off. Ramps are staircases whose steps
last at most the board's ramp step period; each step is one change of the drive amplitude.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from firmware_protocol.messages import ProgramAlternation


@dataclass(frozen=True)
class Step:
    offset_ms: float
    """From the start of the cycle."""
    which: int
    """0: channel A, 1: channel B."""
    on: bool
    fraction: float
    """Of the channel's plateau (set) amplitude."""
    begins: bool = False
    """The first step of an on-phase: the plateau amplitude is latched here."""


def cycle_ms(program: ProgramAlternation) -> int:
    return 2 * program.on_ms + program.dead_time_ms + program.rest_ms


def cycle_steps(program: ProgramAlternation, step_ms: int) -> tuple[Step, ...]:
    steps: list[Step] = []
    for which, start in ((0, 0), (1, program.on_ms + program.dead_time_ms)):
        steps.extend(_segment(which, start, program, step_ms))
    return tuple(steps)


def _segment(which: int, start: int, p: ProgramAlternation, step_ms: int) -> list[Step]:
    out: list[Step] = []
    n_up = math.ceil(p.ramp_up_ms / step_ms) if p.ramp_up_ms > 0 else 0
    if n_up == 0:
        out.append(Step(float(start), which, True, 1.0, begins=True))
    for k in range(n_up):
        out.append(Step(start + k * p.ramp_up_ms / n_up, which, True, (k + 1) / n_up, k == 0))
    if p.ramp_down_ms > 0:
        n_down = math.ceil(p.ramp_down_ms / step_ms)
        ramp_start = start + p.on_ms - p.ramp_down_ms
        for k in range(1, n_down):
            out.append(Step(ramp_start + k * p.ramp_down_ms / n_down, which, True, 1 - k / n_down))
    out.append(Step(float(start + p.on_ms), which, False, 0.0))
    return out
