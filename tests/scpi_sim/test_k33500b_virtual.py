"""The 33500B simulator under virtual time: a client and the simulator in one loop over loopback
TCP, sessions of many minutes in well under a second, asserting on the output trace."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable
from typing import TypeVar

import numpy as np
import pytest

from sim.faults import FaultSpec
from sim.scpi.k33500b import K33500B
from sim.scpi.server import serve_tcp
from sim.trace import TraceEvent, active_intervals, max_amplitude_ma, min_dead_time_s, overlap_s
from sim.virtual_time import run_virtual

SRATE = 20_000.0
SLOT = 400  # 50 Hz pulses at 20 kSa/s
PHASE = 4  # 200 us phases
GAP = 1  # 50 us interphase gap
PULSES = 25
DEAD = 200  # 10 ms of deliberate dead time after each train's slot
REST = 4000

T = TypeVar("T")


def train() -> np.ndarray:
    out = np.zeros(PULSES * SLOT)
    for k in range(PULSES):
        b = k * SLOT
        out[b : b + PHASE] = 1.0
        out[b + PHASE + GAP : b + 2 * PHASE + GAP] = -1.0
    return out


def complementary() -> tuple[np.ndarray, np.ndarray]:
    t = train()
    z = np.zeros_like(t)
    a = np.concatenate([t, np.zeros(DEAD), z, np.zeros(REST)])
    b = np.concatenate([z, np.zeros(DEAD), t, np.zeros(REST)])
    return a, b


CYCLE_S = (2 * PULSES * SLOT + DEAD + REST) / SRATE
TRAIN_S = ((PULSES - 1) * SLOT + 2 * PHASE + GAP) / SRATE
HANDOVER_S = (PULSES * SLOT + DEAD) / SRATE - TRAIN_S
"""Gap between channel 1's last pulse and channel 2's first: the slot tail plus the dead time."""


def dac_block(name: str, wave: np.ndarray, channel: int) -> bytes:
    codes = np.round(wave * 32767).astype(">i2").tobytes()
    length = str(len(codes)).encode()
    header = f"SOUR{channel}:DATA:ARB:DAC {name}, #".encode() + str(len(length)).encode() + length
    return header + codes + b"\n"


class Client:
    """A bare SCPI-over-TCP client in the same loop as the simulator."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    async def write(self, *commands: str | bytes) -> None:
        for cmd in commands:
            data = cmd if isinstance(cmd, bytes) else cmd.encode() + b"\n"
            self.writer.write(data)
        await self.writer.drain()

    async def query(self, command: str) -> str:
        await self.write(command)
        line = await asyncio.wait_for(self.reader.readline(), 30)
        return line.decode().rstrip("\n")

    async def errors(self) -> list[str]:
        out: list[str] = []
        while True:
            err = await self.query("SYST:ERR?")
            if err.startswith(("0,", "+0,")):
                return out
            out.append(err)

    async def close(self) -> None:
        self.writer.close()
        await self.writer.wait_closed()


def with_sim(
    body: Callable[[K33500B, Client], Awaitable[T]], **options: object
) -> tuple[T, list[TraceEvent]]:
    async def main() -> tuple[T, list[TraceEvent]]:
        inst = K33500B(**options)  # type: ignore[arg-type]
        server = await serve_tcp(inst)
        reader, writer = await asyncio.open_connection(server.host, server.port)
        client = Client(reader, writer)
        try:
            result = await body(inst, client)
        finally:
            await client.close()
            await server.close()
            inst.close()
        return result, inst.trace.events

    return run_virtual(main())


async def load_complementary(client: Client, volts_pp: float = 2.0) -> None:
    a, b = complementary()
    await client.write("*RST", "*CLS", dac_block("FLEX", a, 1), dac_block("EXTEN", b, 2))
    for ch, name in ((1, "FLEX"), (2, "EXTEN")):
        await client.write(
            f"SOUR{ch}:FUNC:ARB {name}",
            f"SOUR{ch}:FUNC ARB",
            f"SOUR{ch}:FUNC:ARB:SRAT {SRATE:g}",
            f"SOUR{ch}:VOLT {volts_pp:g}",
            f"SOUR{ch}:VOLT:OFFS 0",
        )
    await client.write("FUNC:ARB:SYNC")


def test_complementary_arbs_never_overlap_over_twenty_minutes() -> None:
    async def body(inst: K33500B, client: Client) -> list[str]:
        await load_complementary(client)
        await client.write("OUTP1 ON", "OUTP2 ON")
        assert await client.query("*OPC?") == "1"
        await asyncio.sleep(600.0)
        # The controller's ramp: amplitude changes keep the waveforms' phase.
        for vpp in (2.5, 3.0, 3.5, 4.0):
            await client.write(f"SOUR1:VOLT {vpp}", f"SOUR2:VOLT {vpp}")
            await asyncio.sleep(0.37)
        await asyncio.sleep(600.0)
        await client.write("OUTP1 OFF", "OUTP2 OFF")
        return await client.errors()

    errors, events = with_sim(body)
    assert errors == []
    assert overlap_s(events, 1, 2) == 0.0
    dead = min_dead_time_s(events, 1, 2)
    assert dead is not None and dead >= HANDOVER_S - 1e-9
    trains_1 = active_intervals(events, 1)
    trains_2 = active_intervals(events, 2)
    assert len(trains_1) == pytest.approx(1201.5 / CYCLE_S, abs=1)
    assert len(trains_2) == pytest.approx(1201.5 / CYCLE_S, abs=1)
    assert all(e - s == pytest.approx(TRAIN_S) for s, e in trains_1[1:-1])
    # 2 Vpp set for 50 ohm is 4 Vpp open circuit: 2 V peaks, 5 mA/V -> 10 mA; 4 Vpp -> 20 mA.
    assert max_amplitude_ma(events, 1) == pytest.approx(20.0)
    first = next(e for e in events if e.channel == 1 and e.active)
    assert first.amplitude_ma == pytest.approx(10.0)


def test_virtual_playback_is_deterministic() -> None:
    async def body(inst: K33500B, client: Client) -> None:
        await load_complementary(client)
        await client.write("OUTP1 ON", "OUTP2 ON")
        await asyncio.sleep(90.0)
        await client.write("OUTP1 OFF", "OUTP2 OFF")
        await client.query("*OPC?")

    _, first = with_sim(body)
    _, second = with_sim(body)
    assert first == second
    assert len(first) > 100


def test_unsynchronised_channels_keep_their_own_phase() -> None:
    """Loading channel 2 later than channel 1 without FUNC:ARB:SYNC shifts it, and the trace
    shows the overlap that results: the synchronisation is what keeps antagonists apart."""

    async def body(inst: K33500B, client: Client) -> None:
        a, b = complementary()
        await client.write("*RST", dac_block("FLEX", a, 1), dac_block("EXTEN", b, 2))
        await client.write("SOUR1:FUNC:ARB FLEX", "SOUR1:FUNC ARB", f"SOUR1:FUNC:ARB:SRAT {SRATE:g}")
        await client.write("OUTP1 ON", "OUTP2 ON")
        await client.query("*OPC?")
        await asyncio.sleep(0.6)
        await client.write("SOUR2:FUNC:ARB EXTEN", "SOUR2:FUNC ARB", f"SOUR2:FUNC:ARB:SRAT {SRATE:g}")
        await asyncio.sleep(30.0)
        await client.write("FUNC:ARB:SYNC")
        await client.query("*OPC?")
        inst.trace.record(9, False, 0.0, "marker")  # where the sync happened
        await asyncio.sleep(30.0)
        await client.write("OUTP1 OFF", "OUTP2 OFF")
        await client.query("*OPC?")

    _, events = with_sim(body)
    sync_t = next(e.t_s for e in events if e.channel == 9)
    before = [e for e in events if e.t_s < sync_t]
    after = [e for e in events if e.t_s >= sync_t]
    assert overlap_s(before, 1, 2) > 1.0
    assert overlap_s(after, 1, 2) == 0.0


def test_bus_triggered_bursts_play_once_per_trigger() -> None:
    async def body(inst: K33500B, client: Client) -> list[str]:
        await client.write(
            "*RST",
            "FUNC PULS",
            "FREQ 50",
            "FUNC:PULS:WIDT 0.0004",
            "VOLT:HIGH 2",
            "VOLT:LOW 0",
            "BURS:MODE TRIG",
            "BURS:NCYC 10",
            "TRIG:SOUR BUS",
            "BURS:STAT ON",
            "OUTP ON",
        )
        await client.query("*OPC?")
        await asyncio.sleep(1.0)
        for _ in range(3):
            await client.write("*TRG")
            await asyncio.sleep(0.05)
            await client.write("*TRG")  # during the burst: ignored
            await asyncio.sleep(2.0)
        await client.write("OUTP OFF")
        return await client.errors()

    errors, events = with_sim(body)
    assert errors == []
    bursts = active_intervals(events, 1)
    assert len(bursts) == 3
    for start, end in bursts:
        # Ten pulses from 0 V: the envelope ends with the tenth pulse, 9 periods + one width.
        assert end - start == pytest.approx(9 / 50 + 0.0004)
    starts = [s for s, _ in bursts]
    assert np.diff(starts) == pytest.approx([2.05, 2.05])
    # 2 V high into a 50 ohm setting is 4 V open circuit: 20 mA through the stage.
    assert max_amplitude_ma(events, 1) == pytest.approx(20.0)


def test_immediate_bursts_repeat_at_the_burst_period() -> None:
    async def body(inst: K33500B, client: Client) -> list[str]:
        await client.write(
            "*RST", "FUNC SIN", "FREQ 1000", "BURS:NCYC 100", "BURS:INT:PER 0.5", "BURS:STAT ON", "OUTP ON"
        )
        await client.query("*OPC?")
        await asyncio.sleep(9.9)
        await client.write("OUTP OFF")
        return await client.errors()

    errors, events = with_sim(body)
    assert errors == []
    bursts = active_intervals(events, 1)
    assert len(bursts) == 20
    assert all(e - s == pytest.approx(0.1) for s, e in bursts)
    assert np.diff([s for s, _ in bursts]) == pytest.approx([0.5] * 19)


def test_stage_compliance_limits_the_delivered_current() -> None:
    async def body(inst: K33500B, client: Client) -> None:
        await load_complementary(client, volts_pp=10.0)
        await client.write("OUTP1 ON")
        await asyncio.sleep(3.0)
        await client.write("OUTP1 OFF")
        await client.query("*OPC?")

    _, events = with_sim(body, stage_compliance_v=10.0)
    # 10 Vpp for 50 ohm = 20 Vpp open circuit: 10 V peaks ask 50 mA; the load is
    # 500 + 1000 * (1 - exp(-0.2)) ohm at the end of a 200 us phase, and 10 V across it is all
    # the stage has.
    load_ohm = 500 + 1000 * (1 - math.exp(-0.2))
    assert max_amplitude_ma(events, 1) == pytest.approx(10.0 / load_ohm * 1e3)


def test_lead_off_and_stuck_faults_show_in_the_trace() -> None:
    async def body(inst: K33500B, client: Client) -> list[str]:
        await client.write("*RST", "FUNC DC", "VOLT:OFFS 1", "OUTP1 ON", "OUTP2 ON")
        await client.write("SOUR2:FUNC DC", "SOUR2:VOLT:OFFS 1")
        await client.query("*OPC?")
        await asyncio.sleep(1.0)
        inst.inject(FaultSpec("lead-off", channel=1))
        await asyncio.sleep(1.0)
        inst.inject(FaultSpec("stuck", channel=2))
        await client.write("OUTP1 OFF", "OUTP2 OFF")
        assert await client.query("OUTP2?") == "0"  # the instrument believes it is off
        await asyncio.sleep(1.0)
        return await client.errors()

    errors, events = with_sim(body)
    assert errors == []
    ch1 = [e for e in events if e.channel == 1 and e.on]
    assert [e.amplitude_ma for e in ch1[-2:]] == [10.0, 0.0]  # 2 V open circuit -> 10 mA, then 0
    ch2 = [e for e in events if e.channel == 2]
    assert ch2[-1].active  # the welded relay kept delivering


def test_delayed_lead_off_from_the_fault_list() -> None:
    """Faults given at construction, as `stimctl sim serve --fault` gives them: lead-off on
    channel 1 five seconds after the server starts."""

    async def body(inst: K33500B, client: Client) -> float:
        t0 = asyncio.get_running_loop().time()
        await client.write("*RST", "FUNC DC", "VOLT:OFFS 1", "OUTP ON")
        await client.query("*OPC?")
        await asyncio.sleep(12.0)
        assert await client.query("OUTP?") == "1"  # the instrument cannot see the open lead
        return t0

    t0, events = with_sim(
        body,
        faults=(
            FaultSpec("lead-off", channel=1),
            FaultSpec("delay-after", value=5.0),
        ),
    )
    ch1 = [e for e in events if e.channel == 1 and e.t_s >= t0]
    on = next(e for e in ch1 if e.active)
    lost = next(e for e in ch1 if e.t_s > on.t_s)
    assert on.amplitude_ma == pytest.approx(10.0)
    assert lost.t_s == pytest.approx(t0 + 5.0) and lost.on and lost.amplitude_ma == 0.0


def test_power_cycle_switches_everything_off() -> None:
    async def body(inst: K33500B, client: Client) -> float:
        await client.write("*RST", "FUNC DC", "VOLT:OFFS 1", "OUTP1 ON", "SOUR2:FUNC SQU", "OUTP2 ON")
        await client.query("*OPC?")
        await asyncio.sleep(1.0)
        t = asyncio.get_running_loop().time()
        inst.inject(FaultSpec("reset-after", value=2.0))
        await asyncio.sleep(3.0)
        assert await client.query("OUTP1?;:OUTP2?") == "0;0"
        return t + 2.0

    t_reset, events = with_sim(body)
    last = {ch: [e for e in events if e.channel == ch][-1] for ch in (1, 2)}
    assert all(not e.on and e.t_s == pytest.approx(t_reset) for e in last.values())


def test_garble_and_scpi_error_faults() -> None:
    async def body(inst: K33500B, client: Client) -> tuple[str, list[str]]:
        inst.inject(FaultSpec("garble"))
        garbled = await client.query("*IDN?")
        inst.inject(FaultSpec("scpi-error", value=-310))
        await client.write("FREQ 200")
        return garbled, await client.errors()

    (garbled, errs), _ = with_sim(body)
    assert not garbled.startswith("Keysight")
    assert [int(e.split(",")[0]) for e in errs] == [-310]


def test_arb_bursts_count_whole_waveforms() -> None:
    """NCYC counts whole arbs; one pulse per arb merges across repetitions into one burst
    envelope, which ends with the last pulse of the last repetition."""

    async def body(inst: K33500B, client: Client) -> list[str]:
        wave = np.zeros(200)  # starts at 0 V: between bursts the output rests at the first point
        wave[2:6] = 1.0
        wave[7:11] = -1.0
        await client.write(
            "*RST",
            "DATA:ARB P1, " + ", ".join(f"{v:g}" for v in wave),
            "FUNC:ARB P1",
            "FUNC ARB",
            "FUNC:ARB:SRAT 20000",
            "BURS:NCYC 5",
            "TRIG:SOUR TIM",
            "TRIG:TIM 0.25",
            "BURS:STAT ON",
            "OUTP ON",
        )
        await client.query("*OPC?")
        await asyncio.sleep(0.9)
        await client.write("TRIG:SOUR BUS")
        await client.query("*OPC?")
        await asyncio.sleep(0.5)
        await client.write("TRIG1")
        await asyncio.sleep(0.5)
        await client.write("OUTP OFF")
        return await client.errors()

    errors, events = with_sim(body)
    assert errors == []
    bursts = active_intervals(events, 1)
    # Four timer bursts (0, 0.25, 0.5, 0.75 s), then one on the bus trigger.
    assert len(bursts) == 5
    length = (4 * 200 + 11 - 2) / 20_000
    assert all(e - s == pytest.approx(length) for s, e in bursts)
    starts = [s - bursts[0][0] for s, _ in bursts]
    assert starts[:4] == pytest.approx([0.0, 0.25, 0.5, 0.75])
    assert starts[4] == pytest.approx(1.4)


def test_burst_arb_resting_at_a_non_zero_first_point_is_active_between_bursts() -> None:
    async def body(inst: K33500B, client: Client) -> None:
        wave = np.zeros(200)
        wave[0:4] = 1.0  # the first point is 1: the output rests there between bursts
        await client.write(
            "*RST",
            "DATA:ARB P0, " + ", ".join(f"{v:g}" for v in wave),
            "FUNC:ARB P0",
            "FUNC ARB",
            "BURS:NCYC 2",
            "BURS:INT:PER 0.5",
            "BURS:STAT ON",
            "OUTP ON",
        )
        await client.query("*OPC?")
        await asyncio.sleep(2.0)
        await client.write("OUTP OFF")
        await client.query("*OPC?")

    _, events = with_sim(body)
    assert len(active_intervals(events, 1)) == 1
