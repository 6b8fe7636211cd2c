"""The simulators' output trace: the ground truth that tests and HIL scenarios check.

A simulated device records every change of what each channel actually delivers (after its load
model: compliance, lead-off, a stuck output), independently of what any controller believes.
Records are JSON Lines, one object per change, flushed as written so a killed process leaves a
complete trace up to its last change:

    {"t_s": 12.5, "device": "board", "channel": 1, "on": true, "amplitude_ma": 8.0,
     "waveform": "biphasic_symmetric"}

A channel is *active* when it is on with a non-zero delivered amplitude. The analysis helpers
below answer the questions the safety tests ask: did two channels overlap, what was the shortest
dead time between them, when was everything off.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO


@dataclass(frozen=True)
class TraceEvent:
    t_s: float
    device: str
    channel: int
    on: bool
    amplitude_ma: float
    waveform: str

    @property
    def active(self) -> bool:
        return self.on and self.amplitude_ma > 0.0


class OutputTrace:
    """Records output changes with a clock of the simulator's own (virtual or real).

    Unchanged states are not re-recorded. Thread-safe: a simulator in a background thread and a
    test reading `events` may run at once.
    """

    def __init__(
        self,
        clock: Callable[[], float],
        path: str | Path | None = None,
        device: str = "sim",
    ) -> None:
        self._clock = clock
        self._device = device
        self._lock = threading.Lock()
        self._events: list[TraceEvent] = []
        self._last: dict[tuple[str, int], tuple[bool, float, str]] = {}
        self._file: IO[str] | None = open(path, "a", encoding="utf-8") if path else None

    def record(
        self,
        channel: int,
        on: bool,
        amplitude_ma: float,
        waveform: str,
        device: str | None = None,
    ) -> None:
        dev = device or self._device
        amplitude_ma = round(float(amplitude_ma), 6)
        key = (dev, channel)
        state = (on, amplitude_ma, waveform)
        with self._lock:
            if self._last.get(key) == state:
                return
            self._last[key] = state
            ev = TraceEvent(self._clock(), dev, channel, on, amplitude_ma, waveform)
            self._events.append(ev)
            if self._file is not None:
                self._file.write(json.dumps(asdict(ev)) + "\n")
                self._file.flush()

    @property
    def events(self) -> list[TraceEvent]:
        with self._lock:
            return list(self._events)

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None


def load_trace(path: str | Path) -> list[TraceEvent]:
    """Read a JSON Lines trace; a torn last line (killed writer) is ignored."""
    events: list[TraceEvent] = []
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            line = line.strip()
            if not line:
                continue
            try:
                events.append(TraceEvent(**json.loads(line)))
            except (json.JSONDecodeError, TypeError):
                break
    return events


def _select(events: Iterable[TraceEvent], channel: int, device: str | None) -> list[TraceEvent]:
    return [e for e in events if e.channel == channel and (device is None or e.device == device)]


def active_intervals(
    events: Sequence[TraceEvent],
    channel: int,
    device: str | None = None,
    end_s: float | None = None,
) -> list[tuple[float, float]]:
    """Intervals [start, end) during which the channel was active. An interval still open at
    the end of the trace closes at end_s (default: the last event's time)."""
    out: list[tuple[float, float]] = []
    start: float | None = None
    for e in _select(events, channel, device):
        if e.active and start is None:
            start = e.t_s
        elif not e.active and start is not None:
            out.append((start, e.t_s))
            start = None
    if start is not None:
        stop = end_s if end_s is not None else (events[-1].t_s if events else start)
        out.append((start, max(stop, start)))
    return out


def overlap_s(
    events: Sequence[TraceEvent], a: int, b: int, device: str | None = None
) -> float:
    """Total time both channels were active at once (0.0 is the only safe answer for a pair)."""
    end = events[-1].t_s if events else 0.0
    ia = active_intervals(events, a, device, end)
    ib = active_intervals(events, b, device, end)
    total = 0.0
    for s1, e1 in ia:
        for s2, e2 in ib:
            total += max(0.0, min(e1, e2) - max(s1, s2))
    return total


def min_dead_time_s(
    events: Sequence[TraceEvent], a: int, b: int, device: str | None = None
) -> float | None:
    """Shortest gap between one channel going inactive and the other going active, either way.
    None if the channels never handed over. Negative means they overlapped."""
    end = events[-1].t_s if events else 0.0
    ia = active_intervals(events, a, device, end)
    ib = active_intervals(events, b, device, end)
    best: float | None = None
    for first, second in ((ia, ib), (ib, ia)):
        for _, e1 in first:
            following = [s2 - e1 for s2, _ in second if s2 >= e1 - 1e-12]
            overlapping = [s2 - e1 for s2, e2 in second if s2 < e1 and e2 > e1]
            gaps = following[:1] + overlapping
            for g in gaps:
                best = g if best is None else min(best, g)
    return best


def first_active(
    events: Sequence[TraceEvent], channel: int, device: str | None = None
) -> TraceEvent | None:
    for e in _select(events, channel, device):
        if e.active:
            return e
    return None


def all_off_at(events: Sequence[TraceEvent], after_s: float) -> float | None:
    """The first time at or after after_s from which no channel was active again, or None if
    some channel was still active at the end of the trace."""
    active: dict[tuple[str, int], bool] = {}
    later: list[TraceEvent] = []
    for e in events:
        if e.t_s < after_s:
            active[(e.device, e.channel)] = e.active
        else:
            later.append(e)
    candidate: float | None = None if any(active.values()) else after_s
    for e in later:
        active[(e.device, e.channel)] = e.active
        if any(active.values()):
            candidate = None
        elif candidate is None:
            candidate = e.t_s
    return candidate


def max_amplitude_ma(
    events: Sequence[TraceEvent], channel: int, device: str | None = None
) -> float:
    return max((e.amplitude_ma for e in _select(events, channel, device) if e.on), default=0.0)
