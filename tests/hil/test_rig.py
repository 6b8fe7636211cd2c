"""Rig files: the examples parse, and every mistake names the file and the key."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest

from hil.rig import DEFAULT_RIG_TOML, RigError, default_rig, load_rig, parse_rig

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "rigs"


@pytest.mark.parametrize("name", ["sim", "bench-6221-dmm", "bench-33500b-dmm"])
def test_example_rigs_parse(name: str) -> None:
    rig = load_rig(EXAMPLES / f"{name}.toml")
    assert rig.devices and rig.channels
    assert rig.scenario.agonist in {c.name for c in rig.channels}


def test_default_rig_is_all_simulated_and_matches_the_example() -> None:
    rig = default_rig()
    assert rig.all_simulated
    example = load_rig(EXAMPLES / "sim.toml")
    for part in ("devices", "channels", "loads", "meter", "estop", "scenario"):
        assert getattr(rig, part) == getattr(example, part), f"{part} differs from sim.toml"
    assert rig.estop is not None and rig.estop.port == "loop://"


def _data() -> dict[str, Any]:
    return tomllib.loads(DEFAULT_RIG_TOML)


def _error(data: dict[str, Any]) -> RigError:
    with pytest.raises(RigError) as info:
        parse_rig(data, "bench.toml")
    return info.value


def test_unknown_key_suggests_the_right_one() -> None:
    d = _data()
    d["channel"][0]["outptu"] = 1
    err = _error(d)
    assert err.source == "bench.toml" and err.key == "channel[0].outptu"
    assert "did you mean 'output'" in str(err)


def test_bad_family_lists_the_allowed_ones() -> None:
    d = _data()
    d["device"][0]["family"] = "k2400"
    err = _error(d)
    assert err.key == "device[0].family" and "board, k6221, k33500b" in str(err)


def test_channel_must_name_a_known_device_and_a_free_output() -> None:
    d = _data()
    d["channel"][1]["device"] = "awg"
    assert _error(d).key == "channel[1].device"
    d = _data()
    d["channel"][1]["output"] = 1
    assert "already wired to 'biceps'" in str(_error(d))


def test_generator_needs_its_stage_gain() -> None:
    d = _data()
    d["device"][0].update(family="k33500b", resource="TCPIP0::10.0.0.2::5025::SOCKET")
    err = _error(d)
    assert err.key == "device[0].output" and "transconductance_ma_per_v" in str(err)


def test_numbers_are_checked() -> None:
    d = _data()
    d["load"][0]["series_ohm"] = -5
    assert _error(d).key == "load[0].series_ohm"
    d = _data()
    d["estop"]["poll_interval_s"] = "fast"
    assert "must be a number" in str(_error(d))


def test_estop_line_and_meter_channel_are_checked() -> None:
    d = _data()
    d["estop"]["line"] = "ri"
    assert "allowed: cts, dsr" in str(_error(d))
    d = _data()
    d["meter"] = {"kind": "dmm", "resource": "X::INSTR", "channel": "quads", "shunt_ohm": 10}
    assert _error(d).key == "meter.channel"
    d["meter"]["channel"] = "triceps"
    assert "the scenarios drive and watch the agonist 'biceps'" in str(_error(d))


def test_scenario_pair_must_differ_and_ramps_must_fit() -> None:
    d = _data()
    d["scenario"]["antagonist"] = "biceps"
    assert _error(d).key == "scenario.antagonist"
    d = _data()
    d["scenario"]["ramp_s"] = 2.0
    assert _error(d).key == "scenario.on_s"


def test_sim_options_only_for_simulators() -> None:
    d = _data()
    d["device"][0]["resource"] = "/dev/ttyACM0"
    d["device"][0]["sim"] = {"watchdog_ms": 100}
    assert "only with resource" in str(_error(d))


def test_missing_and_broken_files(tmp_path: Path) -> None:
    with pytest.raises(RigError, match="no such file"):
        load_rig(tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[rig\nname=1", encoding="utf-8")
    with pytest.raises(RigError, match="not valid TOML") as info:
        load_rig(bad)
    assert str(bad) in str(info.value)
