"""The static interlock: each rule, the ceilings no profile can raise, device capabilities,
antagonist pairs, the session duration, and check_setpoint."""

from __future__ import annotations

from dataclasses import replace

import pytest

from controller.interlock import check_program, check_setpoint
from controller.limits import CEILINGS
from controller.profiles import BODY, FACE, NEEDLE, load_profile
from controller.program import Program
from drivers.base import Capabilities, ChannelCapability, DeviceIdentity, Waveform
from tests.controller.builders import pair, program, spec


def quantities(report: object) -> set[str]:
    return {f.quantity for f in report.violations}  # type: ignore[attr-defined]


def test_a_good_face_program_passes() -> None:
    r = check_program(program(spec()), FACE)
    assert r.ok and not r.violations and r.effective_duration_s == 600
    assert r.channels[0][1].peak_ma == 8.0


@pytest.mark.parametrize("over,quantity", [
    (dict(amplitude_ma=16.0), "amplitude_ma"),
    (dict(frequency_hz=151.0), "frequency_hz"),
    (dict(frequency_hz=29.0), "frequency_hz"),
    (dict(pulse_width_us=301.0), "pulse_width_us"),
    (dict(pulse_width_us=99.0), "pulse_width_us"),
    (dict(waveform=Waveform.MICROCURRENT, amplitude_ma=0.3), "waveform"),
    (dict(waveform=Waveform.MONOPHASIC), "net_charge_uc"),
    (dict(frequency_hz=100.0, pulse_width_us=6000.0), "pulse_train_us"),
])
def test_each_profile_rule(over: dict[str, object], quantity: str) -> None:
    r = check_program(program(spec(**over)), FACE)  # type: ignore[arg-type]
    assert not r.ok and quantity in quantities(r), r.violations
    f = next(f for f in r.violations if f.quantity == quantity)
    assert f.channel == "ch1" and "ch1" in f.message


def test_violation_names_value_limit_and_unit() -> None:
    r = check_program(program(spec(amplitude_ma=16.0)), FACE)
    f = r.violations[0]
    assert (f.value, f.limit, f.unit) == (16.0, 15.0, "mA")
    assert "16 mA exceeds 15 mA" in f.message and "face" in f.message


def test_ramps_within_profile() -> None:
    r = check_program(program(spec(ramp_s=0.1)), FACE)
    assert {"ramp_up_s", "ramp_down_s"} <= quantities(r)
    r = check_program(program(spec(ramp_s=10)), FACE)
    assert "ramp_up_s" in quantities(r)


def test_rms_ceiling_cannot_be_raised_by_a_profile() -> None:
    loose = replace(BODY, name="loose", max_amplitude_ma=1000.0, max_rms_ma=1000.0,
                    max_pulse_width_us=5000.0, max_frequency_hz=1000.0)
    # 100 mA, 450 us, 150 Hz: 100 * sqrt(900e-6 * 150) = 36.7 mA RMS -> passes;
    # 100 mA, 1000 us, 200 Hz -> 100 * sqrt(0.4) = 63 mA RMS -> over the 50 mA ceiling.
    assert check_program(program(spec(amplitude_ma=100, pulse_width_us=450, frequency_hz=150)), loose).ok
    r = check_program(program(spec(amplitude_ma=100, pulse_width_us=1000, frequency_hz=200)), loose)
    f = next(f for f in r.violations if f.quantity == "rms_ma")
    assert f.limit == CEILINGS.max_rms_ma and "ceiling" in f.message


def test_energy_ceiling_cannot_be_raised_by_a_profile() -> None:
    loose = replace(BODY, name="loose", max_amplitude_ma=1e4, max_rms_ma=1e4,
                    max_pulse_width_us=1e6, min_frequency_hz=0.01)
    # 1 A, 1000 us, 0.1 Hz: energy 2 * 1 * 500 * 1e-3 = 1 J = 1000 mJ; RMS 1000*sqrt(2e-4) = 14 mA.
    r = check_program(program(spec(amplitude_ma=1000, pulse_width_us=1000, frequency_hz=0.1)), loose)
    assert quantities(r) == {"pulse_energy_mj"}


def test_monophasic_only_where_a_profile_allows_it() -> None:
    mono = spec(waveform=Waveform.MONOPHASIC)
    assert "net_charge_uc" in quantities(check_program(program(mono), BODY))
    allowing = replace(BODY, name="dc", allow_monophasic=True)
    assert check_program(program(mono), allowing).ok


def test_needle_shannon_limit() -> None:
    ok = spec(kind="needle", area_cm2=0.08, amplitude_ma=9.4, pulse_width_us=250, frequency_hz=10)
    over = replace(ok, config=ok.config.with_amplitude(9.6))
    assert check_program(program(ok, profile="needle"), NEEDLE).ok
    r = check_program(program(over, profile="needle"), NEEDLE)
    f = next(f for f in r.violations if f.quantity == "shannon_k")
    assert f.limit == 1.85 and "2.38 uC" in f.message
    # The same current on a pad passes: the cap comes from the electrode area.
    pad = replace(over, electrode=replace(over.electrode, kind="pad", area_cm2=4.0))
    assert check_program(program(pad, profile="needle"), NEEDLE).ok


def test_charge_caps_when_a_profile_sets_them() -> None:
    p = replace(FACE, name="capped", max_charge_per_phase_uc=1.0, max_charge_density_uc_cm2=0.2)
    r = check_program(program(spec(amplitude_ma=8, pulse_width_us=200, area_cm2=4)), p)  # 1.6 uC, 0.4 uC/cm^2
    assert {"charge_per_phase_uc", "charge_density_uc_cm2"} <= quantities(r)


def test_current_density_is_a_warning_on_pads_only() -> None:
    r = check_program(program(spec(amplitude_ma=15, pulse_width_us=300, frequency_hz=150, area_cm2=1.0)), FACE)
    assert r.ok and any(w.quantity == "rms_current_density_ma_cm2" for w in r.warnings)
    needle = spec(kind="needle", area_cm2=0.08, amplitude_ma=8, pulse_width_us=250, frequency_hz=10)
    assert not check_program(program(needle), NEEDLE).warnings


def test_amplipulse_carrier_and_modulation() -> None:
    amp = load_profile("amplipulse")
    good = spec(waveform=Waveform.AMPLIPULSE, amplitude_ma=20, frequency_hz=100, pulse_width_us=100,
                carrier_hz=5000.0, modulation_hz=100.0, modulation_depth=0.75)
    assert check_program(program(good), amp).ok
    hi = replace(good, config=replace(good.config, carrier_hz=12000.0, pulse_width_us=1e6 / 24000))
    assert "carrier_hz" in quantities(check_program(program(hi), amp))
    slow = replace(good, config=replace(good.config, frequency_hz=5.0, modulation_hz=5.0))
    r = check_program(program(slow), amp)
    assert "frequency_hz" in quantities(r) and "modulation" in r.violations[0].message


def test_duration_over_the_profile_is_a_warning_and_cut() -> None:
    r = check_program(program(spec(), duration_s=3600), FACE)
    assert r.ok and r.effective_duration_s == 1200
    assert any(w.quantity == "duration_s" and "stopped at 1200" in w.message for w in r.warnings)
    assert max(e.end_s for e in r.timeline) == 1200


def test_duplicate_outputs_and_names_in_code_built_programs() -> None:
    r = check_program(program(spec("a"), spec("b")), FACE)
    assert "output" in quantities(r)
    r = check_program(program(spec("a"), spec("a", output=2)), FACE)
    assert "channel_name" in quantities(r)


# --- antagonist pairs ------------------------------------------------------------------------

def _pp(**over: float) -> Program:
    return program(spec("a", output=1), spec("b", output=2), pairs=(pair("a", "b", **over),), profile="body")


def test_good_pair_and_its_timeline() -> None:
    r = check_program(_pp(), BODY)
    assert r.ok
    first = [(e.start_s, e.end_s, e.channels, e.phase) for e in r.timeline[:4]]
    assert first == [(0.0, 5.0, ("a",), "on"), (5.0, 5.5, (), "dead_time"),
                     (5.5, 10.5, ("b",), "on"), (10.5, 20.5, (), "rest")]
    # Never both on: the "on" intervals of a and b never overlap.
    ons = [(e.start_s, e.end_s) for e in r.timeline if e.phase == "on"]
    for (s1, e1), (s2, e2) in zip(ons, ons[1:]):
        assert e1 <= s2
    assert r.timeline[-1].end_s == 600


@pytest.mark.parametrize("over,quantity", [
    (dict(dead_time_s=0.0005), "dead_time_s"),
    (dict(on_s=2.0), "on_s"),
    (dict(off_s=0.2), "off_s"),
    (dict(ramp_up_s=0.1), "ramp_up_s"),
])
def test_pair_rules(over: dict[str, float], quantity: str) -> None:
    r = check_program(_pp(**over), BODY)
    assert not r.ok and quantity in quantities(r)


def test_pair_structure_in_code_built_programs() -> None:
    chans = (spec("a", output=1), spec("b", output=2), spec("c", output=3))
    r = check_program(program(*chans, pairs=(pair("a", "zz"),)), BODY)
    assert "pair_channel" in quantities(r)
    r = check_program(program(*chans, pairs=(pair("a", "a"),)), BODY)
    assert "pair_channel" in quantities(r)
    r = check_program(program(*chans, pairs=(pair("a", "b"), pair("c", "b"))), BODY)
    assert any("at most one pair" in f.message for f in r.violations)


def test_short_rest_is_a_warning() -> None:
    r = check_program(_pp(off_s=3.0), BODY)
    assert r.ok and any(w.quantity == "off_s" for w in r.warnings)


# --- device capabilities ---------------------------------------------------------------------

def _caps(max_ma: float = 100.0, waveforms: frozenset[Waveform] = frozenset(Waveform),
          compliance_v: float = 80.0, outputs: int = 2) -> Capabilities:
    return Capabilities(
        identity=DeviceIdentity("Acme", "Stim-2", "1", "1.0"),
        channels=tuple(ChannelCapability(channel=i, max_amplitude_ma=max_ma, amplitude_resolution_ma=0.01,
                                         min_frequency_hz=1, max_frequency_hz=100, min_pulse_width_us=20,
                                         max_pulse_width_us=250, compliance_v=compliance_v,
                                         waveforms=waveforms)
                       for i in range(1, outputs + 1)),
        watchdog_timeout_s=0.075, hardware_alternation=True,
    )


def test_capabilities_checked() -> None:
    assert check_program(program(spec()), FACE, {"main": _caps()}).ok
    r = check_program(program(spec(amplitude_ma=8)), FACE, {"main": _caps(max_ma=5)})
    assert "device_amplitude_ma" in quantities(r)
    r = check_program(program(spec(frequency_hz=120)), FACE, {"main": _caps()})
    assert "device_frequency_hz" in quantities(r)
    r = check_program(program(spec(pulse_width_us=300)), FACE, {"main": _caps()})
    assert "device_pulse_width_us" in quantities(r)
    r = check_program(program(spec()), FACE, {"main": _caps(waveforms=frozenset({Waveform.MONOPHASIC}))})
    assert "device_waveform" in quantities(r)
    r = check_program(program(spec(output=3)), FACE, {"main": _caps()})
    assert any(f.quantity == "output" and "has no output 3" in f.message for f in r.violations)
    r = check_program(program(spec(device="second")), FACE, {"main": _caps()})
    assert any(f.quantity == "device" and "'second'" in f.message for f in r.violations)


def test_compliance_above_profile_voltage_is_a_warning() -> None:
    micro = load_profile("microcurrent")
    ch = spec(waveform=Waveform.MICROCURRENT, amplitude_ma=0.3, frequency_hz=100, pulse_width_us=200)
    r = check_program(program(ch), micro, {"main": _caps(compliance_v=80)})
    assert r.ok and any(w.quantity == "compliance_v" and "14 V" in w.message for w in r.warnings)
    r = check_program(program(ch), micro, {"main": _caps(compliance_v=12)})
    assert not r.warnings


# --- check_setpoint --------------------------------------------------------------------------

def test_check_setpoint() -> None:
    ch = spec(amplitude_ma=8)
    assert check_setpoint(ch, 15.0, FACE) == ()
    over = check_setpoint(ch, 15.5, FACE)
    assert [f.quantity for f in over] == ["amplitude_ma"]
    for bad in (float("nan"), -1.0, float("inf")):
        assert check_setpoint(ch, bad, FACE)
    needle = spec(kind="needle", area_cm2=0.08, amplitude_ma=5, pulse_width_us=250, frequency_hz=10)
    assert [f.quantity for f in check_setpoint(needle, 9.6, NEEDLE)] == ["shannon_k"]
    # Ramps are the program's business, not a live setpoint's.
    assert check_setpoint(spec(ramp_s=0.0), 5.0, FACE) == ()


def test_electrode_area_out_of_the_ordinary_is_pointed_out() -> None:
    big = spec(kind="needle", area_cm2=1.0, amplitude_ma=8, pulse_width_us=250, frequency_hz=10)
    r = check_program(program(big), NEEDLE)
    assert r.ok and any(w.quantity == "electrode_area_cm2" for w in r.warnings)
    pad = spec(kind="pad", area_cm2=4.0, amplitude_ma=8, pulse_width_us=250, frequency_hz=10)
    r = check_program(program(pad), NEEDLE)
    assert any(w.quantity == "electrode_kind" for w in r.warnings)
