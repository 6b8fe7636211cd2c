"""The simulated 6221 served on loopback TCP and driven through pyvisa-py's TCPIP SOCKET
resource, as a bench program drives the real instrument. Assertions are on the simulator's
own output trace and on its timestamps, never on wall-clock durations."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest
import pyvisa

from sim.faults import FaultSpec
from sim.scpi.server import ScpiServerThread
from sim.trace import active_intervals, load_trace

TIMEOUT_MS = 20_000  # generous: eight people share this machine


@pytest.fixture
def sim() -> Iterator[ScpiServerThread]:
    server = ScpiServerThread("k6221")
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def rm() -> Iterator[pyvisa.ResourceManager]:
    manager = pyvisa.ResourceManager("@py")
    yield manager
    manager.close()


def open_6221(rm: pyvisa.ResourceManager, resource: str, timeout_ms: int = TIMEOUT_MS):  # type: ignore[no-untyped-def]
    inst = rm.open_resource(resource)
    inst.read_termination = "\n"
    inst.write_termination = "\n"
    inst.timeout = timeout_ms
    return inst


def check_no_errors(inst) -> None:  # type: ignore[no-untyped-def]
    assert inst.query("SYST:ERR?") == '0,"No error"'


def test_resource_string_and_identity(sim: ScpiServerThread, rm: pyvisa.ResourceManager) -> None:
    assert sim.resource.startswith("TCPIP0::127.0.0.1::") and sim.resource.endswith("::SOCKET")
    inst = open_6221(rm, sim.resource)
    manufacturer, model, serial, firmware = inst.query("*IDN?").split(",")
    assert (manufacturer, model) == ("KEITHLEY INSTRUMENTS INC.", "MODEL 6221")
    assert serial and firmware
    inst.close()


def test_manual_dc_example(sim: ScpiServerThread, rm: pyvisa.ResourceManager) -> None:
    """The DC current sequence of the 622x manual's remote-operation examples."""
    inst = open_6221(rm, sim.resource)
    for command in (
        "*RST",
        "SOUR:CURR:RANG:AUTO ON",
        "SOUR:CURR 1e-3",
        "SOUR:CURR:COMP 10",
        "OUTP ON",
    ):
        inst.write(command)
    assert inst.query("OUTP?") == "1"
    assert float(inst.query("SOUR:CURR?")) == pytest.approx(1e-3)
    assert int(inst.query("STAT:MEAS:COND?")) & 8 == 0
    inst.write("OUTP OFF")
    check_no_errors(inst)
    inst.close()
    events = sim.trace.events
    (interval,) = active_intervals(events, 1)
    assert interval[1] > interval[0]
    assert max(e.amplitude_ma for e in events) == pytest.approx(1.0)
    assert not events[-1].active


def test_manual_sine_wave_example(sim: ScpiServerThread, rm: pyvisa.ResourceManager) -> None:
    """The waveform-mode sequence of the manual: configure, arm, initiate, abort."""
    inst = open_6221(rm, sim.resource)
    for command in (
        "*RST",
        "SOUR:WAVE:FUNC SIN",
        "SOUR:WAVE:FREQ 1e3",
        "SOUR:WAVE:AMPL 2e-3",
        "SOUR:WAVE:OFFS 0",
        "SOUR:WAVE:PMAR:STAT ON",
        "SOUR:WAVE:PMAR 0",
        "SOUR:WAVE:PMAR:OLIN 1",
        "SOUR:WAVE:RANG BEST",
        "SOUR:WAVE:DUR:TIME INF",
        "SOUR:WAVE:ARM",
        "SOUR:WAVE:INIT",
    ):
        inst.write(command)
    assert inst.query("OUTP?") == "1"
    inst.write("SOUR:WAVE:ABOR")
    inst.write("OUTP OFF")
    check_no_errors(inst)
    inst.close()
    active = [e for e in sim.trace.events if e.active]
    assert [e.waveform for e in active] == ["sine"]
    assert active[0].amplitude_ma == pytest.approx(2.0)
    assert not sim.trace.events[-1].active


def test_manual_arbitrary_waveform_example(sim: ScpiServerThread, rm: pyvisa.ResourceManager) -> None:
    """Define points, copy them to non-volatile memory, play ARB1. The waveform starts non-zero,
    so the output is active from INIT whatever the machine's load."""
    inst = open_6221(rm, sim.resource)
    inst.write("SOUR:WAVE:ARB:DATA 1,0,-1,0")
    inst.write("SOUR:WAVE:ARB:APP 0.5,0,-0.5,0")
    assert inst.query("SOUR:WAVE:ARB:POIN?") == "8"
    inst.write("SOUR:WAVE:ARB:COPY 1")
    inst.write("SOUR:WAVE:FUNC ARB1")
    inst.write("SOUR:WAVE:FREQ 100")
    inst.write("SOUR:WAVE:AMPL 1e-3")
    inst.write("SOUR:WAVE:ARM;INIT")
    assert inst.query("SOUR:WAVE:FUNC?") == "ARB1"
    inst.write("SOUR:WAVE:ABOR;:OUTP OFF")
    check_no_errors(inst)
    inst.close()
    active = [e for e in sim.trace.events if e.active]
    assert active and {e.waveform for e in active} == {"arb1"}
    assert max(e.amplitude_ma for e in active) == pytest.approx(1.0)


def test_compliance_seen_by_a_client(sim: ScpiServerThread, rm: pyvisa.ResourceManager) -> None:
    inst = open_6221(rm, sim.resource)
    inst.write("SOUR:CURR:RANG 20e-3;:SOUR:CURR 5e-3;:OUTP ON")
    assert int(inst.query("STAT:MEAS:COND?")) & 8 == 0
    sim.inject(FaultSpec("lead-off", channel=1))
    assert int(inst.query("STAT:MEAS:COND?")) & 8 == 8
    assert not sim.trace.events[-1].active  # nothing reaches the patient through an open lead
    inst.write("OUTP OFF")
    inst.close()


def test_errors_do_not_drop_the_connection(sim: ScpiServerThread, rm: pyvisa.ResourceManager) -> None:
    inst = open_6221(rm, sim.resource)
    for junk in ("SOUR:CURR 1 A A", "OUTP MAYBE", "*", "SOUR:CURR:COMP 1000", "NOT:A:COMMAND?", "#"):
        inst.write(junk)
    assert inst.query("*IDN?").startswith("KEITHLEY")
    codes = []
    while True:
        code = int(inst.query("SYST:ERR?").split(",")[0])
        if code == 0:
            break
        codes.append(code)
    assert codes == [-103, -224, -102, -222, -113, -102]
    inst.close()


def test_output_stays_on_after_disconnect_until_a_client_switches_it_off(
    sim: ScpiServerThread, rm: pyvisa.ResourceManager
) -> None:
    first = open_6221(rm, sim.resource)
    first.write("SOUR:CURR 1e-3;:OUTP ON")
    assert first.query("OUTP?") == "1"
    first.close()  # the controller went away without switching off
    second = open_6221(rm, sim.resource)
    assert second.query("OUTP?") == "1"
    assert sim.trace.events[-1].active
    second.write("OUTP OFF")
    assert second.query("OUTP?") == "0"
    second.close()
    assert not sim.trace.events[-1].active
    assert sim.call(lambda: sim._server.connections_served if sim._server else 0) == 2


def test_second_client_waits_for_the_first(sim: ScpiServerThread, rm: pyvisa.ResourceManager) -> None:
    first = open_6221(rm, sim.resource)
    assert first.query("*OPC?") == "1"
    second = socket.create_connection(("127.0.0.1", sim.port), timeout=0.3)
    second.sendall(b"*IDN?\n")
    with pytest.raises(socket.timeout):
        second.recv(100)  # not served while the first client is connected
    first.close()
    second.settimeout(TIMEOUT_MS / 1000)
    assert second.recv(100).startswith(b"KEITHLEY")
    second.close()


def test_stall_times_out_without_closing(sim: ScpiServerThread, rm: pyvisa.ResourceManager) -> None:
    inst = open_6221(rm, sim.resource, timeout_ms=300)
    inst.write("SOUR:CURR 1e-3;:OUTP ON")
    assert inst.query("OUTP?") == "1"
    sim.inject(FaultSpec("stall"))
    with pytest.raises(pyvisa.errors.VisaIOError):
        inst.query("*IDN?")
    assert sim.trace.events[-1].active  # a hung instrument keeps delivering
    sim.call(sim.instrument.clear_faults)
    inst.timeout = TIMEOUT_MS
    # The stalled query is answered once the instrument recovers; the link was never closed.
    assert inst.read().startswith("KEITHLEY")
    inst.write("OUTP OFF")
    assert inst.query("OUTP?") == "0"
    inst.close()


def test_garble_fault(sim: ScpiServerThread, rm: pyvisa.ResourceManager) -> None:
    inst = open_6221(rm, sim.resource)
    sim.inject(FaultSpec("garble"))
    assert inst.query("OUTP?") == "~0"
    assert inst.query("OUTP?") == "0"
    inst.close()


def test_unterminated_query_is_reported(sim: ScpiServerThread) -> None:
    sock = socket.create_connection(("127.0.0.1", sim.port), timeout=TIMEOUT_MS / 1000)
    sock.sendall(b"*IDN?")  # the client forgot its "\n"
    deadline = time.monotonic() + 60
    while sim.call(lambda: len(sim.instrument.errors)) == 0 and time.monotonic() < deadline:
        time.sleep(0.1)
    sock.sendall(b"SYST:ERR?\n")
    reply = sock.recv(300)
    assert reply.startswith(b'-420,"Query UNTERMINATED')
    sock.close()


def test_trace_file_is_written(tmp_path, rm: pyvisa.ResourceManager) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "trace.jsonl"
    with ScpiServerThread("k6221", trace_path=path) as server:
        inst = open_6221(rm, server.resource)
        inst.write("SOUR:CURR 1e-3;:OUTP ON")
        inst.write("OUTP OFF")
        inst.query("*OPC?")
        inst.close()
    events = load_trace(path)
    assert [e.active for e in events if e.on or e.active] == [True]
    assert events[-1].waveform == "off"


def test_faults_given_at_start(rm: pyvisa.ResourceManager) -> None:
    with ScpiServerThread("k6221", faults=[FaultSpec("scpi-error", value=-310)]) as server:
        inst = open_6221(rm, server.resource)
        inst.write("*CLS")
        assert inst.query("SYST:ERR?").startswith("-310,")
        inst.close()


def test_unknown_model_is_refused() -> None:
    with pytest.raises(ValueError, match="k6221"):
        ScpiServerThread("k9999")


async def test_the_production_driver_switches_off_what_a_crashed_client_left_on(
    sim: ScpiServerThread, rm: pyvisa.ResourceManager
) -> None:
    """A controller that died left the output on (the instrument keeps it, as a real one does);
    the next driver to open the instrument switches it off before anything else, and the
    simulator's own trace shows it."""
    from drivers.scpi import K6221 as K6221Driver

    crashed = open_6221(rm, sim.resource)
    crashed.write("SOUR:CURR 2e-3;:OUTP ON")
    assert crashed.query("OUTP?") == "1"
    crashed.close()
    assert sim.trace.events[-1].active
    driver = K6221Driver(sim.resource)
    await driver.open()
    status = await driver.status()
    await driver.close()
    assert not status.channels[0].output_on
    events = sim.trace.events
    assert not events[-1].active
    assert len(active_intervals(events, 1)) == 1
