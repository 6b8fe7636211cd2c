"""Acceptance: sessions against the simulated board over a loopback socket, in virtual time,
asserting on the board's own output trace."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from controller.machine import State
from controller.session import ArmRefused, SessionOptions
from sim.board import BoardConfig
from sim.faults import FaultSpec
from sim.trace import (
    TraceEvent,
    active_intervals,
    all_off_at,
    first_active,
    max_amplitude_ma,
    min_dead_time_s,
    overlap_s,
)
from sim.virtual_time import run_virtual
from tests.session.conftest import board_session
from tests.session.programs import antagonists, channel, program, single


def _events(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _active_at_end(events: list[TraceEvent]) -> bool:
    last: dict[int, bool] = {}
    for e in events:
        last[e.channel] = e.active
    return any(last.values())


# ---- refusal -------------------------------------------------------------------------------


def test_over_limit_program_is_refused_and_nothing_reaches_the_board(tmp_path: Path) -> None:
    over = single(amplitude_ma=20.0, profile="face")  # face allows 15 mA

    async def scenario() -> list[TraceEvent]:
        async with board_session(over, tmp_path) as rig:
            with pytest.raises(ArmRefused) as info:
                await rig.session.arm()
            assert "15" in str(info.value)
            assert rig.session.state is State.IDLE
            with pytest.raises(Exception):
                await rig.session.start()
            return rig.trace.events

    events = run_virtual(scenario())
    # The board records its power-on state (all off); nothing was ever switched on.
    assert all(not e.on for e in events)
    records = _events(tmp_path / "audit.jsonl")
    assert any(r["event"] == "arm_refused" for r in records)
    assert not any(r["event"] == "command" and r["what"] != "all_off" for r in records)


def test_unconfirmed_screening_refuses_to_arm(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with board_session(single(), tmp_path, confirm=lambda items: False) as rig:
            with pytest.raises(ArmRefused, match="screening"):
                await rig.session.arm()
            assert rig.session.state is State.IDLE

    run_virtual(scenario())


# ---- alternation ---------------------------------------------------------------------------


@pytest.mark.parametrize("software", [False, True], ids=["hardware", "software"])
def test_alternation_never_overlaps_and_keeps_the_dead_time(tmp_path: Path, software: bool) -> None:
    prog = antagonists(duration_s=120, on_s=5, off_s=5, dead_time_s=0.5, ramp_up_s=1,
                       ramp_down_s=1)

    async def scenario() -> tuple[list[TraceEvent], State, list[dict[str, object]]]:
        opts = SessionOptions(software_alternation=software)
        async with board_session(prog, tmp_path, options=opts) as rig:
            await rig.session.arm()
            await rig.session.start()
            state = await rig.session.wait()
            return rig.trace.events, state, rig.session.faults

    events, state, faults = run_virtual(scenario())
    assert state is State.DONE, faults
    assert overlap_s(events, 1, 2) == 0.0
    dead = min_dead_time_s(events, 1, 2)
    assert dead is not None and dead >= 0.5 - 1e-6
    # Each muscle contracted several times: the alternation really ran.
    assert len(active_intervals(events, 1)) >= 5
    assert len(active_intervals(events, 2)) >= 5
    assert max_amplitude_ma(events, 1) == pytest.approx(8.0)
    # Ramps start from (nearly) nothing: the first delivered level is at most 2% of target.
    first = first_active(events, 1)
    assert first is not None and first.amplitude_ma <= 0.02 * 8.0 + 1e-9
    assert not _active_at_end(events)
    # The mode asked for is the mode that ran.
    mode = [r for r in _events(tmp_path / "audit.jsonl") if r["event"] == "alternation_started"]
    assert mode and mode[0]["mode"] == ("software" if software else "hardware")


def test_singles_ramp_up_from_two_percent_and_ramp_down(tmp_path: Path) -> None:
    async def scenario() -> list[TraceEvent]:
        async with board_session(single(amplitude_ma=10.0, duration_s=20), tmp_path) as rig:
            await rig.session.arm()
            await rig.session.start()
            assert await rig.session.wait() is State.DONE
            return rig.trace.events

    events = run_virtual(scenario())
    ch1 = [e for e in events if e.channel == 1 and e.active]
    assert ch1[0].amplitude_ma <= 0.2 + 1e-9
    levels = [e.amplitude_ma for e in ch1]
    peak = levels.index(max(levels))
    assert len(set(levels[:peak])) >= 10, "ramp up in steps"
    assert len(set(levels[peak:])) >= 10, "ramp down in steps"
    assert not _active_at_end(events)


# ---- session time --------------------------------------------------------------------------


def test_session_stops_at_the_profile_maximum(tmp_path: Path) -> None:
    prog = single(amplitude_ma=8.0, duration_s=3600, profile="face")  # face: 20 min

    async def scenario() -> tuple[list[TraceEvent], float, State]:
        async with board_session(prog, tmp_path) as rig:
            report = await rig.session.arm()
            assert any(w.quantity.startswith("duration") or "session" in w.message
                       for w in report.warnings)
            await rig.session.start()
            state = await rig.session.wait()
            return rig.trace.events, rig.session.elapsed_s, state

    events, elapsed, state = run_virtual(scenario())
    assert state is State.DONE
    assert elapsed <= 20 * 60 + 1e-6
    off = all_off_at(events, 0.0)
    assert off is not None and off <= 20 * 60 + 1e-6
    assert active_intervals(events, 1)[-1][1] > 19 * 60, "it ran up to the limit"


# ---- faults --------------------------------------------------------------------------------


@pytest.mark.parametrize("board_switches_off", [True, False],
                         ids=["board-switches-off", "controller-must-catch-it"])
def test_lead_off_mid_session_faults_and_switches_everything_off(
        tmp_path: Path, board_switches_off: bool) -> None:
    prog = program([channel("quad", 1), channel("hamstring", 3)], duration_s=300)
    config = BoardConfig(off_on_compliance=board_switches_off)

    async def scenario() -> tuple[list[TraceEvent], float, State, str | None]:
        async with board_session(prog, tmp_path, config=config) as rig:
            await rig.session.arm()
            await rig.session.start()
            await asyncio.sleep(30)
            assert rig.session.state is State.STIMULATING
            t_inject = asyncio.get_running_loop().time()
            rig.board.inject(FaultSpec("lead-off", channel=1))
            state = await rig.session.wait()
            # Latched: nothing comes back on by itself.
            await asyncio.sleep(5)
            return rig.trace.events, t_inject, state, rig.session.fault_reason

    events, t_inject, state, reason = run_virtual(scenario())
    assert state is State.FAULT
    assert reason is not None and "lead" in reason.lower() or "compliance" in (reason or "")
    off = all_off_at(events, t_inject)
    assert off is not None
    # Within two status polls at the most (the board itself is faster when it acts).
    assert off - t_inject <= 0.15
    assert not any(e.active for e in events if e.t_s > off)


def test_overcurrent_faults_and_switches_everything_off(tmp_path: Path) -> None:
    prog = program([channel("quad", 1), channel("hamstring", 2)], duration_s=300)

    async def scenario() -> tuple[list[TraceEvent], float, State]:
        async with board_session(prog, tmp_path) as rig:
            await rig.session.arm()
            await rig.session.start()
            await asyncio.sleep(10)
            t = asyncio.get_running_loop().time()
            rig.board.inject(FaultSpec("overcurrent", channel=2))
            return rig.trace.events, t, await rig.session.wait()

    events, t, state = run_virtual(scenario())
    assert state is State.FAULT
    off = all_off_at(events, t)
    assert off is not None and off - t <= 0.15


def test_comms_stall_faults_and_the_board_watchdog_switches_off(tmp_path: Path) -> None:
    async def scenario() -> tuple[list[TraceEvent], float, State, str | None]:
        async with board_session(single(duration_s=300), tmp_path) as rig:
            await rig.session.arm()
            await rig.session.start()
            await asyncio.sleep(10)
            t = asyncio.get_running_loop().time()
            rig.link.cut()
            state = await rig.session.wait()
            return rig.trace.events, t, state, rig.session.fault_reason

    events, t, state, reason = run_virtual(scenario())
    assert state is State.FAULT
    assert reason is not None and "contact" in reason
    off = all_off_at(events, t)
    assert off is not None
    # The board's own watchdog (75 ms) acts; the host's all-off cannot reach a stalled board.
    assert off - t <= 0.075 + 0.03


def test_emergency_stop_is_immediate_and_latched(tmp_path: Path) -> None:
    prog = antagonists(duration_s=300)

    async def scenario() -> tuple[list[TraceEvent], float, State]:
        async with board_session(prog, tmp_path) as rig:
            s = rig.session
            await s.arm()
            await s.start()
            await asyncio.sleep(2.5)  # biceps on its plateau
            t = asyncio.get_running_loop().time()
            await s.emergency_stop("test")
            assert s.state is State.ESTOP
            with pytest.raises(Exception):
                await s.start()
            await asyncio.sleep(3)
            events = rig.trace.events
            await s.reset("test over")
            assert s.state is State.IDLE
            return events, t, s.state

    events, t, _ = run_virtual(scenario())
    off = all_off_at(events, t)
    assert off is not None and off - t <= 0.005
    # No ramp: the amplitude went straight from the plateau to off.
    last_on = [e for e in events if e.channel == 1 and e.t_s <= t and e.active][-1]
    assert last_on.amplitude_ma == pytest.approx(8.0)
    records = _events(tmp_path / "audit.jsonl")
    assert any(r["event"] == "reset" and r["reason"] == "test over" for r in records)


# ---- Ctrl-C in the API -----------------------------------------------------------------------


def _ramped_down(events: list[TraceEvent], channel_no: int, after_s: float) -> bool:
    later = [e.amplitude_ma for e in events if e.channel == channel_no and e.t_s >= after_s
             and e.on]
    return len(set(later)) >= 5 and later == sorted(later, reverse=True)


def test_cancellation_ramps_down(tmp_path: Path) -> None:
    holder: dict[str, object] = {}

    async def body() -> None:
        async with board_session(single(amplitude_ma=10.0, duration_s=300), tmp_path) as rig:
            holder["rig"] = rig
            await rig.session.arm()
            await rig.session.start()
            await rig.session.wait()

    async def scenario() -> tuple[list[TraceEvent], float]:
        task = asyncio.get_running_loop().create_task(body())
        await asyncio.sleep(20)
        t = asyncio.get_running_loop().time()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        rig = holder["rig"]
        return rig.trace.events, t  # type: ignore[attr-defined]

    events, t = run_virtual(scenario())
    assert _ramped_down(events, 1, t)
    assert not _active_at_end(events)
    off = all_off_at(events, t)
    assert off is not None and off - t >= 0.9  # a ramp of 1 s, not a cut
    assert any(r["event"] == "stop_requested" and r["reason"] == "interrupted"
               for r in _events(tmp_path / "audit.jsonl"))


def test_keyboard_interrupt_ramps_down(tmp_path: Path) -> None:
    holder: dict[str, object] = {}

    async def scenario() -> None:
        async with board_session(single(amplitude_ma=10.0, duration_s=300), tmp_path) as rig:
            holder["rig"] = rig
            await rig.session.arm()
            await rig.session.start()
            await asyncio.sleep(20)
            holder["t"] = asyncio.get_running_loop().time()
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_virtual(scenario())
    events = holder["rig"].trace.events  # type: ignore[attr-defined]
    t = float(holder["t"])  # type: ignore[arg-type]
    assert _ramped_down(events, 1, t)
    assert not _active_at_end(events)


def test_pause_ramps_down_and_resume_ramps_up(tmp_path: Path) -> None:
    async def scenario() -> list[TraceEvent]:
        async with board_session(single(amplitude_ma=10.0, duration_s=300), tmp_path) as rig:
            s = rig.session
            await s.arm()
            await s.start()
            await asyncio.sleep(5)
            await s.pause()
            assert s.state is State.PAUSED
            await asyncio.sleep(5)
            assert not _active_at_end(rig.trace.events)
            await s.resume()
            await asyncio.sleep(5)
            assert s.state is State.STIMULATING
            await s.stop()
            assert s.state is State.DONE
            return rig.trace.events

    events = run_virtual(scenario())
    # The electrode probe is a zero-length blip in virtual time; then two stimulation runs.
    runs = [iv for iv in active_intervals(events, 1) if iv[1] - iv[0] > 1.0]
    assert len(runs) == 2
    assert not _active_at_end(events)
