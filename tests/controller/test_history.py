"""Session history and the rest period between sessions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from controller.history import HistoryError, SessionHistory, default_state_dir
from controller.profiles import load_profile

T0 = datetime(2026, 11, 1, 10, 0, tzinfo=UTC)


def test_default_path_uses_state_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("STIMCTL_STATE_DIR", str(tmp_path))
    assert SessionHistory().path == tmp_path / "history.jsonl"
    monkeypatch.delenv("STIMCTL_STATE_DIR")
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "x"))
    assert default_state_dir() == tmp_path / "x" / "stimctl"


def test_rest_period(tmp_path: Path) -> None:
    h = SessionHistory(tmp_path / "h.jsonl")
    assert h.last_session("s1", "face") is None
    assert h.check_rest("s1", "face", T0) is None
    h.record("s1", "face", T0, T0 + timedelta(minutes=20))
    assert h.last_session("s1", "face") == T0 + timedelta(minutes=20)
    f = h.check_rest("s1", "face", T0 + timedelta(days=1))
    assert f is not None and f.quantity == "rest_between_sessions_s" and f.limit == 2 * 86400
    assert "next session from 2026-11-03T10:20" in f.message
    assert h.check_rest("s1", "face", T0 + timedelta(days=2, minutes=20)) is None
    # Another subject, another profile: no rest needed.
    assert h.check_rest("s2", "face", T0 + timedelta(hours=1)) is None
    assert h.check_rest("s1", "body", T0 + timedelta(hours=1)) is None


def test_tightened_profile_shares_the_base_clock(tmp_path: Path) -> None:
    tight = load_profile(Path(__file__).resolve().parents[2] / "examples" / "profiles" / "tight-face.toml")
    h = SessionHistory(tmp_path / "h.jsonl")
    h.record("s1", "face", T0, T0 + timedelta(minutes=15))
    f = h.check_rest("s1", tight, T0 + timedelta(days=2, hours=1))
    assert f is not None and f.limit == 3 * 86400  # the tighter rest applies


def test_naive_datetimes_refused(tmp_path: Path) -> None:
    h = SessionHistory(tmp_path / "h.jsonl")
    with pytest.raises(ValueError, match="timezone"):
        h.record("s1", "face", datetime(2026, 1, 1), datetime(2026, 1, 1))


def test_corrupt_history_says_where(tmp_path: Path) -> None:
    p = tmp_path / "h.jsonl"
    h = SessionHistory(p)
    h.record("s1", "face", T0, T0)
    with open(p, "a") as fh:
        fh.write("garbage\n")
    with pytest.raises(HistoryError, match="line 2"):
        h.records()


def test_torn_last_line_ignored(tmp_path: Path) -> None:
    p = tmp_path / "h.jsonl"
    h = SessionHistory(p)
    h.record("s1", "face", T0, T0)
    with open(p, "a") as fh:
        fh.write('{"subject_id": "s1", "prof')
    assert len(h.records()) == 1


def test_a_user_profile_must_be_passed_as_an_object(tmp_path: Path) -> None:
    from controller.limits import ProfileError

    h = SessionHistory(tmp_path / "h.jsonl")
    with pytest.raises(ProfileError, match="Profile object"):
        h.check_rest("s1", "tight-face", T0)
    assert h.check_rest("s1", "face", T0) is None
