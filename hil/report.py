"""HIL run reports: one JSON record per run and a human summary in HTML with a plot per scenario.

JUnit XML is pytest's own (``--junitxml``); this module adds what JUnit cannot hold: the rig,
the devices' identities and firmware versions, the stimctl version, and every figure a scenario
measured, with its unit, its limit and its verdict. The HTML embeds its plots as PNG data URIs
(matplotlib's Agg backend, no display needed) so the file travels alone.
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
import io
import json
import math
import platform
import textwrap
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from sim.trace import TraceEvent

Verdict = Literal["pass", "fail", "info"]
Comparison = Literal["<=", ">=", "==", "<", ">"]

SCHEMA = "stimctl-hil-report/1"


@dataclass(frozen=True)
class Measurement:
    """One figure a scenario measured. `limit` is None for a figure recorded for information."""

    name: str
    value: float | None
    unit: str
    limit: float | None
    verdict: Verdict
    comparison: Comparison = "<="
    note: str = ""

    @property
    def passed(self) -> bool:
        return self.verdict != "fail"

    def describe(self) -> str:
        if self.value is None and self.limit is None:
            return f"{self.name}: {self.note or 'n/a'} -> INFO"
        value = "none" if self.value is None else f"{self.value:.6g}"
        limit = (
            "" if self.limit is None else f" (limit {self.comparison} {self.limit:.6g} {self.unit})"
        )
        note = f": {self.note}" if self.note else ""
        return f"{self.name} = {value} {self.unit}{limit} -> {self.verdict.upper()}{note}"


def judge(value: float | None, limit: float | None, comparison: Comparison) -> Verdict:
    """The verdict of a value against a limit. A missing value against a limit fails: a
    figure that could not be measured proves nothing."""
    if limit is None:
        return "info"
    if value is None or math.isnan(value):
        return "fail"
    ok = {
        "<=": value <= limit,
        ">=": value >= limit,
        "<": value < limit,
        ">": value > limit,
        "==": value == limit,
    }[comparison]
    return "pass" if ok else "fail"


@dataclass
class ChannelSeries:
    """What a plot shows for one logical channel: the monitor's events for it."""

    name: str
    events: list[TraceEvent]


@dataclass
class ScenarioRecord:
    nodeid: str
    title: str = ""
    outcome: str = "unknown"
    duration_s: float = 0.0
    monitor: str = ""
    """Where the figures came from: "sim-trace" or "meter:<resource>"."""
    measurements: list[Measurement] = field(default_factory=list)
    series: list[ChannelSeries] = field(default_factory=list)
    markers: list[tuple[float, str]] = field(default_factory=list)
    """(time, label) points worth marking on the plot: the fault injected, the stop pressed."""
    message: str = ""
    audit_logs: list[str] = field(default_factory=list)
    """The controller's audit logs of this scenario (kept when a report directory is given)."""

    def to_json(self) -> dict[str, Any]:
        return {
            "nodeid": self.nodeid,
            "title": self.title,
            "outcome": self.outcome,
            "duration_s": round(self.duration_s, 6),
            "monitor": self.monitor,
            "measurements": [asdict(m) for m in self.measurements],
            "markers": [{"t_s": t, "label": label} for t, label in self.markers],
            "message": self.message,
            "audit_logs": self.audit_logs,
            "trace": {
                s.name: [[e.t_s, e.amplitude_ma if e.active else 0.0] for e in s.events]
                for s in self.series
            },
        }


class RunReport:
    """Collects one HIL run. The pytest plugin feeds it; `write_json` / `write_html` save it."""

    def __init__(self, rig: Mapping[str, Any], stimctl_version: str) -> None:
        self.rig = dict(rig)
        self.stimctl_version = stimctl_version
        self.started = _now()
        self.finished: str | None = None
        self.devices: dict[str, dict[str, Any]] = {}
        self.scenarios: dict[str, ScenarioRecord] = {}

    def scenario(self, nodeid: str) -> ScenarioRecord:
        rec = self.scenarios.get(nodeid)
        if rec is None:
            rec = self.scenarios[nodeid] = ScenarioRecord(nodeid)
        return rec

    def add_device(self, name: str, identity: Mapping[str, Any]) -> None:
        self.devices[name] = dict(identity)

    def finish(self) -> None:
        self.finished = _now()

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for rec in self.scenarios.values():
            out[rec.outcome] = out.get(rec.outcome, 0) + 1
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "stimctl_version": self.stimctl_version,
            "python": platform.python_version(),
            "host": platform.node(),
            "started": self.started,
            "finished": self.finished,
            "rig": self.rig,
            "devices": self.devices,
            "summary": self.counts(),
            "scenarios": [rec.to_json() for rec in self.scenarios.values()],
        }

    def write_json(self, path: str | Path) -> Path:
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(json.dumps(self.to_json(), indent=2, default=str) + "\n", encoding="utf-8")
        return p

    def write_html(self, path: str | Path) -> Path:
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(render_html(self), encoding="utf-8")
        return p


def _now() -> str:
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")


# ---- plots and HTML ----------------------------------------------------------------------


def _step_points(events: Sequence[TraceEvent], end_s: float) -> tuple[list[float], list[float]]:
    ts: list[float] = []
    ys: list[float] = []
    level = 0.0
    for e in events:
        ts += [e.t_s, e.t_s]
        ys += [level, e.amplitude_ma if e.active else 0.0]
        level = ys[-1]
    if ts:
        ts.append(max(end_s, ts[-1]))
        ys.append(level)
    return ts, ys


def plot_png(rec: ScenarioRecord) -> bytes | None:
    """A PNG of each channel's delivered amplitude over time (stacked, shared time axis), or
    None when the scenario recorded no output at all."""
    series = [s for s in rec.series if s.events]
    if not series:
        return None
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    t0 = min(s.events[0].t_s for s in series)
    end = max(s.events[-1].t_s for s in series)
    end = max([end] + [t for t, _ in rec.markers])
    fig = Figure(figsize=(8.0, 1.6 + 1.4 * len(series)), dpi=90)
    axes = fig.subplots(len(series), 1, sharex=True, squeeze=False)[:, 0]
    for ax, s in zip(axes, series, strict=True):
        ts, ys = _step_points(s.events, end)
        ax.plot([t - t0 for t in ts], ys, lw=1.2)
        ax.set_ylabel(f"{s.name}\nmA")
        ax.grid(True, alpha=0.3)
        for i, (t, label) in enumerate(sorted(rec.markers)):
            ax.axvline(t - t0, color="tab:red", lw=0.8, ls="--")
            if ax is axes[0]:
                # Stagger the labels: markers often fall within a few ms of each other.
                ax.annotate(
                    label,
                    (t - t0, 1.02 + 0.12 * (i % 3)),
                    xycoords=("data", "axes fraction"),
                    fontsize=7,
                    color="tab:red",
                    va="bottom",
                    annotation_clip=False,
                )
    axes[-1].set_xlabel(f"time (s, from {t0:.3f} s on the {rec.monitor or 'monitor'} clock)")
    fig.suptitle(textwrap.fill(rec.title or rec.nodeid, 110), fontsize=8)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


_CSS = """
body{font-family:system-ui,sans-serif;margin:2em;max-width:60em}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:.2em .6em;
text-align:left}.pass{color:#176f2c}.fail{color:#b00020;font-weight:bold}.skipped{color:#777}
.info{color:#555}h2{margin-top:2em;border-top:1px solid #ddd;padding-top:.5em}pre{
white-space:pre-wrap;background:#f6f6f6;padding:.5em}
"""


def _esc(x: object) -> str:
    return html.escape(str(x))


def _table(rows: Iterable[Sequence[object]], head: Sequence[str]) -> str:
    out = ["<table><tr>" + "".join(f"<th>{_esc(h)}</th>" for h in head) + "</tr>"]
    for row in rows:
        out.append("<tr>" + "".join(f"<td>{_esc(c)}</td>" for c in row) + "</tr>")
    out.append("</table>")
    return "\n".join(out)


def render_html(report: RunReport) -> str:
    counts = report.counts()
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>stimctl HIL report: {_esc(report.rig.get('name', ''))}</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>stimctl HIL report: rig {_esc(report.rig.get('name', ''))}</h1>",
        (
            f"<p>stimctl {_esc(report.stimctl_version)}, started {_esc(report.started)}, "
            f"finished {_esc(report.finished)}. Rig file: {_esc(report.rig.get('source', ''))}.</p>"
        ),
        "<p>"
        + ", ".join(
            f"<span class='{_esc(k)}'>{v} {_esc(k)}</span>" for k, v in sorted(counts.items())
        )
        + "</p>",
    ]
    if report.devices:
        parts.append("<h3>Devices</h3>")
        rows = [
            (
                name,
                ident.get("manufacturer", ""),
                ident.get("model", ""),
                ident.get("serial", ""),
                ident.get("firmware_version", ""),
                ident.get("resource", ""),
            )
            for name, ident in report.devices.items()
        ]
        parts.append(
            _table(rows, ("device", "manufacturer", "model", "serial", "firmware", "resource"))
        )
    for rec in report.scenarios.values():
        parts.append(
            f"<h2 id='{_esc(rec.nodeid)}'>{_esc(rec.title or rec.nodeid)} "
            f"<span class='{_esc(rec.outcome)}'>{_esc(rec.outcome.upper())}</span></h2>"
        )
        parts.append(
            f"<p><code>{_esc(rec.nodeid)}</code>, {rec.duration_s:.2f} s wall; "
            f"figures from {_esc(rec.monitor or 'n/a')}</p>"
        )
        if rec.measurements:
            rows2 = [
                (
                    m.name,
                    "" if m.value is None else f"{m.value:.6g}",
                    m.unit,
                    "" if m.limit is None else f"{m.comparison} {m.limit:.6g}",
                    m.verdict,
                    m.note,
                )
                for m in rec.measurements
            ]
            parts.append(_table(rows2, ("figure", "value", "unit", "limit", "verdict", "note")))
        png = plot_png(rec)
        if png is not None:
            data = base64.b64encode(png).decode("ascii")
            parts.append(f"<img alt='outputs over time' src='data:image/png;base64,{data}'>")
        if rec.message:
            parts.append(f"<pre>{_esc(rec.message)}</pre>")
    parts.append("</body></html>")
    return "\n".join(parts)
