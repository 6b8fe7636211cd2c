"""The audit log: append-only JSON Lines, each record hash-chained to the one before.

Each record holds seq (from 0), t_wall (ISO 8601 UTC), t_mono_s, event, the caller's fields,
prev_hash and hash: SHA-256 over the canonical JSON (sorted keys, no spaces, UTF-8) of the
record without its hash. Editing, deleting or reordering a record breaks the chain and
`verify_log` says where. A chain can be recomputed by someone who rewrites the whole file; to
make that detectable, keep the last hash somewhere else (a session report, a ticket).

Every record is flushed to the OS as it is written; state changes and faults are also
`os.fsync`ed (`durable=True`), so they survive a killed process and a power cut.
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import json
import math
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

GENESIS_HASH = "0" * 64
RESERVED_KEYS = frozenset({"seq", "t_wall", "t_mono_s", "event", "prev_hash", "hash"})


class AuditLogError(Exception):
    """The log cannot be written or continued (unreadable file, broken chain)."""


def _json_default(obj: object) -> object:
    if isinstance(obj, enum.Enum):
        return obj.value
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return dataclasses.asdict(obj)
    if isinstance(obj, (set, frozenset)):
        return sorted(obj, key=str)
    if isinstance(obj, (Path, datetime)):
        return str(obj)
    # Never let an odd field type lose a record (it may be the fault report that matters).
    return repr(obj)


def _sanitize(value: Any) -> Any:
    """JSON has no NaN or infinity; a fault record may carry one (a failed measurement)."""
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)
    if isinstance(value, dict):
        return {str(k): _sanitize(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_sanitize(v) for v in value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _sanitize(dataclasses.asdict(value))
    return value


def canonical_json(record: dict[str, Any]) -> str:
    return json.dumps(
        record, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False,
        default=_json_default,
    )


def record_hash(record: dict[str, Any]) -> str:
    body = {k: v for k, v in record.items() if k != "hash"}
    return hashlib.sha256(canonical_json(body).encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    records: int
    """Records that verified, in order, before any problem."""
    first_bad_line: int | None
    """1-based line number of the first problem (or of the torn last line), else None."""
    reason: str
    torn_tail: bool = False
    """The last line was cut short by a crash mid-write: reported, not a failure."""
    last_hash: str = GENESIS_HASH


def _iter_lines(data: bytes) -> Iterator[tuple[int, bytes, bool]]:
    """(line number, content, ended with a newline)."""
    start = 0
    lineno = 0
    while start < len(data):
        lineno += 1
        end = data.find(b"\n", start)
        if end == -1:
            yield lineno, data[start:], False
            return
        yield lineno, data[start:end], True
        start = end + 1


def _verify_bytes(data: bytes) -> tuple[VerifyResult, int]:
    """The result, and the byte offset where the last good record ends."""
    prev = GENESIS_HASH
    count = 0
    good_end = 0
    offset = 0
    for lineno, raw, has_newline in _iter_lines(data):
        line_end = offset + len(raw) + (1 if has_newline else 0)
        problem = ""
        rec: Any = None
        try:
            rec = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            problem = f"not a JSON record ({exc})"
        if not problem and not isinstance(rec, dict):
            problem = "not a JSON object"
        if problem:
            if not has_newline:
                return VerifyResult(
                    True, count, lineno,
                    f"the last line is torn (cut short mid-write, {len(raw)} bytes); "
                    f"the {count} records before it verify",
                    torn_tail=True, last_hash=prev,
                ), good_end
            return VerifyResult(False, count, lineno, problem, last_hash=prev), good_end
        assert isinstance(rec, dict)
        if rec.get("seq") != count:
            return VerifyResult(
                False, count, lineno,
                f"seq is {rec.get('seq')!r}, expected {count}: a record was deleted, inserted or moved",
                last_hash=prev,
            ), good_end
        if rec.get("prev_hash") != prev:
            return VerifyResult(
                False, count, lineno,
                "prev_hash does not match the hash of the record before: the chain is broken",
                last_hash=prev,
            ), good_end
        try:
            actual = record_hash(rec)
        except (TypeError, ValueError) as exc:
            return VerifyResult(False, count, lineno, f"cannot hash the record ({exc})", last_hash=prev), good_end
        if rec.get("hash") != actual:
            return VerifyResult(
                False, count, lineno,
                "hash does not match the record's content: the record was edited",
                last_hash=prev,
            ), good_end
        prev = actual
        count += 1
        good_end = line_end
        offset = line_end
    return VerifyResult(True, count, None, f"{count} records, chain intact", last_hash=prev), good_end


def verify_log(path: str | Path) -> VerifyResult:
    """Check every record's seq, prev_hash and hash. A torn last line (a crash mid-write) is
    reported in `reason` and `torn_tail` but does not fail the log."""
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        return VerifyResult(False, 0, None, f"{path}: no such file")
    except OSError as exc:
        return VerifyResult(False, 0, None, f"{path}: cannot be read: {exc.strerror or exc}")
    return _verify_bytes(data)[0]


def read_records(path: str | Path) -> list[dict[str, Any]]:
    """Every complete record, in order, without verifying (see verify_log for that)."""
    out: list[dict[str, Any]] = []
    for _lineno, raw, has_newline in _iter_lines(Path(path).read_bytes()):
        try:
            rec = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            if not has_newline:
                break
            raise
        if isinstance(rec, dict):
            out.append(rec)
    return out


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return  # not supported here (Windows): the file's own fsyncs still hold
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _utc_now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


class AuditLog:
    """Append records to `path`, creating it (and its directory) if needed.

    An existing file is verified first and the chain continues from its last record. A torn
    last line is cut off and its bytes kept in a `log_torn_tail` record, so nothing is lost and
    the chain stays whole. A log that fails verification is not continued: start a new file.
    Thread-safe: the blocking API facade may write from another thread.
    """

    def __init__(
        self, path: str | Path, *,
        monotonic: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], str] = _utc_now_iso,
    ) -> None:
        self.path = Path(path)
        self._monotonic = monotonic
        self._wall_clock = wall_clock
        self._lock = threading.Lock()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        torn_text: str | None = None
        if self.path.exists():
            data = self.path.read_bytes()
            result, good_end = _verify_bytes(data)
            if not result.ok:
                raise AuditLogError(
                    f"{self.path}: will not continue a log that fails verification at line "
                    f"{result.first_bad_line}: {result.reason}. Keep it as evidence and write to a "
                    f"new file."
                )
            if result.torn_tail:
                torn_text = data[good_end:].decode("utf-8", errors="replace")
                with open(self.path, "r+b") as fh:
                    fh.truncate(good_end)
                    fh.flush()
                    os.fsync(fh.fileno())
            self._seq = result.records
            self._prev = result.last_hash
            self._fh = open(self.path, "ab")
        else:
            self._seq = 0
            self._prev = GENESIS_HASH
            self._fh = open(self.path, "ab")
            _fsync_dir(self.path.parent)  # the new file's name survives a power cut too
        if torn_text is not None:
            self.append("log_torn_tail", durable=True, torn_text=torn_text)

    @property
    def last_hash(self) -> str:
        return self._prev

    @property
    def next_seq(self) -> int:
        return self._seq

    def append(self, event: str, *, durable: bool = False, **fields: Any) -> dict[str, Any]:
        """Write one record and return it. durable=True also fsyncs (state changes, faults)."""
        if not isinstance(event, str) or not event:
            raise ValueError("an audit event needs a non-empty name")
        clash = RESERVED_KEYS & fields.keys()
        if clash:
            raise ValueError(f"audit fields may not be named {', '.join(sorted(clash))}")
        with self._lock:
            if self._fh.closed:
                raise AuditLogError(f"{self.path}: the log is closed")
            record: dict[str, Any] = {
                "seq": self._seq,
                "t_wall": self._wall_clock(),
                "t_mono_s": self._monotonic(),
                "event": event,
            }
            record.update(_sanitize(fields))
            record["prev_hash"] = self._prev
            # Round-trip through JSON so the hash covers exactly what is written and read back.
            record = json.loads(canonical_json(record))
            record["hash"] = record_hash(record)
            line = canonical_json(record).encode("utf-8") + b"\n"
            self._fh.write(line)
            self._fh.flush()
            if durable:
                os.fsync(self._fh.fileno())
            self._seq += 1
            self._prev = record["hash"]
            return record

    def close(self) -> None:
        with self._lock:
            if not self._fh.closed:
                self._fh.flush()
                os.fsync(self._fh.fileno())
                self._fh.close()

    def __enter__(self) -> AuditLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
