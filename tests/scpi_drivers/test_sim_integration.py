"""The drivers through pyvisa-py over TCPIP SOCKET against the SCPI simulators, asserting on the
simulator's own output trace.

pyvisa blocks, so the simulator runs in its own thread (`ScpiServerThread`, real time) rather
than in the test's loop under virtual time. Assertions use the simulator's timestamps, which
are stamped from its own playback timeline, never wall-clock durations; VISA timeouts are
generous (5 s) so a loaded machine does not turn into a false fault.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest

from drivers.base import AlternationSchedule, ChannelConfig, FaultKind, FaultReport, Waveform
from drivers.errors import CommandRejected, DeviceTimeout, ReadbackMismatch
from drivers.factory import open_stimulator
from drivers.scpi import K6221, K33500B, ScpiInstrument
from sim.faults import FaultSpec
from sim.scpi import ScpiServerThread
from sim.trace import OutputTrace, TraceEvent, all_off_at, max_amplitude_ma, min_dead_time_s, \
    overlap_s

TIMEOUT_S = 5.0
PULSES = ChannelConfig(Waveform.BIPHASIC_SYMMETRIC, amplitude_ma=8.0, frequency_hz=50.0,
                       pulse_width_us=250.0)


@pytest.fixture
def k6221() -> Iterator[ScpiServerThread]:
    with ScpiServerThread("k6221") as srv:
        yield srv


@pytest.fixture
def k33500b() -> Iterator[ScpiServerThread]:
    with ScpiServerThread("k33500b", transconductance_ma_per_v=5.0) as srv:
        yield srv


def resource(srv: ScpiServerThread) -> str:
    return srv.start() if not getattr(srv, "resource", None) else str(srv.resource)


def last(trace: OutputTrace, channel: int) -> TraceEvent:
    return [e for e in trace.events if e.channel == channel][-1]


async def wait_for_trace(trace: OutputTrace, predicate: object, limit_s: float = 20.0) -> None:
    deadline = time.monotonic() + limit_s
    while not predicate(trace.events):  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"trace never reached the expected state: {trace.events[-4:]}")
        await asyncio.sleep(0.02)


def nothing_active(events: list[TraceEvent]) -> bool:
    return bool(events) and all_off_at(events, events[-1].t_s) is not None


async def test_6221_pulse_train_amplitude_and_off_in_the_trace(k6221: ScpiServerThread) -> None:
    drv = K6221(resource(k6221), timeout_s=TIMEOUT_S)
    await drv.open()
    await drv.configure_channel(1, PULSES)
    await drv.set_output(1, True)
    assert last(k6221.trace, 1).active and last(k6221.trace, 1).amplitude_ma == 8.0
    assert await drv.set_amplitude(1, 6.5) == pytest.approx(6.5)
    assert last(k6221.trace, 1).amplitude_ma == pytest.approx(6.5)
    st = (await drv.status()).channel(1)
    assert st.output_on and not st.compliance and st.measured_amplitude_ma is None
    await drv.set_output(1, False)
    await drv.close()
    assert nothing_active(k6221.trace.events)
    assert max_amplitude_ma(k6221.trace.events, 1) == 8.0


async def test_6221_lead_off_reads_as_compliance(k6221: ScpiServerThread) -> None:
    drv = K6221(resource(k6221), timeout_s=TIMEOUT_S)
    await drv.open()
    await drv.configure_channel(1, PULSES)
    await drv.set_output(1, True)
    k6221.inject(FaultSpec("lead-off", channel=1))
    st = (await drv.status()).channel(1)
    assert st.compliance and st.output_on
    assert not last(k6221.trace, 1).active  # nothing reaches an open circuit
    await drv.close()


async def test_generator_delivers_milliamps_through_the_stage(k33500b: ScpiServerThread) -> None:
    drv = open_stimulator(resource(k33500b), transconductance_ma_per_v=5.0, timeout_s=TIMEOUT_S)
    assert isinstance(drv, ScpiInstrument)
    caps = await drv.open()
    assert caps.identity.model == "33522B" and isinstance(drv.driver, K33500B)
    await drv.configure_channel(2, PULSES)
    await drv.set_output(2, True)
    assert last(k33500b.trace, 2).amplitude_ma == pytest.approx(8.0, rel=1e-3)
    assert await drv.set_amplitude(2, 12.0) == pytest.approx(12.0)
    assert last(k33500b.trace, 2).amplitude_ma == pytest.approx(12.0, rel=1e-3)
    assert not last(k33500b.trace, 1).active
    await drv.close()
    assert nothing_active(k33500b.trace.events)


async def test_generator_monophasic_pulse_function(k33500b: ScpiServerThread) -> None:
    drv = K33500B(resource(k33500b), timeout_s=TIMEOUT_S)
    await drv.open()
    mono = ChannelConfig(Waveform.MONOPHASIC, amplitude_ma=10.0, frequency_hz=40.0,
                         pulse_width_us=300.0)
    await drv.configure_channel(1, mono)
    await drv.set_output(1, True)
    assert last(k33500b.trace, 1).amplitude_ma == pytest.approx(10.0, rel=1e-3)
    assert await drv.set_amplitude(1, 4.0) == pytest.approx(4.0)
    assert last(k33500b.trace, 1).amplitude_ma == pytest.approx(4.0, rel=1e-3)
    assert (await drv.status()).channel(1).set_amplitude_ma == pytest.approx(4.0)
    await drv.close()
    assert nothing_active(k33500b.trace.events)


async def test_factory_identifies_the_6221_and_reopens_after_close(
        k6221: ScpiServerThread) -> None:
    drv = open_stimulator(resource(k6221), timeout_s=TIMEOUT_S)
    caps = await drv.open()
    assert caps.identity.model == "6221" and not caps.hardware_alternation
    await drv.close()
    await drv.close()  # twice is fine
    assert (await drv.open()).identity.model == "6221"
    await drv.set_output(1, False)
    await drv.close()


async def test_generator_alternation_never_overlaps_and_holds_the_dead_time(
        k33500b: ScpiServerThread) -> None:
    drv = K33500B(resource(k33500b), timeout_s=TIMEOUT_S)
    await drv.open()
    await drv.configure_channel(1, PULSES)
    await drv.configure_channel(2, PULSES.with_amplitude(6.0))
    sched = AlternationSchedule(1, 2, on_s=0.2, dead_time_s=0.03, rest_s=0.05, ramp_up_s=0.05,
                                ramp_down_s=0.02)
    await drv.program_alternation(sched)
    await drv.start_alternation()
    assert (await drv.status()).alternation_running

    def three_handovers(events: list[TraceEvent]) -> bool:
        return sum(1 for e in events if e.channel == 2 and e.active) >= 3

    await wait_for_trace(k33500b.trace, three_handovers)
    await drv.stop_alternation()
    events = k33500b.trace.events
    assert overlap_s(events, 1, 2) == 0.0
    dead = min_dead_time_s(events, 1, 2)
    assert dead is not None and dead >= sched.dead_time_s - 1e-9
    assert max_amplitude_ma(events, 1) == pytest.approx(8.0, rel=1e-3)
    assert max_amplitude_ma(events, 2) == pytest.approx(6.0, rel=1e-3)
    await drv.close()
    assert nothing_active(k33500b.trace.events)


async def test_injected_scpi_error_is_a_fault_and_outputs_go_off(
        k33500b: ScpiServerThread) -> None:
    faults: list[FaultReport] = []
    drv = K33500B(resource(k33500b), timeout_s=TIMEOUT_S)
    drv.add_fault_listener(faults.append)
    await drv.open()
    await drv.configure_channel(1, PULSES)
    await drv.set_output(1, True)
    assert last(k33500b.trace, 1).active
    k33500b.inject(FaultSpec("scpi-error", value=-310))
    with pytest.raises(CommandRejected, match="-310"):
        await drv.set_amplitude(1, 9.0)
    assert faults and faults[0].kind is FaultKind.DEVICE_ERROR
    assert nothing_active(k33500b.trace.events)
    await drv.close()


async def test_stall_is_a_comms_fault_and_the_queued_off_lands_when_it_listens_again(
        k6221: ScpiServerThread) -> None:
    faults: list[FaultReport] = []
    drv = K6221(resource(k6221), timeout_s=1.0)
    drv.add_fault_listener(faults.append)
    await drv.open()
    await drv.configure_channel(1, PULSES)
    await drv.set_output(1, True)
    k6221.inject(FaultSpec("stall"))
    with pytest.raises(DeviceTimeout):
        await drv.set_amplitude(1, 9.0)
    assert faults[0].kind is FaultKind.COMMS
    # A stalled instrument reads nothing: no software can switch it off until it listens again
    # (the hardware e-stop's job). The driver's all-off is already queued in the socket.
    k6221.call(k6221.instrument.clear_faults)
    await wait_for_trace(k6221.trace, nothing_active)
    await drv.close()


async def test_readback_mismatch_is_a_fault_and_outputs_go_off(
        k33500b: ScpiServerThread) -> None:
    faults: list[FaultReport] = []
    drv = K33500B(resource(k33500b), timeout_s=TIMEOUT_S)
    drv.add_fault_listener(faults.append)
    await drv.open()
    await drv.configure_channel(1, PULSES)
    await drv.set_output(1, True)

    # Someone sets the load to 50 ohm on the front panel: the generator now clips 16 Vpp to
    # the 10 Vpp it allows into 50 ohm, and only the readback sees it.
    def front_panel_50_ohm() -> None:
        k33500b.instrument._ch[1].load_setting_ohm = 50.0  # type: ignore[attr-defined]

    k33500b.call(front_panel_50_ohm)
    with pytest.raises(ReadbackMismatch):
        await drv.set_amplitude(1, 40.0)
    assert faults[0].kind is FaultKind.READBACK
    assert nothing_active(k33500b.trace.events)
    await drv.close()
