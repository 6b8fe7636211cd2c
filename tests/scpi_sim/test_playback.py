"""Unit tests of sim/scpi/playback.py: the envelope rule and the engine's walk."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sim.load import DEFAULT_LOAD
from sim.scpi.clock import ManualClock
from sim.scpi.playback import (
    ArbEnvelope,
    PlaybackEngine,
    Segment,
    arb_envelope,
    burst_segments,
    continuous_segment,
    loop_segments,
)
from sim.scpi.stage import VIStage
from sim.trace import OutputTrace, active_intervals, min_dead_time_s, overlap_s

SRATE = 20_000.0


def biphasic_train(
    n_pulses: int, period_samples: int, phase_samples: int = 4, gap_samples: int = 1
) -> np.ndarray:
    out = np.zeros(n_pulses * period_samples)
    for k in range(n_pulses):
        b = k * period_samples
        out[b : b + phase_samples] = 1.0
        out[b + phase_samples + gap_samples : b + 2 * phase_samples + gap_samples] = -1.0
    return out


def complementary(dead_samples: int = 200, rest_samples: int = 4000) -> tuple[np.ndarray, np.ndarray]:
    train = biphasic_train(25, 400)
    zeros = np.zeros_like(train)
    dead = np.zeros(dead_samples)
    rest = np.zeros(rest_samples)
    a = np.concatenate([train, dead, zeros, rest])
    b = np.concatenate([zeros, dead, train, rest])
    return a, b


def test_one_pulse_per_loop_plays_as_one_continuous_segment() -> None:
    wave = np.zeros(400)
    wave[10:14] = 1.0
    wave[15:19] = -1.0
    env = arb_envelope(wave, SRATE)
    assert len(env.segments) == 1
    segs = list(loop_segments(env, 5.0))
    assert segs == [Segment(5.0 + 10 / SRATE, math.inf, 1.0, 4 / SRATE)]
    finite = list(loop_segments(env, 0.0, repeats=3))
    assert len(finite) == 1
    assert finite[0].end_s == pytest.approx(2 * 400 / SRATE + 19 / SRATE)


def test_interphase_gaps_do_not_split_a_train_but_the_rest_does() -> None:
    a, _ = complementary()
    env = arb_envelope(a, SRATE)
    # One segment: the 25-pulse train; interphase and inter-pulse gaps merge, the rest does not.
    assert len(env.segments) == 1
    seg = env.segments[0]
    assert seg.start_s == 0.0
    assert seg.end_s == pytest.approx((24 * 400 + 9) / SRATE)
    assert seg.peak == 1.0
    assert seg.phase_width_s == pytest.approx(4 / SRATE)
    # Upper median of the gaps is the inter-pulse gap (391 samples): threshold 1.5 x that.
    assert env.merge_gap_s == pytest.approx(1.5 * 391 / SRATE)
    segs = list(itertools.islice(loop_segments(env, 0.0), 3))
    assert [s.start_s for s in segs] == pytest.approx([0.0, a.size / SRATE, 2 * a.size / SRATE])


def test_two_trains_in_one_loop_stay_two_segments() -> None:
    train = biphasic_train(10, 400)
    wave = np.concatenate([train, np.zeros(3000), train * 0.5, np.zeros(3000)])
    env = arb_envelope(wave, SRATE)
    assert len(env.segments) == 2
    assert env.segments[0].peak == 1.0
    assert env.segments[1].peak == 0.5


def test_silent_and_never_zero_waveforms() -> None:
    silent = arb_envelope(np.zeros(64), SRATE)
    assert silent.segments == ()
    assert list(loop_segments(silent, 0.0)) == []
    dc = arb_envelope(np.full(64, -0.25), SRATE)
    assert [(s.start_s, s.end_s, s.peak) for s in loop_segments(dc, 1.0)] == [(1.0, math.inf, 0.25)]


def test_arb_envelope_rejects_nonsense() -> None:
    with pytest.raises(ValueError, match="sample_rate_hz"):
        arb_envelope(np.ones(8), 0.0)
    with pytest.raises(ValueError, match="at least one sample"):
        arb_envelope(np.zeros(0), SRATE)


def test_since_skips_history_without_changing_the_future() -> None:
    a, _ = complementary()
    env = arb_envelope(a, SRATE)
    since = 1000.3
    full = [s for s in itertools.islice(loop_segments(env, 0.25), 5000) if s.end_s > since][:10]
    quick = [s for s in itertools.islice(loop_segments(env, 0.25, since_s=since), 20) if s.end_s > since][:10]
    assert quick == full


def test_bursts_repeat_and_never_merge() -> None:
    def body(start: float) -> list[Segment]:
        return [Segment(start, start + 0.1, 2.0, 1e-3)]

    segs = list(burst_segments(body, 1.0, 0.5, count=3))
    edges = [t for s in segs for t in (s.start_s, s.end_s)]
    assert edges == pytest.approx([1.0, 1.1, 1.5, 1.6, 2.0, 2.1])
    with pytest.raises(ValueError, match="burst period"):
        list(burst_segments(body, 0.0, 0.0))


def test_continuous_segment_of_zero_level_is_nothing() -> None:
    assert list(continuous_segment(0.0, 0.0, 1e-3)) == []
    assert list(continuous_segment(2.0, -3.0, 1e-3)) == [Segment(2.0, math.inf, 3.0, 1e-3)]


def _engine() -> tuple[PlaybackEngine, OutputTrace, ManualClock]:
    clock = ManualClock()
    engine = PlaybackEngine(clock)
    trace = OutputTrace(engine.trace_clock, device="t")
    engine.record = trace.record
    stage = VIStage()

    def deliver(level: float, width_us: float) -> tuple[float, bool]:
        return stage.deliver_ma(level, width_us, DEFAULT_LOAD)

    engine.add_channel(1, deliver)
    engine.add_channel(2, deliver)
    return engine, trace, clock


def test_complementary_channels_never_overlap_and_hold_their_dead_time() -> None:
    engine, trace, clock = _engine()
    a, b = complementary(dead_samples=200)
    ea, eb = arb_envelope(a, SRATE), arb_envelope(b, SRATE)
    engine.set_output(1, True)
    engine.set_output(2, True)
    t0 = clock.now()
    engine.set_programs({1: (loop_segments(ea, t0), "a"), 2: (loop_segments(eb, t0), "b")})
    clock.advance(600.0)
    engine.all_off()
    events = trace.events
    assert overlap_s(events, 1, 2) == 0.0
    dead = min_dead_time_s(events, 1, 2)
    assert dead is not None
    # The built-in dead time is 200 samples after the last pulse's 9 samples of a 400-sample slot.
    assert dead >= 200 / SRATE - 1e-9
    cycles = len(active_intervals(events, 1))
    assert cycles == pytest.approx(600.0 / (a.size / SRATE), abs=1)
    # 1.0 V open circuit through 5 mA/V into 500 ohm + double layer: 5 mA, well under compliance.
    assert max(e.amplitude_ma for e in events) == pytest.approx(5.0)


class _NeverFires:
    """A clock whose timers never run: as if the loop were too busy to get to them."""

    def __init__(self) -> None:
        self.t = 0.0

    def now(self) -> float:
        return self.t

    def call_later(self, delay_s: float, callback: Callable[[], None]) -> object:
        class _H:
            def cancel(self) -> None:
                pass

        return _H()


def test_late_processing_stamps_each_edge_with_its_own_time() -> None:
    clock = _NeverFires()
    engine = PlaybackEngine(clock)  # type: ignore[arg-type]
    trace = OutputTrace(engine.trace_clock)
    engine.record = trace.record
    for ch in (1, 2):
        engine.add_channel(ch, lambda level, width: (level, False))
        engine.set_output(ch, True)
    env_a = ArbEnvelope((Segment(0.0, 0.4, 3.0, 1e-4),), 1.0, 0.0)
    env_b = ArbEnvelope((Segment(0.5, 0.9, 3.0, 1e-4),), 1.0, 0.0)
    engine.set_programs({1: (loop_segments(env_a, 0.0), "a"), 2: (loop_segments(env_b, 0.0), "b")})
    clock.t = 3.2  # a stall of 3.2 s: then everything due is caught up at once
    engine.set_output(1, False)
    events = trace.events
    times = [e.t_s for e in events]
    assert times == sorted(times)
    starts_1 = [s for s, _ in active_intervals(events, 1)]
    assert starts_1 == pytest.approx([0.0, 1.0, 2.0, 3.0])
    assert overlap_s(events, 1, 2) == 0.0
    assert events[-1].t_s == 3.2 and not events[-1].on


def test_end_before_start_at_the_same_instant() -> None:
    engine, trace, clock = _engine()
    for ch in (1, 2):
        engine.set_output(ch, True)
    env_a = ArbEnvelope((Segment(0.0, 0.5, 1.0, 1e-4),), 1.0, 0.0)
    env_b = ArbEnvelope((Segment(0.5, 1.0, 1.0, 1e-4),), 1.0, 0.0)
    engine.set_programs({2: (loop_segments(env_b, 0.0), "b"), 1: (loop_segments(env_a, 0.0), "a")})
    clock.advance(10.0)
    events = trace.events
    assert overlap_s(events, 1, 2) == 0.0
    handovers = [(e.t_s, e.channel, e.active) for e in events if e.t_s == 0.5]
    assert handovers[0] == (0.5, 1, False)
    assert handovers[1] == (0.5, 2, True)


def test_stuck_channel_ignores_off_and_all_off() -> None:
    engine, trace, clock = _engine()
    engine.set_output(1, True)
    engine.set_program(1, continuous_segment(0.0, 2.0, 1e-4), "dc")
    engine.set_stuck(1, True)
    clock.advance(1.0)
    engine.set_output(1, False)
    engine.all_off()
    assert engine.output_on(1)
    assert [e for e in trace.events if e.channel == 1][-1].active
    assert engine.delivered_ma(1) == pytest.approx(10.0)


def test_load_change_mid_segment_is_recorded_at_once() -> None:
    engine, trace, clock = _engine()
    engine.set_output(1, True)
    engine.set_program(1, continuous_segment(0.0, 2.0, 1e-4), "dc")
    clock.advance(2.0)
    stage = VIStage()
    engine.set_deliver(1, lambda level, width: stage.deliver_ma(level, width, DEFAULT_LOAD.lead_off()))
    last = trace.events[-1]
    assert (last.t_s, last.on, last.amplitude_ma) == (2.0, True, 0.0)
    assert engine.compliance(1)


@st.composite
def _waveforms(draw: st.DrawFn) -> np.ndarray:
    n = draw(st.integers(min_value=1, max_value=160))
    values = draw(
        st.lists(
            st.sampled_from([0.0, 0.0, 0.0, 1.0, -1.0, 0.3, -0.7]), min_size=n, max_size=n
        )
    )
    return np.asarray(values, dtype=np.float64)


@settings(max_examples=150, deadline=None)
@given(_waveforms(), st.integers(min_value=1, max_value=4))
def test_no_delivered_sample_falls_outside_the_envelope(wave: np.ndarray, repeats: int) -> None:
    """Safety property: the trace may call a channel active too long, never too short."""
    rate = 1000.0
    env = arb_envelope(wave, rate)
    segs = list(loop_segments(env, 0.0, repeats=repeats))
    starts = [s.start_s for s in segs]
    assert starts == sorted(starts)
    for first, second in itertools.pairwise(segs):
        assert second.start_s - first.end_s > env.merge_gap_s * (1 + 1e-9)
    played = np.abs(np.tile(wave, repeats))
    covered_peak = np.zeros_like(played)
    for seg in segs:
        lo = round(seg.start_s * rate)
        hi = played.size if math.isinf(seg.end_s) else round(seg.end_s * rate)
        covered_peak[lo:hi] = seg.peak
    outside = np.flatnonzero(played > covered_peak)
    assert outside.size == 0, f"samples {outside[:5]} deliver more than their envelope says"
