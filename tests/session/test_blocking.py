"""The blocking facade, on the built-in simulator (a board thread, real time)."""

from __future__ import annotations

from pathlib import Path

import pytest

from controller.api import stimctl_session
from controller.machine import State
from sim.trace import load_trace
from tests.session.programs import single


def test_blocking_session_runs_and_leaves_everything_off(tmp_path: Path) -> None:
    trace = tmp_path / "trace.jsonl"
    with stimctl_session(single(amplitude_ma=6.0, duration_s=3), None, log=tmp_path / "a.jsonl",
                         confirm=True, history=False, trace=trace) as s:
        assert s.state is State.IDLE
        s.arm()
        s.start()
        assert s.wait(timeout=60) is State.DONE
    events = load_trace(trace)
    assert max(e.amplitude_ma for e in events if e.on) == pytest.approx(6.0)
    last = {e.channel: e.active for e in events}
    assert not any(last.values())


def test_blocking_session_exception_inside_ramps_down(tmp_path: Path) -> None:
    trace = tmp_path / "trace.jsonl"
    with pytest.raises(RuntimeError, match="script bug"):
        with stimctl_session(single(amplitude_ma=6.0, duration_s=60), None,
                             log=tmp_path / "a.jsonl", confirm=True, history=False,
                             trace=trace) as s:
            s.arm()
            s.start()
            raise RuntimeError("script bug")
    events = load_trace(trace)
    last = {e.channel: e.active for e in events}
    assert not any(last.values())
