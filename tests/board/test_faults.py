"""Every fault the board can be given, through the Python API, checked on the board's trace."""

from __future__ import annotations

import asyncio

import pytest

from drivers.base import FaultKind
from drivers.errors import CommandRejected, DeviceTimeout, ReadbackMismatch
from firmware_protocol.messages import FaultCode
from sim.board import BoardConfig, SimulatedBoard
from sim.faults import FaultSpec, parse_fault
from sim.load import ElectrodeLoad
from sim.trace import OutputTrace, active_intervals, all_off_at, max_amplitude_ma
from sim.virtual_time import run_virtual
from tests.board.helpers import CFG_10MA, tcp_rig


async def two_channels_on(rig) -> None:  # type: ignore[no-untyped-def]
    for ch in (1, 2):
        await rig.driver.configure_channel(ch, CFG_10MA)
        await rig.driver.set_output(ch, True)


def test_lead_off_switches_everything_off_and_latches() -> None:
    async def main() -> None:
        async with tcp_rig() as rig:
            await two_channels_on(rig)
            t = rig.now()
            rig.board.inject(parse_fault("lead-off:2"))
            assert all_off_at(rig.trace.events, t) == pytest.approx(t)
            await asyncio.sleep(0.001)
            st = await rig.driver.status()
            assert st.fault_latched and not any(c.output_on for c in st.channels)
            assert [(f.kind, f.channel) for f in rig.faults] == [(FaultKind.LEAD_OFF, 2)]
            with pytest.raises(CommandRejected, match="FAULT_LATCHED"):
                await rig.driver.set_output(1, True)
            rig.board.clear_injected()
            await rig.driver.clear_faults()
            await rig.driver.set_output(2, True)
            assert rig.board.output_states[2]

    run_virtual(main())


def test_lead_off_without_off_on_compliance_is_left_to_the_host() -> None:
    async def main() -> None:
        async with tcp_rig(BoardConfig(off_on_compliance=False)) as rig:
            await two_channels_on(rig)
            rig.board.inject(FaultSpec("lead-off", channel=1))
            await asyncio.sleep(0.01)
            st = await rig.driver.status()
            ch1 = st.channel(1)
            assert ch1.output_on and ch1.compliance and ch1.measured_amplitude_ma == 0.0
            assert not st.fault_latched
            assert [f.kind for f in rig.faults] == [FaultKind.LEAD_OFF]
            last = [e for e in rig.trace.events if e.channel == 1][-1]
            assert last.on and last.amplitude_ma == 0.0 and not last.active
            assert rig.board.output_states[2]  # the other channel runs on

    run_virtual(main())


def test_high_impedance_load_limits_current_at_compliance() -> None:
    load = ElectrodeLoad(series_ohm=10_000, parallel_ohm=0, parallel_uf=0)
    config = BoardConfig(loads=((1, load),), off_on_compliance=False)

    async def main() -> None:
        async with tcp_rig(config) as rig:
            await rig.driver.configure_channel(1, CFG_10MA)  # needs 100 V into 10 kohm
            await rig.driver.set_output(1, True)
            st = (await rig.driver.status()).channel(1)
            assert st.compliance and st.measured_amplitude_ma == pytest.approx(8.0)
            assert max_amplitude_ma(rig.trace.events, 1) == pytest.approx(8.0)
            await rig.driver.set_amplitude(1, 5.0)  # 50 V: within compliance again
            st = (await rig.driver.status()).channel(1)
            assert not st.compliance and st.measured_amplitude_ma == 5.0

    run_virtual(main())


def test_short_delivers_the_setpoint_into_a_near_zero_load() -> None:
    async def main() -> None:
        async with tcp_rig() as rig:
            await rig.driver.configure_channel(1, CFG_10MA)
            await rig.driver.set_output(1, True)
            rig.board.inject(parse_fault("short:1"))
            st = (await rig.driver.status()).channel(1)
            assert st.output_on and st.load_ohm == 1.0 and st.measured_amplitude_ma == 10.0

    run_virtual(main())


def test_stall_silences_the_board_with_outputs_held() -> None:
    async def main() -> None:
        async with tcp_rig() as rig:
            await rig.driver.configure_channel(1, CFG_10MA)
            await rig.driver.set_output(1, True)
            rig.board.inject(parse_fault("stall"))
            with pytest.raises(DeviceTimeout, match="no reply"):
                await rig.driver.heartbeat()
            await asyncio.sleep(0.5)
            assert rig.board.output_states[1]  # hung firmware: nothing changes
            assert [e for e in rig.trace.events if e.channel == 1][-1].active
            # When the firmware runs again its starved watchdog fires at once.
            t = rig.now()
            rig.board.clear_injected()
            assert all_off_at(rig.trace.events, t) == pytest.approx(t)
            assert FaultCode.WATCHDOG in rig.board.latched_faults

    run_virtual(main())


def test_corrupt_replies_are_discarded_by_the_driver() -> None:
    async def main() -> None:
        async with tcp_rig(reply_timeout_s=0.02) as rig:
            rig.board.inject(parse_fault("corrupt:1"))
            before = rig.board.commands_received
            with pytest.raises(DeviceTimeout):
                await rig.driver.status()
            assert rig.board.commands_received - before == 3  # first try and two retries
            rig.board.clear_injected()
            await rig.driver.status()

    run_virtual(main())


def test_drop_loses_replies_and_only_idempotent_commands_are_retried() -> None:
    async def main() -> None:
        async with tcp_rig() as rig:
            d = rig.driver
            await d.configure_channel(1, CFG_10MA)
            await d.configure_channel(2, CFG_10MA)
            rig.board.inject(FaultSpec("drop", value=1.0))
            before = rig.board.commands_received
            with pytest.raises(DeviceTimeout):
                await d.set_amplitude(1, 2.0)
            assert rig.board.commands_received - before == 3
            before = rig.board.commands_received
            from drivers.base import AlternationSchedule

            with pytest.raises(DeviceTimeout):
                await d.program_alternation(AlternationSchedule(1, 2, 0.1, 0.01, 0.02))
            assert rig.board.commands_received - before == 1
            rig.board.clear_injected()

    run_virtual(main())


def test_partial_drop_is_ridden_out_by_retries() -> None:
    async def main() -> None:
        async with tcp_rig(BoardConfig(seed=7), retries=6) as rig:
            rig.board.inject(FaultSpec("drop", value=0.3))
            for _ in range(30):
                await rig.driver.heartbeat()
            rig.board.clear_injected()
            assert rig.board.commands_received > 30

    run_virtual(main())


def test_stuck_output_stays_on_and_readback_catches_it() -> None:
    async def main() -> None:
        async with tcp_rig() as rig:
            await rig.driver.configure_channel(1, CFG_10MA)
            rig.board.inject(parse_fault("stuck:1"))
            await rig.driver.set_output(1, True)
            with pytest.raises(ReadbackMismatch, match="channel 1 output"):
                await rig.driver.set_output(1, False)
            with pytest.raises(ReadbackMismatch):
                await rig.driver.all_outputs_off()
            last = [e for e in rig.trace.events if e.channel == 1][-1]
            assert last.active and last.amplitude_ma == 10.0
            rig.board.clear_injected()
            assert not rig.board.output_states[1]

    run_virtual(main())


def test_reset_after_loses_state_and_needs_a_new_hello() -> None:
    async def main() -> None:
        async with tcp_rig(faults=[parse_fault("reset-after:0.51")]) as rig:
            await rig.driver.configure_channel(1, CFG_10MA)
            await rig.driver.set_output(1, True)
            for _ in range(30):
                await asyncio.sleep(0.025)
                if rig.faults:
                    break
                await rig.driver.heartbeat()
            assert [f.kind for f in rig.faults] == [FaultKind.RESET]
            off = all_off_at(rig.trace.events, 0.0)
            assert off == pytest.approx(0.51)
            assert not rig.board.greeted and not rig.board.fault_latched
            with pytest.raises(CommandRejected, match="restarted"):
                await rig.driver.set_output(1, True)
            # As the error says: close and open again, then configure from scratch.
            await rig.driver.close()
            await rig.driver.open()
            assert rig.board.greeted and rig.board.set_amplitudes_ua[1] == 0
            await rig.driver.configure_channel(1, CFG_10MA)
            await rig.driver.set_output(1, True)
            assert rig.board.output_states[1]

    run_virtual(main())


def test_overcurrent_trips_everything_at_once() -> None:
    async def main() -> None:
        async with tcp_rig() as rig:
            await two_channels_on(rig)
            t = rig.now()
            rig.board.inject(parse_fault("overcurrent:1"))
            assert all_off_at(rig.trace.events, t) == pytest.approx(t)
            # The trace shows what was delivered before the trip: more than was set.
            assert max_amplitude_ma(rig.trace.events, 1) > 10.0 * 1.1 + 0.1
            await asyncio.sleep(0.001)
            assert [(f.kind, f.channel) for f in rig.faults] == [(FaultKind.OVERCURRENT, 1)]
            assert FaultCode.OVERCURRENT in rig.board.latched_faults

    run_virtual(main())


def test_delay_after_postpones_the_next_fault() -> None:
    async def main() -> None:
        faults = [parse_fault("delay-after:1"), parse_fault("lead-off:1")]
        async with tcp_rig(faults=faults) as rig:
            await rig.driver.configure_channel(1, CFG_10MA)
            await rig.driver.set_output(1, True)
            while rig.now() < 1.5:
                await rig.driver.heartbeat()
                await asyncio.sleep(0.025)
            (_start, end), = active_intervals(rig.trace.events, 1)
            assert end == pytest.approx(1.0)
            assert [f.kind for f in rig.faults] == [FaultKind.LEAD_OFF]

    run_virtual(main())


def test_emergency_stop_latches() -> None:
    async def main() -> None:
        async with tcp_rig() as rig:
            await two_channels_on(rig)
            t = rig.now()
            await rig.driver.emergency_stop()
            assert all_off_at(rig.trace.events, t) == pytest.approx(t)
            assert rig.board.latched_faults == {FaultCode.ESTOP}
            with pytest.raises(CommandRejected, match="FAULT_LATCHED"):
                await rig.driver.set_output(1, True)

    run_virtual(main())


def test_scpi_only_faults_and_bad_channels_are_refused() -> None:
    board = SimulatedBoard(BoardConfig(channels=2), OutputTrace(lambda: 0.0))
    with pytest.raises(ValueError, match="SCPI"):
        board.inject(parse_fault("garble"))
    with pytest.raises(ValueError, match="channels 1..2"):
        board.inject(parse_fault("lead-off:3"))
