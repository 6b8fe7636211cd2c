"""`stimctl hil run`: listing, rig errors, and a real run through the installed command."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from controller.cli import main

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "rigs"


def test_list_says_what_a_bench_rig_skips_and_why() -> None:
    result = CliRunner().invoke(
        main, ["hil", "run", "--rig", str(EXAMPLES / "bench-6221-dmm.toml"), "--list"]
    )
    assert result.exit_code == 0, result.output
    assert "stuck_output" in result.output
    assert "a k6221 has no device-side watchdog" in result.output
    assert "over_limit_refusal       runs" in result.output


def test_bad_rig_exits_2_naming_file_and_key(tmp_path: Path) -> None:
    rig = tmp_path / "rig.toml"
    rig.write_text((EXAMPLES / "sim.toml").read_text().replace('line = "cts"', 'line = "ri"'))
    result = CliRunner().invoke(main, ["hil", "run", "--rig", str(rig)])
    assert result.exit_code == 2
    assert f"{rig}: estop.line" in result.output and "allowed: cts, dsr" in result.output


def test_run_writes_reports_and_exits_0(tmp_path: Path) -> None:
    out = tmp_path / "out"
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            "from controller.cli import main; main()",
            "hil",
            "run",
            "--report",
            str(out),
            "-k",
            "over_limit or emergency",
        ],
        check=False,
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "test_safety_scenario[emergency_stop_latency] PASSED" in proc.stdout
    data = json.loads((out / "hil-report.json").read_text())
    assert data["summary"] == {"passed": 2}
    assert (out / "junit.xml").exists() and (out / "hil-report.html").exists()
