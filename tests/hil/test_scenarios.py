"""The safety scenario library against the default simulated rig (it must pass), and each
scenario against a setup that breaks the protection it checks (it must fail).

Everything runs on virtual time: the board, its driver and the controller share one loop over
loopback TCP, so the whole library takes seconds of wall time.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from hil.context import ScenarioFailed, run_scenario
from hil.report import ScenarioRecord
from hil.rig import Rig
from hil.scenarios.library import SCENARIOS
from tests.hil.conftest import sim_rig
from tests.hil.doubles import Flaws, unguarded_factory


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_scenario_passes_on_the_default_sim_rig(name: str, default_sim_rig: Rig) -> None:
    rec = run_scenario(default_sim_rig, SCENARIOS[name].run)
    judged = [m for m in rec.measurements if m.limit is not None]
    assert judged, "a scenario must measure something against a limit"
    assert all(m.passed for m in judged)
    assert rec.series and any(s.events for s in rec.series), "the trace must have been read"


def _fails(rig: Rig, scenario: Callable[[Any], Awaitable[None]], **kw: Any) -> ScenarioRecord:
    rec = ScenarioRecord("broken")
    with pytest.raises(ScenarioFailed):
        run_scenario(rig, scenario, record=rec, **kw)
    return rec


def _failed(rec: ScenarioRecord) -> set[str]:
    return {m.name for m in rec.measurements if not m.passed}


# Each case: the scenario, the broken setup, and a figure that must be among the failures.
BROKEN: list[tuple[str, str, dict[str, Any], Any, str]] = [
    ("over_limit_refusal", "controller without interlock", {}, Flaws(), "peak delivered current"),
    (
        "start_ramp",
        "controller that jumps to the target",
        {},
        Flaws(ramp=False),
        "first output / target",
    ),
    (
        "antagonist_non_overlap",
        "controller that runs the pair together",
        {},
        Flaws(),
        "overlap of the pair",
    ),
    (
        "antagonist_non_overlap_software",
        "controller that runs the pair together",
        {},
        Flaws(),
        "overlap of the pair",
    ),
    ("session_time_limit", "controller without a session timer", {}, Flaws(), "stimulation time"),
    (
        "comms_loss",
        "board watchdog effectively disabled (60 s)",
        {"watchdog_ms": 60000},
        None,
        "link cut to all outputs off",
    ),
    (
        "comms_loss",
        "board that ignores off from 0.6 s",
        {"faults": ["delay-after:0.6", "stuck:1"]},
        None,
        "link cut to all outputs off",
    ),
    (
        "lead_off",
        "controller ignoring faults, board not cutting on compliance",
        {"off_on_compliance": False},
        Flaws(),
        "current after the lead is back",
    ),
    (
        "emergency_stop_latency",
        "controller whose e-stop ramps",
        {},
        Flaws(slow_estop=True),
        "e-stop to all outputs off",
    ),
    (
        "emergency_stop_latency",
        "board that ignores off from 0.6 s",
        {"faults": ["delay-after:0.6", "stuck:1"]},
        None,
        "e-stop to all outputs off",
    ),
    (
        "fault_latch_and_reset",
        "controller that does not latch",
        {},
        Flaws(),
        "arm refused while latched",
    ),
    ("stuck_output", "controller without readback judgement", {}, Flaws(), "stuck output detected"),
]


@pytest.mark.parametrize(
    ("name", "why", "sim", "flaws", "figure"),
    BROKEN,
    ids=[f"{c[0]}:{c[1]}" for c in BROKEN],
)
def test_scenario_fails_when_its_protection_is_broken(
    name: str, why: str, sim: dict[str, Any], flaws: Flaws | None, figure: str
) -> None:
    kw: dict[str, Any] = {}
    if flaws is not None:
        kw["session_factory"] = unguarded_factory(flaws)
    rec = _fails(sim_rig(**sim), SCENARIOS[name].run, **kw)
    assert figure in _failed(rec), f"{why}: failures were {_failed(rec)}"


def test_every_scenario_has_a_breaking_case() -> None:
    assert {c[0] for c in BROKEN} == set(SCENARIOS)


def test_lead_off_is_caught_by_the_controller_alone() -> None:
    """With a board that only flags compliance (no cut of its own), the production controller
    must still latch and keep the output off when the lead comes back."""
    rec = run_scenario(sim_rig(off_on_compliance=False), SCENARIOS["lead_off"].run)
    assert all(m.passed for m in rec.measurements)
