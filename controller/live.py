"""The live display of a running session (rich), and its plain-text form for logs and pipes."""

from __future__ import annotations

from typing import Any

from rich.console import Console, Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from controller.machine import LATCHED, State
from controller.session import Session, SessionEvent

_STATE_STYLE = {
    State.IDLE: "dim", State.ARMED: "yellow", State.RAMPING_UP: "cyan",
    State.STIMULATING: "bold green", State.PAUSED: "yellow", State.RAMPING_DOWN: "cyan",
    State.DONE: "bold", State.FAULT: "bold white on red", State.ESTOP: "bold white on red",
}


def _fmt_ma(value: float | None) -> str:
    return "-" if value is None else f"{value:6.2f}"


def _fmt_s(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    m, s = divmod(int(round(seconds)), 60)
    return f"{m:d}:{s:02d}"


def render(session: Session, hint: str = "") -> Group:
    """One frame: the state, the time, a row per channel and the faults."""
    state = session.state
    head = Text()
    head.append(f" {state.value.upper()} ", style=_STATE_STYLE.get(state, ""))
    head.append(f"  {session.program.session.name}  profile {session.profile.name}")
    head.append(f"   elapsed {_fmt_s(session.elapsed_s)}")
    head.append(f"   left {_fmt_s(session.remaining_s)}")
    table = Table(expand=False, box=None, padding=(0, 1))
    for col, justify in (("channel", "left"), ("out", "left"), ("phase", "left"),
                         ("set mA", "right"), ("measured mA", "right"), ("target mA", "right"),
                         ("load ohm", "right"), ("", "left")):
        table.add_column(col, justify=justify)  # type: ignore[arg-type]
    for v in session.channel_views():
        on = v.output_on
        mark = "[bold green]ON[/]" if on else ("[dim]off[/]" if on is False else "?")
        table.add_row(
            v.name, f"{v.device}:{v.output}", v.phase, _fmt_ma(v.setpoint_ma),
            _fmt_ma(v.measured_ma), _fmt_ma(v.target_ma),
            "-" if not v.load_ohm else f"{v.load_ohm:.0f}",
            mark + (" [red]COMPLIANCE[/]" if v.compliance else ""),
        )
    parts: list[Any] = [head, table]
    if session.faults:
        lines = "\n".join(f"- {f['reason']}" for f in session.faults[-3:])
        parts.append(Panel(lines, title="faults (outputs switched off, latched)",
                           border_style="red"))
    if hint and state not in LATCHED:
        parts.append(Text(hint, style="dim"))
    return Group(*parts)


def plain_line(event: SessionEvent, t0_s: float = 0.0) -> str | None:
    """A one-line description of the events worth printing without a terminal."""
    d = event.detail
    t = event.t_s - t0_s
    if event.kind == "state":
        return f"[{t:8.3f} s] {d['src']} -> {d['dst']} ({d['trigger']})"
    if event.kind == "fault":
        return f"[{t:8.3f} s] FAULT: {d['reason']}"
    if event.kind == "phase":
        return f"[{t:8.3f} s] {d['channel']}: {d['phase']}"
    return None


def print_events(console: Console, session: Session, phases: bool = False) -> None:
    """Print state changes and faults (and phases if asked) as they happen, with times
    relative to the subscription."""
    import asyncio

    t0 = asyncio.get_running_loop().time()

    def observer(event: SessionEvent) -> None:
        if event.kind == "phase" and not phases:
            return
        line = plain_line(event, t0)
        if line is not None:
            console.print(line, highlight=False)

    session.subscribe(observer)
