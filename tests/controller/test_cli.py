"""`stimctl check` on every example and `stimctl log`, through click's CliRunner."""

from __future__ import annotations

import json
from datetime import UTC
from pathlib import Path

import pytest
from click.testing import CliRunner

from controller.audit import AuditLog
from controller.cli import main
from controller.exit_codes import ExitCode

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
ACCEPTED = ["face.toml", "body.toml", "needle.toml", "microcurrent.toml", "amplipulse.toml", "demo.toml"]


def run(*args: str) -> tuple[int, str]:
    r = CliRunner().invoke(main, list(args))
    if r.exception and not isinstance(r.exception, SystemExit):
        raise r.exception
    return r.exit_code, r.output


def test_exit_codes_are_the_contract() -> None:
    assert [int(c) for c in ExitCode] == [0, 1, 2, 3, 4, 5, 130]


@pytest.mark.parametrize("name", ACCEPTED)
def test_examples_pass(name: str) -> None:
    code, out = run("check", str(EXAMPLES / name))
    assert code == ExitCode.OK, out
    assert "OK" in out and "Timeline" in out and "RMS" in out


def test_over_limit_is_refused() -> None:
    code, out = run("check", str(EXAMPLES / "over_limit.toml"))
    assert code == ExitCode.REFUSED
    assert "25 mA exceeds 15 mA" in out and "200 Hz" in out and "charge-balanced" in out
    assert "Nothing was sent" in out


def test_every_example_is_covered() -> None:
    assert {f.name for f in EXAMPLES.glob("*.toml")} == set(ACCEPTED) | {"over_limit.toml"}


def test_profile_option_and_user_profile() -> None:
    tight = str(EXAMPLES / "profiles" / "tight-face.toml")
    code, out = run("check", str(EXAMPLES / "face.toml"), "--profile", tight)
    assert code == ExitCode.OK and "tight-face" in out and "based on face" in out
    code, out = run("check", str(EXAMPLES / "body.toml"), "--profile", "face")
    assert code == ExitCode.REFUSED


def test_invalid_inputs_exit_2(tmp_path: Path) -> None:
    code, out = run("check", str(tmp_path / "missing.toml"))
    assert code == ExitCode.INVALID_INPUT and "no such file" in out
    bad = tmp_path / "bad.toml"
    bad.write_text((EXAMPLES / "face.toml").read_text().replace("amplitude_ma = 8.0", "amplitude = 8.0", 1))
    code, out = run("check", str(bad))
    assert code == ExitCode.INVALID_INPUT and "channel[0].amplitude" in out and "amplitude_ma" in out
    code, out = run("check", str(EXAMPLES / "face.toml"), "--profile", "nosuch")
    assert code == ExitCode.INVALID_INPUT and "not a built-in profile" in out
    loose = tmp_path / "loose.toml"
    loose.write_text('base = "face"\nmax_amplitude_ma = 30\n')
    code, out = run("check", str(EXAMPLES / "face.toml"), "--profile", str(loose))
    assert code == ExitCode.INVALID_INPUT and "built-in 15, attempted 30" in out


def test_json_output() -> None:
    code, out = run("check", str(EXAMPLES / "over_limit.toml"), "--json")
    assert code == ExitCode.REFUSED
    d = json.loads(out)
    assert d["ok"] is False and d["profile"] == "face"
    assert {v["quantity"] for v in d["violations"]} >= {"amplitude_ma", "frequency_hz", "net_charge_uc"}
    code, out = run("check", str(EXAMPLES / "needle.toml"), "--json")
    d = json.loads(out)
    assert d["ok"] is True and d["channels"][0]["charge_per_phase_uc"] == pytest.approx(2.0)


def test_bad_device_option_is_invalid_input() -> None:
    code, out = run("check", str(EXAMPLES / "face.toml"), "--device", "a=socket://x", "--device", "b=socket://y")
    assert code == ExitCode.INVALID_INPUT and "not used by the program" in out


def test_help_teaches() -> None:
    code, out = run("check", "--help")
    assert code == 0 and "Exit codes" in out and "--profile" in out and "examples/face.toml" in out
    code, out = run("log", "--help")
    assert code == 0 and "verify" in out and "show" in out


# --- stimctl log -----------------------------------------------------------------------------

def _log(tmp_path: Path) -> Path:
    p = tmp_path / "s.jsonl"
    with AuditLog(p) as log:
        log.append("state_change", durable=True, src="idle", dst="armed")
        log.append("fault", durable=True, kind="lead_off", channel=2)
        log.append("state_change", durable=True, src="armed", dst="fault")
    return p


def test_log_verify_ok_broken_and_missing(tmp_path: Path) -> None:
    p = _log(tmp_path)
    code, out = run("log", "verify", str(p))
    assert code == ExitCode.OK and "3 records" in out
    lines = p.read_text().splitlines(keepends=True)
    p.write_text(lines[0] + lines[2])
    code, out = run("log", "verify", str(p))
    assert code == ExitCode.FAULT and "line 2" in out
    code, out = run("log", "verify", str(tmp_path / "nope.jsonl"))
    assert code == ExitCode.INVALID_INPUT


def test_log_verify_torn_tail_passes_with_a_note(tmp_path: Path) -> None:
    p = _log(tmp_path)
    with open(p, "a") as fh:
        fh.write('{"seq":3,')
    code, out = run("log", "verify", str(p))
    assert code == ExitCode.OK and "torn" in out


def test_log_show_and_filter(tmp_path: Path) -> None:
    p = _log(tmp_path)
    code, out = run("log", "show", str(p))
    assert code == 0 and out.count("state_change") == 2 and "lead_off" in out
    code, out = run("log", "show", str(p), "--event", "fault", "--json")
    recs = [json.loads(x) for x in out.splitlines()]
    assert [r["event"] for r in recs] == ["fault"] and recs[0]["channel"] == 2
    code, out = run("log", "show", str(tmp_path / "nope.jsonl"))
    assert code == ExitCode.INVALID_INPUT


def test_log_show_follow_sees_new_records(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from controller import log_cli

    p = _log(tmp_path)
    polls = {"n": 0}

    def fake_sleep(_s: float) -> None:
        # The writer appends between polls; the third poll ends the follow like Ctrl-C would.
        polls["n"] += 1
        if polls["n"] == 1:
            with AuditLog(p) as log:
                log.append("stimulating", amplitude_ma=12.5)
        if polls["n"] >= 3:
            raise KeyboardInterrupt

    monkeypatch.setattr(log_cli, "_sleep", fake_sleep)
    code, out = run("log", "show", str(p), "--follow")
    assert code == 0 and "stimulating" in out and "12.5" in out


def test_check_against_the_simulated_board() -> None:
    # The production path: open the built-in simulated board over its real transport, read its
    # capabilities, close it (outputs off). The board allows 80 V, the microcurrent profile 14 V.
    code, out = run("check", str(EXAMPLES / "microcurrent.toml"), "--device", "sim")
    assert code == ExitCode.OK, out
    assert "device main" in out and "compliance to at most 14 V" in out


def test_check_with_subject_applies_the_rest_period(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from datetime import datetime, timedelta

    from controller.history import SessionHistory

    monkeypatch.setenv("STIMCTL_STATE_DIR", str(tmp_path))
    code, _ = run("check", str(EXAMPLES / "face.toml"), "--subject", "S-1")
    assert code == ExitCode.OK
    now = datetime.now(UTC)
    SessionHistory().record("S-1", "face", now - timedelta(hours=2), now - timedelta(hours=1))
    code, out = run("check", str(EXAMPLES / "face.toml"), "--subject", "S-1")
    assert code == ExitCode.REFUSED and "rest between sessions" in out
    code, _ = run("check", str(EXAMPLES / "body.toml"), "--subject", "S-1")
    assert code == ExitCode.OK


def test_profiles_command() -> None:
    code, out = run("profiles")
    assert code == 0 and all(n in out for n in ("face", "body", "needle", "microcurrent", "amplipulse"))
    code, out = run("profiles", "needle")
    assert code == 0 and "shannon_k_max" in out and "1.85" in out and "implanted pacemaker" in out
    code, out = run("profiles", str(EXAMPLES / "profiles" / "tight-face.toml"))
    assert code == 0 and "based on face" in out and "recent facial filler injections" in out
    code, out = run("profiles", "nosuch")
    assert code == ExitCode.INVALID_INPUT
