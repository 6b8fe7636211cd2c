"""Byte-exact transcripts of what the K33500B driver sends, with no instrument."""

from __future__ import annotations

import numpy as np
import pytest

from drivers.base import AlternationSchedule, ChannelConfig, FaultKind, FaultReport, Waveform
from drivers.errors import CapabilityError, CommandRejected, ReadbackMismatch
from drivers.scpi import K33500B
from tests.scpi_drivers.transcript import NO_ERROR, TranscriptResource, q, w

IDN = "Keysight Technologies,33522B,MY52800001,4.00-1.19-2.00-58-00"
FULL = 32767

OPEN = [
    q("*IDN?", IDN),
    w("OUTP1 OFF"), w("OUTP2 OFF"), w("*CLS"), w("FORM:BORD SWAP"),
    q("OUTP1?", "0"), w("OUTP1:LOAD INF"), q("OUTP1:LOAD?", "9.9E+37"),
    q("OUTP2?", "0"), w("OUTP2:LOAD INF"), q("OUTP2:LOAD?", "9.9E+37"),
    NO_ERROR,
]

CONFIG = ChannelConfig(Waveform.BIPHASIC_SYMMETRIC, amplitude_ma=8.0, frequency_hz=1000.0,
                       pulse_width_us=125.0)


def block(codes: np.ndarray) -> bytes:
    payload = codes.astype("<i2").tobytes()
    length = str(len(payload)).encode()
    return b"#" + str(len(length)).encode() + length + payload


def arb_load(ch: int, name: str, codes: np.ndarray, rate: str) -> list[tuple[bytes, bytes | None]]:
    return [
        w(f"SOUR{ch}:DATA:VOL:CLE"),
        (f"SOUR{ch}:DATA:ARB:DAC {name},".encode() + block(codes) + b"\n", None),
        w(f"SOUR{ch}:FUNC:ARB {name}"),
        w(f"SOUR{ch}:FUNC ARB"),
        w(f"SOUR{ch}:FUNC:ARB:SRAT {rate}"),
        w(f"SOUR{ch}:VOLT:OFFS 0"),
        NO_ERROR,
        q(f"SOUR{ch}:FUNC?", "ARB"),
        q(f"SOUR{ch}:FUNC:ARB?", f'"INT:\\{name}.ARB"'),
        q(f"SOUR{ch}:FUNC:ARB:POIN?", str(codes.size)),
        q(f"SOUR{ch}:FUNC:ARB:SRAT?", f"+{float(rate):.8E}"),
        q(f"SOUR{ch}:VOLT:OFFS?", "+0.0E+00"),
        NO_ERROR,
    ]


def volt(ch: int, vpp: str, reply: str | None = None) -> list[tuple[bytes, bytes | None]]:
    return [w(f"SOUR{ch}:VOLT {vpp}"), q(f"SOUR{ch}:VOLT?", reply or f"+{float(vpp):.4E}"),
            NO_ERROR]


# 1 kHz, 125 us phases, 32 points per phase: 256 points at 256 kSa/s.
PERIOD_CODES = np.array([FULL] * 32 + [-FULL] * 32 + [0] * 192, dtype=np.int16)


def configure(ch: int) -> list[tuple[bytes, bytes | None]]:
    # 8 mA through 5 mA/V is 1.6 V peak, 3.2 Vpp.
    return ([q(f"OUTP{ch}?", "0")] + arb_load(ch, f"STIM{ch}", PERIOD_CODES, "256000")
            + volt(ch, "3.2"))


async def opened(extra: list[tuple[bytes, bytes | None]], *,
                 transconductance_ma_per_v: float = 5.0, stage_compliance_v: float = 60.0
                 ) -> tuple[K33500B, TranscriptResource]:
    res = TranscriptResource(OPEN + extra)
    drv = K33500B(res, transconductance_ma_per_v=transconductance_ma_per_v,
                  stage_compliance_v=stage_compliance_v)
    caps = await drv.open()
    assert caps.hardware_alternation and len(caps.channels) == 2
    assert caps.watchdog_timeout_s is None
    return drv, res


async def test_open_sets_high_z_and_outputs_off() -> None:
    drv, res = await opened([], transconductance_ma_per_v=5.0, stage_compliance_v=60.0)
    res.assert_done()
    cap = drv.capabilities.channel(2)
    assert cap.max_amplitude_ma == pytest.approx(50.0)  # 10 V peak into High-Z x 5 mA/V
    assert cap.compliance_v == 60.0


async def test_configure_sends_dac_block_and_reads_back() -> None:
    drv, res = await opened(configure(1))
    await drv.configure_channel(1, CONFIG)
    res.assert_done()
    wf = drv.last_waveform(1)
    assert wf is not None and wf.charge_error_pct == pytest.approx(0.0, abs=0.01)


async def test_transconductance_scales_the_voltage() -> None:
    drv, res = await opened([q("OUTP2?", "0")] + arb_load(2, "STIM2", PERIOD_CODES, "256000")
                            + volt(2, "1.6"),
                            transconductance_ma_per_v=10.0)
    await drv.configure_channel(2, CONFIG)
    res.assert_done()


async def test_set_amplitude_output_and_status() -> None:
    drv, res = await opened(configure(1) + volt(1, "2") + [
        q("OUTP1:LOAD?", "+9.9E+37"), w("OUTP1 ON"), q("OUTP1?", "1"), NO_ERROR,
        q("OUTP1?", "1"), q("SOUR1:VOLT?", "+2.0000E+00"), q("OUTP1:LOAD?", "+9.9E+37"),
        q("OUTP2?", "0"), q("SOUR2:VOLT?", "+1.0000E-01"), q("OUTP2:LOAD?", "+9.9E+37"),
        NO_ERROR,
        w("OUTP1 OFF"), q("OUTP1?", "0"), NO_ERROR,
    ])
    await drv.configure_channel(1, CONFIG)
    assert await drv.set_amplitude(1, 5.0) == pytest.approx(5.0)
    await drv.set_output(1, True)
    st = await drv.status()
    assert st.channel(1).output_on and st.channel(1).set_amplitude_ma == pytest.approx(5.0)
    assert not st.channel(2).output_on and st.channel(2).set_amplitude_ma == pytest.approx(0.25)
    assert st.channel(1).measured_amplitude_ma is None
    await drv.set_output(1, False)
    res.assert_done()


async def test_readback_mismatch_on_amplitude_is_a_fault_with_all_outputs_off() -> None:
    faults: list[FaultReport] = []
    drv, res = await opened([
        w("SOUR1:VOLT 2"), q("SOUR1:VOLT?", "+2.5000E+00"), w("OUTP1 OFF"), w("OUTP2 OFF"),
        q("*OPC?", "1")])
    drv.add_fault_listener(faults.append)
    with pytest.raises(ReadbackMismatch):
        await drv.set_amplitude(1, 5.0)
    assert faults == [FaultReport(FaultKind.READBACK, 1, faults[0].detail)]
    res.assert_done()


async def test_scpi_error_after_output_on_is_a_fault_with_all_outputs_off() -> None:
    drv, res = await opened([
        q("OUTP2:LOAD?", "+9.9E+37"), w("OUTP2 ON"), q("OUTP2?", "1"),
        q("SYST:ERR?", '-221,"Settings conflict"'), NO_ERROR,
        w("OUTP1 OFF"), w("OUTP2 OFF"),
        q("*OPC?", "1")])
    with pytest.raises(CommandRejected, match="-221"):
        await drv.set_output(2, True)
    res.assert_done()


async def test_monophasic_uses_the_pulse_function_from_zero_volts() -> None:
    mono = ChannelConfig(Waveform.MONOPHASIC, amplitude_ma=10.0, frequency_hz=40.0,
                         pulse_width_us=300.0)
    drv, res = await opened([
        q("OUTP1?", "0"),
        w("SOUR1:FUNC PULS"), w("SOUR1:FREQ 40"), w("SOUR1:FUNC:PULS:WIDT 0.0003"),
        w("SOUR1:VOLT:LOW 0"), NO_ERROR,
        q("SOUR1:FUNC?", "PULS"), q("SOUR1:FREQ?", "+4.0E+01"),
        q("SOUR1:FUNC:PULS:WIDT?", "+3.0E-04"), q("SOUR1:VOLT:LOW?", "+0.0E+00"),
        # 10 mA through 5 mA/V: a 2 V high level.
        w("SOUR1:VOLT:HIGH 2"), q("SOUR1:VOLT:HIGH?", "+2.0E+00"), NO_ERROR,
        q("OUTP1?", "0"), q("SOUR1:VOLT:HIGH?", "+2.0E+00"), q("OUTP1:LOAD?", "+9.9E+37"),
        q("OUTP2?", "0"), q("SOUR2:VOLT?", "+1.0E-01"), q("OUTP2:LOAD?", "+9.9E+37"), NO_ERROR,
    ])
    await drv.configure_channel(1, mono)
    assert (await drv.status()).channel(1).set_amplitude_ma == pytest.approx(10.0)
    res.assert_done()


async def test_a_changed_output_load_setting_blocks_output_on() -> None:
    faults: list[FaultReport] = []
    drv, res = await opened([
        q("OUTP1:LOAD?", "+5.0E+01"), w("OUTP1 OFF"), w("OUTP2 OFF"), q("*OPC?", "1")])
    drv.add_fault_listener(faults.append)
    with pytest.raises(ReadbackMismatch, match="load"):
        await drv.set_output(1, True)
    assert faults[0].kind is FaultKind.READBACK
    res.assert_done()


async def test_configure_refuses_a_live_output() -> None:
    drv, res = await opened([q("OUTP1?", "1")])
    with pytest.raises(CapabilityError, match="switch it off"):
        await drv.configure_channel(1, CONFIG)
    res.assert_done()


async def test_amplitude_beyond_the_generator_is_refused_before_sending() -> None:
    drv, res = await opened([])
    with pytest.raises(CapabilityError, match="0-50 mA"):
        await drv.set_amplitude(1, 51.0)
    with pytest.raises(CapabilityError, match="channel"):
        await drv.set_output(3, True)
    res.assert_done()


async def test_burst_and_bus_trigger() -> None:
    drv, res = await opened([
        w("TRIG1:SOUR BUS"), w("SOUR1:BURS:MODE TRIG"), w("SOUR1:BURS:NCYC 10"),
        w("SOUR1:BURS:STAT ON"), NO_ERROR, q("SOUR1:BURS:STAT?", "1"), q("TRIG1:SOUR?", "BUS"),
        w("*TRG"), NO_ERROR,
    ])
    await drv.configure_burst(1, 10, "bus")
    await drv.trigger()
    res.assert_done()


# ---- alternation -------------------------------------------------------------------------------

SCHED = AlternationSchedule(channel_a=1, channel_b=2, on_s=0.004, dead_time_s=0.001,
                            rest_s=0.001)
# 8 points per 125 us phase: 64 kSa/s; a 10 ms cycle is 640 points. Four whole pulses each.
PULSE = np.array([FULL] * 8 + [-FULL] * 8 + [0] * 48, dtype=np.int16)
ALT_A = np.concatenate([np.tile(PULSE, 4), np.zeros(384, dtype=np.int16)])
ALT_B = np.concatenate([np.zeros(320, dtype=np.int16), np.tile(PULSE, 4), np.zeros(64, dtype=np.int16)])


async def test_alternation_upload_and_start_are_byte_exact() -> None:
    drv, res = await opened(configure(1) + configure(2) + [
        w("OUTP1 OFF"), w("OUTP2 OFF"),
        *arb_load(1, "ALT1", ALT_A, "64000"), *volt(1, "3.2"),
        *arb_load(2, "ALT2", ALT_B, "64000"), *volt(2, "3.2"),
        q("OUTP1:LOAD?", "+9.9E+37"), q("OUTP2:LOAD?", "+9.9E+37"),
        w("SOUR1:FUNC:ARB:SYNC"), w("OUTP1 ON"), w("OUTP2 ON"),
        q("OUTP1?", "1"), q("OUTP2?", "1"), NO_ERROR,
        q("OUTP1?", "1"), q("SOUR1:VOLT?", "+3.2000E+00"), q("OUTP1:LOAD?", "+9.9E+37"),
        q("OUTP2?", "1"), q("SOUR2:VOLT?", "+3.2000E+00"), q("OUTP2:LOAD?", "+9.9E+37"),
        NO_ERROR,
        w("OUTP1 OFF"), w("OUTP2 OFF"), q("OUTP1?", "0"), q("OUTP2?", "0"), NO_ERROR,
    ])
    await drv.configure_channel(1, CONFIG)
    await drv.configure_channel(2, CONFIG)
    await drv.program_alternation(SCHED)
    await drv.start_alternation()
    assert (await drv.status()).alternation_running
    await drv.stop_alternation()
    res.assert_done()


async def test_alternation_needs_configured_channels_and_a_valid_schedule() -> None:
    drv, res = await opened(configure(1))
    with pytest.raises(CapabilityError, match="channel 1 is not configured"):
        drv.build_alternation(SCHED)
    await drv.configure_channel(1, CONFIG)
    with pytest.raises(CapabilityError, match="channel 2 is not configured"):
        drv.build_alternation(SCHED)
    with pytest.raises(CapabilityError, match="start_alternation|program_alternation"):
        await drv.start_alternation()
    res.assert_done()


async def test_alternation_waveforms_are_complementary_with_ramps_and_balanced() -> None:
    drv, res = await opened(configure(1) + configure(2))
    await drv.configure_channel(1, CONFIG)
    await drv.configure_channel(2, CONFIG)
    sched = AlternationSchedule(1, 2, on_s=0.05, dead_time_s=0.002, rest_s=0.003,
                                ramp_up_s=0.01, ramp_down_s=0.01)
    rate, a, b = drv.build_alternation(sched)
    on_a, on_b = a != 0, b != 0
    assert not np.any(on_a & on_b)
    last_a, first_b = np.flatnonzero(on_a)[-1], np.flatnonzero(on_b)[0]
    assert (first_b - last_a - 1) / rate >= sched.dead_time_s
    wrap = np.flatnonzero(on_a)[0] + a.size - np.flatnonzero(on_b)[-1] - 1
    assert wrap / rate >= sched.dead_time_s
    # Ramps: the first pulse is small, the middle ones full scale; every pulse balanced.
    peaks = [int(np.max(np.abs(a[i:i + 64]))) for i in range(0, 50 * 64, 64)]
    assert peaks[0] < peaks[5] < peaks[20] == FULL and peaks[-1] < FULL
    assert abs(int(a.astype(np.int64).sum())) <= 50  # rounding only
    res.assert_done()


async def test_alternation_too_long_for_memory_is_refused() -> None:
    drv, res = await opened(configure(1) + configure(2))
    await drv.configure_channel(1, CONFIG)
    await drv.configure_channel(2, CONFIG)
    with pytest.raises(CapabilityError, match="holds"):
        drv.build_alternation(AlternationSchedule(1, 2, on_s=10.0, dead_time_s=1.0, rest_s=10.0))
    with pytest.raises(CapabilityError, match="rest_s"):
        drv.build_alternation(AlternationSchedule(1, 2, on_s=0.01, dead_time_s=0.005,
                                                  rest_s=0.001))
    res.assert_done()
