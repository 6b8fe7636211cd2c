"""Absolute ceilings, and the `Profile` type whose instances live in controller.profiles.

Limits come in layers: these ceilings are in code and no profile or file can raise them; the
built-in profiles sit under them; a user's profile file may only tighten a built-in one.
`controller.interlock` applies the ceilings on every check, whatever profile it is given, so a
profile constructed in code with a looser number still cannot let anything over a ceiling pass.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

from drivers.base import Waveform


@dataclass(frozen=True)
class Ceilings:
    """The absolute limits (IEC 60601-2-10 as quoted in SAFETY-REFERENCE.md)."""

    max_rms_ma: float = 50.0
    """RMS output current per channel into the reference load (IEC 60601-2-10 201.12.4.104)."""
    max_pulse_energy_mj: float = 300.0
    """Energy of one pulse into the reference load (IEC 601-2-10 cl. 51.104)."""
    reference_load_ohm: float = 500.0
    charge_balanced_only: bool = True
    """Monophasic (net DC) pulses are refused unless the profile sets allow_monophasic."""


CEILINGS = Ceilings()
"""The only instance the interlock uses. It takes no argument from any caller."""


class ProfileError(Exception):
    """A profile that cannot be used: unknown name, malformed file, or an attempt to loosen a
    built-in limit. Names the file, the key, the built-in value and the attempted one."""

    def __init__(
        self, source: str, key: str, problem: str,
        builtin: object | None = None, attempted: object | None = None,
    ) -> None:
        self.source = source
        self.key = key
        self.problem = problem
        self.builtin = builtin
        self.attempted = attempted
        where = f"{source}: {key}" if key else source
        super().__init__(f"{where}: {problem}")


@dataclass(frozen=True)
class Profile:
    """One layer of limits. Every number is per channel unless its name says otherwise."""

    name: str
    max_amplitude_ma: float
    """Peak current of any phase."""
    max_rms_ma: float
    min_frequency_hz: float
    max_frequency_hz: float
    """For amplipulse, the modulation frequency is the one checked here."""
    min_pulse_width_us: float
    max_pulse_width_us: float
    """One phase. Not applied to amplipulse, whose phase is set by its carrier."""
    max_session_s: float
    max_charge_per_phase_uc: float | None
    max_charge_density_uc_cm2: float | None
    shannon_k_max: float | None
    """Refuse when k = log10(Q) + log10(Q/A) reaches this (Shannon 1992); None: not applied."""
    max_voltage_v: float | None
    """The most the output may reach; the device's compliance must not exceed it."""
    waveforms: frozenset[Waveform]
    allow_monophasic: bool
    min_rest_between_sessions_s: float
    contraindications: tuple[str, ...]
    max_ramp_s: float
    min_ramp_s: float
    rms_current_density_warn_ma_cm2: float = 2.0
    """Above this the operator is warned (IEC 60601-2-10 instructions for use)."""
    min_dead_time_s: float = 0.001
    """Between one antagonist switching off and the other switching on (Digitimer D188: 1 ms)."""
    min_carrier_hz: float | None = None
    max_carrier_hz: float | None = None
    """Amplipulse carrier range; None where the profile serves no amplipulse."""
    base: str = ""
    """The built-in profile this one derives from (itself for a built-in). Session history
    counts rest periods by base, so tightening a profile does not reset the rest clock."""
    description: str = ""

    def __post_init__(self) -> None:
        if not self.base:
            object.__setattr__(self, "base", self.name)
        for f in fields(self):
            v = getattr(self, f.name)
            if isinstance(v, float) and not isinstance(v, bool) and not math.isfinite(v):
                raise ValueError(f"profile {self.name!r}: {f.name} must be finite, not {v!r}")
        for lo, hi in (
            ("min_frequency_hz", "max_frequency_hz"),
            ("min_pulse_width_us", "max_pulse_width_us"),
            ("min_ramp_s", "max_ramp_s"),
            ("min_carrier_hz", "max_carrier_hz"),
        ):
            a, b = getattr(self, lo), getattr(self, hi)
            if a is not None and b is not None and a > b:
                raise ValueError(f"profile {self.name!r}: {lo} ({a:g}) is above {hi} ({b:g})")

    def effective_max_rms_ma(self, ceilings: Ceilings = CEILINGS) -> float:
        return min(self.max_rms_ma, ceilings.max_rms_ma)


# How a user's profile may change each field and still be tighter: "max" fields may only go down,
# "min" fields only up. Set-valued fields are handled by name in controller.profiles.
TIGHTEN_DOWN: tuple[str, ...] = (
    "max_amplitude_ma", "max_rms_ma", "max_frequency_hz", "max_pulse_width_us", "max_session_s",
    "max_charge_per_phase_uc", "max_charge_density_uc_cm2", "shannon_k_max", "max_voltage_v",
    "max_ramp_s", "rms_current_density_warn_ma_cm2", "max_carrier_hz",
)
TIGHTEN_UP: tuple[str, ...] = (
    "min_frequency_hz", "min_pulse_width_us", "min_rest_between_sessions_s", "min_ramp_s",
    "min_dead_time_s", "min_carrier_hz",
)

