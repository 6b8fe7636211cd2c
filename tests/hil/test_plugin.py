"""The pytest plugin, run the way a rig owner runs it: pytest on the packaged scenarios with a
rig file, JUnit XML and the HIL report; plus the async fixtures in a test of one's own."""

from __future__ import annotations

import fnmatch
import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path


def _pytest(cwd: Path, *args: str) -> tuple[int, str]:
    """pytest in a fresh process, from a directory outside the project (as a rig owner would)."""
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    return proc.returncode, proc.stdout + proc.stderr


def _lines_in_order(text: str, patterns: list[str]) -> None:
    lines = iter(text.splitlines())
    for pat in patterns:
        assert any(fnmatch.fnmatch(line, pat) for line in lines), f"{pat!r} not found in:\n{text}"


ONE_CHANNEL_RIG = """
[rig]
name = "one-channel-sim"
[[device]]
name = "main"
family = "board"
resource = "sim"
[[channel]]
name = "quad"
output = 1
electrode = { kind = "pad", area_cm2 = 25.0 }
"""


def test_packaged_scenarios_with_junit_and_report(tmp_path: Path) -> None:
    rig = tmp_path / "rig.toml"
    rig.write_text(ONE_CHANNEL_RIG, encoding="utf-8")
    junit = tmp_path / "junit.xml"
    out = tmp_path / "report"
    code, out_text = _pytest(
        tmp_path,
        "--pyargs",
        "hil.scenarios",
        "--rig",
        str(rig),
        "-k",
        "over_limit or non_overlap",
        "-rs",
        f"--junitxml={junit}",
        f"--hil-report={out}",
    )
    assert code == 0, out_text
    _lines_in_order(
        out_text,
        [
            "*stimctl HIL figures (rig one-channel-sim)*",
            "*peak delivered current = 0 mA*PASS*",
            "*rig cannot run this: pair: the rig names no antagonist*",
            "*1 passed, 2 skipped*",
        ],
    )
    cases = ET.parse(junit).getroot().iter("testcase")
    props = {p.get("name") for case in cases for p in case.iter("property")}
    assert "peak delivered current" in props
    data = json.loads((out / "hil-report.json").read_text())
    assert data["rig"]["name"] == "one-channel-sim"
    assert data["devices"]["main"]["firmware_version"]
    outcomes = {s["nodeid"].split("[")[-1]: s["outcome"] for s in data["scenarios"]}
    assert outcomes == {
        "over_limit_refusal]": "passed",
        "antagonist_non_overlap]": "skipped",
        "antagonist_non_overlap_software]": "skipped",
    }
    assert "peak delivered current" in (out / "hil-report.html").read_text()
    logs = [Path(p) for s in data["scenarios"] for p in s["audit_logs"]]
    assert logs and all(p.exists() and p.is_relative_to(out) for p in logs)


def test_bad_rig_is_a_usage_error(tmp_path: Path) -> None:
    rig = tmp_path / "rig.toml"
    rig.write_text(ONE_CHANNEL_RIG.replace('family = "board"', 'family = "board9"'))
    code, out_text = _pytest(tmp_path, "--pyargs", "hil.scenarios", "--rig", str(rig))
    _lines_in_order(out_text, ["*rig.toml: device[[]0[]].family*allowed: board*"])
    assert code == 4, "pytest's usage-error exit code"


def test_async_fixtures_in_a_test_of_ones_own(tmp_path: Path) -> None:
    (tmp_path / "test_own.py").write_text(
        """
        import pytest

        @pytest.mark.asyncio
        async def test_output(hil_context, hil_session, output_monitor, fault_injector, measure):
            await hil_session.start()
            t = await hil_context.wait_active("biceps", 20.0, min_ma=9.0)
            assert t is not None
            first = next(e for e in output_monitor.events("biceps") if e.active)
            m = measure("first output", first.amplitude_ma, "mA", 0.2)
            assert m.passed
            await fault_injector.lead_off("biceps")
            assert await hil_context.wait_state(hil_session, ["fault"], 20.0) is not None

        @pytest.mark.hil_requires("monitor_pair")
        def test_needs_pair_monitor(rig):
            assert rig.name == "sim"
        """.replace("\n        ", "\n")
    )
    code, out_text = _pytest(tmp_path, "test_own.py")
    assert code == 0 and "2 passed" in out_text, out_text
