"""The simulated Keithley 6221, driven message by message on a manual clock, checked at its
output trace and its status registers."""

from __future__ import annotations

import pytest

from sim.faults import FaultSpec
from sim.load import ElectrodeLoad
from sim.scpi.clock import ManualClock
from sim.scpi.k6221 import K6221
from sim.trace import active_intervals, max_amplitude_ma

# The default load is 500 ohm + 1 kohm || 1 uF: 1.5 kohm for DC, so 10 V pushes 6.667 mA.
DC_LIMIT_MA = 10.0 / 1500.0 * 1e3


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def k(clock: ManualClock) -> K6221:
    return K6221(clock=clock)


def ask(inst: K6221, message: str) -> str | None:
    reply = inst.process(message.encode())
    return None if reply is None else reply.decode().rstrip("\n")


def errors(inst: K6221) -> list[int]:
    out = []
    while True:
        err = inst.pop_error()
        if err.code == 0:
            return out
        out.append(err.code)


def last(k: K6221):  # type: ignore[no-untyped-def]
    return k.trace.events[-1]


def test_identity(k: K6221) -> None:
    assert ask(k, "*IDN?") == "KEITHLEY INSTRUMENTS INC.,MODEL 6221,4096001,D04  /700x"


def test_reset_defaults(k: K6221) -> None:
    ask(k, "SOUR:CURR 1e-3;:OUTP ON;:SOUR:WAVE:FUNC SQU;FREQ 50;:SOUR:CURR:COMP 20;*RST")
    assert ask(k, "OUTP?;:SOUR:CURR?;CURR:RANG?;RANG:AUTO?;:SOUR:CURR:COMP?") == (
        "0;0.000000E+00;2.000000E-03;0;1.000000E+01"
    )
    assert ask(k, "SOUR:WAVE:FUNC?;FREQ?;AMPL?;OFFS?;DCYC?;DUR:TIME?;CYCL?;:SOUR:WAVE:RANG?") == (
        "SIN;1.000000E+03;2.000000E-12;0.000000E+00;5.000000E+01;9.900000E+37;9.900000E+37;BEST"
    )
    assert ask(k, "SOUR:WAVE:PMAR?;PMAR:STAT?;OLIN?;:OUTP:LTE?;ISH?") == (
        "0.000000E+00;0;3;0;OLOW"
    )
    assert errors(k) == []


def test_query_min_max_def(k: K6221) -> None:
    assert ask(k, "SOUR:CURR? MAX;COMP? MIN;COMP? DEF") is None or True
    assert ask(k, "SOUR:CURR? MAX") == "1.050000E-01"
    assert ask(k, "SOUR:CURR:COMP? MIN;COMP? DEF") == "1.000000E-01;1.000000E+01"
    assert ask(k, "SOUR:WAVE:FREQ? MAX") == "1.000000E+05"


def test_dc_output_in_the_trace(k: K6221, clock: ManualClock) -> None:
    ask(k, "SOUR:CURR 2mA;:OUTP ON")
    clock.advance(1.0)
    ask(k, "SOUR:CURR 1.5e-3")
    clock.advance(1.0)
    ask(k, "OUTP OFF")
    assert active_intervals(k.trace.events, 1) == [(0.0, 2.0)]
    assert [e.amplitude_ma for e in k.trace.events if e.active] == [2.0, 1.5]
    assert {e.waveform for e in k.trace.events if e.active} == {"dc"}


def test_level_outside_the_instrument_range_changes_nothing(k: K6221) -> None:
    ask(k, "SOUR:CURR 1e-3")
    ask(k, "SOUR:CURR 0.2")
    assert ask(k, "SOUR:CURR?") == "1.000000E-03"
    assert errors(k) == [-222]


def test_fixed_range_refuses_a_level_above_it(k: K6221) -> None:
    ask(k, "SOUR:CURR 2.1e-3")  # 5 % over range is allowed
    ask(k, "SOUR:CURR 5e-3")
    assert ask(k, "SOUR:CURR?") == "2.100000E-03"
    reply = ask(k, "SYST:ERR?")
    assert reply is not None and reply.startswith("-222,")
    assert "SOUR:CURR:RANG" in reply and "AUTO" in reply


def test_range_selection_and_auto_range(k: K6221) -> None:
    ask(k, "SOUR:CURR:RANG 15e-3")
    assert ask(k, "SOUR:CURR:RANG?") == "2.000000E-02"
    ask(k, "SOUR:CURR 15e-3;:SOUR:CURR:RANG 1e-3")  # the 2 mA range cannot hold 15 mA
    assert errors(k) == [-221]
    assert ask(k, "SOUR:CURR:RANG?") == "2.000000E-02"
    ask(k, "SOUR:CURR:RANG:AUTO ON;:SOUR:CURR 50e-3")
    assert ask(k, "SOUR:CURR:RANG?;RANG:AUTO?") == "1.000000E-01;1"
    ask(k, "SOUR:CURR 1e-6")
    assert ask(k, "SOUR:CURR:RANG?") == "2.000000E-06"
    ask(k, "SOUR:CURR:RANG 2e-3")
    assert ask(k, "SOUR:CURR:RANG:AUTO?") == "0"


def test_compliance_limits_delivery_and_sets_the_measurement_register(k: K6221) -> None:
    ask(k, "SOUR:CURR:RANG 20e-3;:SOUR:CURR 5e-3;:OUTP ON")
    assert ask(k, "STAT:MEAS:COND?") == "0"
    assert last(k).amplitude_ma == pytest.approx(5.0)
    ask(k, "SOUR:CURR 10e-3")
    assert last(k).amplitude_ma == pytest.approx(DC_LIMIT_MA, rel=1e-6)
    assert ask(k, "STAT:MEAS:COND?") == "8"
    ask(k, "SOUR:CURR:COMP 20")
    assert last(k).amplitude_ma == pytest.approx(10.0)
    assert ask(k, "STAT:MEAS:COND?") == "0"
    # The event register latched the rising edge until read.
    assert ask(k, "STAT:MEAS?;:STAT:MEAS?") == "8;0"


def test_compliance_event_can_raise_the_status_byte(k: K6221) -> None:
    ask(k, "STAT:MEAS:ENAB 8;:SOUR:CURR:RANG 20e-3;:SOUR:CURR 10e-3;:OUTP ON")
    assert int(ask(k, "*STB?") or "0") & 1
    ask(k, "*CLS")
    assert int(ask(k, "*STB?") or "0") & 1 == 0
    assert ask(k, "STAT:MEAS:ENAB?") == "8"


def test_compliance_is_clear_while_the_output_is_off(k: K6221) -> None:
    ask(k, "SOUR:CURR:RANG 20e-3;:SOUR:CURR 10e-3")
    assert ask(k, "STAT:MEAS:COND?") == "0"


def upload(k: K6221, points: list[float]) -> None:
    text = [f"{p:g}" for p in points]
    ask(k, "SOUR:WAVE:ARB:DATA " + ",".join(text[:100]))
    for start in range(100, len(text), 100):
        ask(k, "SOUR:WAVE:ARB:APP " + ",".join(text[start : start + 100]))


def pulse_train(points: int = 200, width: int = 10) -> list[float]:
    return [1.0] * width + [-1.0] * width + [0.0] * (points - 2 * width)


def test_arb_upload_in_chunks(k: K6221) -> None:
    upload(k, pulse_train(256))
    assert ask(k, "SOUR:WAVE:ARB:POIN?") == "256"
    assert errors(k) == []


def test_arb_errors(k: K6221) -> None:
    ask(k, "SOUR:WAVE:ARB:DATA " + ",".join(["0"] * 101))
    ask(k, "SOUR:WAVE:ARB:DATA 0,1.5")
    ask(k, "SOUR:WAVE:ARB:DATA")
    assert errors(k) == [-108, -222, -109]
    assert ask(k, "SOUR:WAVE:ARB:POIN?") == "0"
    ask(k, "SOUR:WAVE:FUNC ARB0;ARM")
    assert errors(k) == [-221]
    ask(k, "SOUR:WAVE:ARB:COPY 1")
    assert errors(k) == [-221]
    ask(k, "SOUR:WAVE:ARB:COPY 5")
    assert errors(k) == [-222]


def test_arb_memory_is_bounded(k: K6221) -> None:
    k.arb_edit = [0.0] * 65500
    ask(k, "SOUR:WAVE:ARB:APP " + ",".join(["0"] * 100))
    assert errors(k) == [-225]
    assert ask(k, "SOUR:WAVE:ARB:POIN?") == "65500"


def test_wave_needs_arm_before_init(k: K6221) -> None:
    ask(k, "SOUR:WAVE:INIT")
    assert errors(k) == [-221]
    assert k.trace.events == [] or not last(k).active


def test_sine_plays_for_its_duration_and_stops(k: K6221, clock: ManualClock) -> None:
    ask(k, "SOUR:WAVE:FUNC SIN;FREQ 100;AMPL 2e-3;OFFS 0;DUR:TIME 5;:SOUR:WAVE:ARM;INIT")
    assert ask(k, "OUTP?") == "1"  # INIT closes the output relay
    assert last(k).waveform == "sine" and last(k).amplitude_ma == pytest.approx(2.0)
    clock.advance(4.0)
    assert last(k).active
    clock.advance(2.0)
    assert active_intervals(k.trace.events, 1, end_s=clock.now()) == [(0.0, 5.0)]
    # Done: the relay is still closed, the waveform is disarmed, SOUR:CURR (0) is delivered.
    assert ask(k, "OUTP?") == "1"
    ask(k, "SOUR:WAVE:FREQ 200")
    assert errors(k) == []


def test_duration_in_cycles(k: K6221, clock: ManualClock) -> None:
    ask(k, "SOUR:WAVE:FREQ 10;AMPL 1e-3;DUR:CYCL 25;:SOUR:WAVE:ARM;INIT")
    assert ask(k, "SOUR:WAVE:DUR:TIME?") == "2.500000E+00"
    clock.advance(10)
    assert active_intervals(k.trace.events, 1) == [(0.0, 2.5)]


def test_settings_locked_while_armed(k: K6221) -> None:
    ask(k, "SOUR:WAVE:FREQ 10;AMPL 1e-3;ARM")
    ask(k, "SOUR:WAVE:FREQ 20")
    ask(k, "SOUR:WAVE:FUNC SQU")
    ask(k, "SOUR:WAVE:DUR:TIME 1")
    assert errors(k) == [-221, -221, -221]
    reply = k.errors.snapshot()
    assert reply == []
    ask(k, "SOUR:WAVE:ABOR;FREQ 20")
    assert errors(k) == []


def test_amplitude_change_while_running_is_immediate(k: K6221, clock: ManualClock) -> None:
    ask(k, "SOUR:WAVE:FREQ 50;AMPL 1e-3;ARM;INIT")
    clock.advance(1.0)
    ask(k, "SOUR:WAVE:AMPL 3e-3")
    assert last(k).amplitude_ma == pytest.approx(3.0)
    assert last(k).t_s == pytest.approx(1.0)
    ask(k, "SOUR:WAVE:OFFS 0.104")
    assert errors(k) == [-221]  # 3 mA + 104 mA is beyond 105 mA


def test_arb_pulse_train_envelope(k: K6221, clock: ManualClock) -> None:
    upload(k, pulse_train(200, 10))
    ask(k, "SOUR:WAVE:FUNC ARB0;FREQ 50;AMPL 4e-3;ARM;INIT")
    clock.advance(3.0)
    ask(k, "OUTP OFF")
    # One pulse per period: the train is active throughout, at its peak after the load.
    assert active_intervals(k.trace.events, 1) == [(0.0, 3.0)]
    assert max_amplitude_ma(k.trace.events, 1) == pytest.approx(4.0)
    assert last(k).waveform == "off"


def test_arb_bursts_show_as_separate_intervals(k: K6221, clock: ManualClock) -> None:
    # 2 s period: ten 1 ms-spaced pulses, then 1.9 s of nothing.
    wave = ([1.0, -1.0] + [0.0] * 8) * 10 + [0.0] * 1900
    upload(k, wave)
    ask(k, "SOUR:WAVE:FUNC ARB0;FREQ 0.5;AMPL 2e-3;ARM;INIT")
    clock.advance(4.5)
    starts = [round(s, 6) for s, _ in active_intervals(k.trace.events, 1, end_s=clock.now())]
    assert starts == [0.0, 2.0, 4.0]


def test_arb_slots_copy_and_play(k: K6221, clock: ManualClock) -> None:
    upload(k, pulse_train(100, 5))
    ask(k, "SOUR:WAVE:ARB:COPY 2;:SOUR:WAVE:ARB:DATA 0,0")
    ask(k, "SOUR:WAVE:FUNC ARB2;FREQ 100;AMPL 1e-3;ARM;INIT")
    clock.advance(1)
    assert last(k).waveform == "arb2" and last(k).active
    ask(k, "SOUR:WAVE:ABOR;FUNC ARB3;ARM")
    assert errors(k) == [-221]


def test_abort_returns_to_dc_with_the_relay_closed(k: K6221, clock: ManualClock) -> None:
    ask(k, "SOUR:CURR 1e-3;:SOUR:WAVE:FREQ 10;AMPL 2e-3;ARM;INIT")
    clock.advance(1)
    ask(k, "SOUR:WAVE:ABOR")
    assert last(k).waveform == "dc" and last(k).amplitude_ma == pytest.approx(1.0)
    ask(k, "OUTP OFF")
    assert not last(k).active


def test_output_off_ends_an_armed_waveform(k: K6221, clock: ManualClock) -> None:
    ask(k, "SOUR:WAVE:FREQ 10;AMPL 2e-3;ARM;INIT")
    clock.advance(1)
    ask(k, "OUTP OFF")
    ask(k, "OUTP ON")
    # The waveform does not resume: DC level 0 is delivered.
    assert not last(k).active
    ask(k, "SOUR:WAVE:FREQ 20")
    assert errors(k) == []


def test_source_clear_opens_the_relay(k: K6221) -> None:
    ask(k, "SOUR:CURR 1e-3;:OUTP ON;:SOUR:CLE")
    assert ask(k, "OUTP?") == "0" and not last(k).active


def test_error_queue_commands(k: K6221) -> None:
    ask(k, "BOGUS;:SOUR:CURR 1")
    assert ask(k, "SYST:ERR:COUN?") == "2"
    reply = ask(k, "SYST:ERR:ALL?")
    assert reply is not None and reply.startswith("-113,") and reply.endswith('0,"No error"')
    ask(k, "BOGUS")
    ask(k, "STAT:QUE:CLE")
    assert ask(k, "STAT:QUE?") == '0,"No error"'
    assert ask(k, "SYST:VERS?") == "1999.0"


# --- faults --------------------------------------------------------------------------------


def test_lead_off_delivers_nothing_and_reports_compliance(k: K6221) -> None:
    ask(k, "SOUR:CURR 1e-3;:OUTP ON")
    k.inject(FaultSpec("lead-off", channel=1))
    assert not last(k).active and last(k).on
    assert ask(k, "STAT:MEAS:COND?") == "8"
    k.clear_faults()
    assert last(k).active
    assert ask(k, "STAT:MEAS:COND?") == "0"


def test_short_delivers_the_full_level(k: K6221) -> None:
    ask(k, "SOUR:CURR:RANG 0.1;:SOUR:CURR 50e-3;:OUTP ON")
    assert last(k).amplitude_ma == pytest.approx(DC_LIMIT_MA, rel=1e-6)
    k.inject(FaultSpec("short", channel=1))
    assert last(k).amplitude_ma == pytest.approx(50.0)


def test_stuck_relay_ignores_off_and_reads_back_on(k: K6221) -> None:
    ask(k, "SOUR:CURR 1e-3;:OUTP ON")
    k.inject(FaultSpec("stuck", channel=1))
    ask(k, "OUTP OFF;*RST")
    assert last(k).on
    assert ask(k, "OUTP?") == "1"


def test_overcurrent_switches_off_and_queues_an_error(k: K6221) -> None:
    ask(k, "SOUR:CURR 1e-3;:OUTP ON")
    k.inject(FaultSpec("overcurrent", channel=1))
    assert not last(k).active
    reply = ask(k, "SYST:ERR?")
    assert reply is not None and reply.startswith("-300,") and "over-current" in reply


def test_scpi_error_fault_and_garble(k: K6221) -> None:
    k.inject(FaultSpec("scpi-error", value=-222))
    ask(k, "*CLS")
    assert errors(k) == [-222]
    k.inject(FaultSpec("garble"))
    assert k.finish_response(b"1\n") != b"1\n"
    assert k.finish_response(b"1\n") == b"1\n"


def test_reset_after_restarts_with_outputs_off(clock: ManualClock) -> None:
    k = K6221(clock=clock, faults=[FaultSpec("reset-after", value=3.0)])
    ask(k, "*ESR?;:SOUR:CURR 1e-3;:OUTP ON")
    clock.advance(2.9)
    assert last(k).active
    clock.advance(0.2)
    assert not last(k).active
    assert ask(k, "*ESR?;:SOUR:CURR?") == "128;0.000000E+00"


def test_delay_after_postpones_the_other_faults(clock: ManualClock) -> None:
    k = K6221(clock=clock, faults=[FaultSpec("lead-off", channel=1), FaultSpec("delay-after", value=10.0)])
    ask(k, "SOUR:CURR 1e-3;:OUTP ON")
    clock.advance(9.0)
    assert last(k).active
    clock.advance(2.0)
    assert not last(k).active
    assert last(k).t_s == pytest.approx(10.0)


def test_fault_on_a_missing_channel_is_refused(k: K6221) -> None:
    with pytest.raises(ValueError, match="channels 1..1"):
        k.inject(FaultSpec("lead-off", channel=2))


def test_custom_load(clock: ManualClock) -> None:
    k = K6221(clock=clock, load=ElectrodeLoad(series_ohm=10_000.0, parallel_ohm=0.0))
    ask(k, "SOUR:CURR 1e-3;:OUTP ON")  # 10 V into 10 kohm: exactly 1 mA
    assert last(k).amplitude_ma == pytest.approx(1.0)
    ask(k, "SOUR:CURR 1.5e-3")
    assert last(k).amplitude_ma == pytest.approx(1.0)
    assert ask(k, "STAT:MEAS:COND?") == "8"
