"""The built-in limits profiles, and user profile files that may only tighten them.

Every number's source is in docs/limits.md. The seed documents are quoted by their file number
in /work/shared/seeds (000 needle electrostimulation, 004 myostimulation and microcurrents).
"""

from __future__ import annotations

import difflib
import math
import tomllib
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

from controller.limits import TIGHTEN_DOWN, TIGHTEN_UP, Profile, ProfileError
from controller.program import Program
from drivers.base import Waveform

DAY_S = 86_400.0

# Seed 004, "two groups" list: contraindications to myostimulation and (almost identically,
# the seed says) to microcurrents.
_GENERAL: tuple[str, ...] = (
    "implanted pacemaker",
    "epilepsy",
    "arrhythmias",
    "individual intolerance to current",
    "malignant tumors",
    "severe kidney or liver dysfunction",
    "menstruation",
    "pregnancy",
    "lactation",
    "blood diseases",
    "chronic alcoholism or drug addiction",
    "mental illness",
    "active tuberculosis",
    "fever",
)
# Seed 004, "specific contraindications to facial myostimulation".
_FACE: tuple[str, ...] = (
    "facial skin diseases",
    "benign formations, including pigmented nevi",
    "trigeminal neuralgia",
    "acute sinusitis",
    "thyroid diseases",
    "implanted gold threads",
    "metal implants or braces",
)
# Seed 004, "contraindications for body myostimulation".
_BODY: tuple[str, ...] = (
    "thrombophlebitis",
    "intrauterine device",
    "purulent skin lesions",
    "acute diseases",
    "tendency to bleeding",
    "untreated serious joint dislocations",
    "metal structures in the body",
)
# Seed 000, contraindications to interstitial / intramuscular electrostimulation.
_NEEDLE: tuple[str, ...] = (
    "malignant neoplasms",
    "hemophilia or other clotting disorders",
    "pregnancy",
    "breastfeeding",
    "acute infectious or allergic disease",
    "implanted pacemaker",
    "decompensated hypertension or hypertensive crisis",
    "severe heart or respiratory failure",
    "arrhythmias",
)

_BALANCED_PULSES = frozenset(
    {Waveform.BIPHASIC_SYMMETRIC, Waveform.BIPHASIC_ASYMMETRIC, Waveform.NEURON_LIKE}
)

FACE = Profile(
    name="face",
    description="Facial myostimulation (myolifting) with pad electrodes.",
    max_amplitude_ma=15.0,
    max_rms_ma=15.0,
    min_frequency_hz=30.0,
    max_frequency_hz=150.0,
    min_pulse_width_us=100.0,
    max_pulse_width_us=300.0,
    max_session_s=20 * 60.0,
    max_charge_per_phase_uc=None,
    max_charge_density_uc_cm2=None,
    shannon_k_max=None,
    max_voltage_v=None,
    waveforms=_BALANCED_PULSES,
    allow_monophasic=False,
    min_rest_between_sessions_s=2 * DAY_S,
    contraindications=_GENERAL + _FACE,
    max_ramp_s=3.5,
    min_ramp_s=0.5,
)

BODY = Profile(
    name="body",
    description="Body myostimulation with pad electrodes, antagonist pairs alternating.",
    max_amplitude_ma=100.0,
    max_rms_ma=50.0,
    min_frequency_hz=1.0,
    max_frequency_hz=150.0,
    min_pulse_width_us=50.0,
    max_pulse_width_us=450.0,
    max_session_s=25 * 60.0,
    max_charge_per_phase_uc=None,
    max_charge_density_uc_cm2=None,
    shannon_k_max=None,
    max_voltage_v=None,
    waveforms=_BALANCED_PULSES,
    allow_monophasic=False,
    min_rest_between_sessions_s=1 * DAY_S,
    contraindications=_GENERAL + _BODY,
    max_ramp_s=3.5,
    min_ramp_s=0.5,
)

NEEDLE = Profile(
    name="needle",
    description="Interstitial needle electrostimulation (VTES): charge limited by electrode area.",
    max_amplitude_ma=15.0,
    max_rms_ma=15.0,
    min_frequency_hz=1.0,
    max_frequency_hz=150.0,
    min_pulse_width_us=50.0,
    max_pulse_width_us=450.0,
    max_session_s=30 * 60.0,
    max_charge_per_phase_uc=None,
    max_charge_density_uc_cm2=None,
    shannon_k_max=1.85,
    max_voltage_v=None,
    waveforms=_BALANCED_PULSES,
    allow_monophasic=False,
    min_rest_between_sessions_s=1 * DAY_S,
    contraindications=_NEEDLE,
    max_ramp_s=3.5,
    min_ramp_s=0.5,
)

MICROCURRENT = Profile(
    name="microcurrent",
    description="Microcurrent (microlifting): no visible contraction, uA currents at low voltage.",
    max_amplitude_ma=0.6,
    max_rms_ma=0.6,
    min_frequency_hz=0.5,
    max_frequency_hz=1000.0,
    min_pulse_width_us=100.0,
    max_pulse_width_us=1_000_000.0,
    max_session_s=20 * 60.0,
    max_charge_per_phase_uc=None,
    max_charge_density_uc_cm2=None,
    shannon_k_max=None,
    max_voltage_v=14.0,
    waveforms=frozenset({Waveform.MICROCURRENT}),
    allow_monophasic=False,
    min_rest_between_sessions_s=2 * DAY_S,
    contraindications=_GENERAL + _FACE,
    max_ramp_s=3.5,
    min_ramp_s=0.5,
)

AMPLIPULSE = Profile(
    name="amplipulse",
    description="Amplipulse: a 2-10 kHz sinusoidal carrier amplitude-modulated at 10-150 Hz.",
    max_amplitude_ma=50.0,
    max_rms_ma=50.0,
    min_frequency_hz=10.0,
    max_frequency_hz=150.0,
    min_pulse_width_us=50.0,
    max_pulse_width_us=250.0,
    max_session_s=25 * 60.0,
    max_charge_per_phase_uc=None,
    max_charge_density_uc_cm2=None,
    shannon_k_max=None,
    max_voltage_v=None,
    waveforms=frozenset({Waveform.AMPLIPULSE}),
    allow_monophasic=False,
    min_rest_between_sessions_s=1 * DAY_S,
    contraindications=_GENERAL + _BODY,
    max_ramp_s=3.5,
    min_ramp_s=0.5,
    min_carrier_hz=2000.0,
    max_carrier_hz=10_000.0,
)

BUILTIN_PROFILES: dict[str, Profile] = {
    p.name: p for p in (FACE, BODY, NEEDLE, MICROCURRENT, AMPLIPULSE)
}

_SET_FIELDS = ("waveforms", "contraindications", "allow_monophasic")
_FILE_ONLY = ("base", "name", "description")


def load_profile(name_or_path: str | Path) -> Profile:
    """A built-in profile by name, or a user profile file (TOML) that tightens one.

    The file names its base (`base = "face"`) and sets only the limits it tightens. Any attempt
    to loosen one is a ProfileError naming the key, the built-in value and the attempted value.
    """
    key = str(name_or_path)
    if key in BUILTIN_PROFILES:
        return BUILTIN_PROFILES[key]
    path = Path(name_or_path)
    if not path.exists():
        if path.suffix or "/" in key or "\\" in key:
            raise ProfileError(key, "", "no such profile file")
        close = difflib.get_close_matches(key, list(BUILTIN_PROFILES), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ProfileError(
            key, "",
            f"not a built-in profile{hint} (built-in: {', '.join(BUILTIN_PROFILES)}; "
            "or give the path of a profile file)",
        )
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise ProfileError(key, "", f"cannot be read: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ProfileError(key, "", f"is not valid TOML: {exc}") from None
    return tighten(data, source=key, default_name=path.stem)


def tighten(data: dict[str, Any], source: str, default_name: str = "custom") -> Profile:
    """Apply a user's overrides (a parsed profile file) to its base built-in profile."""
    base_name = data.get("base")
    if not isinstance(base_name, str) or base_name not in BUILTIN_PROFILES:
        raise ProfileError(
            source, "base",
            f"must name a built-in profile ({', '.join(BUILTIN_PROFILES)}), not {base_name!r}",
        )
    base = BUILTIN_PROFILES[base_name]
    known = [f.name for f in fields(Profile) if f.name != "base"] + ["base"]
    changes: dict[str, Any] = {}
    for key, value in data.items():
        if key == "base":
            continue
        if key not in known:
            close = difflib.get_close_matches(key, known, n=1)
            unit = [k for k in known if k.startswith(f"{key}_")]
            hint = f"; did you mean {(unit or close)[0]}?" if (unit or close) else ""
            raise ProfileError(source, key, f"unknown key{hint} (see docs/limits.md)")
        if key in ("name", "description"):
            if not isinstance(value, str) or not value.strip():
                raise ProfileError(source, key, "must be a non-empty string")
            if key == "name" and value in BUILTIN_PROFILES:
                raise ProfileError(
                    source, key,
                    f"{value!r} is a built-in profile's name; give the tightened one its own name",
                )
            changes[key] = value
        elif key == "waveforms":
            changes[key] = _tighter_waveforms(base, value, source)
        elif key == "contraindications":
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise ProfileError(source, key, "must be a list of strings (added to the base's)")
            extra = tuple(v for v in value if v not in base.contraindications)
            changes[key] = base.contraindications + extra
        elif key == "allow_monophasic":
            if not isinstance(value, bool):
                raise ProfileError(source, key, "must be true or false")
            if value and not base.allow_monophasic:
                raise ProfileError(
                    source, key,
                    f"would loosen the {base.name!r} profile: built-in false, attempted true",
                    builtin=False, attempted=True,
                )
            changes[key] = value
        elif key in TIGHTEN_DOWN or key in TIGHTEN_UP:
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ProfileError(source, key, f"must be a finite number, not {value!r}")
            v = float(value)
            if v < 0:
                raise ProfileError(source, key, f"must not be negative, not {v:g}")
            b = getattr(base, key)
            looser = (
                (key in TIGHTEN_DOWN and b is not None and v > b)
                or (key in TIGHTEN_UP and b is not None and v < b)
            )
            if key in ("min_carrier_hz", "max_carrier_hz") and b is None:
                raise ProfileError(
                    source, key,
                    f"the {base.name!r} profile serves no amplipulse carrier; base it on 'amplipulse'",
                    builtin=None, attempted=v,
                )
            if looser:
                direction = "raise" if key in TIGHTEN_DOWN else "lower"
                raise ProfileError(
                    source, key,
                    f"would loosen the {base.name!r} profile: built-in {b:g}, attempted {v:g} "
                    f"(a profile file may only tighten; it cannot {direction} this limit)",
                    builtin=b, attempted=v,
                )
            changes[key] = v
        else:
            raise ProfileError(source, key, "cannot be set in a profile file")
    changes.setdefault("name", default_name)
    try:
        return replace(base, base=base.name, **changes)
    except ValueError as exc:
        raise ProfileError(source, "", str(exc)) from None


def _tighter_waveforms(base: Profile, value: Any, source: str) -> frozenset[Waveform]:
    if not isinstance(value, list) or not value:
        raise ProfileError(source, "waveforms", "must be a non-empty list of waveform names")
    out: set[Waveform] = set()
    for v in value:
        try:
            w = Waveform(v)
        except ValueError:
            raise ProfileError(
                source, "waveforms", f"unknown waveform {v!r} ({', '.join(x.value for x in Waveform)})"
            ) from None
        if w not in base.waveforms:
            raise ProfileError(
                source, "waveforms",
                f"would loosen the {base.name!r} profile: {w.value!r} is not among its waveforms "
                f"({', '.join(sorted(x.value for x in base.waveforms))})",
                builtin=sorted(x.value for x in base.waveforms), attempted=w.value,
            )
        out.add(w)
    return frozenset(out)


def profile_for(program: Program, override: str | Path | None = None) -> Profile:
    """The profile a program runs under: `override` (a --profile option) if given, else the
    program's session.profile. A relative profile path in a program file is looked up next to
    the program first, then from the working directory."""
    if override is not None:
        return load_profile(override)
    name = program.session.profile
    if name in BUILTIN_PROFILES:
        return BUILTIN_PROFILES[name]
    candidate = Path(name)
    if not candidate.is_absolute():
        beside = Path(program.source).parent / candidate
        if beside.exists():
            return load_profile(beside)
    return load_profile(candidate)
