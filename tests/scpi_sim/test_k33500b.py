"""The 33500B simulator through pyvisa over TCPIP SOCKET, as a driver on the bench talks to it.

These run in real time on a server thread, so they assert on the simulator's own trace
timestamps and wait with generous timeouts (the machine is shared).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
import pyvisa

from sim.faults import FaultSpec
from sim.scpi.k33500b import K33500B
from sim.scpi.server import ScpiServerThread
from sim.trace import (
    TraceEvent,
    active_intervals,
    all_off_at,
    load_trace,
    max_amplitude_ma,
    min_dead_time_s,
    overlap_s,
)

NO_ERROR = '0,"No error"'


@pytest.fixture
def rig(request: pytest.FixtureRequest) -> Iterator[tuple[ScpiServerThread, pyvisa.resources.MessageBasedResource]]:
    options = getattr(request, "param", {})
    sim = ScpiServerThread("k33500b", **options)
    resource = sim.start()
    rm = pyvisa.ResourceManager("@py")
    inst = rm.open_resource(resource)
    assert isinstance(inst, pyvisa.resources.MessageBasedResource)
    inst.read_termination = "\n"
    inst.write_termination = "\n"
    inst.timeout = 20_000
    try:
        yield sim, inst
    finally:
        inst.close()
        rm.close()
        sim.stop()


def wait_for(condition: Callable[[], bool], timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.02)


def errors(inst: pyvisa.resources.MessageBasedResource) -> list[str]:
    out: list[str] = []
    for _ in range(40):
        err = inst.query("SYST:ERR?")
        if err == NO_ERROR:
            return out
        out.append(err)
    raise AssertionError(f"error queue did not empty: {out}")


def code(err: str) -> int:
    return int(err.split(",", 1)[0])


def test_identity_and_reset_defaults(rig: tuple[ScpiServerThread, pyvisa.resources.MessageBasedResource]) -> None:
    sim, inst = rig
    assert inst.query("*IDN?") == "Keysight Technologies,33522B,MY52600001,4.00-1.19-2.00-52-00"
    inst.write("*RST")
    expected = {
        "FUNC?": "SIN",
        "FREQ?": "+1.000000000000000E+03",
        "VOLT?": "+1.000000000000000E-01",
        "VOLT:OFFS?": "+0.000000000000000E+00",
        "VOLT:UNIT?": "VPP",
        "OUTP?": "0",
        "OUTP2?": "0",
        "OUTP:LOAD?": "+5.000000000000000E+01",
        "BURS:STAT?": "0",
        "BURS:MODE?": "TRIG",
        "BURS:NCYC?": "+1.000000000000000E+00",
        "BURS:INT:PER?": "+1.000000000000000E-02",
        "TRIG:SOUR?": "IMM",
        "FUNC:PULS:WIDT?": "+1.000000000000000E-04",
        "FUNC:ARB:SRAT?": "+4.000000000000000E+04",
        "FUNC:ARB?": '"INT:\\BUILTIN\\EXP_RISE.ARB"',
        "DATA:VOL:CAT?": '""',
        "SOUR2:FREQ?": "+1.000000000000000E+03",
    }
    for query, answer in expected.items():
        assert inst.query(query) == answer, query
    assert errors(inst) == []
    assert not any(e.active for e in sim.trace.events)


def test_users_guide_arb_sequence_outputs_the_waveform(
    rig: tuple[ScpiServerThread, pyvisa.resources.MessageBasedResource],
) -> None:
    """The user's guide way: clear volatile memory, download points, select the arb, set the
    sample rate and levels, switch the output on, check the error queue."""
    sim, inst = rig
    points = ", ".join(f"{v:g}" for v in np.sin(np.linspace(0, 2 * np.pi, 100, endpoint=False)))
    for cmd in (
        "*RST",
        "*CLS",
        "SOURce1:DATA:VOLatile:CLEar",
        f"SOURce1:DATA:ARBitrary myArb, {points}",
        "SOURce1:FUNCtion:ARBitrary myArb",
        "SOURce1:FUNCtion ARB",
        "SOURce1:FUNCtion:ARBitrary:SRATe 1e5",
        "SOURce1:VOLTage 2",
        "SOURce1:VOLTage:OFFSet 0",
        "OUTPut1 ON",
    ):
        inst.write(cmd)
    assert inst.query("SYST:ERR?") == NO_ERROR
    assert inst.query("FUNC:ARB?") == '"MYARB"'
    assert inst.query("FUNC:ARB:POIN?") == "100"
    assert inst.query("DATA:VOL:CAT?") == '"MYARB"'
    assert inst.query("DATA:VOL:FREE?") == str(1_000_000 - 100)
    wait_for(lambda: any(e.active for e in sim.trace.events))
    first = next(e for e in sim.trace.events if e.active)
    # A sine never stays at zero for a gap: one continuous envelope, 2 Vpp set for 50 ohm is
    # 4 Vpp open circuit, peaks of 2 V (less the sampling) through 5 mA/V.
    assert first.channel == 1 and first.waveform == "arb:MYARB"
    assert first.amplitude_ma == pytest.approx(10.0, rel=1e-3)
    inst.write("OUTP1 OFF")
    inst.query("*OPC?")
    assert not sim.trace.events[-1].active


def test_dac_block_with_newline_bytes_loads_whole(
    rig: tuple[ScpiServerThread, pyvisa.resources.MessageBasedResource],
) -> None:
    _, inst = rig
    codes = [0, 10, 2570, -10, 32767, -32767, 10, 0, 0, 0]  # 10 = 0x000A, 2570 = 0x0A0A
    inst.write_binary_values("SOUR2:DATA:ARB:DAC BLK, ", codes, datatype="h", is_big_endian=True)
    assert inst.query("SOUR2:DATA:VOL:CAT?") == '"BLK"'
    inst.write("SOUR2:FUNC:ARB BLK")
    assert inst.query("SOUR2:FUNC:ARB:POIN?") == "10"
    inst.write("FORM:BORD SWAP")
    inst.write_binary_values("SOUR2:DATA:ARB:DAC LIT, ", codes, datatype="h", is_big_endian=False)
    inst.write_binary_values("SOUR2:DATA:ARB FLT, ", [0.5, -0.5] * 4, datatype="f", is_big_endian=False)
    assert inst.query("SOUR2:DATA:VOL:CAT?") == '"BLK","LIT","FLT"'
    assert errors(inst) == []


CONFLICTS = [
    # (setup, bad command, expected code, query that must not change)
    (["VOLT 8"], "VOLT:OFFS 2", -221, "VOLT:OFFS?"),
    (["VOLT:OFFS 4"], "VOLT 4", -221, "VOLT?"),
    ([], "VOLT:HIGH -0.5", -221, "VOLT:HIGH?"),
    (["FUNC PULS", "FREQ 1000"], "FUNC:PULS:WIDT 0.002", -221, "FUNC:PULS:WIDT?"),
    (["FUNC PULS", "FUNC:PULS:WIDT 0.0005"], "FREQ 5000", -221, "FREQ?"),
    (["OUTP:LOAD INF"], "VOLT:UNIT DBM", -221, "VOLT:UNIT?"),
    ([], "BURS:NCYC INF", None, "BURS:NCYC?"),
    (["BURS:NCYC INF", "TRIG:SOUR BUS", "BURS:STAT ON"], "TRIG:SOUR IMM", -221, "TRIG:SOUR?"),
    (["FUNC DC"], "BURS:STAT ON", -221, "BURS:STAT?"),
    ([], "OUTP:LOAD 20000", -222, "OUTP:LOAD?"),
    ([], "FUNC:ARB NOPE", -224, "FUNC:ARB?"),
    ([], "DATA:ARB BAD, 0, 0.5, 1.5, 0.5, 0, -0.5, -1, -0.5", -222, "DATA:VOL:CAT?"),
    ([], "DATA:ARB:DAC BAD, 0, 40000, 0, 0, 0, 0, 0, 0", -222, "DATA:VOL:CAT?"),
    ([], "DATA:ARB SHORT, 0, 0.5, 1", -222, "DATA:VOL:CAT?"),
    ([], "FUNC WOBBLE", -224, "FUNC?"),
    ([], "FREQ", -109, "FREQ?"),
]


@pytest.mark.parametrize(("setup", "bad", "expected", "probe"), CONFLICTS)
def test_bad_commands_queue_an_error_and_change_nothing(
    rig: tuple[ScpiServerThread, pyvisa.resources.MessageBasedResource],
    setup: list[str],
    bad: str,
    expected: int | None,
    probe: str,
) -> None:
    sim, inst = rig
    inst.write("*RST")
    for cmd in setup:
        inst.write(cmd)
    assert errors(inst) == []
    before = inst.query(probe)
    events_before = sim.trace.events
    inst.write(bad)
    errs = errors(inst)
    if expected is None:  # accepted as it stands (BURS:NCYC INF with burst off is fine)
        assert errs == []
        return
    assert [code(e) for e in errs] == [expected], errs
    assert ";" in errs[0]  # the detail says what was wrong and what to do
    assert inst.query(probe) == before
    assert sim.trace.events == events_before


def test_out_of_range_numbers_are_clipped_with_an_error_as_on_the_instrument(
    rig: tuple[ScpiServerThread, pyvisa.resources.MessageBasedResource],
) -> None:
    _, inst = rig
    inst.write("*RST")
    inst.write("FREQ 40 MHz")
    assert inst.query("FREQ?") == "+3.000000000000000E+07"
    inst.write("FUNC:ARB:SRAT 1e9")
    assert inst.query("FUNC:ARB:SRAT?") == "+2.500000000000000E+08"
    inst.write("VOLT 0.0001")
    assert inst.query("VOLT?") == "+1.000000000000000E-03"
    errs = errors(inst)
    assert [code(e) for e in errs] == [-222, -222, -222]
    assert "upper limit" in errs[0] and "lower limit" in errs[2]


@pytest.mark.parametrize("rig", [{"out_of_range": "reject"}], indirect=True)
def test_reject_mode_changes_nothing(
    rig: tuple[ScpiServerThread, pyvisa.resources.MessageBasedResource],
) -> None:
    _, inst = rig
    inst.write("FREQ 40 MHz")
    assert inst.query("FREQ?") == "+1.000000000000000E+03"
    assert [code(e) for e in errors(inst)] == [-222]


def test_burst_period_too_short_is_raised_with_a_conflict(
    rig: tuple[ScpiServerThread, pyvisa.resources.MessageBasedResource],
) -> None:
    _, inst = rig
    inst.write("*RST")
    inst.write("BURS:NCYC 20")
    inst.write("BURS:STAT ON")
    inst.write("BURS:INT:PER 0.001")  # 20 cycles of 1 kHz need 20 ms
    assert float(inst.query("BURS:INT:PER?")) == pytest.approx(0.020001)
    assert [code(e) for e in errors(inst)] == [-221]


def test_output_load_changes_the_display_not_the_output(
    rig: tuple[ScpiServerThread, pyvisa.resources.MessageBasedResource],
) -> None:
    sim, inst = rig
    inst.write("*RST")
    inst.write("FUNC DC")
    inst.write("VOLT:OFFS 1")
    inst.write("OUTP ON")
    inst.query("*OPC?")
    wait_for(lambda: any(e.active for e in sim.trace.events))
    assert sim.trace.events[-1].amplitude_ma == pytest.approx(10.0)  # 2 V open circuit
    inst.write("OUTP:LOAD INF")
    assert inst.query("VOLT:OFFS?") == "+2.000000000000000E+00"
    inst.write("OUTP:LOAD 100")
    assert float(inst.query("VOLT:OFFS?")) == pytest.approx(2 * 100 / 150)
    inst.query("*OPC?")
    assert sim.trace.events[-1].amplitude_ma == pytest.approx(10.0)
    assert errors(inst) == []


@pytest.mark.parametrize("rig", [{"arb_memory_points": 64}], indirect=True)
def test_arb_memory_limit(rig: tuple[ScpiServerThread, pyvisa.resources.MessageBasedResource]) -> None:
    _, inst = rig
    inst.write("DATA:ARB:DAC A1, " + ", ".join(["100"] * 40))
    inst.write("DATA:ARB:DAC A2, " + ", ".join(["100"] * 40))
    errs = errors(inst)
    assert [code(e) for e in errs] == [-225]
    assert "24 of 64" in errs[0]
    assert inst.query("DATA:VOL:CAT?") == '"A1"'
    inst.write("DATA:VOL:CLE")
    inst.write("DATA:ARB:DAC A2, " + ", ".join(["100"] * 40))
    assert inst.query("DATA:VOL:CAT?") == '"A2"'
    assert errors(inst) == []


def test_complementary_arbs_in_real_time_do_not_overlap(
    rig: tuple[ScpiServerThread, pyvisa.resources.MessageBasedResource],
) -> None:
    sim, inst = rig
    srate = 10_000
    slot, phase = 100, 2  # 100 Hz pulses, 200 us phases
    train = np.zeros(10 * slot)
    for k in range(10):
        train[k * slot : k * slot + phase] = 1.0
        train[k * slot + phase : k * slot + 2 * phase] = -1.0
    dead = np.zeros(50)
    a = np.concatenate([train, dead, np.zeros_like(train), dead])
    b = np.concatenate([np.zeros_like(train), dead, train, dead])
    inst.write("*RST")
    for ch, name, wave in ((1, "AGO", a), (2, "ANTAGO", b)):
        inst.write_binary_values(
            f"SOUR{ch}:DATA:ARB:DAC {name}, ", list(np.round(wave * 32767).astype(int)),
            datatype="h", is_big_endian=True,
        )
        inst.write(f"SOUR{ch}:FUNC:ARB {name}")
        inst.write(f"SOUR{ch}:FUNC ARB")
        inst.write(f"SOUR{ch}:FUNC:ARB:SRAT {srate}")
        inst.write(f"SOUR{ch}:VOLT 1")
    inst.write("FUNC:ARB:SYNC")
    inst.write("OUTP1 ON")
    inst.write("OUTP2 ON")
    assert errors(inst) == []

    def handovers() -> bool:
        return len(active_intervals(sim.trace.events, 2)) >= 4

    wait_for(handovers)
    inst.write("OUTP1 OFF")
    inst.write("OUTP2 OFF")
    inst.query("*OPC?")
    events: list[TraceEvent] = sim.trace.events
    assert overlap_s(events, 1, 2) == 0.0
    gap = min_dead_time_s(events, 1, 2)
    assert gap is not None and gap >= (slot - 2 * phase + 50) / srate - 1e-9


def test_inject_lead_off_through_the_server_thread(
    rig: tuple[ScpiServerThread, pyvisa.resources.MessageBasedResource],
) -> None:
    sim, inst = rig
    inst.write("*RST")
    inst.write("FUNC DC")
    inst.write("VOLT:OFFS 0.5")
    inst.write("OUTP ON")
    inst.query("*OPC?")
    sim.inject(FaultSpec("lead-off", channel=1))
    last = sim.trace.events[-1]
    assert last.on and last.amplitude_ma == 0.0
    assert isinstance(sim.instrument, K33500B)
    assert sim.call(sim.instrument.compliance, 1)


def test_leaving_dc_pulls_the_offset_back_into_reach(
    rig: tuple[ScpiServerThread, pyvisa.resources.MessageBasedResource],
) -> None:
    _, inst = rig
    inst.write("*RST")
    inst.write("FUNC DC")
    inst.write("VOLT 4")
    inst.write("VOLT:OFFS 5")  # DC ignores the amplitude: 5 V is the whole reach
    assert errors(inst) == []
    inst.write("FUNC SIN")
    assert inst.query("VOLT:OFFS?") == "+3.000000000000000E+00"
    assert [code(e) for e in errors(inst)] == [-221]


def test_clearing_volatile_memory_while_playing_falls_back_to_the_builtin(
    rig: tuple[ScpiServerThread, pyvisa.resources.MessageBasedResource],
) -> None:
    """As the manual has it: the default arb is reloaded. With the output on it plays at once,
    and the trace shows it, so a driver that re-uploads while on is caught."""
    sim, inst = rig
    inst.write("*RST")
    inst.write("DATA:ARB:DAC QUIET, " + ", ".join(["0"] * 16))
    inst.write("FUNC:ARB QUIET")
    inst.write("FUNC ARB")
    inst.write("OUTP ON")
    inst.query("*OPC?")
    assert not any(e.active for e in sim.trace.events)
    inst.write("DATA:VOL:CLE")
    assert inst.query("FUNC:ARB?") == '"INT:\\BUILTIN\\EXP_RISE.ARB"'
    assert inst.query("DATA:VOL:CAT?") == '""'
    assert errors(inst) == []
    wait_for(lambda: any(e.active for e in sim.trace.events))
    assert next(e for e in sim.trace.events if e.active).waveform == "arb:EXP_RISE.ARB"


def test_apply_sets_everything_and_switches_the_output_on(
    rig: tuple[ScpiServerThread, pyvisa.resources.MessageBasedResource],
) -> None:
    sim, inst = rig
    inst.write("*RST")
    inst.write("APPL:SIN 5 KHZ, 3.0 VPP, -2.5 V")
    assert inst.query("APPL?") == '"SIN +5.000000000000000E+03,+3.000000000000000E+00,-2.500000000000000E+00"'
    assert inst.query("OUTP?") == "1"
    assert errors(inst) == []
    wait_for(lambda: any(e.active for e in sim.trace.events))
    # -2.5 V offset and 1.5 V peaks into a 50 ohm setting: 8 V open-circuit peak, 40 mA.
    assert next(e for e in sim.trace.events if e.active).amplitude_ma == pytest.approx(40.0)


def test_apply_that_conflicts_changes_nothing(
    rig: tuple[ScpiServerThread, pyvisa.resources.MessageBasedResource],
) -> None:
    sim, inst = rig
    inst.write("*RST")
    before = inst.query("APPL?")
    inst.write("APPL:SQU 2000, 8, 3")  # 3 V + 4 V peaks: beyond 5 V into 50 ohm
    assert [code(e) for e in errors(inst)] == [-221]
    assert inst.query("APPL?") == before
    assert inst.query("OUTP?") == "0"
    assert not any(e.active for e in sim.trace.events)


def test_users_guide_arb_with_apply(
    rig: tuple[ScpiServerThread, pyvisa.resources.MessageBasedResource],
) -> None:
    sim, inst = rig
    ramp = ", ".join(f"{v:g}" for v in np.linspace(-1, 1, 50))
    for cmd in ("*RST", "DATA:VOL:CLE", f"DATA:ARB RAMPUP, {ramp}", "FUNC:ARB RAMPUP",
                "APPL:ARB 1e4, 1, 0"):
        inst.write(cmd)
    assert inst.query("APPL?") == '"ARB +1.000000000000000E+04,+1.000000000000000E+00,+0.000000000000000E+00"'
    assert errors(inst) == []
    wait_for(lambda: any(e.active for e in sim.trace.events))
    first = next(e for e in sim.trace.events if e.active)
    assert first.waveform == "arb:RAMPUP" and first.amplitude_ma == pytest.approx(5.0)


def test_voltage_limits_refuse_levels_beyond_them(
    rig: tuple[ScpiServerThread, pyvisa.resources.MessageBasedResource],
) -> None:
    sim, inst = rig
    inst.write("*RST")
    inst.write("VOLT:LIM:HIGH 1")
    inst.write("VOLT:LIM:LOW -1")
    inst.write("VOLT:LIM:STAT ON")
    assert inst.query("VOLT:LIM:STAT?") == "1"
    assert errors(inst) == []
    for bad in ("VOLT 3", "VOLT:OFFS 0.96", "VOLT:HIGH 1.2", "OUTP:LOAD INF", "APPL:DC DEF, DEF, 2"):
        inst.write(bad)
        assert [code(e) for e in errors(inst)] == [-221], bad
    assert inst.query("VOLT?") == "+1.000000000000000E-01"
    assert inst.query("VOLT:OFFS?") == "+0.000000000000000E+00"
    assert inst.query("OUTP:LOAD?") == "+5.000000000000000E+01"
    assert inst.query("FUNC?") == "SIN"
    inst.write("VOLT 2")  # 2 Vpp spans -1..+1 V: exactly at the limits
    assert errors(inst) == []
    inst.write("VOLT:LIM:STAT OFF")
    inst.write("VOLT 4")
    inst.write("VOLT:LIM:STAT ON")  # the present output breaks the limits: refused
    assert [code(e) for e in errors(inst)] == [-221]
    assert inst.query("VOLT:LIM:STAT?") == "0"
    assert not any(e.active for e in sim.trace.events)


def test_trace_file_matches_the_in_memory_trace(tmp_path: Path) -> None:
    path = tmp_path / "k33500b.jsonl"
    sim = ScpiServerThread("k33500b", trace_path=path, transconductance_ma_per_v=2.0)
    rm = pyvisa.ResourceManager("@py")
    try:
        inst = rm.open_resource(sim.start())
        assert isinstance(inst, pyvisa.resources.MessageBasedResource)
        inst.read_termination = inst.write_termination = "\n"
        inst.write("APPL:DC DEF, DEF, 1.5")
        inst.write("SOUR2:APPL:SQU 100, 1, 0")
        inst.write("OUTP1 OFF")
        inst.write("OUTP2 OFF")
        assert inst.query("SYST:ERR?") == NO_ERROR
        inst.close()
    finally:
        rm.close()
        sim.stop()
    events = sim.trace.events
    assert load_trace(path) == events
    assert events[0].t_s > 0  # stamped on the server's loop clock from the first record
    # 1.5 V for 50 ohm = 3 V open circuit through 2 mA/V: 6 mA; the square's 1 V peaks: 2 mA.
    assert max_amplitude_ma(events, 1) == pytest.approx(6.0)
    assert max_amplitude_ma(events, 2) == pytest.approx(2.0)
    assert all_off_at(events, 0.0) is not None
