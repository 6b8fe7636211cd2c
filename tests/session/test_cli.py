"""`stimctl run`, `demo` and `plot` as a user runs them: subprocesses on the built-in simulator
(a board thread on a loopback socket, real time). Assertions use the simulator's trace and its
own timestamps, never wall-clock durations."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from click.testing import CliRunner

from controller.cli import main
from sim.trace import active_intervals, all_off_at, load_trace

REPO = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-c", "from controller.cli import main; main()"]


def _env(tmp_path: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["STIMCTL_STATE_DIR"] = str(tmp_path / "state")
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _wait_for_line(proc: subprocess.Popen[str], needle: str, timeout_s: float) -> list[str]:
    seen: list[str] = []
    deadline = time.monotonic() + timeout_s
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        seen.append(line)
        if needle in line:
            return seen
    raise AssertionError(f"never saw {needle!r}; output so far:\n{''.join(seen)}")


def test_sigint_ramps_down_then_exits_130(tmp_path: Path) -> None:
    trace = tmp_path / "trace.jsonl"
    log = tmp_path / "audit.jsonl"
    proc = subprocess.Popen(
        [*CLI, "run", str(REPO / "examples" / "demo.toml"), "--yes", "--no-live",
         "--trace", str(trace), "--log", str(log)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=_env(tmp_path),
    )
    try:
        _wait_for_line(proc, "-> stimulating", timeout_s=60)
        time.sleep(1.0)
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, out
    events = load_trace(trace)
    # The single channel (output 3, 2 s ramps) was on and went down through many levels.
    ch3 = [e for e in events if e.channel == 3]
    peak_t = max((e.t_s for e in ch3 if e.active), default=None)
    assert peak_t is not None
    runs = active_intervals(events, 3)
    assert runs, "output 3 was never on"
    falling = [e.amplitude_ma for e in ch3 if e.t_s >= runs[-1][0] and e.active]
    top = falling.index(max(falling))
    assert len(set(falling[top:])) >= 5, f"no ramp-down: {falling[top:]}"
    assert all_off_at(events, events[0].t_s) is not None
    last = {e.channel: e.active for e in events}
    assert not any(last.values())
    assert "ramp" in log.read_text() and "Ctrl-C" in log.read_text()


def test_no_terminal_and_no_yes_is_refused(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["run", str(REPO / "examples" / "demo.toml")],
                                env=_env(tmp_path))
    assert result.exit_code == 3, result.output
    assert "--yes" in result.output


def test_over_limit_program_exits_3_and_the_board_never_switches_on(tmp_path: Path) -> None:
    trace = tmp_path / "trace.jsonl"
    result = subprocess.run(
        [*CLI, "run", str(REPO / "examples" / "over_limit.toml"), "--yes", "--no-live",
         "--trace", str(trace), "--log", str(tmp_path / "a.jsonl")],
        capture_output=True, text=True, env=_env(tmp_path), timeout=120,
    )
    assert result.returncode == 3, result.stdout + result.stderr
    assert "refused" in result.stdout
    assert all(not e.on for e in load_trace(trace))


def test_malformed_program_exits_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[session]\nname = "x"\nprofile = "face"\nduration_s = 60\n'
                   '[[channel]]\nname = "a"\noutput = 1\n'
                   'electrode = { kind = "pad", area_cm2 = 4.0 }\n'
                   'waveform = "biphasic_symmetric"\namplitude = 8\nfrequency_hz = 50\n'
                   'pulse_width_us = 200\nramp_up_s = 1.0\nramp_down_s = 1.0\n')
    result = CliRunner().invoke(main, ["run", str(bad), "--yes"], env=_env(tmp_path))
    assert result.exit_code == 2, result.output
    assert "amplitude" in result.output


def test_plot_writes_a_png_from_a_trace_and_from_a_log(tmp_path: Path) -> None:
    from tests.session.test_plot_data import write_sample_trace_and_log

    trace, log = write_sample_trace_and_log(tmp_path)
    for src in (trace, log):
        out = tmp_path / f"{src.stem}.png"
        result = CliRunner().invoke(main, ["plot", str(src), "-o", str(out)])
        assert result.exit_code == 0, result.output
        assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plot_rejects_a_file_that_is_neither(tmp_path: Path) -> None:
    junk = tmp_path / "junk.jsonl"
    junk.write_text('{"hello": 1}\n')
    result = CliRunner().invoke(main, ["plot", str(junk), "-o", str(tmp_path / "x.png")])
    assert result.exit_code == 2
    assert "neither" in result.output
