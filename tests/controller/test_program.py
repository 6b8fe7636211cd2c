"""The program loader: the happy path, and every error path naming the file and the key."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from controller.program import NEEDLE_AREA_CM2, ProgramError, load_program, parse_program
from drivers.base import AlternationSchedule, Waveform
from tests.controller.builders import channel_dict, program_dict

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _err(data: dict[str, Any]) -> ProgramError:
    with pytest.raises(ProgramError) as ei:
        parse_program(data, "prog.toml")
    assert str(ei.value).startswith("prog.toml"), str(ei.value)
    return ei.value


def test_full_example_parses() -> None:
    p = load_program(EXAMPLES / "body.toml")
    assert p.session.profile == "body"
    assert p.session.duration_s == 1200
    assert [c.name for c in p.channels] == ["quadriceps", "hamstrings", "biceps", "triceps"]
    q = p.channel("quadriceps")
    assert q.device == "main" and q.output == 1
    assert q.electrode.kind == "pad" and q.electrode.area_cm2 == 50.0
    assert q.config.waveform is Waveform.BIPHASIC_SYMMETRIC
    assert q.config.amplitude_ma == 40.0 and q.config.pulse_width_us == 300
    assert p.channel("biceps").config.asymmetry_ratio == 4
    assert p.paired_names() == {"quadriceps", "hamstrings", "biceps", "triceps"}
    assert p.pair_of("triceps") is p.pairs[1]


@pytest.mark.parametrize("name", sorted(f.name for f in EXAMPLES.glob("*.toml")))
def test_every_example_loads(name: str) -> None:
    p = load_program(EXAMPLES / name)
    assert p.channels and p.source.endswith(name)


def test_pair_schedule_maps_fields() -> None:
    p = load_program(EXAMPLES / "body.toml")
    s = p.pairs[0].schedule(1, 2)
    assert s == AlternationSchedule(channel_a=1, channel_b=2, on_s=5, dead_time_s=0.5, rest_s=10,
                                    ramp_up_s=1, ramp_down_s=1)
    assert p.pairs[0].cycle_s == s.cycle_s == 20.5


def test_needle_area_defaults() -> None:
    d = program_dict([channel_dict(electrode={"kind": "needle"})], profile="needle")
    assert parse_program(d, "x").channels[0].electrode.area_cm2 == NEEDLE_AREA_CM2


def test_amplipulse_derives_frequency_and_phase() -> None:
    d = program_dict([{
        "name": "a", "output": 1, "electrode": {"kind": "pad", "area_cm2": 40.0},
        "waveform": "amplipulse", "amplitude_ma": 20.0, "carrier_hz": 5000, "modulation_hz": 100,
        "ramp_up_s": 1, "ramp_down_s": 1,
    }], profile="amplipulse")
    c = parse_program(d, "x").channels[0].config
    assert c.frequency_hz == 100 and c.pulse_width_us == pytest.approx(100.0)
    assert c.carrier_hz == 5000 and c.modulation_depth == 1.0


def test_missing_file_names_it(tmp_path: Path) -> None:
    with pytest.raises(ProgramError, match="nope.toml: no such file"):
        load_program(tmp_path / "nope.toml")


def test_invalid_toml_names_file(tmp_path: Path) -> None:
    f = tmp_path / "bad.toml"
    f.write_text("[session\nname=1\n")
    with pytest.raises(ProgramError, match=r"bad.toml: is not valid TOML"):
        load_program(f)


def test_not_utf8(tmp_path: Path) -> None:
    f = tmp_path / "bin.toml"
    f.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(ProgramError, match="not UTF-8"):
        load_program(f)


def test_key_without_unit_suggests_the_unit() -> None:
    ch = channel_dict()
    ch["amplitude"] = ch.pop("amplitude_ma")
    e = _err(program_dict([ch]))
    assert e.key == "channel[0].amplitude"
    assert "did you mean amplitude_ma?" in str(e)


def test_unknown_key_lists_allowed() -> None:
    e = _err(program_dict([channel_dict(colour="red")]))
    assert e.key == "channel[0].colour" and "amplitude_ma" in e.allowed


def test_typo_key_gets_close_match() -> None:
    e = _err(program_dict([channel_dict(frequncy_hz=3)]))
    assert "did you mean frequency_hz?" in str(e)


def test_unknown_top_level_key() -> None:
    d = program_dict()
    d["channels"] = []
    e = _err(d)
    assert e.key == "channels" and "did you mean channel?" in str(e)


@pytest.mark.parametrize("key", ["name", "output", "electrode", "waveform", "amplitude_ma",
                                 "frequency_hz", "pulse_width_us", "ramp_up_s", "ramp_down_s"])
def test_missing_channel_key(key: str) -> None:
    ch = channel_dict()
    del ch[key]
    e = _err(program_dict([ch]))
    assert e.key == f"channel[0].{key}" and "missing" in str(e)


@pytest.mark.parametrize("key", ["name", "profile", "duration_s"])
def test_missing_session_key(key: str) -> None:
    d = program_dict()
    del d["session"][key]
    assert _err(d).key == f"session.{key}"


def test_missing_session_table() -> None:
    d = program_dict()
    del d["session"]
    assert _err(d).key == "session"


def test_no_channels() -> None:
    e = _err(program_dict([]))
    assert e.key == "channel"


@pytest.mark.parametrize("key,value", [
    ("amplitude_ma", "8"), ("amplitude_ma", True), ("frequency_hz", [50]),
    ("pulse_width_us", {"a": 1}), ("ramp_up_s", "1 s"),
])
def test_wrong_type(key: str, value: Any) -> None:
    e = _err(program_dict([channel_dict(**{key: value})]))
    assert e.key == f"channel[1].{key}".replace("[1]", "[0]") and "must be a number" in str(e)


@pytest.mark.parametrize("key,value", [
    ("amplitude_ma", -1.0), ("frequency_hz", 0), ("pulse_width_us", -5), ("ramp_down_s", -0.1),
    ("amplitude_ma", float("nan")), ("frequency_hz", float("inf")),
])
def test_out_of_range_number(key: str, value: float) -> None:
    e = _err(program_dict([channel_dict(**{key: value})]))
    assert e.key == f"channel[0].{key}" and e.allowed


def test_output_must_be_positive_int() -> None:
    for bad in (0, -1, 1.5, "1", True):
        assert _err(program_dict([channel_dict(output=bad)])).key == "channel[0].output"


def test_unknown_waveform_suggests() -> None:
    e = _err(program_dict([channel_dict(waveform="biphasic_symetric")]))
    assert e.key == "channel[0].waveform" and "biphasic_symmetric" in str(e)


def test_key_for_another_waveform() -> None:
    e = _err(program_dict([channel_dict(carrier_hz=5000)]))
    assert e.key == "channel[0].carrier_hz" and "amplipulse" in e.allowed
    e = _err(program_dict([channel_dict(asymmetry_ratio=4)]))
    assert e.key == "channel[0].asymmetry_ratio"


def test_amplipulse_rejects_derived_keys() -> None:
    ch = {"name": "a", "output": 1, "electrode": {"kind": "pad", "area_cm2": 4.0},
          "waveform": "amplipulse", "amplitude_ma": 5.0, "carrier_hz": 5000, "modulation_hz": 100,
          "frequency_hz": 100, "ramp_up_s": 1, "ramp_down_s": 1}
    e = _err(program_dict([ch]))
    assert e.key == "channel[0].frequency_hz" and "carrier_hz" in e.allowed


def test_amplipulse_needs_carrier() -> None:
    ch = {"name": "a", "output": 1, "electrode": {"kind": "pad", "area_cm2": 4.0},
          "waveform": "amplipulse", "amplitude_ma": 5.0, "modulation_hz": 100,
          "ramp_up_s": 1, "ramp_down_s": 1}
    assert _err(program_dict([ch])).key == "channel[0].carrier_hz"


def test_modulation_depth_range() -> None:
    ch = {"name": "a", "output": 1, "electrode": {"kind": "pad", "area_cm2": 4.0},
          "waveform": "amplipulse", "amplitude_ma": 5.0, "carrier_hz": 5000, "modulation_hz": 100,
          "modulation_depth": 1.5, "ramp_up_s": 1, "ramp_down_s": 1}
    assert _err(program_dict([ch])).key == "channel[0].modulation_depth"


def test_pulse_must_fit_in_period() -> None:
    e = _err(program_dict([channel_dict(frequency_hz=1000, pulse_width_us=600)]))
    assert e.key == "channel[0].pulse_width_us" and "does not fit" in str(e)


def test_pad_needs_area() -> None:
    e = _err(program_dict([channel_dict(electrode={"kind": "pad"})]))
    assert e.key == "channel[0].electrode.area_cm2"


def test_electrode_kind_and_shape() -> None:
    assert _err(program_dict([channel_dict(electrode={"kind": "wire", "area_cm2": 1})])).key == \
        "channel[0].electrode.kind"
    assert _err(program_dict([channel_dict(electrode="pad")])).key == "channel[0].electrode"
    assert _err(program_dict([channel_dict(electrode={"kind": "pad", "area": 1})])).key == \
        "channel[0].electrode.area"


def test_duplicate_channel_name_and_output() -> None:
    e = _err(program_dict([channel_dict(), channel_dict(output=2)]))
    assert e.key == "channel[1].name"
    e = _err(program_dict([channel_dict(), channel_dict(name="ch2")]))
    assert e.key == "channel[1].output"


def test_same_output_on_two_devices_is_fine() -> None:
    p = parse_program(program_dict([channel_dict(), channel_dict(name="b", device="second")]), "x")
    assert {c.device for c in p.channels} == {"main", "second"}


def _pair(**over: Any) -> dict[str, Any]:
    d: dict[str, Any] = dict(agonist="a", antagonist="b", on_s=5, off_s=10, dead_time_s=0.5,
                             ramp_up_s=1, ramp_down_s=1)
    d.update(over)
    return d


def _paired(*pairs: dict[str, Any], extra: int = 0) -> dict[str, Any]:
    chans = [channel_dict(name="a", output=1), channel_dict(name="b", output=2)]
    chans += [channel_dict(name=f"c{i}", output=3 + i) for i in range(extra)]
    d = program_dict(chans, profile="body")
    d["pair"] = list(pairs)
    return d


def test_pair_unknown_channel() -> None:
    e = _err(_paired(_pair(antagonist="bb")))
    assert e.key == "pair[0].antagonist" and "did you mean 'b'" in str(e)


def test_pair_same_channel() -> None:
    assert _err(_paired(_pair(antagonist="a"))).key == "pair[0].antagonist"


def test_channel_in_two_pairs() -> None:
    e = _err(_paired(_pair(), _pair(agonist="c0", antagonist="b"), extra=1))
    assert e.key == "pair[1].antagonist" and "at most one pair" in e.allowed


@pytest.mark.parametrize("key", ["on_s", "off_s", "dead_time_s", "ramp_up_s", "ramp_down_s",
                                 "agonist", "antagonist"])
def test_pair_missing_key(key: str) -> None:
    p = _pair()
    del p[key]
    assert _err(_paired(p)).key == f"pair[0].{key}"


def test_pair_without_unit() -> None:
    p = _pair()
    p["dead_time"] = p.pop("dead_time_s")
    e = _err(_paired(p))
    assert e.key == "pair[0].dead_time" and "dead_time_s" in str(e)


def test_pair_not_a_list() -> None:
    d = _paired()
    d["pair"] = {"agonist": "a"}
    assert _err(d).key == "pair"


def test_subject_prompt_bool() -> None:
    d = program_dict(subject_prompt="no")
    assert _err(d).key == "session.subject_prompt"
    assert parse_program(program_dict(subject_prompt=False), "x").session.subject_prompt is False


def test_program_channel_lookup_error() -> None:
    p = parse_program(program_dict(), "x")
    with pytest.raises(KeyError, match="no channel named 'zz'"):
        p.channel("zz")


def test_directory_is_not_a_program(tmp_path: Path) -> None:
    with pytest.raises(ProgramError, match="is a directory"):
        load_program(tmp_path)


def test_modulation_must_be_below_half_the_carrier() -> None:
    ch = {"name": "a", "output": 1, "electrode": {"kind": "pad", "area_cm2": 4.0},
          "waveform": "amplipulse", "amplitude_ma": 5.0, "carrier_hz": 200, "modulation_hz": 150,
          "ramp_up_s": 1, "ramp_down_s": 1}
    e = _err(program_dict([ch]))
    assert e.key == "channel[0].modulation_hz" and "half the carrier" in str(e)


def test_tables_that_are_not_tables() -> None:
    d = program_dict()
    d["channel"] = [1]
    assert _err(d).key == "channel[0]"
    d = program_dict()
    d["session"] = "face"
    assert _err(d).key == "session"
    d = program_dict()
    d["channel"] = {"name": "x"}
    assert _err(d).key == "channel"
    with pytest.raises(ProgramError, match="must be a table"):
        parse_program([], "prog.toml")  # type: ignore[arg-type]


def test_empty_strings_refused() -> None:
    assert _err(program_dict([channel_dict(name=" ")])).key == "channel[0].name"
    assert _err(program_dict(profile="")).key == "session.profile"
    assert _err(program_dict([channel_dict(device="")])).key == "channel[0].device"


def test_interphase_gap_not_for_microcurrent() -> None:
    e = _err(program_dict([channel_dict(waveform="microcurrent", interphase_gap_us=10)]))
    assert e.key == "channel[0].interphase_gap_us"
