"""Byte-exact transcripts of what the K6221 driver sends, with no instrument."""

from __future__ import annotations

import pytest

from drivers.base import ChannelConfig, FaultKind, FaultReport, Waveform
from drivers.errors import CapabilityError, CommandRejected, DeviceTimeout, ReadbackMismatch
from drivers.scpi import K6221
from tests.scpi_drivers.transcript import NO_ERROR, TIMEOUT, TranscriptResource, q, w

IDN = "KEITHLEY INSTRUMENTS INC.,MODEL 6221,4096001,D04  /700x"

OPEN = [
    q("*IDN?", IDN),
    w("OUTP OFF"),
    w("SOUR:WAVE:ABOR"),
    w("*CLS"),
    q("OUTP?", "0"),
    w("SOUR:CURR:RANG:AUTO ON"),
    w("SOUR:CURR 0"),
    q("SOUR:CURR?", "0.000000E+00"),
    w("SOUR:CURR:COMP 10"),
    q("SOUR:CURR:COMP?", "1.000000E+01"),
    NO_ERROR,
]

# 1 kHz, 125 us phases: 256 points, 32 of +1, 32 of -1, 192 of 0, in chunks of 100.
POINTS = ["1"] * 32 + ["-1"] * 32 + ["0"] * 192
UPLOAD = [
    w("SOUR:WAVE:ARB:DATA " + ",".join(POINTS[0:100])),
    w("SOUR:WAVE:ARB:APP " + ",".join(POINTS[100:200])),
    w("SOUR:WAVE:ARB:APP " + ",".join(POINTS[200:256])),
    q("SOUR:WAVE:ARB:POIN?", "256"),
    NO_ERROR,
]
CONFIG = ChannelConfig(Waveform.BIPHASIC_SYMMETRIC, amplitude_ma=5.0, frequency_hz=1000.0,
                       pulse_width_us=125.0)
CONFIGURE = [q("OUTP?", "0")] + UPLOAD + [
    w("SOUR:WAVE:FUNC ARB0"),
    q("SOUR:WAVE:FUNC?", "ARB0"),
    w("SOUR:WAVE:FREQ 1000"),
    q("SOUR:WAVE:FREQ?", "1.000000E+03"),
    w("SOUR:WAVE:OFFS 0"),
    q("SOUR:WAVE:OFFS?", "0.000000E+00"),
    w("SOUR:WAVE:DUR:TIME INF"),
    q("SOUR:WAVE:DUR:TIME?", "9.900000E+37"),
    NO_ERROR,
    w("SOUR:WAVE:AMPL 0.005"),
    q("SOUR:WAVE:AMPL?", "5.000000E-03"),
    NO_ERROR,
]


async def opened(extra: list[tuple[bytes, bytes | None]]) -> tuple[K6221, TranscriptResource]:
    res = TranscriptResource(OPEN + extra)
    drv = K6221(res)
    caps = await drv.open()
    assert caps.identity.model == "6221"
    assert caps.watchdog_timeout_s is None
    assert caps.channel(1).compliance_v == 10.0
    return drv, res


async def test_open_identifies_and_leaves_output_off() -> None:
    drv, res = await opened([])
    res.assert_done()
    assert drv.capabilities.identity.serial == "4096001"


async def test_configure_uploads_in_chunks_and_reads_everything_back() -> None:
    drv, res = await opened(CONFIGURE)
    await drv.configure_channel(1, CONFIG)
    res.assert_done()
    wf = drv.last_waveform
    assert wf is not None and wf.points == 256
    assert wf.net_charge_uc == pytest.approx(0.0, abs=1e-12)


async def test_set_amplitude_returns_the_readback() -> None:
    drv, res = await opened(CONFIGURE + [
        w("SOUR:WAVE:AMPL 0.0075"), q("SOUR:WAVE:AMPL?", "7.500000E-03"), NO_ERROR])
    await drv.configure_channel(1, CONFIG)
    assert await drv.set_amplitude(1, 7.5) == pytest.approx(7.5)
    res.assert_done()


async def test_output_on_arms_and_starts_the_waveform_then_off() -> None:
    drv, res = await opened(CONFIGURE + [
        w("SOUR:WAVE:ARM"), w("SOUR:WAVE:INIT"), q("OUTP?", "1"), NO_ERROR,
        w("OUTP OFF"), w("SOUR:WAVE:ABOR"), q("OUTP?", "0"), NO_ERROR,
    ])
    await drv.configure_channel(1, CONFIG)
    await drv.set_output(1, True)
    await drv.set_output(1, False)
    res.assert_done()


async def test_status_reads_compliance_from_the_measurement_condition_register() -> None:
    drv, res = await opened(CONFIGURE + [
        q("OUTP?", "1"), q("SOUR:WAVE:AMPL?", "5.000000E-03"), q("STAT:MEAS:COND?", "8"),
        NO_ERROR,
        q("OUTP?", "1"), q("SOUR:WAVE:AMPL?", "5.000000E-03"), q("STAT:MEAS:COND?", "0"),
        NO_ERROR,
    ])
    await drv.configure_channel(1, CONFIG)
    st = (await drv.status()).channel(1)
    assert st.output_on and st.compliance and st.measured_amplitude_ma is None
    assert st.set_amplitude_ma == pytest.approx(5.0)
    assert not (await drv.status()).channel(1).compliance
    res.assert_done()


async def test_error_queue_is_drained_and_becomes_a_fault_with_output_off() -> None:
    faults: list[FaultReport] = []
    drv, res = await opened([
        w("SOUR:WAVE:AMPL 0.005"), q("SOUR:WAVE:AMPL?", "5.000000E-03"),
        q("SYST:ERR?", '-222,"Data out of range"'), q("SYST:ERR?", '-221,"Settings conflict"'),
        NO_ERROR,
        w("OUTP OFF"), w("SOUR:WAVE:ABOR"), q("*OPC?", "1"),  # the driver's own all-off
    ])
    drv.add_fault_listener(faults.append)
    with pytest.raises(CommandRejected) as err:
        await drv.set_amplitude(1, 5.0)
    assert err.value.code == -222 and "-221" in str(err.value)
    assert [f.kind for f in faults] == [FaultKind.DEVICE_ERROR]
    res.assert_done()


async def test_readback_mismatch_is_a_fault_with_output_off() -> None:
    faults: list[FaultReport] = []
    drv, res = await opened([
        w("SOUR:WAVE:AMPL 0.005"), q("SOUR:WAVE:AMPL?", "5.100000E-03"),
        w("OUTP OFF"), w("SOUR:WAVE:ABOR"), q("*OPC?", "1"),
    ])
    drv.add_fault_listener(faults.append)
    with pytest.raises(ReadbackMismatch):
        await drv.set_amplitude(1, 5.0)
    assert faults[0].kind is FaultKind.READBACK and faults[0].channel == 1
    res.assert_done()


async def test_timeout_is_a_comms_fault_and_only_writes_follow() -> None:
    faults: list[FaultReport] = []
    drv, res = await opened([
        w("SOUR:WAVE:ARM"), w("SOUR:WAVE:INIT"), q("OUTP?", TIMEOUT),
        w("OUTP OFF"), w("SOUR:WAVE:ABOR"),
    ])
    drv.add_fault_listener(faults.append)
    with pytest.raises(DeviceTimeout):
        await drv.set_output(1, True)
    assert faults[0].kind is FaultKind.COMMS
    # The link is out of step now: a query is refused rather than paired with a stale reply.
    with pytest.raises(Exception, match="reopen"):
        await drv.status()
    res.assert_done()


async def test_bad_requests_send_nothing() -> None:
    drv, res = await opened([])
    with pytest.raises(CapabilityError, match="channel"):
        await drv.set_amplitude(2, 1.0)
    with pytest.raises(CapabilityError, match="0-105"):
        await drv.set_amplitude(1, 200.0)
    with pytest.raises(CapabilityError, match="phases take"):
        await drv.configure_channel(1, ChannelConfig(Waveform.BIPHASIC_SYMMETRIC, 1.0, 5000.0,
                                                     250.0))
    res.assert_done()


async def test_alternation_is_not_supported_on_a_single_channel_source() -> None:
    from drivers.base import AlternationSchedule
    from drivers.errors import NotSupported

    drv, res = await opened([])
    with pytest.raises(NotSupported):
        await drv.program_alternation(AlternationSchedule(1, 2, 1.0, 0.1, 1.0))
    res.assert_done()


async def test_unknown_model_is_a_clear_error() -> None:
    res = TranscriptResource([q("*IDN?", "ACME,WIDGET 9000,1,1.0")])
    with pytest.raises(CapabilityError, match="not supported.*6221"):
        await K6221(res).open()
    assert res.closed


async def test_a_generator_refuses_the_6221_driver() -> None:
    res = TranscriptResource([q("*IDN?", "Keysight Technologies,33522B,MY1,4.0")])
    with pytest.raises(CapabilityError, match="open_stimulator"):
        await K6221(res).open()


async def test_dc_mode_sets_the_current_and_output_on_does_not_arm() -> None:
    drv, res = await opened([
        q("OUTP?", "0"), w("SOUR:WAVE:ABOR"), w("SOUR:CURR 0.001"), q("SOUR:CURR?", "1.000000E-03"), NO_ERROR,
        w("OUTP ON"), q("OUTP?", "1"), NO_ERROR,
        q("OUTP?", "1"), q("SOUR:CURR?", "1.000000E-03"), q("STAT:MEAS:COND?", "0"), NO_ERROR,
    ])
    await drv.configure_dc(1, 1.0)
    await drv.set_output(1, True)
    assert (await drv.status()).channel(1).set_amplitude_ma == pytest.approx(1.0)
    res.assert_done()


async def test_heartbeat_is_one_error_queue_read() -> None:
    drv, res = await opened([NO_ERROR])
    await drv.heartbeat()
    res.assert_done()
