from sim.trace import (
    OutputTrace,
    active_intervals,
    all_off_at,
    load_trace,
    min_dead_time_s,
    overlap_s,
)


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_trace_dedupes_and_writes_jsonl(tmp_path):
    clock = Clock()
    path = tmp_path / "t.jsonl"
    tr = OutputTrace(clock, path, device="board")
    tr.record(1, True, 5.0, "biphasic_symmetric")
    tr.record(1, True, 5.0, "biphasic_symmetric")
    clock.t = 1.0
    tr.record(1, False, 0.0, "biphasic_symmetric")
    tr.close()
    assert len(tr.events) == 2
    assert load_trace(path) == tr.events


def test_load_trace_ignores_torn_last_line(tmp_path):
    path = tmp_path / "t.jsonl"
    tr = OutputTrace(Clock(), path)
    tr.record(1, True, 1.0, "x")
    tr.close()
    with open(path, "a") as fh:
        fh.write('{"t_s": 1.0, "dev')
    assert len(load_trace(path)) == 1


def _pair(t_a_off: float, t_b_on: float):
    clock = Clock()
    tr = OutputTrace(clock)
    tr.record(1, True, 5.0, "w")
    clock.t = t_a_off
    tr.record(1, False, 0.0, "w")
    clock.t = t_b_on
    tr.record(2, True, 5.0, "w")
    clock.t = t_b_on + 1.0
    tr.record(2, False, 0.0, "w")
    return tr.events


def test_dead_time_and_no_overlap():
    ev = _pair(1.0, 1.25)
    assert overlap_s(ev, 1, 2) == 0.0
    assert abs(min_dead_time_s(ev, 1, 2) - 0.25) < 1e-9
    assert active_intervals(ev, 2) == [(1.25, 2.25)]
    assert all_off_at(ev, 0.0) == 2.25


def test_overlap_is_seen():
    ev = _pair(1.0, 0.5)
    # channel 2 went on at 0.5 while 1 was active until 1.0
    assert abs(overlap_s(ev, 1, 2) - 0.5) < 1e-9
    assert min_dead_time_s(ev, 1, 2) < 0


def test_all_off_at_none_when_left_on():
    clock = Clock()
    tr = OutputTrace(clock)
    tr.record(1, True, 5.0, "w")
    assert all_off_at(tr.events, 0.0) is None
