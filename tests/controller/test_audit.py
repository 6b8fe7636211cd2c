"""The audit log: the chain verifies; edits, deletions and reordering are caught; a torn last
line is tolerated; resuming continues the chain; durable records are fsynced."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from controller.audit import GENESIS_HASH, AuditLog, AuditLogError, record_hash, verify_log


def _write(path: Path, n: int = 5) -> list[dict[str, object]]:
    with AuditLog(path) as log:
        return [log.append("state_change", durable=(i % 2 == 0), src="idle", dst=f"s{i}", amplitude_ma=1.5 * i)
                for i in range(n)]


def _lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines(keepends=True)


def test_records_have_the_contract_fields(tmp_path: Path) -> None:
    log_path = tmp_path / "a.jsonl"
    recs = _write(log_path, 3)
    assert [r["seq"] for r in recs] == [0, 1, 2]
    assert recs[0]["prev_hash"] == GENESIS_HASH
    assert recs[1]["prev_hash"] == recs[0]["hash"]
    for r in recs:
        assert r["event"] == "state_change" and str(r["t_wall"]).endswith("Z")
        assert isinstance(r["t_mono_s"], float) and r["hash"] == record_hash(r)
    on_disk = [json.loads(line) for line in _lines(log_path)]
    assert on_disk == recs


def test_chain_verifies(tmp_path: Path) -> None:
    p = tmp_path / "a.jsonl"
    recs = _write(p, 10)
    r = verify_log(p)
    assert r.ok and r.records == 10 and r.first_bad_line is None and not r.torn_tail
    assert r.last_hash == recs[-1]["hash"]


def test_edited_field_is_detected(tmp_path: Path) -> None:
    p = tmp_path / "a.jsonl"
    _write(p)
    lines = _lines(p)
    lines[2] = lines[2].replace('"amplitude_ma":3.0', '"amplitude_ma":30.0')
    assert '"amplitude_ma":30.0' in lines[2]
    p.write_text("".join(lines))
    r = verify_log(p)
    assert not r.ok and r.first_bad_line == 3 and "edited" in r.reason and r.records == 2


def test_deleted_line_is_detected(tmp_path: Path) -> None:
    p = tmp_path / "a.jsonl"
    _write(p)
    lines = _lines(p)
    del lines[1]
    p.write_text("".join(lines))
    r = verify_log(p)
    assert not r.ok and r.first_bad_line == 2 and "deleted" in r.reason


def test_deleting_the_last_line_is_caught_only_by_the_kept_hash(tmp_path: Path) -> None:
    p = tmp_path / "a.jsonl"
    recs = _write(p)
    p.write_text("".join(_lines(p)[:-1]))
    r = verify_log(p)
    # The chain itself cannot know it was longer; the last hash kept elsewhere shows it.
    assert r.ok and r.last_hash != recs[-1]["hash"]


def test_reordered_pair_is_detected(tmp_path: Path) -> None:
    p = tmp_path / "a.jsonl"
    _write(p)
    lines = _lines(p)
    lines[2], lines[3] = lines[3], lines[2]
    p.write_text("".join(lines))
    r = verify_log(p)
    assert not r.ok and r.first_bad_line == 3


def test_recomputed_hash_of_an_edited_record_still_breaks_the_next_link(tmp_path: Path) -> None:
    p = tmp_path / "a.jsonl"
    _write(p)
    lines = _lines(p)
    rec = json.loads(lines[1])
    rec["dst"] = "forged"
    rec["hash"] = record_hash(rec)
    lines[1] = json.dumps(rec, sort_keys=True, separators=(",", ":")) + "\n"
    p.write_text("".join(lines))
    r = verify_log(p)
    assert not r.ok and r.first_bad_line == 3 and "prev_hash" in r.reason


def test_garbage_in_the_middle_fails(tmp_path: Path) -> None:
    p = tmp_path / "a.jsonl"
    _write(p)
    lines = _lines(p)
    lines.insert(2, "not json\n")
    p.write_text("".join(lines))
    r = verify_log(p)
    assert not r.ok and r.first_bad_line == 3


def test_torn_last_line_is_tolerated(tmp_path: Path) -> None:
    p = tmp_path / "a.jsonl"
    _write(p, 4)
    with open(p, "ab") as fh:
        fh.write(b'{"seq":4,"t_wall":"2026-')
    r = verify_log(p)
    assert r.ok and r.torn_tail and r.records == 4 and r.first_bad_line == 5 and "torn" in r.reason


def test_resume_continues_the_chain(tmp_path: Path) -> None:
    p = tmp_path / "a.jsonl"
    first = _write(p, 3)
    with AuditLog(p) as log:
        assert log.next_seq == 3 and log.last_hash == first[-1]["hash"]
        rec = log.append("resumed")
    assert rec["seq"] == 3 and rec["prev_hash"] == first[-1]["hash"]
    r = verify_log(p)
    assert r.ok and r.records == 4


def test_resume_after_a_torn_line_keeps_its_bytes(tmp_path: Path) -> None:
    p = tmp_path / "a.jsonl"
    _write(p, 3)
    with open(p, "ab") as fh:
        fh.write(b'{"seq":3,"event":"fau')
    with AuditLog(p) as log:
        log.append("after_crash")
    r = verify_log(p)
    assert r.ok and r.records == 5 and not r.torn_tail
    recs = [json.loads(line) for line in _lines(p)]
    assert recs[3]["event"] == "log_torn_tail" and recs[3]["torn_text"] == '{"seq":3,"event":"fau'
    assert recs[4]["event"] == "after_crash"


def test_resume_refuses_a_broken_chain(tmp_path: Path) -> None:
    p = tmp_path / "a.jsonl"
    _write(p)
    lines = _lines(p)
    del lines[1]
    p.write_text("".join(lines))
    with pytest.raises(AuditLogError, match="line 2"):
        AuditLog(p)


def test_durable_records_are_fsynced(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    real = os.fsync

    def counting_fsync(fd: int) -> None:
        calls.append(fd)
        real(fd)

    monkeypatch.setattr(os, "fsync", counting_fsync)
    log = AuditLog(tmp_path / "a.jsonl")
    assert len(calls) == 1  # the new file's directory entry
    log.append("heartbeat")
    assert len(calls) == 1
    log.append("fault", durable=True, kind="lead_off")
    assert len(calls) == 2
    log.close()


def test_fields_that_json_cannot_hold_do_not_lose_the_record(tmp_path: Path) -> None:
    from drivers.base import FaultKind, FaultReport

    p = tmp_path / "a.jsonl"
    with AuditLog(p) as log:
        rec = log.append("fault", durable=True, measured_ma=float("nan"),
                         report=FaultReport(FaultKind.LEAD_OFF, 2, "open"), kinds={FaultKind.WATCHDOG},
                         when=object())
    assert rec["measured_ma"] == "nan" and rec["report"]["kind"] == "lead_off"
    assert verify_log(p).ok


def test_reserved_field_names_refused(tmp_path: Path) -> None:
    with AuditLog(tmp_path / "a.jsonl") as log:
        with pytest.raises(ValueError, match="seq"):
            log.append("x", seq=5)
        with pytest.raises(ValueError):
            log.append("")


def test_survives_a_killed_process(tmp_path: Path) -> None:
    p = tmp_path / "killed.jsonl"
    code = (
        "import os\n"
        "from controller.audit import AuditLog\n"
        f"log = AuditLog({str(p)!r})\n"
        "for i in range(20):\n"
        "    log.append('state_change', durable=True, i=i)\n"
        "os._exit(9)\n"  # no close, no atexit, no flush beyond what append did
    )
    subprocess.run([sys.executable, "-c", code], check=False, timeout=60)
    r = verify_log(p)
    assert r.ok and r.records == 20


def test_missing_file(tmp_path: Path) -> None:
    r = verify_log(tmp_path / "none.jsonl")
    assert not r.ok and "no such file" in r.reason


def test_empty_file_is_an_empty_chain(tmp_path: Path) -> None:
    p = tmp_path / "e.jsonl"
    p.write_text("")
    assert verify_log(p).ok and verify_log(p).records == 0
