"""Random command sequences (with faults and waits mixed in) against the board over TCP in
virtual time, checking the safety invariants after every step:

- every command gets exactly one reply, carrying its seq;
- a refused command changes nothing in the trace;
- while a fault is latched, no output is active;
- no output ever delivers more than the highest amplitude it was set to (a plateau lowered
  during alternation applies from the next on-phase, so the present set value is not the bound);
- the alternating pair is never active at the same time while the board alternates.
"""

from __future__ import annotations

import asyncio

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from firmware_protocol import messages as m
from sim.board import BoardConfig, SimulatedBoard, serve_tcp
from sim.faults import FaultSpec
from sim.trace import OutputTrace, TraceEvent
from sim.virtual_time import run_virtual
from tests.board.helpers import RawHost

# Mostly valid values, so sequences get far enough to switch things on; some invalid ones.
channels = st.sampled_from([1, 1, 2, 2, 3, 4, 0, 5])
amplitudes = st.sampled_from([500, 5_000, 12_340, 100_000, 0, 150_000])
waveforms = st.sampled_from([m.WaveformCode.BIPHASIC_SYMMETRIC] * 4 + list(m.WaveformCode))
commands = st.one_of(
    st.builds(m.ConfigureChannel, channels, waveforms, amplitudes,
              st.sampled_from([50_000, 50_000, 500, 250_000]), st.sampled_from([200, 200, 10, 1000])),
    st.builds(m.SetAmplitude, channels, amplitudes),
    st.builds(m.SetOutput, channels, st.sampled_from([True, True, False])),
    st.builds(m.ProgramAlternation, st.just(1), st.sampled_from([2, 2, 1]), st.sampled_from([50, 200]),
              st.sampled_from([10, 30, 0]), st.sampled_from([30, 60, 5]), st.sampled_from([0, 20]),
              st.sampled_from([0, 20])),
    st.just(m.StartAlternation()),
    st.just(m.StopAlternation()),
    st.just(m.EmergencyStop()),
    st.just(m.ClearFaults()),
    st.just(m.StatusRequest()),
    st.builds(m.Heartbeat, st.integers(0, 2**32 - 1)),
)
steps = st.one_of(
    commands,
    st.floats(0.001, 0.3).map(lambda s: ("wait", s)),
    st.sampled_from([FaultSpec("lead-off", channel=2), FaultSpec("clear")]).map(lambda f: ("fault", f)),
)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(steps, max_size=40), st.booleans())
def test_random_sessions_keep_the_safety_invariants(script: list[object], off_on_compliance: bool) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        trace = OutputTrace(loop.time, device="board")
        board = SimulatedBoard(BoardConfig(off_on_compliance=off_on_compliance, watchdog_ms=10_000), trace)
        server = await serve_tcp(board)
        host = await RawHost.connect(server.url)
        await host.hello()
        # A valid setup first, so the random part starts from a board that can switch on.
        for ch in (1, 2, 3):
            await host.request(m.ConfigureChannel(ch, m.WaveformCode.BIPHASIC_SYMMETRIC, 5_000, 50_000, 200))
        await host.request(m.ProgramAlternation(1, 2, 100, 10, 20, 20, 20))
        alternating_since: float | None = None
        highest_set_ua = dict.fromkeys(range(1, 5), 0)
        try:
            for step in script:
                if isinstance(step, tuple) and step[0] == "wait":
                    await asyncio.sleep(step[1])
                elif isinstance(step, tuple) and step[0] == "fault":
                    if step[1].kind == "clear":
                        board.clear_injected()
                    else:
                        board.inject(step[1])
                else:
                    before = trace.events
                    seq = host.conn.next_seq
                    reply = await host.request(step)  # type: ignore[arg-type]
                    assert getattr(reply, "acked_seq", None) == seq
                    if isinstance(reply, m.Nack):
                        assert trace.events == before, (step, reply)
                if board.alternation_running and alternating_since is None:
                    alternating_since = loop.time()
                elif not board.alternation_running:
                    alternating_since = None
                if board.fault_latched:
                    assert not any(e.active for e in _last(trace).values()), step
                for ch, ua in board.set_amplitudes_ua.items():
                    highest_set_ua[ch] = max(highest_set_ua[ch], ua)
                for ch, e in _last(trace).items():
                    assert e.amplitude_ma <= highest_set_ua[ch] / 1000 + 1e-9 <= 100.0 + 1e-9
                if alternating_since is not None:
                    last = _last(trace)
                    assert not (last[1].active and last[2].active)
            # Whatever happened, a goodbye leaves everything off.
            assert isinstance(await host.request(m.Goodbye()), m.Ack)
            assert not any(e.active for e in _last(trace).values())
        finally:
            await host.close()
            await server.close()
            board.shutdown()

    run_virtual(main())


def _last(trace: OutputTrace) -> dict[int, TraceEvent]:
    out: dict[int, TraceEvent] = {}
    for e in trace.events:
        out[e.channel] = e
    return out
