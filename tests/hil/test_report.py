"""The run report: verdicts, the JSON record and the HTML summary with embedded plots."""

from __future__ import annotations

import json
from pathlib import Path

from hil.report import ChannelSeries, Measurement, RunReport, judge
from sim.trace import TraceEvent


def test_judge() -> None:
    assert judge(1.0, 2.0, "<=") == "pass"
    assert judge(3.0, 2.0, "<=") == "fail"
    assert judge(0.1, 0.1, ">=") == "pass"
    assert judge(None, 1.0, "<=") == "fail", "an unmeasured figure proves nothing"
    assert judge(float("nan"), 1.0, "<=") == "fail"
    assert judge(5.0, None, "<=") == "info"


def test_json_and_html(tmp_path: Path) -> None:
    run = RunReport({"name": "sim", "source": "<test>"}, "0.1.0")
    run.add_device(
        "main",
        {
            "manufacturer": "stimctl",
            "model": "board",
            "serial": "S1",
            "firmware_version": "sim-1.0",
        },
    )
    rec = run.scenario("test_x[estop]")
    rec.title = "estop: the emergency stop"
    rec.outcome = "passed"
    rec.monitor = "sim-trace"
    rec.measurements.append(Measurement("e-stop to all outputs off", 0.004, "s", 0.05, "pass"))
    rec.series = [
        ChannelSeries(
            "biceps",
            [
                TraceEvent(0.0, "main", 1, True, 0.2, "biphasic_symmetric"),
                TraceEvent(0.5, "main", 1, True, 10.0, "biphasic_symmetric"),
                TraceEvent(0.7, "main", 1, False, 0.0, "biphasic_symmetric"),
            ],
        )
    ]
    rec.markers.append((0.696, "e-stop"))
    run.scenario("test_x[skipped]").outcome = "skipped"
    run.finish()
    data = json.loads(run.write_json(tmp_path / "r.json").read_text())
    assert data["schema"] == "stimctl-hil-report/1"
    assert data["stimctl_version"] == "0.1.0"
    assert data["devices"]["main"]["firmware_version"] == "sim-1.0"
    assert data["summary"] == {"passed": 1, "skipped": 1}
    m = data["scenarios"][0]["measurements"][0]
    assert (m["value"], m["unit"], m["limit"], m["verdict"]) == (0.004, "s", 0.05, "pass")
    assert data["scenarios"][0]["trace"]["biceps"][-1] == [0.7, 0.0]
    html = run.write_html(tmp_path / "r.html").read_text()
    assert html.count("data:image/png;base64,") == 1, "one plot: the skipped one has no trace"
    assert "e-stop to all outputs off" in html and "PASSED" in html
