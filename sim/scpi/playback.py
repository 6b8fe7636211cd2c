"""Playback: turning what an instrument was told to output into trace records as time passes.

Both SCPI models use this: the 33500B for its arbitrary waveforms, bursts and standard
functions, the 6221 for its ARB/wave mode. A model describes a channel's output as a lazy
sequence of *envelope segments* (start, end, peak level, phase width) in absolute time on the
simulator's clock; the engine walks those segments with one asyncio timer on the running loop,
so playback runs unchanged under sim.virtual_time (deterministic, any length) and in real time.

Envelope rule for arbitrary waveforms (the SCPI contract between the simulator engineers):

1. Compute the output level of every sample (offset + sample * scale). A *run* is a maximal
   stretch of samples whose level is non-zero.
2. The gaps between runs are taken cyclically, because an arb is played as a loop: the gap from
   the last run to the first run of the next repetition counts too (it is 0 when the waveform
   starts and ends non-zero).
3. The threshold is 1.5 x the *upper* median of those gaps (for an even count, the larger of
   the two middle values; for an odd count, the ordinary median). The upper median keeps a
   biphasic train with an interphase gap together: interphase gaps and inter-pulse gaps come in
   equal numbers, and the upper median picks the inter-pulse gap.
4. Runs separated by a gap no longer than the threshold merge into one segment; the wrap gap
   merges consecutive repetitions the same way. A waveform with one run (one pulse per loop)
   therefore plays as one continuous segment: a pulse train is active throughout.
5. A segment's peak is its largest |level|; its phase width is its longest stretch of samples
   of one sign (what the load's double layer charges during).
6. Repetitions inside one burst merge by the same rule; separate bursts never merge (the idle
   time between triggers is real).

Records are stamped with the segment edge's own time, not the moment a late timer fired: a
loaded machine must not make two complementary channels look as if they overlapped. Before any
state change (a command, a fault) the engine first catches up with every edge that is due, so
the trace is always in time order.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from sim.scpi.clock import Clock, TimerHandle

ZERO_LEVEL = 1e-12
"""Levels at or below this magnitude count as zero output (float noise, not signal)."""

_REL_TOL = 1e-9


@dataclass(frozen=True)
class Segment:
    """One stretch of envelope: the channel delivers between start_s and end_s.

    peak is in the model's level unit (volts at the generator for the 33500B, milliamps for
    the 6221); phase_width_s feeds the load model. end_s may be math.inf (plays until stopped).
    """

    start_s: float
    end_s: float
    peak: float
    phase_width_s: float

    def shifted(self, dt_s: float) -> Segment:
        return Segment(self.start_s + dt_s, self.end_s + dt_s, self.peak, self.phase_width_s)

    def merged(self, later: Segment) -> Segment:
        return Segment(
            self.start_s,
            max(self.end_s, later.end_s),
            max(self.peak, later.peak),
            max(self.phase_width_s, later.phase_width_s),
        )


@dataclass(frozen=True)
class ArbEnvelope:
    """The envelope of one repetition of an arbitrary waveform, in seconds from its start."""

    segments: tuple[Segment, ...]
    period_s: float
    merge_gap_s: float
    """Runs (and repetitions) closer than this merge; see the module's envelope rule."""

    @property
    def wrap_gap_s(self) -> float:
        if not self.segments:
            return math.inf
        return self.period_s - self.segments[-1].end_s + self.segments[0].start_s


def _upper_median(values: npt.NDArray[np.int64]) -> float:
    ordered = np.sort(values)
    return float(ordered[len(ordered) // 2])


def arb_envelope(levels: npt.NDArray[np.float64], sample_rate_hz: float) -> ArbEnvelope:
    """Envelope of one repetition of `levels` (output level per sample) at sample_rate_hz."""
    if sample_rate_hz <= 0:
        raise ValueError(f"sample_rate_hz must be > 0, got {sample_rate_hz}")
    levels = np.asarray(levels, dtype=np.float64)
    n = int(levels.size)
    if n == 0:
        raise ValueError("an arbitrary waveform needs at least one sample")
    period_s = n / sample_rate_hz
    mag = np.abs(levels)
    nonzero = mag > ZERO_LEVEL
    if not nonzero.any():
        return ArbEnvelope((), period_s, 0.0)
    edges = np.diff(nonzero.astype(np.int8), prepend=np.int8(0), append=np.int8(0))
    starts = np.flatnonzero(edges == 1).astype(np.int64)
    ends = np.flatnonzero(edges == -1).astype(np.int64)
    inner_gaps = starts[1:] - ends[:-1]
    wrap_gap = n - int(ends[-1]) + int(starts[0])
    gaps = np.append(inner_gaps, wrap_gap)
    threshold = 1.5 * _upper_median(gaps)

    # Merge runs into segments: a new segment begins after every gap above the threshold.
    breaks = np.flatnonzero(inner_gaps > threshold * (1 + _REL_TOL))
    seg_first = np.concatenate(([0], breaks + 1))
    seg_last = np.concatenate((breaks, [len(starts) - 1]))
    seg_starts = starts[seg_first]
    seg_ends = ends[seg_last]

    # Longest one-sign stretch per segment: label each sample with the length of its phase.
    sign = np.sign(levels) * nonzero
    change = np.flatnonzero(np.diff(sign) != 0) + 1
    bounds = np.concatenate(([0], change, [n]))
    lengths = np.diff(bounds)
    phase_len = np.repeat(lengths, lengths) * nonzero
    peaks = np.maximum.reduceat(mag, seg_starts)
    widths = np.maximum.reduceat(phase_len, seg_starts)
    # reduceat runs each slice to the next segment's start; the zeros in between change nothing.
    segments = tuple(
        Segment(
            float(s) / sample_rate_hz,
            float(e) / sample_rate_hz,
            float(p),
            float(w) / sample_rate_hz,
        )
        for s, e, p, w in zip(seg_starts, seg_ends, peaks, widths, strict=True)
    )
    return ArbEnvelope(segments, period_s, threshold / sample_rate_hz)


def _first_rep(t0_s: float, period_s: float, since_s: float | None) -> int:
    if since_s is None or since_s <= t0_s:
        return 0
    # One repetition early, so a segment merged across a wrap is picked up from its start.
    return max(0, int((since_s - t0_s) // period_s) - 1)


def loop_segments(
    envelope: ArbEnvelope,
    t0_s: float,
    repeats: int | None = None,
    since_s: float | None = None,
) -> Iterator[Segment]:
    """Absolute segments of `envelope` played from t0_s, `repeats` times (None: forever).

    since_s skips whole repetitions that ended before it, so re-deriving a long-running
    program (an amplitude change keeps the phase) costs nothing per elapsed period.
    """
    segs = envelope.segments
    if not segs or repeats == 0:
        return
    period = envelope.period_s
    merge = envelope.merge_gap_s * (1 + _REL_TOL)
    if len(segs) == 1 and envelope.wrap_gap_s <= merge:
        # One segment that joins itself across the wrap: continuous for the whole playback.
        only = segs[0]
        end = math.inf if repeats is None else t0_s + (repeats - 1) * period + only.end_s
        yield Segment(t0_s + only.start_s, end, only.peak, only.phase_width_s)
        return
    pending: Segment | None = None
    first = _first_rep(t0_s, period, since_s)
    reps: Iterable[int] = itertools.count(first) if repeats is None else range(first, repeats)
    for k in reps:
        base = t0_s + k * period
        for seg in segs:
            current = seg.shifted(base)
            if pending is not None and current.start_s - pending.end_s <= merge:
                pending = pending.merged(current)
                continue
            if pending is not None:
                yield pending
            pending = current
    if pending is not None:
        yield pending


def burst_segments(
    body: Callable[[float], Iterable[Segment]],
    t0_s: float,
    period_s: float,
    count: int | None = None,
    since_s: float | None = None,
) -> Iterator[Segment]:
    """Bursts started every period_s from t0_s (count of them, None: forever).

    body(start) gives one burst's absolute segments. Bursts never merge with each other; a
    caller whose bursts would touch must play the body continuously instead.
    """
    if period_s <= 0:
        raise ValueError(f"burst period must be > 0, got {period_s}")
    first = _first_rep(t0_s, period_s, since_s)
    reps: Iterable[int] = itertools.count(first) if count is None else range(first, count)
    for k in reps:
        yield from body(t0_s + k * period_s)


def continuous_segment(t0_s: float, peak: float, phase_width_s: float) -> Iterator[Segment]:
    """An output that delivers from t0_s until it is changed (DC, an unburst sine, ...)."""
    if abs(peak) > ZERO_LEVEL:
        yield Segment(t0_s, math.inf, abs(peak), phase_width_s)


class EdgeClock:
    """The time a record carries: the instrument clock's, or while an edge is being recorded,
    that edge's own time.

    Build the instrument's OutputTrace with `engine.trace_clock` (this object's `now`) so a
    timer that fires late on a loaded machine still stamps the edge where it belongs.
    """

    def __init__(self, base: Clock) -> None:
        self.base = base
        self._override: float | None = None

    def now(self) -> float:
        if self._override is not None:
            return self._override
        return self.base.now()

    def _at(self, t_s: float | None) -> None:
        self._override = t_s


Deliver = Callable[[float, float], tuple[float, bool]]
"""(peak level, phase width in us) -> (delivered mA, compliance reached)."""

Recorder = Callable[[int, bool, float, str], None]
"""(channel, on, amplitude_ma, waveform) -> None; usually OutputTrace.record."""


@dataclass
class _Channel:
    deliver: Deliver
    waveform: str = "off"
    output_on: bool = False
    stuck: bool = False
    program: Iterator[Segment] | None = None
    current: Segment | None = None
    upcoming: Segment | None = None
    inside: bool = False
    compliance: bool = False
    delivered_ma: float = 0.0


class PlaybackEngine:
    """Walks each channel's segments on the simulator clock and records what is delivered.

    Not thread-safe: call it from the thread that runs the clock's callbacks (a server
    thread's `inject` must hop onto that loop first).
    """

    def __init__(self, clock: Clock, record: Recorder | None = None) -> None:
        self.clock = EdgeClock(clock)
        self.record: Recorder | None = record
        self._channels: dict[int, _Channel] = {}
        self._timer: TimerHandle | None = None
        self._timer_at: float | None = None

    @property
    def trace_clock(self) -> Callable[[], float]:
        """The clock to build the instrument's OutputTrace with (see EdgeClock)."""
        return self.clock.now

    # -- configuration -------------------------------------------------------------------

    def add_channel(self, channel: int, deliver: Deliver) -> None:
        self._channels[channel] = _Channel(deliver=deliver)

    def set_deliver(self, channel: int, deliver: Deliver) -> None:
        """Change the path from level to load current (a fault on the load, a new stage)."""
        self.advance_to(self.clock.now())
        self._channels[channel].deliver = deliver
        self._emit(channel, self.clock.now())

    def channels(self) -> list[int]:
        return sorted(self._channels)

    # -- program changes -----------------------------------------------------------------

    def set_programs(self, programs: dict[int, tuple[Iterable[Segment] | None, str]]) -> None:
        """Replace the programs of several channels at the same instant (phase-synchronised).

        The segments are absolute times; the caller builds them from one start time.
        """
        now = self.clock.now()
        self.advance_to(now)
        for channel, (segments, waveform) in programs.items():
            ch = self._channels[channel]
            ch.program = iter(segments) if segments is not None else None
            ch.waveform = waveform
            ch.current = None
            ch.inside = False
            ch.upcoming = self._next_from(ch, now)
            self._enter_due(ch, now)
        for channel in programs:
            self._emit(channel, now)
        self._reschedule()

    def set_program(self, channel: int, segments: Iterable[Segment] | None, waveform: str) -> None:
        self.set_programs({channel: (segments, waveform)})

    def set_output(self, channel: int, on: bool) -> None:
        now = self.clock.now()
        self.advance_to(now)
        ch = self._channels[channel]
        if not on and ch.stuck:
            return  # a welded relay: the command is accepted and nothing changes
        ch.output_on = on
        self._emit(channel, now)

    def set_stuck(self, channel: int, stuck: bool) -> None:
        self._channels[channel].stuck = stuck

    def all_off(self) -> None:
        """Every output off in one step (a fault, *RST): stuck channels stay as they are."""
        now = self.clock.now()
        self.advance_to(now)
        for channel, ch in self._channels.items():
            if not ch.stuck:
                ch.output_on = False
            self._emit(channel, now)

    # -- state ---------------------------------------------------------------------------

    def output_on(self, channel: int) -> bool:
        return self._channels[channel].output_on

    def compliance(self, channel: int) -> bool:
        """Whether the channel is delivering right now with its current limited by the rail."""
        self.advance_to(self.clock.now())
        ch = self._channels[channel]
        return ch.output_on and ch.inside and ch.compliance

    def delivered_ma(self, channel: int) -> float:
        self.advance_to(self.clock.now())
        return self._channels[channel].delivered_ma

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = None
        self._timer_at = None

    # -- the walk ------------------------------------------------------------------------

    def _next_from(self, ch: _Channel, now: float) -> Segment | None:
        """The first segment of ch's program that has not ended by `now`."""
        if ch.program is None:
            return None
        for seg in ch.program:
            if seg.end_s > now:
                return seg
        ch.program = None
        return None

    def _enter_due(self, ch: _Channel, now: float) -> None:
        if ch.upcoming is not None and ch.upcoming.start_s <= now:
            ch.current = ch.upcoming
            ch.inside = True
            ch.upcoming = None

    def _edge_of(self, ch: _Channel) -> tuple[float, int] | None:
        """(time, kind) of ch's next edge; kind 0 = segment ends, 1 = segment starts, so ends
        are processed before starts at the same instant (break before make)."""
        if ch.inside and ch.current is not None:
            return (ch.current.end_s, 0)
        if ch.upcoming is not None:
            return (ch.upcoming.start_s, 1)
        return None

    def advance_to(self, t_s: float) -> None:
        """Process every edge due at or before t_s, in time order, stamped with its own time."""
        while True:
            best: tuple[float, int, int] | None = None
            for channel, ch in self._channels.items():
                edge = self._edge_of(ch)
                if edge is None or edge[0] > t_s:
                    continue
                key = (edge[0], edge[1], channel)
                if best is None or key < best:
                    best = key
            if best is None:
                self._reschedule()
                return
            at, kind, channel = best
            ch = self._channels[channel]
            if kind == 0:
                ch.inside = False
                ch.current = None
                ch.upcoming = self._next_from(ch, at)
                if ch.upcoming is not None and ch.upcoming.start_s <= at:
                    # Back-to-back segments: the next one starts where this one ended.
                    ch.current, ch.upcoming, ch.inside = ch.upcoming, None, True
            else:
                ch.current, ch.upcoming, ch.inside = ch.upcoming, None, True
            self._emit(channel, at)

    def _emit(self, channel: int, at: float) -> None:
        ch = self._channels[channel]
        amplitude_ma = 0.0
        compliance = False
        if ch.inside and ch.current is not None:
            width_us = ch.current.phase_width_s * 1e6
            delivered, compliance = ch.deliver(ch.current.peak, width_us)
            amplitude_ma = abs(delivered)
        ch.compliance = compliance
        ch.delivered_ma = amplitude_ma if ch.output_on else 0.0
        if self.record is None:
            return
        self.clock._at(at)
        try:
            self.record(
                channel,
                ch.output_on,
                amplitude_ma if ch.output_on else 0.0,
                ch.waveform if ch.output_on else "off",
            )
        finally:
            self.clock._at(None)

    def _reschedule(self) -> None:
        nxt: float | None = None
        for ch in self._channels.values():
            edge = self._edge_of(ch)
            if edge is not None and (nxt is None or edge[0] < nxt):
                nxt = edge[0]
        if nxt is not None and math.isinf(nxt):
            nxt = None
        if nxt == self._timer_at and self._timer is not None:
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
            self._timer_at = None
        if nxt is None:
            return
        self._timer = self.clock.base.call_later(
            nxt - self.clock.base.now(), lambda: self._on_timer(nxt)
        )
        self._timer_at = nxt

    def _on_timer(self, due_s: float) -> None:
        self._timer = None
        self._timer_at = None
        # asyncio runs a timer up to one clock resolution early; the edge it was set for is
        # due all the same, or the walk would re-arm the same instant forever.
        self.advance_to(max(self.clock.base.now(), due_s))
