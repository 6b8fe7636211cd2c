"""Driver <-> simulated board over loopback TCP, in virtual time, checked on the board's trace."""

from __future__ import annotations

import asyncio

import pytest

from drivers.base import AlternationSchedule, FaultKind
from drivers.errors import CommandRejected, ConnectionLost, DeviceTimeout
from sim.board import BoardConfig
from sim.trace import active_intervals, all_off_at, max_amplitude_ma, min_dead_time_s, overlap_s
from sim.virtual_time import run_virtual
from tests.board.helpers import CFG_10MA, tcp_rig


async def heartbeat_for(rig_driver, duration_s: float, period_s: float = 0.025) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + duration_s
    while loop.time() < end:
        await rig_driver.heartbeat()
        await asyncio.sleep(period_s)


def test_open_reports_board_capabilities() -> None:
    async def main() -> None:
        async with tcp_rig(BoardConfig(channels=2, watchdog_ms=90)) as rig:
            caps = rig.driver.capabilities
            assert [c.channel for c in caps.channels] == [1, 2]
            ch = caps.channel(1)
            assert ch.max_amplitude_ma == 100.0 and ch.amplitude_resolution_ma == 0.01
            assert (ch.min_frequency_hz, ch.max_frequency_hz) == (1.0, 200.0)
            assert (ch.min_pulse_width_us, ch.max_pulse_width_us) == (20.0, 1000.0)
            assert ch.compliance_v == 80.0
            assert caps.watchdog_timeout_s == pytest.approx(0.09)
            assert caps.recommended_heartbeat_s == pytest.approx(0.03)
            assert caps.hardware_alternation
            assert rig.board.watchdog_armed

    run_virtual(main())


def test_configure_on_live_amplitude_status_off() -> None:
    async def main() -> None:
        async with tcp_rig() as rig:
            d = rig.driver
            await d.configure_channel(1, CFG_10MA)
            assert not rig.board.output_states[1]
            await d.set_output(1, True)
            t_on = rig.now()
            await heartbeat_for(d, 0.2)
            assert await d.set_amplitude(1, 12.5) == 12.5
            st = (await d.status()).channel(1)
            assert st.output_on and st.set_amplitude_ma == 12.5
            assert st.measured_amplitude_ma == 12.5 and not st.compliance
            assert st.load_ohm == pytest.approx(500 + 1000 * (1 - 2.718281828 ** -0.2), abs=1)
            await heartbeat_for(d, 0.2)
            await d.set_output(1, False)
            t_off = rig.now()
            ev = rig.trace.events
            assert active_intervals(ev, 1) == [(pytest.approx(t_on), pytest.approx(t_off))]
            assert max_amplitude_ma(ev, 1) == 12.5
            amps = [e.amplitude_ma for e in ev if e.channel == 1 and e.on]
            assert amps == [10.0, 12.5]
            assert all(not e.active for e in ev if e.channel != 1)

    run_virtual(main())


def test_alternation_run_by_the_board_never_overlaps() -> None:
    schedule = AlternationSchedule(1, 2, on_s=0.4, dead_time_s=0.05, rest_s=0.1,
                                   ramp_up_s=0.1, ramp_down_s=0.1)

    async def main() -> None:
        async with tcp_rig() as rig:
            d = rig.driver
            await d.configure_channel(1, CFG_10MA)
            await d.configure_channel(2, CFG_10MA.with_amplitude(8.0))
            await d.program_alternation(schedule)
            await d.start_alternation()
            assert (await d.status()).alternation_running
            await heartbeat_for(d, 3 * schedule.cycle_s - 0.06)
            await d.stop_alternation()
            ev = rig.trace.events
            assert overlap_s(ev, 1, 2) == 0.0
            dead = min_dead_time_s(ev, 1, 2)
            assert dead is not None and dead >= schedule.dead_time_s - 1e-9
            a, b = active_intervals(ev, 1), active_intervals(ev, 2)
            assert len(a) == 3 and len(b) == 3
            assert all(e - s == pytest.approx(0.4) for s, e in a + b)
            # B to the next A is the rest time.
            assert a[1][0] - b[0][1] == pytest.approx(0.1)
            # Ramps are staircases of 10 ms steps up to the plateau.
            a_amps = [e.amplitude_ma for e in ev if e.channel == 1 and e.on]
            assert a_amps[:10] == pytest.approx([1.0 * k for k in range(1, 11)])
            assert max_amplitude_ma(ev, 2) == 8.0
            assert not any(rig.board.output_states.values())

    run_virtual(main())


def test_alternation_rules_on_the_pair() -> None:
    async def main() -> None:
        async with tcp_rig() as rig:
            d = rig.driver
            await d.configure_channel(1, CFG_10MA)
            with pytest.raises(CommandRejected, match="BAD_STATE"):
                # channel 2 is not configured yet
                await d.program_alternation(AlternationSchedule(1, 2, 0.2, 0.02, 0.05))
            await d.configure_channel(2, CFG_10MA)
            await d.program_alternation(AlternationSchedule(1, 2, 0.2, 0.02, 0.05))
            await d.start_alternation()
            with pytest.raises(CommandRejected, match="BAD_STATE"):
                await d.set_output(1, True)
            with pytest.raises(CommandRejected, match="BAD_STATE"):
                await d.configure_channel(2, CFG_10MA)
            # A live plateau change applies from the next on-phase of that channel.
            await heartbeat_for(d, 0.05)
            t_change = rig.now()
            assert await d.set_amplitude(1, 6.0) == 6.0
            await heartbeat_for(d, 0.6)
            await d.stop_alternation()
            ev = rig.trace.events
            before = [e.amplitude_ma for e in ev if e.channel == 1 and e.active and e.t_s < t_change]
            after = [e.amplitude_ma for e in ev if e.channel == 1 and e.active and e.t_s > t_change]
            assert set(before) == {10.0} and set(after) == {6.0}
            assert overlap_s(ev, 1, 2) == 0.0
            assert not any(rig.board.output_states.values())

    run_virtual(main())


def test_starting_alternation_over_a_live_output_keeps_the_dead_time() -> None:
    async def main() -> None:
        async with tcp_rig() as rig:
            d = rig.driver
            await d.configure_channel(1, CFG_10MA)
            await d.configure_channel(2, CFG_10MA)
            await d.set_output(2, True)
            await d.program_alternation(AlternationSchedule(1, 2, 0.1, 0.03, 0.05))
            await d.start_alternation()
            await heartbeat_for(d, 0.5)
            await d.stop_alternation()
            ev = rig.trace.events
            assert overlap_s(ev, 1, 2) == 0.0
            dead = min_dead_time_s(ev, 1, 2)
            assert dead is not None and dead >= 0.03 - 1e-9

    run_virtual(main())


def test_close_switches_outputs_off_and_says_goodbye() -> None:
    async def main() -> None:
        async with tcp_rig() as rig:
            await rig.driver.configure_channel(3, CFG_10MA)
            await rig.driver.set_output(3, True)
            await rig.driver.close()
            assert not any(rig.board.output_states.values())
            assert not rig.board.greeted and not rig.board.watchdog_armed
            await rig.driver.close()  # twice is fine
            with pytest.raises(ConnectionLost):
                await rig.driver.status()
            # No watchdog fault after a proper goodbye, however long we wait.
            await asyncio.sleep(1.0)
            assert not rig.board.fault_latched
            assert all_off_at(rig.trace.events, 0.0) is not None

    run_virtual(main())


def test_hung_host_board_watchdog_switches_everything_off() -> None:
    async def main() -> None:
        async with tcp_rig() as rig:
            d = rig.driver
            for ch in (1, 2):
                await d.configure_channel(ch, CFG_10MA)
                await d.set_output(ch, True)
            await heartbeat_for(d, 0.3)
            last = rig.board.last_frame_s
            assert last is not None
            await asyncio.sleep(0.5)  # the controller hangs: no heartbeat
            off = all_off_at(rig.trace.events, last)
            assert off is not None and off - last <= 0.075 + 1e-9
            assert rig.board.fault_latched
            assert [f.kind for f in rig.faults] == [FaultKind.WATCHDOG]
            with pytest.raises(CommandRejected, match="FAULT_LATCHED"):
                await d.set_output(1, True)
            await d.clear_faults()
            await d.set_output(1, True)
            assert rig.board.output_states[1]

    run_virtual(main())


def test_host_connection_dropped_without_goodbye() -> None:
    async def main() -> None:
        async with tcp_rig() as rig:
            d = rig.driver
            await d.configure_channel(1, CFG_10MA)
            await d.set_output(1, True)
            last = rig.board.last_frame_s
            assert last is not None
            # The host process dies: its socket closes with no goodbye.
            rig.driver._release()
            await asyncio.sleep(0.3)
            off = all_off_at(rig.trace.events, last)
            assert off is not None and off - last <= 0.075 + 1e-9
            assert not rig.board.connected

    run_virtual(main())


def test_board_going_away_is_a_comms_fault() -> None:
    async def main() -> None:
        async with tcp_rig() as rig:
            await rig.server.close()
            await asyncio.sleep(0.01)
            assert [f.kind for f in rig.faults] == [FaultKind.COMMS]
            with pytest.raises((ConnectionLost, DeviceTimeout)):
                await rig.driver.status()

    run_virtual(main())


def test_status_readback_matches_the_trace() -> None:
    async def main() -> None:
        async with tcp_rig() as rig:
            d = rig.driver
            await d.configure_channel(4, CFG_10MA.with_amplitude(3.3))
            await d.set_output(4, True)
            status = await d.status()
            assert status.channel(4).output_on and status.channel(4).set_amplitude_ma == 3.3
            on = {e.channel for e in rig.trace.events if e.active}
            assert on == {4}
            assert [st.channel for st in status.channels if st.output_on] == [4]

    run_virtual(main())
