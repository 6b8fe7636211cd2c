"""`stimctl log verify` and `stimctl log show`: read a session's audit log."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.markup import escape

from controller.audit import verify_log
from controller.exit_codes import ExitCode

_BASE_KEYS = ("seq", "t_wall", "t_mono_s", "event", "prev_hash", "hash")
_ALARM_WORDS = ("fault", "estop", "emergency", "refused", "error", "torn")
FOLLOW_POLL_S = 0.2
_sleep = time.sleep  # tests replace it to drive --follow without waiting


@click.group("log")
def log_group() -> None:
    """Read and verify audit logs (hash-chained JSON Lines written by every session)."""


@log_group.command("verify")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
def verify_command(file: Path) -> None:
    """Check that FILE's hash chain is intact: no record edited, deleted, inserted or moved.

    A last line cut short by a crash is reported but does not fail the log.

    \b
    Exit codes:
      0  the chain is intact
      2  FILE does not exist or cannot be read
      4  the chain is broken: the first bad line and the reason are printed
    """
    err = Console(stderr=True, highlight=False, soft_wrap=True)
    out = Console(highlight=False, soft_wrap=True)
    if not file.is_file():
        err.print(f"[bold red]error:[/] {escape(str(file))}: no such file (give the path of an audit log)")
        sys.exit(ExitCode.INVALID_INPUT)
    result = verify_log(file)
    if result.ok:
        out.print(f"[bold green]OK[/] {escape(str(file))}: {result.records} records, chain intact, "
                  f"last hash {result.last_hash[:16]}...")
        if result.torn_tail:
            out.print(f"[yellow]note[/] line {result.first_bad_line}: {escape(result.reason)}")
        sys.exit(ExitCode.OK)
    if result.first_bad_line is None:
        err.print(f"[bold red]error:[/] {escape(result.reason)}")
        sys.exit(ExitCode.INVALID_INPUT)
    out.print(f"[bold red]BROKEN[/] {escape(str(file))} line {result.first_bad_line}: "
              f"{escape(result.reason)} ({result.records} records before it verify)", soft_wrap=True)
    sys.exit(ExitCode.FAULT)


def _format(rec: dict[str, Any]) -> str:
    fields = " ".join(
        f"{k}={json.dumps(v, ensure_ascii=False)}" for k, v in rec.items() if k not in _BASE_KEYS
    )
    event = str(rec.get("event", "?"))
    style = "bold red" if any(w in event.lower() for w in _ALARM_WORDS) else "cyan"
    return (f"{rec.get('seq', '?'):>5} {escape(str(rec.get('t_wall', '')))} "
            f"[{style}]{escape(event)}[/] {escape(fields)}")


def _emit(console: Console, line: bytes, events: tuple[str, ...], as_json: bool) -> None:
    try:
        rec = json.loads(line.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        console.print(f"[bold red]unreadable line[/]: {escape(line[:200].decode('utf-8', 'replace'))}")
        return
    if not isinstance(rec, dict):
        console.print("[bold red]not a record[/]")
        return
    if events and rec.get("event") not in events:
        return
    if as_json:
        click.echo(json.dumps(rec, ensure_ascii=False))
    else:
        console.print(_format(rec), soft_wrap=True)


@log_group.command("show")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--follow", "-f", is_flag=True, help="Keep printing new records as they are written, until Ctrl-C.")
@click.option("--event", "events", multiple=True, metavar="NAME", help="Only records of this event (repeatable).")
@click.option("--json", "as_json", is_flag=True, help="Print the raw records, one JSON object per line.")
def show_command(file: Path, follow: bool, events: tuple[str, ...], as_json: bool) -> None:
    """Print FILE's records: sequence number, wall time, event and its fields.

    Faults, emergency stops and refusals are highlighted. Showing does not verify the chain;
    run `stimctl log verify FILE` for that.

    \b
    Examples:
      stimctl log show session.jsonl --event state_change
      stimctl log show session.jsonl --follow        (while a session runs)
    """
    console = Console(highlight=False, soft_wrap=True)
    err = Console(stderr=True, highlight=False, soft_wrap=True)
    if not file.is_file() and not follow:
        err.print(f"[bold red]error:[/] {escape(str(file))}: no such file (give the path of an audit log)")
        sys.exit(ExitCode.INVALID_INPUT)
    pending = b""
    offset = 0
    try:
        while True:
            try:
                with open(file, "rb") as fh:
                    fh.seek(offset)
                    chunk = fh.read()
            except FileNotFoundError:
                chunk = b""
            offset += len(chunk)
            pending += chunk
            # Only complete lines: the writer may be halfway through one.
            *lines, pending = pending.split(b"\n")
            for line in lines:
                if line.strip():
                    _emit(console, line, events, as_json)
            if not follow:
                if pending.strip():
                    console.print(f"[yellow]torn last line ({len(pending)} bytes), not shown[/]")
                return
            _sleep(FOLLOW_POLL_S)
    except KeyboardInterrupt:
        return
