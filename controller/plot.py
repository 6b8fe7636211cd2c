"""Plots of what a session delivered (from a simulator trace) or commanded (from an audit log).

Each channel gets its own row, all rows share one time axis, and the two channels of an
antagonist pair share a row in two colours, so a handover, its dead time and any overlap
(shaded red) are visible at a glance.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from sim.trace import TraceEvent, active_intervals, load_trace  # noqa: E402


class PlotInputError(Exception):
    """The file is neither a trace nor an audit log, or has nothing to plot."""


@dataclass(frozen=True)
class Series:
    key: str
    """A label: a channel name, or device:output."""
    times_s: tuple[float, ...]
    amplitudes_ma: tuple[float, ...]


@dataclass(frozen=True)
class PlotData:
    title: str
    what: str
    """'delivered' (trace) or 'commanded' (audit log)."""
    series: tuple[Series, ...]
    pairs: tuple[tuple[str, str], ...]
    faults: tuple[tuple[float, str], ...] = ()


def _first_record(path: Path) -> dict[str, Any]:
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise PlotInputError(f"{path}: the first line is not JSON ({exc})") from None
                if isinstance(rec, dict):
                    return rec
                break
    raise PlotInputError(f"{path}: empty, or not JSON Lines")


def load_plot_data(path: str | Path, names: dict[tuple[str, int], str] | None = None,
                   pairs: Sequence[tuple[str, str]] = ()) -> PlotData:
    """Read a trace or an audit log; names maps (device, output) to channel names."""
    p = Path(path)
    first = _first_record(p)
    if "t_s" in first and "channel" in first:
        return _from_trace(p, names or {}, tuple(pairs))
    if "event" in first and "hash" in first:
        return _from_log(p)
    raise PlotInputError(
        f"{p}: neither a simulator trace (records with t_s and channel) nor an audit log "
        "(records with event and hash)")


def _from_trace(path: Path, names: dict[tuple[str, int], str],
                pairs: tuple[tuple[str, str], ...]) -> PlotData:
    events = load_trace(path)
    if not events:
        raise PlotInputError(f"{path}: the trace has no events")
    keys: dict[tuple[str, int], list[TraceEvent]] = {}
    for e in events:
        keys.setdefault((e.device, e.channel), []).append(e)
    series = []
    t0 = events[0].t_s
    for (dev, ch), evs in sorted(keys.items()):
        if (dev, ch) not in names and not any(e.active for e in evs):
            continue  # an output nobody used: leave it out
        label = names.get((dev, ch), f"{dev}:{ch}")
        series.append(Series(label, tuple(e.t_s - t0 for e in evs),
                             tuple(e.amplitude_ma if e.on else 0.0 for e in evs)))
    if not series:
        raise PlotInputError(f"{path}: no output was ever active in this trace")
    return PlotData(f"{path.name}: delivered current (simulator trace)", "delivered",
                    tuple(series), pairs)


def _from_log(path: Path) -> PlotData:
    from controller.audit import read_records

    records = read_records(path)
    pairs: list[tuple[str, str]] = []
    devices: dict[str, list[str]] = {}
    data: dict[str, list[tuple[float, float]]] = {}
    on: dict[str, bool] = {}
    amp: dict[str, float] = {}
    faults: list[tuple[float, str]] = []
    title = path.name
    hw_note = ""
    t_first: float | None = None
    for rec in records:
        t = rec.get("t_loop_s")
        if not isinstance(t, (int, float)):
            continue
        t_first = t if t_first is None else t_first
        ev = rec.get("event")
        if ev == "connected":
            for c in rec.get("channels", []):
                data.setdefault(c["name"], [])
                devices.setdefault(c["device"], []).append(c["name"])
            pairs = [(a, b) for a, b in rec.get("pairs", [])]
            title = f"{path.name}: {rec.get('program', '')}"
        elif ev == "command":
            what, value = rec.get("what"), rec.get("value", 0.0)
            target = str(rec.get("target"))
            if what == "amplitude":
                amp[target] = float(value)
            elif what == "output":
                on[target] = bool(value)
            elif what == "all_off":
                for name in devices.get(target, []):
                    on[name] = False
            for key in data:
                level = amp.get(key, 0.0) if on.get(key, False) else 0.0
                if not data[key] or data[key][-1][1] != level:
                    data[key].append((float(t), level))
        elif ev == "alternation_started" and rec.get("mode") == "hardware":
            # The device times the cycle itself; the log can only show its plateau.
            for member in (rec.get("agonist"), rec.get("antagonist")):
                if isinstance(member, str) and member in data:
                    on[member] = True
                    level = amp.get(member, 0.0)
                    if not data[member] or data[member][-1][1] != level:
                        data[member].append((float(t), level))
            hw_note = " - hardware-alternated pairs show their plateau; see the trace"
        elif ev in ("fault", "emergency_stop"):
            faults.append((float(t), str(rec.get("reason", ev))))
    if not any(data.values()):
        raise PlotInputError(f"{path}: the audit log records no output commands to plot")
    t0 = t_first or 0.0
    series = tuple(Series(n, tuple(t - t0 for t, _ in pts), tuple(a for _, a in pts))
                   for n, pts in data.items())
    return PlotData(f"{title} (commanded, from the audit log{hw_note})", "commanded", series,
                    tuple(pairs), tuple((t - t0, r) for t, r in faults))


def _steps(s: Series, end_s: float) -> tuple[list[float], list[float]]:
    xs, ys = list(s.times_s), list(s.amplitudes_ma)
    if xs and xs[-1] < end_s:
        xs.append(end_s)
        ys.append(ys[-1])
    return xs, ys


def make_figure(data: PlotData) -> Figure:
    by_key = {s.key: s for s in data.series}
    rows: list[tuple[str, list[Series]]] = []
    used: set[str] = set()
    for a, b in data.pairs:
        members = [by_key[k] for k in (a, b) if k in by_key]
        if members:
            rows.append((f"{a} / {b}", members))
            used.update(m.key for m in members)
    for s in data.series:
        if s.key not in used:
            rows.append((s.key, [s]))
    end_s = max((s.times_s[-1] for s in data.series if s.times_s), default=1.0)
    fig, axes = plt.subplots(len(rows), 1, sharex=True, squeeze=False,
                             figsize=(11, 1.2 + 1.8 * len(rows)))
    colours = ("tab:blue", "tab:orange")
    for ax, (label, members) in zip(axes[:, 0], rows):
        for i, s in enumerate(members):
            xs, ys = _steps(s, end_s)
            ax.step(xs, ys, where="post", color=colours[i % 2], label=s.key, linewidth=1.2)
            ax.fill_between(xs, ys, step="post", alpha=0.15, color=colours[i % 2])
        if len(members) == 2:
            _shade_overlap(ax, members, end_s)
            ax.legend(loc="upper right", fontsize=8)
        ax.set_ylabel(f"{label}\nmA", fontsize=9)
        ax.grid(True, alpha=0.3)
        for t, _reason in data.faults:
            ax.axvline(t, color="red", linestyle="--", linewidth=1)
    axes[-1, 0].set_xlabel("time (s)")
    fig.suptitle(data.title, fontsize=10)
    fig.tight_layout()
    return fig


def _shade_overlap(ax: Any, members: list[Series], end_s: float) -> None:
    events = []
    for idx, s in enumerate(members):
        for t, a in zip(s.times_s, s.amplitudes_ma):
            events.append(TraceEvent(t, "p", idx + 1, a > 0, a, ""))
    events.sort(key=lambda e: e.t_s)
    ia = active_intervals(events, 1, end_s=end_s)
    ib = active_intervals(events, 2, end_s=end_s)
    for s1, e1 in ia:
        for s2, e2 in ib:
            lo, hi = max(s1, s2), min(e1, e2)
            if hi > lo:
                ax.axvspan(lo, hi, color="red", alpha=0.4, label="OVERLAP")


def plot_file(path: str | Path, out: str | Path,
              names: dict[tuple[str, int], str] | None = None,
              pairs: Sequence[tuple[str, str]] = ()) -> PlotData:
    data = load_plot_data(path, names, pairs)
    fig = make_figure(data)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return data
