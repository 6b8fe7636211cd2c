"""`stimctl sim serve k6221|k33500b` as a user runs it: a real process, the resource string on
its first line, pyvisa on the other end, Ctrl-C (SIGINT) to stop with a complete trace."""

from __future__ import annotations

import os
import select
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import pyvisa
from click.testing import CliRunner

from controller.cli import main
from sim.scpi.cli import parse_listen
from sim.trace import load_trace

START_TIMEOUT_S = 120.0  # generous: a loaded 2-core machine imports numpy slowly


def stimctl(*args: str) -> subprocess.Popen[bytes]:
    code = "import sys; from controller.cli import main; sys.exit(main())"
    return subprocess.Popen(
        [sys.executable, "-c", code, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )


def first_line(proc: subprocess.Popen[bytes]) -> str:
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], START_TIMEOUT_S)
    assert ready, "the simulator printed nothing"
    return proc.stdout.readline().decode().strip()


def stop(proc: subprocess.Popen[bytes]) -> tuple[int, str]:
    proc.send_signal(signal.SIGINT)
    try:
        _, err = proc.communicate(timeout=START_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise
    return proc.returncode, err.decode()


@pytest.mark.parametrize("model", ["k6221", "k33500b"])
def test_serve_prints_the_resource_and_stops_on_ctrl_c(model: str, tmp_path: Path) -> None:
    trace = tmp_path / "trace.jsonl"
    proc = stimctl("sim", "serve", model, "--trace", str(trace))
    try:
        resource = first_line(proc)
        assert resource.startswith("TCPIP0::127.0.0.1::") and resource.endswith("::SOCKET")
        rm = pyvisa.ResourceManager("@py")
        inst = rm.open_resource(resource)
        inst.read_termination = inst.write_termination = "\n"
        inst.timeout = 20_000
        assert inst.query("*IDN?")
        if model == "k6221":
            inst.write("SOUR:CURR 1e-3;:OUTP ON")
        else:
            inst.write("SOUR1:FUNC DC;:SOUR1:VOLT:OFFS 0.5;:OUTP1 ON")
        assert inst.query("SYST:ERR?").startswith("0,")
        inst.close()
        rm.close()
    finally:
        code, err = stop(proc)
    assert code == 0
    events = load_trace(trace)
    assert events and events[-1].active  # complete: the last change is there
    assert "still delivering" in err  # and the user is told an output was left on


def test_listen_on_a_fixed_port_and_port_in_use(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = stimctl("sim", "serve", "k6221", "--listen", f"127.0.0.1:{port}")
        _, err = proc.communicate(timeout=START_TIMEOUT_S)
    assert proc.returncode == 2
    assert "cannot listen" in err.decode() and "--listen" in err.decode()


def test_bad_options_are_explained() -> None:
    runner = CliRunner()
    result = runner.invoke(main, ["sim", "serve", "k6221", "--fault", "melt:1"])
    assert result.exit_code == 2 and "unknown fault 'melt'" in result.output
    result = runner.invoke(main, ["sim", "serve", "k6221", "--listen", "localhost:http"])
    assert result.exit_code == 2 and "port must be a number" in result.output
    result = runner.invoke(main, ["sim", "serve", "k6221", "--transconductance", "2"])
    assert result.exit_code == 2 and "k33500b only" in result.output
    result = runner.invoke(main, ["sim", "serve", "k6221", "--help"])
    assert result.exit_code == 0 and "TCPIP0::127.0.0.1::5025::SOCKET" in result.output


def test_parse_listen() -> None:
    assert parse_listen("127.0.0.1:5025") == ("127.0.0.1", 5025)
    assert parse_listen(":0") == ("127.0.0.1", 0)
    assert parse_listen("5025") == ("127.0.0.1", 5025)
    assert parse_listen("[::1]:5025") == ("::1", 5025)
    with pytest.raises(ValueError, match="0..65535"):
        parse_listen("127.0.0.1:70000")
