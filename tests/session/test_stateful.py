"""Stateful property test: random sequences of API calls and injected faults against the
simulated board (virtual time, loopback socket), with the safety invariants checked on the
board's own trace after every step."""

from __future__ import annotations

import asyncio
import contextlib
import os
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from controller.api import open_session
from controller.gate import InterlockRefused
from controller.interlock import check_setpoint
from controller.machine import LATCHED, IllegalTransition, State
from controller.profiles import tighten
from controller.session import ArmRefused, Session, SessionOptions
from drivers.serial_board import SerialBoard
from sim.board import BoardConfig, SimulatedBoard, serve_tcp
from sim.faults import FaultSpec
from sim.trace import OutputTrace, TraceEvent
from sim.virtual_time import VirtualTimeLoop
from tests.session.programs import channel, pair, program

T = TypeVar("T")

MAX_SESSION_S = 60.0
PROFILE = tighten({"base": "body", "max_session_s": MAX_SESSION_S}, "<stateful test>")
PROGRAM = program(
    [channel("biceps", 1, 10.0), channel("triceps", 2, 9.0), channel("quad", 3, 12.0)],
    [pair("biceps", "triceps", on_s=3, off_s=3, dead_time_s=0.5, ramp_up_s=0.5,
          ramp_down_s=0.5)],
    duration_s=90,  # longer than the profile allows: the timer must cut it at 60 s
)
OUTPUT_OF = {c.name: c.output for c in PROGRAM.channels}
PAIRS = [(OUTPUT_OF[p.agonist], OUTPUT_OF[p.antagonist]) for p in PROGRAM.pairs]
STEP_LIMIT_S = 600.0
FAULT_LATENCY_S = 0.2
"""How long after a latch an output may still be seen on: the board's own reaction or one
status poll of the controller, plus a round trip."""


def _max_allowed_ma(name: str) -> float:
    spec = PROGRAM.channel(name)
    lo, hi = 0.0, 200.0
    for _ in range(40):
        mid = (lo + hi) / 2
        if check_setpoint(spec, mid, PROFILE):
            hi = mid
        else:
            lo = mid
    return lo


LIMIT_MA = {name: _max_allowed_ma(name) for name in OUTPUT_OF}


class SessionMachineTest(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.tmp = TemporaryDirectory()
        self.loop = VirtualTimeLoop()
        asyncio.set_event_loop(self.loop)
        self.latched_since: float | None = None
        self.latch_windows: list[tuple[float, float]] = []
        self.starts: list[float] = []
        self.software = False
        self.session: Session
        self._stack = contextlib.AsyncExitStack()
        self.run(self._open())

    def run(self, coro: Any) -> Any:
        # Bounded in virtual time: a step that never finishes is a failure, not a hung suite.
        return self.loop.run_until_complete(asyncio.wait_for(coro, STEP_LIMIT_S))

    async def _open(self) -> None:
        self.trace = OutputTrace(self.loop.time, device="board")
        self.board = SimulatedBoard(BoardConfig(off_on_compliance=False), self.trace)
        self.server = await serve_tcp(self.board)
        self.session = await self._stack.enter_async_context(open_session(
            PROGRAM, SerialBoard(self.server.url), profile=PROFILE,
            log=Path(self.tmp.name) / "audit.jsonl", confirm=True, history=False,
            options=SessionOptions(software_alternation=self.software)))

    def teardown(self) -> None:
        try:
            self.run(self._stack.aclose())
            self.board.shutdown()
            self.run(self.server.close())
            self._check_trace()
            assert not any(self._last_active().values()), "an output was left on"
        finally:
            asyncio.set_event_loop(None)
            self.loop.close()
            self.tmp.cleanup()

    # ---- bookkeeping -------------------------------------------------------------------------

    def _note_state(self) -> None:
        now = self.loop.time()
        latched = self.session.state in LATCHED
        if latched and self.latched_since is None:
            self.latched_since = now
        elif not latched and self.latched_since is not None:
            self.latch_windows.append((self.latched_since, now))
            self.latched_since = None

    def _last_active(self) -> dict[int, bool]:
        last: dict[int, bool] = {}
        for e in self.trace.events:
            last[e.channel] = e.active
        return last

    async def _call(self, coro: Any) -> None:
        with contextlib.suppress(IllegalTransition, InterlockRefused, ArmRefused):
            await coro

    # ---- rules -------------------------------------------------------------------------------

    @rule()
    def arm(self) -> None:
        self.run(self._call(self.session.arm()))
        self._note_state()

    @rule()
    def start(self) -> None:
        before = self.session.state
        # The electrode probe inside start() already drives the outputs: count from here.
        t_call = self.loop.time()
        self.run(self._call(self.session.start()))
        if before is State.ARMED:
            # Even a start that faults in its electrode probe drove the outputs from here.
            self.starts.append(t_call)
        self._note_state()

    @rule()
    def arm_and_start(self) -> None:
        # The common path, so that most runs get to stimulate before faults and stops arrive.
        self.arm()
        self.start()

    @rule(seconds=st.sampled_from([0.02, 0.3, 1.0, 2.5, 6.0, 15.0, 45.0]))
    def wait(self, seconds: float) -> None:
        self.run(asyncio.sleep(seconds))
        self._note_state()

    @rule()
    def stop(self) -> None:
        self.run(self._call(self.session.stop("test")))
        self._note_state()

    @rule()
    def pause(self) -> None:
        self.run(self._call(self.session.pause()))
        self._note_state()

    @rule()
    def resume(self) -> None:
        self.run(self._call(self.session.resume()))
        self._note_state()

    @rule(name=st.sampled_from(sorted(OUTPUT_OF)), amplitude_ma=st.floats(0.0, 120.0))
    def adjust(self, name: str, amplitude_ma: float) -> None:
        self.run(self._call(self.session.adjust(name, amplitude_ma)))
        self._note_state()

    @rule()
    def emergency_stop(self) -> None:
        self.run(self.session.emergency_stop("test"))
        self._note_state()

    @precondition(lambda self: self.session.state in LATCHED)
    @rule()
    def reset(self) -> None:
        self.board.clear_injected()
        self.run(self._call(self.session.reset("test: fault cleared")))
        self._note_state()

    @rule(kind=st.sampled_from(["lead-off", "overcurrent"]), output=st.sampled_from([1, 2, 3]))
    def inject(self, kind: str, output: int) -> None:
        self.board.inject(FaultSpec(kind, channel=output))
        self.run(asyncio.sleep(0.3))
        self._note_state()

    # ---- invariants on the board's trace ------------------------------------------------------

    @invariant()
    def safety_holds(self) -> None:
        self._check_trace()

    def _check_trace(self) -> None:
        events: list[TraceEvent] = self.trace.events
        active: dict[int, bool] = {}
        name_of = {v: k for k, v in OUTPUT_OF.items()}
        windows = list(self.latch_windows)
        if self.latched_since is not None:
            windows.append((self.latched_since, float("inf")))
        for e in events:
            active[e.channel] = e.active
            for a, b in PAIRS:
                assert not (active.get(a) and active.get(b)), \
                    f"antagonists {a} and {b} both on at {e.t_s:.3f} s"
            if e.active:
                limit = LIMIT_MA[name_of[e.channel]]
                assert e.amplitude_ma <= limit + 1e-6, \
                    f"output {e.channel} at {e.amplitude_ma} mA above its limit {limit:.3f}"
                for lo, hi in windows:
                    assert not (lo + FAULT_LATENCY_S < e.t_s < hi), \
                        f"output {e.channel} on at {e.t_s:.3f} s while latched since {lo:.3f}"
                started = [s for s in self.starts if s <= e.t_s]
                if started:
                    assert e.t_s <= started[-1] + MAX_SESSION_S + 1e-6, \
                        f"output {e.channel} on at {e.t_s:.3f} s, past the session maximum"
        # Between events: whatever is on now must not have been on for too long.
        if self.starts and any(active.values()):
            assert self.loop.time() <= self.starts[-1] + MAX_SESSION_S + FAULT_LATENCY_S


class SoftwareAlternationTest(SessionMachineTest):
    def __init__(self) -> None:
        self.software_flag = True
        super().__init__()

    async def _open(self) -> None:
        self.software = True
        await super()._open()


# Derandomized so CI runs the same sequences every time; STIMCTL_STATEFUL_EXAMPLES=500 (and
# STIMCTL_STATEFUL_RANDOM=1) explores further on demand.
_settings = settings(
    max_examples=int(os.environ.get("STIMCTL_STATEFUL_EXAMPLES", "15")),
    stateful_step_count=30,
    deadline=None,
    derandomize=os.environ.get("STIMCTL_STATEFUL_RANDOM") != "1",
    suppress_health_check=list(HealthCheck),
)

TestHardwareAlternation = SessionMachineTest.TestCase
TestHardwareAlternation.settings = _settings
TestSoftwareAlternation = SoftwareAlternationTest.TestCase
TestSoftwareAlternation.settings = _settings

pytestmark = [
    pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning"),
]
