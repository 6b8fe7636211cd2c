"""Property tests: for random channel settings, check_program's verdict agrees with the
metrics, and nothing over a ceiling ever passes, whatever the profile."""

from __future__ import annotations

import math
from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

from controller.interlock import check_program, check_setpoint
from controller.limits import CEILINGS, TIGHTEN_DOWN, TIGHTEN_UP, Profile, ProfileError
from controller.metrics import channel_metrics
from controller.profiles import BUILTIN_PROFILES, tighten
from controller.program import ChannelSpec, Electrode, ProgramError, parse_program, pulse_train_us
from drivers.base import ChannelConfig, Waveform
from tests.controller.builders import channel_dict, program, program_dict

# A profile that would allow anything: only the ceilings in code stand in the way.
WIDE_OPEN = Profile(
    name="wide-open", max_amplitude_ma=1e6, max_rms_ma=1e6, min_frequency_hz=0.0,
    max_frequency_hz=1e9, min_pulse_width_us=0.0, max_pulse_width_us=1e9, max_session_s=1e9,
    max_charge_per_phase_uc=None, max_charge_density_uc_cm2=None, shannon_k_max=None,
    max_voltage_v=None, waveforms=frozenset(Waveform), allow_monophasic=True,
    min_rest_between_sessions_s=0.0, contraindications=(), max_ramp_s=1e9, min_ramp_s=0.0,
    min_dead_time_s=0.0, min_carrier_hz=0.0, max_carrier_hz=1e9,
)
PROFILES = [*BUILTIN_PROFILES.values(), WIDE_OPEN, replace(WIDE_OPEN, name="no-dc", allow_monophasic=False)]


@st.composite
def channel_specs(draw: st.DrawFn) -> ChannelSpec:
    waveform = draw(st.sampled_from(list(Waveform)))
    amplitude = draw(st.floats(0.0, 2000.0))
    kind = draw(st.sampled_from(["pad", "needle"]))
    area = draw(st.floats(0.01, 200.0))
    ramp = draw(st.floats(0.0, 5.0))
    if waveform is Waveform.AMPLIPULSE:
        carrier = draw(st.floats(500.0, 20000.0))
        mod = draw(st.floats(1.0, 200.0))
        cfg = ChannelConfig(waveform=waveform, amplitude_ma=amplitude, frequency_hz=mod,
                            pulse_width_us=1e6 / (2 * carrier), carrier_hz=carrier, modulation_hz=mod,
                            modulation_depth=draw(st.floats(0.0, 1.0)))
    else:
        cfg = ChannelConfig(
            waveform=waveform, amplitude_ma=amplitude, frequency_hz=draw(st.floats(0.05, 2000.0)),
            pulse_width_us=draw(st.floats(1.0, 1e5)),
            interphase_gap_us=draw(st.floats(0.0, 200.0)),
            asymmetry_ratio=draw(st.floats(1.0, 10.0)) if waveform is Waveform.BIPHASIC_ASYMMETRIC else 1.0,
        )
    return ChannelSpec(name="c", device="main", output=1, electrode=Electrode(kind=kind, area_cm2=area),  # type: ignore[arg-type]
                       config=cfg, ramp_up_s=ramp, ramp_down_s=ramp)


def expected_ok(spec: ChannelSpec, p: Profile) -> bool:
    """The verdict written out from the metrics and the limits, independently of interlock.py."""
    m = channel_metrics(spec)
    c = spec.config
    w = c.waveform
    rules = [
        m.rms_ma <= min(p.max_rms_ma, CEILINGS.max_rms_ma),
        m.pulse_energy_mj_500ohm <= CEILINGS.max_pulse_energy_mj,
        w.charge_balanced or p.allow_monophasic,
        w is Waveform.MONOPHASIC or w in p.waveforms,
        c.amplitude_ma <= p.max_amplitude_ma,
        p.min_frequency_hz <= c.frequency_hz <= p.max_frequency_hz,
        p.min_ramp_s <= spec.ramp_up_s <= p.max_ramp_s,
        p.min_ramp_s <= spec.ramp_down_s <= p.max_ramp_s,
        p.max_charge_per_phase_uc is None or m.charge_per_phase_uc <= p.max_charge_per_phase_uc,
        p.max_charge_density_uc_cm2 is None or m.charge_density_uc_cm2 <= p.max_charge_density_uc_cm2,
        p.shannon_k_max is None or m.shannon_k < p.shannon_k_max,
    ]
    if w is Waveform.AMPLIPULSE:
        assert c.carrier_hz is not None
        rules.append(p.min_carrier_hz is not None and p.max_carrier_hz is not None
                     and p.min_carrier_hz <= c.carrier_hz <= p.max_carrier_hz)
    else:
        rules.append(p.min_pulse_width_us <= c.pulse_width_us <= p.max_pulse_width_us)
        rules.append(pulse_train_us(c) <= 1e6 / c.frequency_hz)
    return all(rules)


@settings(max_examples=300, deadline=None)
@given(channel_specs(), st.sampled_from(PROFILES))
def test_verdict_matches_the_metrics(spec: ChannelSpec, profile: Profile) -> None:
    report = check_program(program(spec), profile)
    assert report.ok == expected_ok(spec, profile), (report.violations, channel_metrics(spec))


@settings(max_examples=300, deadline=None)
@given(channel_specs(), st.sampled_from(PROFILES))
def test_nothing_over_a_ceiling_passes(spec: ChannelSpec, profile: Profile) -> None:
    m = channel_metrics(spec)
    report = check_program(program(spec), profile)
    live = check_setpoint(spec, spec.config.amplitude_ma, profile)
    if report.ok:
        assert m.rms_ma <= CEILINGS.max_rms_ma
        assert m.pulse_energy_mj_500ohm <= CEILINGS.max_pulse_energy_mj
        assert spec.config.waveform.charge_balanced or profile.allow_monophasic
        assert not live
    if m.rms_ma > CEILINGS.max_rms_ma or m.pulse_energy_mj_500ohm > CEILINGS.max_pulse_energy_mj:
        assert not report.ok and live


@settings(max_examples=300, deadline=None)
@given(channel_specs(), st.sampled_from(PROFILES), st.floats(0.0, 2000.0))
def test_setpoint_agrees_with_the_static_check(spec: ChannelSpec, profile: Profile, amplitude: float) -> None:
    # A live amplitude is allowed exactly when the same program at that amplitude would pass,
    # ramps aside (they are checked once, before arming).
    fixed = replace(spec, ramp_up_s=profile.min_ramp_s, ramp_down_s=profile.min_ramp_s)
    at = replace(fixed, config=fixed.config.with_amplitude(amplitude))
    static_ok = check_program(program(at), profile).ok
    assert (not check_setpoint(fixed, amplitude, profile)) == static_ok
    assert math.isfinite(channel_metrics(at).rms_ma)


# --- the loader never crashes on bad input ---------------------------------------------------

_ANY = st.one_of(
    st.none(), st.booleans(), st.integers(-10**6, 10**6), st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12), st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=6), st.integers(), max_size=3),
)
_KEYS = st.sampled_from(sorted(set(channel_dict()) | {
    "device", "interphase_gap_us", "asymmetry_ratio", "carrier_hz", "modulation_hz",
    "modulation_depth", "amplitude", "bogus",
}))


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(_KEYS, _ANY, max_size=4), st.sampled_from(["channel", "session", "electrode"]))
def test_malformed_programs_raise_only_program_error(changes: dict[str, object], where: str) -> None:
    ch = channel_dict()
    data = program_dict([ch])
    target = {"channel": ch, "session": data["session"], "electrode": ch["electrode"]}[where]
    target.update(changes)
    try:
        parse_program(data, "fuzz.toml")
    except ProgramError as exc:
        assert str(exc).startswith("fuzz.toml")


# --- a profile file can only tighten ---------------------------------------------------------



@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(sorted(BUILTIN_PROFILES)),
    st.dictionaries(st.sampled_from(TIGHTEN_DOWN + TIGHTEN_UP), st.floats(0.0, 1e7), max_size=5),
)
def test_a_profile_file_never_loosens(base_name: str, overrides: dict[str, float]) -> None:
    base = BUILTIN_PROFILES[base_name]
    try:
        p = tighten({"base": base_name, **overrides}, source="fuzz.toml", default_name="fuzz")
    except ProfileError as exc:
        assert str(exc).startswith("fuzz.toml")
        return
    for key in TIGHTEN_DOWN:
        b, v = getattr(base, key), getattr(p, key)
        assert b is None or v <= b, key
    for key in TIGHTEN_UP:
        b, v = getattr(base, key), getattr(p, key)
        assert b is None or v >= b, key
    assert p.waveforms <= base.waveforms and p.allow_monophasic <= base.allow_monophasic
    assert p.effective_max_rms_ma() <= CEILINGS.max_rms_ma
