"""Unit tests of single classes: the state machine table, ramps, and the gate over an
in-memory fake device."""

from __future__ import annotations

import asyncio

import pytest

from controller.gate import Gate, InterlockRefused
from controller.machine import TRANSITIONS, IllegalTransition, SessionMachine, State
from controller.profiles import load_profile
from controller.ramp import ramp_levels
from sim.virtual_time import run_virtual
from tests.session.fakes import FakeStimulator
from tests.session.programs import antagonists, single

# ---- state machine ---------------------------------------------------------------------------


def test_latched_states_leave_only_by_reset() -> None:
    for latched in (State.FAULT, State.ESTOP):
        exits = {t["trigger"] for t in TRANSITIONS
                 if latched.value in (t["source"] if isinstance(t["source"], list)
                                      else [t["source"]])
                 and t["dest"] not in (None, latched.value)}
        assert exits <= {"reset", "estop", "disconnect"}


def test_every_state_can_fault_or_estop() -> None:
    m = SessionMachine()
    for state in State:
        m.state_name = state.value
        assert m.can("estop")
        assert m.can("fault") or state in (State.FAULT, State.ESTOP)


def test_illegal_transition_names_the_state_and_the_options() -> None:
    m = SessionMachine()
    m.fire("connect")
    with pytest.raises(IllegalTransition, match="cannot start while idle; possible now: .*arm"):
        m.fire("start")


def test_fault_inside_estop_stays_estop() -> None:
    seen: list[tuple[State, State, str]] = []
    m = SessionMachine(lambda a, b, t: seen.append((a, b, t)))
    for trig in ("connect", "arm", "start", "estop", "fault"):
        m.fire(trig)
    assert m.state is State.ESTOP
    assert seen[-1] == (State.RAMPING_UP, State.ESTOP, "estop")


# ---- ramps -----------------------------------------------------------------------------------


@pytest.mark.parametrize("duration_s", [0.0, 0.01, 0.5, 1.0, 3.5])
def test_ramp_from_zero_starts_at_most_two_percent_and_ends_on_target(duration_s: float) -> None:
    levels = ramp_levels(0.0, 12.0, duration_s, 0.05)
    assert levels[0][0] <= 0.24 + 1e-9
    assert levels[-1] == (12.0, 0.0)
    values = [lv for lv, _ in levels]
    assert values == sorted(values)
    assert sum(d for _, d in levels) == pytest.approx(duration_s if duration_s > 0 else 0.05)


def test_ramp_down_is_monotone_and_ends_at_zero() -> None:
    levels = ramp_levels(8.0, 0.0, 1.0, 0.05)
    values = [lv for lv, _ in levels]
    assert values == sorted(values, reverse=True) and values[-1] == 0.0
    assert ramp_levels(3.0, 3.0, 1.0, 0.05) == []


# ---- the gate ----------------------------------------------------------------------------------


def _gate(program, dev: FakeStimulator) -> Gate:  # type: ignore[no-untyped-def]
    return Gate({"main": dev}, program, load_profile(program.session.profile))


def test_gate_refuses_the_antagonist_while_the_other_is_on() -> None:
    async def scenario() -> None:
        dev = FakeStimulator()
        gate = _gate(antagonists(), dev)
        await gate.configure("biceps")
        await gate.configure("triceps")
        await gate.set_output("biceps", True)
        with pytest.raises(InterlockRefused, match="antagonist 'biceps' is on"):
            await gate.set_output("triceps", True)
        assert dev.on[2] is False
        await gate.set_output("biceps", False)
        await gate.set_output("triceps", True)
        assert dev.on == {1: False, 2: True}

    run_virtual(scenario())


def test_gate_treats_a_failed_switch_off_as_still_on() -> None:
    async def scenario() -> None:
        dev = FakeStimulator()
        gate = _gate(antagonists(), dev)
        await gate.configure("biceps")
        await gate.configure("triceps")
        await gate.set_output("biceps", True)
        dev.stalled = True
        with pytest.raises(Exception):
            await gate.set_output("biceps", False)
        dev.stalled = False
        with pytest.raises(InterlockRefused, match="unknown state"):
            await gate.set_output("triceps", True)

    run_virtual(scenario())


def test_gate_refuses_an_amplitude_over_the_profile_and_sends_nothing() -> None:
    async def scenario() -> None:
        dev = FakeStimulator()
        gate = _gate(single(8.0, profile="face"), dev)
        await gate.configure("quad")
        dev.calls.clear()
        with pytest.raises(InterlockRefused, match="16 mA refused"):
            await gate.set_amplitude("quad", 16.0)
        with pytest.raises(InterlockRefused, match="finite"):
            await gate.set_amplitude("quad", float("nan"))
        assert dev.calls == []

    run_virtual(scenario())


def test_latched_gate_refuses_on_but_always_allows_off() -> None:
    async def scenario() -> None:
        dev = FakeStimulator()
        gate = _gate(single(), dev)
        await gate.configure("quad", 0.1)
        await gate.set_output("quad", True)
        gate.latch("test fault")
        with pytest.raises(InterlockRefused, match="latched"):
            await gate.set_amplitude("quad", 2.0)
        with pytest.raises(InterlockRefused, match="latched"):
            await gate.set_output("quad", True)
        await gate.set_amplitude("quad", 0.0)
        await gate.set_output("quad", False)
        assert await gate.all_off() == []
        assert dev.on[1] is False

    run_virtual(scenario())


def test_unconfigured_channel_cannot_switch_on() -> None:
    async def scenario() -> None:
        gate = _gate(single(), FakeStimulator())
        with pytest.raises(InterlockRefused, match="not configured"):
            await gate.set_output("quad", True)

    run_virtual(scenario())


def test_status_read_does_not_overwrite_a_state_changed_meanwhile() -> None:
    async def scenario() -> None:
        dev = FakeStimulator()
        gate = _gate(antagonists(), dev)
        await gate.configure("biceps")
        read = asyncio.ensure_future(gate.status("main"))
        await gate.set_output("biceps", True)
        await read
        assert gate.confirmed_on("biceps") is True

    run_virtual(scenario())
