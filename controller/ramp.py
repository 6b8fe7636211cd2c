"""Amplitude ramps: stimulation starts from nothing and changes gradually."""

from __future__ import annotations

import math

FIRST_STEP_FRACTION = 0.02
"""The first output of a ramp from zero is at most 2% of the target (IEC 60601-2-10 201.12.1.101
asks the minimum setting to be <= 2% of the maximum)."""


def ramp_levels(
    from_ma: float, to_ma: float, duration_s: float, step_s: float
) -> list[tuple[float, float]]:
    """The amplitudes of a linear ramp and the pause after each: [(level_ma, delay_s), ...].

    A ramp up from zero starts at no more than 2% of the target whatever its length; the last
    level is exactly to_ma and has no pause after it.
    """
    if step_s <= 0:
        raise ValueError("step_s must be > 0")
    if from_ma == to_ma:
        return []
    n = max(1, math.ceil(max(duration_s, 0.0) / step_s))
    delay = max(duration_s, 0.0) / n
    levels = [from_ma + (to_ma - from_ma) * k / n for k in range(1, n + 1)]
    if from_ma == 0 and to_ma > 0:
        first = to_ma * FIRST_STEP_FRACTION
        levels = [first] + [lv for lv in levels if lv > first + 1e-12]
        # Even a zero-length ramp dwells one step at the first level.
        delay = (duration_s if duration_s > 0 else step_s) / (len(levels) - 1)
    out = [(round(lv, 6), delay) for lv in levels]
    out[-1] = (round(to_ma, 6), 0.0)
    return out
