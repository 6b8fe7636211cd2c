"""Built-in profiles, user profile files that tighten them, and refusals to loosen."""

from __future__ import annotations

from pathlib import Path

import pytest

from controller.limits import CEILINGS, ProfileError
from controller.profiles import BUILTIN_PROFILES, load_profile, profile_for
from controller.program import load_program
from drivers.base import Waveform

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _write(tmp_path: Path, text: str, name: str = "p.toml") -> Path:
    f = tmp_path / name
    f.write_text(text)
    return f


def test_builtins_have_the_seed_numbers() -> None:
    face = load_profile("face")
    assert (face.max_amplitude_ma, face.min_frequency_hz, face.max_frequency_hz) == (15, 30, 150)
    assert face.max_session_s == 1200 and face.min_rest_between_sessions_s == 2 * 86400
    assert (face.min_pulse_width_us, face.max_pulse_width_us) == (100, 300)
    body = load_profile("body")
    assert body.max_session_s == 1500 and body.max_rms_ma == 50 and body.min_rest_between_sessions_s == 86400
    assert (body.min_frequency_hz, body.max_frequency_hz, body.min_pulse_width_us, body.max_pulse_width_us) == (1, 150, 50, 450)
    needle = load_profile("needle")
    assert needle.max_session_s == 1800 and needle.shannon_k_max == 1.85
    micro = load_profile("microcurrent")
    assert micro.max_amplitude_ma == 0.6 and micro.max_voltage_v == 14
    amp = load_profile("amplipulse")
    assert (amp.min_carrier_hz, amp.max_carrier_hz, amp.min_frequency_hz, amp.max_frequency_hz) == (2000, 10000, 10, 150)
    for p in BUILTIN_PROFILES.values():
        assert "pregnancy" in p.contraindications and "implanted pacemaker" in p.contraindications
        assert p.base == p.name
        assert not p.allow_monophasic and Waveform.MONOPHASIC not in p.waveforms
        assert p.effective_max_rms_ma() <= CEILINGS.max_rms_ma
        assert p.min_dead_time_s == 0.001 and p.rms_current_density_warn_ma_cm2 == 2.0
    assert "epilepsy" in face.contraindications


def test_example_tight_face_tightens() -> None:
    p = load_profile(EXAMPLES / "profiles" / "tight-face.toml")
    assert p.name == "tight-face" and p.base == "face"
    assert p.max_amplitude_ma == 10 and p.max_session_s == 900 and p.max_frequency_hz == 80
    assert p.min_rest_between_sessions_s == 3 * 86400
    assert p.waveforms == {Waveform.BIPHASIC_SYMMETRIC, Waveform.NEURON_LIKE}
    face = BUILTIN_PROFILES["face"]
    assert set(face.contraindications) < set(p.contraindications)
    assert p.min_frequency_hz == face.min_frequency_hz  # untouched keys keep the base's value


@pytest.mark.parametrize("key,value,builtin", [
    ("max_amplitude_ma", 20, 15.0),
    ("max_rms_ma", 60, 15.0),
    ("max_frequency_hz", 200, 150.0),
    ("min_frequency_hz", 10, 30.0),
    ("max_session_s", 3600, 1200.0),
    ("min_rest_between_sessions_s", 3600, 172800.0),
    ("min_dead_time_s", 0.0, 0.001),
    ("min_pulse_width_us", 50, 100.0),
    ("max_ramp_s", 10, 3.5),
    ("rms_current_density_warn_ma_cm2", 5, 2.0),
])
def test_loosening_is_refused(tmp_path: Path, key: str, value: float, builtin: float) -> None:
    f = _write(tmp_path, f'base = "face"\n{key} = {value}\n')
    with pytest.raises(ProfileError) as ei:
        load_profile(f)
    e = ei.value
    assert e.key == key and e.builtin == builtin and e.attempted == float(value)
    assert str(f) in str(e) and "loosen" in str(e) and f"{builtin:g}" in str(e)


def test_loosening_shannon_and_waveforms_and_monophasic(tmp_path: Path) -> None:
    with pytest.raises(ProfileError, match="shannon_k_max.*built-in 1.85, attempted 2"):
        load_profile(_write(tmp_path, 'base = "needle"\nshannon_k_max = 2.0\n'))
    with pytest.raises(ProfileError, match="amplipulse"):
        load_profile(_write(tmp_path, 'base = "face"\nwaveforms = ["amplipulse"]\n'))
    with pytest.raises(ProfileError, match="allow_monophasic"):
        load_profile(_write(tmp_path, 'base = "body"\nallow_monophasic = true\n'))


def test_tightening_an_unset_limit_is_allowed(tmp_path: Path) -> None:
    p = load_profile(_write(tmp_path, 'base = "face"\nmax_charge_per_phase_uc = 2.0\nshannon_k_max = 1.5\n'))
    assert p.max_charge_per_phase_uc == 2.0 and p.shannon_k_max == 1.5


def test_profile_file_errors(tmp_path: Path) -> None:
    with pytest.raises(ProfileError, match="base"):
        load_profile(_write(tmp_path, 'max_amplitude_ma = 5\n'))
    with pytest.raises(ProfileError, match="base"):
        load_profile(_write(tmp_path, 'base = "legs"\n'))
    with pytest.raises(ProfileError, match="did you mean max_amplitude_ma"):
        load_profile(_write(tmp_path, 'base = "face"\nmax_amplitude = 5\n'))
    with pytest.raises(ProfileError, match="finite number"):
        load_profile(_write(tmp_path, 'base = "face"\nmax_amplitude_ma = "5"\n'))
    with pytest.raises(ProfileError, match="not valid TOML"):
        load_profile(_write(tmp_path, 'base = \n'))
    with pytest.raises(ProfileError, match="min_frequency_hz"):
        load_profile(_write(tmp_path, 'base = "face"\nmin_frequency_hz = 100\nmax_frequency_hz = 50\n'))
    with pytest.raises(ProfileError, match="built-in profile's name"):
        load_profile(_write(tmp_path, 'base = "face"\nname = "body"\n'))
    with pytest.raises(ProfileError, match="serves no amplipulse"):
        load_profile(_write(tmp_path, 'base = "face"\nmax_carrier_hz = 5000\n'))


def test_unknown_profile_name() -> None:
    with pytest.raises(ProfileError, match="did you mean 'face'"):
        load_profile("fase")
    with pytest.raises(ProfileError, match="no such profile file"):
        load_profile("nowhere/p.toml")


def test_profile_for_prefers_override_then_file_relative(tmp_path: Path) -> None:
    prof = _write(tmp_path, 'base = "body"\nname = "mine"\nmax_session_s = 600\n', "mine.toml")
    prog = _write(tmp_path, (EXAMPLES / "demo.toml").read_text().replace('profile = "body"', 'profile = "mine.toml"'),
                  "prog.toml")
    program = load_program(prog)
    assert profile_for(program).name == "mine"
    assert profile_for(program, "face").name == "face"
    assert profile_for(load_program(EXAMPLES / "face.toml")).name == "face"
    assert prof.exists()
