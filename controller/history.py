"""Session history per subject, for the rest period between sessions (face 2 days, body 1 day).

One JSON object per line in history.jsonl under $STIMCTL_STATE_DIR, else $XDG_STATE_HOME/stimctl,
else ~/.local/state/stimctl. Rest is counted per base profile (a tightened "tight-face" shares
the face clock) from the end of the last session that delivered any stimulation.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from controller.interlock import Finding
from controller.limits import Profile, ProfileError
from controller.profiles import BUILTIN_PROFILES


def default_state_dir() -> Path:
    env = os.environ.get("STIMCTL_STATE_DIR")
    if env:
        return Path(env)
    xdg = os.environ.get("XDG_STATE_HOME")
    if xdg:
        return Path(xdg) / "stimctl"
    return Path.home() / ".local" / "state" / "stimctl"


class HistoryError(Exception):
    """The history file exists but cannot be read or written."""


@dataclass(frozen=True)
class SessionRecord:
    subject_id: str
    profile: str
    """The base profile name (see Profile.base)."""
    started_at: datetime
    ended_at: datetime
    outcome: str
    program: str = ""
    delivered_s: float = 0.0


def _as_utc(dt: datetime) -> datetime:
    if dt.tzinfo is None:
        raise ValueError("history times must be timezone-aware (use datetime.now(timezone.utc))")
    return dt.astimezone(UTC)


def _base_name(profile: Profile | str) -> str:
    if isinstance(profile, Profile):
        return profile.base
    return profile


class SessionHistory:
    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path) if path is not None else default_state_dir() / "history.jsonl"

    def records(self) -> list[SessionRecord]:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return []
        except (OSError, UnicodeDecodeError) as exc:
            raise HistoryError(f"{self.path}: cannot be read: {exc}") from None
        out: list[SessionRecord] = []
        for lineno, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                d = json.loads(line)
                out.append(SessionRecord(
                    subject_id=str(d["subject_id"]),
                    profile=str(d["profile"]),
                    started_at=_as_utc(datetime.fromisoformat(d["started_at"])),
                    ended_at=_as_utc(datetime.fromisoformat(d["ended_at"])),
                    outcome=str(d.get("outcome", "")),
                    program=str(d.get("program", "")),
                    delivered_s=float(d.get("delivered_s", 0.0)),
                ))
            except (ValueError, KeyError, TypeError) as exc:
                if lineno == len(text.splitlines()) and not text.endswith("\n"):
                    break  # torn last line from a crash: ignore it
                raise HistoryError(
                    f"{self.path}: line {lineno} is not a session record ({exc}); fix or move the file"
                ) from None
        return out

    def record(
        self, subject_id: str, profile: Profile | str, started_at: datetime, ended_at: datetime,
        outcome: str = "done", program: str = "", delivered_s: float = 0.0,
    ) -> SessionRecord:
        """Append one session. Call it for every session that delivered any stimulation,
        however it ended (done, stopped, fault, estop)."""
        if not subject_id:
            raise ValueError("subject_id must not be empty")
        rec = SessionRecord(
            subject_id=subject_id, profile=_base_name(profile),
            started_at=_as_utc(started_at), ended_at=_as_utc(ended_at),
            outcome=outcome, program=program, delivered_s=delivered_s,
        )
        line: dict[str, Any] = {
            "subject_id": rec.subject_id, "profile": rec.profile,
            "started_at": rec.started_at.isoformat(), "ended_at": rec.ended_at.isoformat(),
            "outcome": rec.outcome, "program": rec.program, "delivered_s": rec.delivered_s,
        }
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "a", encoding="utf-8") as fh:
                fh.write(json.dumps(line, sort_keys=True) + "\n")
                fh.flush()
                os.fsync(fh.fileno())
        except OSError as exc:
            raise HistoryError(f"{self.path}: cannot be written: {exc}") from None
        return rec

    def last_session(self, subject_id: str, profile: Profile | str) -> datetime | None:
        """When the subject's last session under this (base) profile ended, or None."""
        base = _base_name(profile)
        ends = [r.ended_at for r in self.records() if r.subject_id == subject_id and r.profile == base]
        return max(ends) if ends else None

    def check_rest(self, subject_id: str, profile: Profile | str, now: datetime) -> Finding | None:
        """A violation if the subject has not rested the profile's minimum since the last
        session, else None. Pass the Profile object; a name works only for a built-in profile
        (a user profile's name cannot be resolved back to its limits)."""
        if isinstance(profile, Profile):
            prof = profile
        elif profile in BUILTIN_PROFILES:
            prof = BUILTIN_PROFILES[profile]
        else:
            # A user profile's name says nothing about its limits; only the object does.
            raise ProfileError(
                str(profile), "",
                "check_rest needs the Profile object for a profile that is not built in "
                "(pass the loaded Profile, not its name)",
            )
        last = self.last_session(subject_id, prof)
        if last is None:
            return None
        elapsed = (_as_utc(now) - last).total_seconds()
        need = prof.min_rest_between_sessions_s
        if elapsed >= need:
            return None
        next_ok = last + timedelta(seconds=need)
        return Finding(
            channel=None, quantity="rest_between_sessions_s", value=elapsed, limit=need, unit="s",
            message=(
                f"subject {subject_id!r} had a {prof.base} session ending {last.isoformat(timespec='minutes')}; "
                f"profile {prof.name!r} needs {need / 86400:g} day(s) of rest between sessions: "
                f"next session from {next_ok.isoformat(timespec='minutes')}"
            ),
        )
