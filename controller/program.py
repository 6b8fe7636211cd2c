"""Stimulation programs: the TOML file a user writes, parsed into frozen specs.

The parser checks shape only (keys, types, units, values that can never make sense, names that
must resolve). Whether a program is *allowed* is the interlock's question
(`controller.interlock.check_program`), asked against a limits profile and the devices.

Every key carries its unit (`amplitude_ma`, not `amplitude`), so a file cannot be misread by a
person or by this parser. A key without its unit gets a "did you mean" hint.
"""

from __future__ import annotations

import difflib
import math
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from drivers.base import AlternationSchedule, ChannelConfig, Waveform

NEEDLE_AREA_CM2 = 0.08
"""Default geometric area of an interstitial needle electrode (SAFETY-REFERENCE: ~0.079 cm^2)."""

ElectrodeKind = Literal["pad", "needle"]


class ProgramError(Exception):
    """A program file or dict that cannot be used. Names the file, the key path and what is
    allowed, so the user can fix it without reading the source."""

    def __init__(self, source: str, key: str, problem: str, allowed: str = "") -> None:
        self.source = source
        self.key = key
        self.problem = problem
        self.allowed = allowed
        where = f"{source}: {key}" if key else source
        text = f"{where}: {problem}"
        if allowed:
            text += f" (allowed: {allowed})"
        super().__init__(text)


@dataclass(frozen=True)
class Electrode:
    kind: ElectrodeKind
    area_cm2: float
    """Geometric contact area; turns current into current density and charge density."""

    def __post_init__(self) -> None:
        if self.kind not in ("pad", "needle"):
            raise ValueError(f"electrode kind must be 'pad' or 'needle', not {self.kind!r}")
        if not (math.isfinite(self.area_cm2) and self.area_cm2 > 0):
            raise ValueError(f"electrode area_cm2 must be a positive number, not {self.area_cm2!r}")


@dataclass(frozen=True)
class SessionSpec:
    name: str
    profile: str
    """A built-in profile name (see controller.profiles.BUILTIN_PROFILES) or a profile file path."""
    duration_s: float
    subject_prompt: bool = True
    """Ask the operator to confirm the contraindication screening before arming."""


@dataclass(frozen=True)
class ChannelSpec:
    name: str
    device: str
    """Which device drives this channel when a session uses several; "main" by default."""
    output: int
    """The device's output number, from 1, as on its front panel."""
    electrode: Electrode
    config: ChannelConfig
    ramp_up_s: float
    """Session start: from zero to config.amplitude_ma over this time."""
    ramp_down_s: float


@dataclass(frozen=True)
class PairSpec:
    """An antagonist pair: the two channels are never on together.

    One cycle: agonist on for on_s (its ramps inside), dead_time_s both off, antagonist on for
    on_s, then off_s both off.
    """

    agonist: str
    antagonist: str
    on_s: float
    off_s: float
    dead_time_s: float
    ramp_up_s: float
    ramp_down_s: float

    @property
    def cycle_s(self) -> float:
        return 2 * self.on_s + self.dead_time_s + self.off_s

    def schedule(self, output_a: int, output_b: int) -> AlternationSchedule:
        """The device-level schedule, with output_a the agonist's output and output_b the
        antagonist's."""
        return AlternationSchedule(
            channel_a=output_a,
            channel_b=output_b,
            on_s=self.on_s,
            dead_time_s=self.dead_time_s,
            rest_s=self.off_s,
            ramp_up_s=self.ramp_up_s,
            ramp_down_s=self.ramp_down_s,
        )


@dataclass(frozen=True)
class Program:
    session: SessionSpec
    channels: tuple[ChannelSpec, ...]
    pairs: tuple[PairSpec, ...]
    source: str
    """Where it was read from (a path, or a label for programs built in code)."""

    def channel(self, name: str) -> ChannelSpec:
        for ch in self.channels:
            if ch.name == name:
                return ch
        known = ", ".join(ch.name for ch in self.channels) or "none"
        raise KeyError(f"{self.source}: no channel named {name!r} (channels: {known})")

    def paired_names(self) -> frozenset[str]:
        """Names of every channel that belongs to an antagonist pair."""
        return frozenset(n for p in self.pairs for n in (p.agonist, p.antagonist))

    def pair_of(self, name: str) -> PairSpec | None:
        for p in self.pairs:
            if name in (p.agonist, p.antagonist):
                return p
        return None


# ---------------------------------------------------------------------------------------------
# Parsing

_SESSION_KEYS: dict[str, bool] = {  # key -> required
    "name": True,
    "profile": True,
    "duration_s": True,
    "subject_prompt": False,
}
_CHANNEL_KEYS: dict[str, bool] = {
    "name": True,
    "output": True,
    "device": False,
    "electrode": True,
    "waveform": True,
    "amplitude_ma": True,
    "frequency_hz": True,
    "pulse_width_us": True,
    "interphase_gap_us": False,
    "asymmetry_ratio": False,
    "carrier_hz": False,
    "modulation_hz": False,
    "modulation_depth": False,
    "ramp_up_s": True,
    "ramp_down_s": True,
}
_ELECTRODE_KEYS: dict[str, bool] = {"kind": True, "area_cm2": False}
_PAIR_KEYS: dict[str, bool] = {
    "agonist": True,
    "antagonist": True,
    "on_s": True,
    "off_s": True,
    "dead_time_s": True,
    "ramp_up_s": True,
    "ramp_down_s": True,
}
_TOP_KEYS = ("session", "channel", "pair")

# Keys that only mean something for some waveforms. Giving one for another waveform is an error:
# a user who writes carrier_hz on a biphasic channel has misunderstood something.
_WAVEFORM_ONLY: dict[str, frozenset[Waveform]] = {
    "asymmetry_ratio": frozenset({Waveform.BIPHASIC_ASYMMETRIC}),
    "carrier_hz": frozenset({Waveform.AMPLIPULSE}),
    "modulation_hz": frozenset({Waveform.AMPLIPULSE}),
    "modulation_depth": frozenset({Waveform.AMPLIPULSE}),
    "interphase_gap_us": frozenset(
        {Waveform.BIPHASIC_SYMMETRIC, Waveform.BIPHASIC_ASYMMETRIC, Waveform.NEURON_LIKE}
    ),
}
# An amplipulse channel's rhythm is its modulation and its phase is half a carrier period.
_AMPLIPULSE_DERIVED = ("frequency_hz", "pulse_width_us")

_WAVEFORM_NAMES = ", ".join(w.value for w in Waveform)


def amplipulse_phase_us(carrier_hz: float) -> float:
    """One phase of a sinusoidal carrier: half its period, in microseconds."""
    return 1e6 / (2.0 * carrier_hz)


def load_program(path: str | Path) -> Program:
    """Read and parse a TOML program file. Raises ProgramError naming the file on any problem."""
    p = Path(path)
    source = str(path)
    try:
        raw = p.read_bytes()
    except FileNotFoundError:
        raise ProgramError(source, "", "no such file", "a path to a .toml program") from None
    except IsADirectoryError:
        raise ProgramError(source, "", "is a directory", "a path to a .toml program") from None
    except OSError as exc:
        raise ProgramError(source, "", f"cannot be read: {exc.strerror or exc}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ProgramError(source, "", f"is not UTF-8 text (byte {exc.start})") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ProgramError(source, "", f"is not valid TOML: {exc}", "TOML, see docs/programs.md") from None
    return parse_program(data, source)


def parse_program(data: Mapping[str, Any], source: str) -> Program:
    """Turn a parsed TOML document (or an equivalent dict built in code) into a Program."""
    if not isinstance(data, Mapping):
        raise ProgramError(source, "", f"must be a table, not {_type_name(data)}")
    _check_keys(data, {k: k == "session" or k == "channel" for k in _TOP_KEYS}, "", source)

    session = _parse_session(_table(data["session"], "session", source), source)

    raw_channels = data["channel"]
    if not isinstance(raw_channels, list) or not raw_channels:
        raise ProgramError(
            source, "channel", "must be one or more [[channel]] tables", "[[channel]] ... entries"
        )
    channels = tuple(
        _parse_channel(_table(raw, f"channel[{i}]", source), f"channel[{i}]", source)
        for i, raw in enumerate(raw_channels)
    )
    _check_channel_names(channels, source)

    raw_pairs = data.get("pair", [])
    if not isinstance(raw_pairs, list):
        raise ProgramError(source, "pair", "must be [[pair]] tables", "[[pair]] ... entries")
    pairs = tuple(
        _parse_pair(_table(raw, f"pair[{i}]", source), f"pair[{i}]", source)
        for i, raw in enumerate(raw_pairs)
    )
    _check_pairs(pairs, channels, source)
    return Program(session=session, channels=channels, pairs=pairs, source=source)


def _parse_session(t: Mapping[str, Any], source: str) -> SessionSpec:
    _check_keys(t, _SESSION_KEYS, "session", source)
    name = _string(t, "name", "session", source)
    profile = _string(t, "profile", "session", source)
    duration_s = _number(t, "duration_s", "session", source, minimum=0.0, exclusive=True)
    subject_prompt = True
    if "subject_prompt" in t:
        v = t["subject_prompt"]
        if not isinstance(v, bool):
            raise ProgramError(
                source, "session.subject_prompt", f"must be true or false, not {_type_name(v)}"
            )
        subject_prompt = v
    return SessionSpec(name=name, profile=profile, duration_s=duration_s, subject_prompt=subject_prompt)


def _parse_channel(t: Mapping[str, Any], where: str, source: str) -> ChannelSpec:
    waveform = _waveform(t, where, source)
    required = dict(_CHANNEL_KEYS)
    if waveform is Waveform.AMPLIPULSE:
        for k in _AMPLIPULSE_DERIVED:
            required.pop(k)
        required["carrier_hz"] = True
        required["modulation_hz"] = True
    _check_keys(t, required, where, source, waveform=waveform)
    for key, only in _WAVEFORM_ONLY.items():
        if key in t and waveform not in only:
            allowed = " or ".join(sorted(w.value for w in only))
            raise ProgramError(
                source, f"{where}.{key}", f"does not apply to waveform {waveform.value!r}",
                f"only with waveform {allowed}",
            )

    name = _string(t, "name", where, source)
    device = _string(t, "device", where, source) if "device" in t else "main"
    output = t["output"]
    if isinstance(output, bool) or not isinstance(output, int) or output < 1:
        raise ProgramError(
            source, f"{where}.output", f"must be a whole number from 1, not {output!r}",
            "the device's output number, 1, 2, ...",
        )
    electrode = _parse_electrode(t["electrode"], f"{where}.electrode", source)
    amplitude_ma = _number(t, "amplitude_ma", where, source, minimum=0.0)
    ramp_up_s = _number(t, "ramp_up_s", where, source, minimum=0.0)
    ramp_down_s = _number(t, "ramp_down_s", where, source, minimum=0.0)
    gap_us = _number(t, "interphase_gap_us", where, source, minimum=0.0) if "interphase_gap_us" in t else 0.0

    if waveform is Waveform.AMPLIPULSE:
        carrier_hz = _number(t, "carrier_hz", where, source, minimum=0.0, exclusive=True)
        modulation_hz = _number(t, "modulation_hz", where, source, minimum=0.0, exclusive=True)
        depth = (
            _number(t, "modulation_depth", where, source, minimum=0.0, maximum=1.0)
            if "modulation_depth" in t
            else 1.0
        )
        if modulation_hz >= carrier_hz / 2:
            raise ProgramError(
                source, f"{where}.modulation_hz",
                f"{modulation_hz:g} Hz is not below half the carrier ({carrier_hz:g} Hz)",
                "a modulation well below the carrier, e.g. 10-150 Hz on 2-10 kHz",
            )
        config = ChannelConfig(
            waveform=waveform,
            amplitude_ma=amplitude_ma,
            frequency_hz=modulation_hz,
            pulse_width_us=amplipulse_phase_us(carrier_hz),
            carrier_hz=carrier_hz,
            modulation_hz=modulation_hz,
            modulation_depth=depth,
        )
    else:
        frequency_hz = _number(t, "frequency_hz", where, source, minimum=0.0, exclusive=True)
        pulse_width_us = _number(t, "pulse_width_us", where, source, minimum=0.0, exclusive=True)
        ratio = (
            _number(t, "asymmetry_ratio", where, source, minimum=1.0)
            if "asymmetry_ratio" in t
            else 1.0
        )
        config = ChannelConfig(
            waveform=waveform,
            amplitude_ma=amplitude_ma,
            frequency_hz=frequency_hz,
            pulse_width_us=pulse_width_us,
            interphase_gap_us=gap_us,
            asymmetry_ratio=ratio,
        )
        pulse_us = pulse_train_us(config)
        period_us = 1e6 / frequency_hz
        if pulse_us > period_us:
            raise ProgramError(
                source, f"{where}.pulse_width_us",
                f"the pulse ({pulse_us:g} us with all its phases and gap) does not fit in one "
                f"period at {frequency_hz:g} Hz ({period_us:g} us)",
                "a shorter pulse_width_us or a lower frequency_hz",
            )
    return ChannelSpec(
        name=name, device=device, output=output, electrode=electrode, config=config,
        ramp_up_s=ramp_up_s, ramp_down_s=ramp_down_s,
    )


def pulse_train_us(config: ChannelConfig) -> float:
    """Time one pulse occupies, all phases and the interphase gap included (microseconds)."""
    pw = config.pulse_width_us
    w = config.waveform
    if w is Waveform.MONOPHASIC:
        return pw
    if w is Waveform.BIPHASIC_ASYMMETRIC:
        return pw * (1.0 + config.asymmetry_ratio) + config.interphase_gap_us
    if w is Waveform.AMPLIPULSE:
        return 1e6 / config.frequency_hz  # continuous
    return 2.0 * pw + config.interphase_gap_us


def _parse_electrode(raw: Any, where: str, source: str) -> Electrode:
    t = _table(raw, where, source, hint='{ kind = "pad", area_cm2 = 4.0 } or { kind = "needle" }')
    _check_keys(t, _ELECTRODE_KEYS, where, source)
    kind = t["kind"]
    if kind not in ("pad", "needle"):
        raise ProgramError(source, f"{where}.kind", f"unknown electrode kind {kind!r}", "pad, needle")
    if "area_cm2" in t:
        area = _number(t, "area_cm2", where, source, minimum=0.0, exclusive=True)
    elif kind == "needle":
        area = NEEDLE_AREA_CM2
    else:
        raise ProgramError(
            source, f"{where}.area_cm2",
            "a pad electrode needs its area: current and charge density depend on it",
            "a positive number in cm^2, e.g. area_cm2 = 4.0",
        )
    return Electrode(kind=kind, area_cm2=area)


def _parse_pair(t: Mapping[str, Any], where: str, source: str) -> PairSpec:
    _check_keys(t, _PAIR_KEYS, where, source)
    return PairSpec(
        agonist=_string(t, "agonist", where, source),
        antagonist=_string(t, "antagonist", where, source),
        on_s=_number(t, "on_s", where, source, minimum=0.0, exclusive=True),
        off_s=_number(t, "off_s", where, source, minimum=0.0),
        dead_time_s=_number(t, "dead_time_s", where, source, minimum=0.0),
        ramp_up_s=_number(t, "ramp_up_s", where, source, minimum=0.0),
        ramp_down_s=_number(t, "ramp_down_s", where, source, minimum=0.0),
    )


def _check_channel_names(channels: tuple[ChannelSpec, ...], source: str) -> None:
    seen: dict[str, int] = {}
    outputs: dict[tuple[str, int], str] = {}
    for i, ch in enumerate(channels):
        if ch.name in seen:
            raise ProgramError(
                source, f"channel[{i}].name",
                f"{ch.name!r} is already the name of channel[{seen[ch.name]}]", "a unique name",
            )
        seen[ch.name] = i
        key = (ch.device, ch.output)
        if key in outputs:
            raise ProgramError(
                source, f"channel[{i}].output",
                f"output {ch.output} of device {ch.device!r} is already used by {outputs[key]!r}",
                "one channel per device output",
            )
        outputs[key] = ch.name


def _check_pairs(pairs: tuple[PairSpec, ...], channels: tuple[ChannelSpec, ...], source: str) -> None:
    names = [ch.name for ch in channels]
    in_pair: dict[str, int] = {}
    for i, p in enumerate(pairs):
        for role in ("agonist", "antagonist"):
            n = getattr(p, role)
            if n not in names:
                close = difflib.get_close_matches(n, names, n=1)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                raise ProgramError(
                    source, f"pair[{i}].{role}", f"no channel named {n!r}{hint}",
                    ", ".join(names),
                )
        if p.agonist == p.antagonist:
            raise ProgramError(
                source, f"pair[{i}].antagonist",
                f"a channel cannot be its own antagonist ({p.agonist!r})", "two different channels",
            )
        for role in ("agonist", "antagonist"):
            n = getattr(p, role)
            if n in in_pair:
                raise ProgramError(
                    source, f"pair[{i}].{role}",
                    f"channel {n!r} is already in pair[{in_pair[n]}]", "each channel in at most one pair",
                )
            in_pair[n] = i


# ---------------------------------------------------------------------------------------------
# Small typed readers. Each raises ProgramError with the full key path.

def _type_name(v: object) -> str:
    if isinstance(v, bool):
        return "a boolean"
    if isinstance(v, (int, float)):
        return f"the number {v!r}"
    if isinstance(v, str):
        return f"the string {v!r}"
    if isinstance(v, list):
        return "a list"
    if isinstance(v, dict):
        return "a table"
    return type(v).__name__


def _table(raw: Any, where: str, source: str, hint: str = "") -> Mapping[str, Any]:
    if not isinstance(raw, Mapping):
        raise ProgramError(source, where, f"must be a table, not {_type_name(raw)}", hint)
    return raw


def _check_keys(
    t: Mapping[str, Any], spec: Mapping[str, bool], where: str, source: str,
    waveform: Waveform | None = None,
) -> None:
    allowed = list(spec)
    # Keys that exist in the full channel schema but are derived for this waveform.
    derived = set(_CHANNEL_KEYS) - set(spec) if waveform is not None else set()
    prefix = f"{where}." if where else ""
    for key in t:
        if key in spec:
            continue
        if key in derived:
            raise ProgramError(
                source, f"{prefix}{key}",
                f"is derived for waveform {waveform.value if waveform else ''!r}: "
                "frequency_hz is the modulation_hz and the phase is half a carrier period",
                "set carrier_hz and modulation_hz instead",
            )
        unit_matches = [k for k in allowed if k.startswith(f"{key}_")]
        if unit_matches:
            hint = f"did you mean {unit_matches[0]}? Keys carry their unit"
        else:
            close = difflib.get_close_matches(str(key), allowed, n=1)
            hint = f"did you mean {close[0]}?" if close else "not a known key"
        raise ProgramError(source, f"{prefix}{key}", f"unknown key; {hint}", ", ".join(allowed))
    for key, required in spec.items():
        if required and key not in t:
            raise ProgramError(source, f"{prefix}{key}", "is missing", "required here")


def _string(t: Mapping[str, Any], key: str, where: str, source: str) -> str:
    v = t[key]
    if not isinstance(v, str) or not v.strip():
        raise ProgramError(source, f"{where}.{key}", f"must be a non-empty string, not {_type_name(v)}")
    return v


def _number(
    t: Mapping[str, Any], key: str, where: str, source: str, *,
    minimum: float | None = None, maximum: float | None = None, exclusive: bool = False,
) -> float:
    v = t[key]
    path = f"{where}.{key}"
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise ProgramError(source, path, f"must be a number, not {_type_name(v)}", _range_text(minimum, maximum, exclusive))
    f = float(v)
    if not math.isfinite(f):
        raise ProgramError(source, path, f"must be a finite number, not {v!r}", _range_text(minimum, maximum, exclusive))
    if minimum is not None and (f < minimum or (exclusive and f == minimum)):
        raise ProgramError(source, path, f"{v!r} is out of range", _range_text(minimum, maximum, exclusive))
    if maximum is not None and f > maximum:
        raise ProgramError(source, path, f"{v!r} is out of range", _range_text(minimum, maximum, exclusive))
    return f


def _range_text(minimum: float | None, maximum: float | None, exclusive: bool) -> str:
    lo = "" if minimum is None else (f"> {minimum:g}" if exclusive else f">= {minimum:g}")
    hi = "" if maximum is None else f"<= {maximum:g}"
    return " and ".join(x for x in (lo, hi) if x) or "a number"


def _waveform(t: Mapping[str, Any], where: str, source: str) -> Waveform:
    if "waveform" not in t:
        raise ProgramError(source, f"{where}.waveform", "is missing", _WAVEFORM_NAMES)
    v = t["waveform"]
    try:
        return Waveform(v)
    except ValueError:
        close = difflib.get_close_matches(str(v), [w.value for w in Waveform], n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ProgramError(source, f"{where}.waveform", f"unknown waveform {v!r}{hint}", _WAVEFORM_NAMES) from None
