"""The stimctl HIL pytest plugin (entry point ``stimctl_hil``, loaded by every pytest run).

Options:
    --rig FILE          the rig to run on (default: the built-in simulated board rig)
    --hil-report DIR    write DIR/hil-report.json and DIR/hil-report.html after the run
    --hil-manual        an operator is at the bench: faults that need a hand become prompts

Fixtures:
    rig                 the parsed `hil.rig.Rig` (session scope)
    hil_run             run_scenario on the rig: ``hil_run(coroutine_taking_ctx)``; the
                        context holds the connected-session factory (``ctx.session``), the
                        output monitor (``ctx.monitor``), the fault injectors (``ctx.faults``)
                        and ``ctx.measure``; virtual time where the rig allows
    hil_context         the same context as an async fixture, for async tests (real time)
    output_monitor      hil_context.monitor: the sim trace, or the bench's meter
    fault_injector      hil_context.faults: sim fault injection, or timed operator prompts
    hil_session         a connected controller session running the rig's first channel
                        program (armed, not started), for async tests
    measure             measure(name, value, unit, limit=None, verdict=None, comparison="<=")
                        records a figure into the JSON report (and JUnit properties)

Marker:
    @pytest.mark.hil_requires("watchdog", "pair", ...) skips, with the reason, a test that the
    rig cannot run. Features: pair, monitor_pair, watchdog, link_fault, lead_off_fault,
    stuck_fault, estop_input.

This module imports only light parts of stimctl at load time, so a broken controller module
elsewhere never stops an unrelated pytest run from starting.
"""

from __future__ import annotations

import dataclasses
import os
import re
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from hil.report import Comparison, Measurement, RunReport, ScenarioRecord, Verdict, judge
from hil.rig import Rig, default_rig, load_rig

try:
    # pytest-asyncio's own decorator, so the async fixtures work in its strict mode too.
    from pytest_asyncio import fixture as _async_fixture
except ImportError:  # pragma: no cover - without pytest-asyncio only the sync fixtures work
    _async_fixture = pytest.fixture  # type: ignore[assignment]

_REPORT_KEY = pytest.StashKey[RunReport]()
_RIG_KEY = pytest.StashKey[Rig]()

FEATURES = (
    "pair",
    "monitor_pair",
    "watchdog",
    "link_fault",
    "lead_off_fault",
    "stuck_fault",
    "estop_input",
)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("stimctl-hil", "stimctl hardware-in-the-loop")
    group.addoption(
        "--rig",
        metavar="FILE",
        default=None,
        help="rig file (TOML) to run the HIL scenarios on; default: the built-in simulated rig",
    )
    group.addoption(
        "--hil-report",
        metavar="DIR",
        default=None,
        help="write hil-report.json and hil-report.html (with plots) into DIR",
    )
    group.addoption(
        "--hil-manual",
        action="store_true",
        default=False,
        help="an operator is present: bench faults (lead off, cable pulled) become timed prompts",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.pluginmanager.register(_Reporter(config), "stimctl-hil-reporter")
    if config.getoption("--rig", None):
        _rig(config)  # a broken rig file stops the run at once, naming the file and key
    config.addinivalue_line(
        "markers",
        f"hil_requires(*features): skip unless the rig can do all of them ({', '.join(FEATURES)})",
    )


def _rig(config: pytest.Config) -> Rig:
    rig = config.stash.get(_RIG_KEY, None)
    if rig is None:
        path = config.getoption("--rig")
        try:
            rig = load_rig(path) if path else default_rig()
        except ValueError as exc:
            raise pytest.UsageError(str(exc)) from None
        config.stash[_RIG_KEY] = rig
    return rig


def _interactive(config: pytest.Config) -> bool:
    return bool(config.getoption("--hil-manual")) and sys.stdin is not None and sys.stdin.isatty()


def rig_features(rig: Rig, interactive: bool) -> dict[str, str | None]:
    """For each feature: None if the rig has it, else the reason it does not."""
    all_sim = all(d.simulated for d in rig.devices)
    agonist = rig.channel(rig.scenario.agonist) if rig.scenario.agonist else None
    dev = rig.device(agonist.device) if agonist else None
    manual = None if interactive else "needs an operator at the bench (run with --hil-manual)"
    out: dict[str, str | None] = {}
    out["pair"] = (
        None if rig.scenario.antagonist else "the rig names no antagonist channel ([scenario])"
    )
    if rig.meter is not None:
        out["monitor_pair"] = (
            f"the meter watches only channel {rig.meter.channel!r}; a pair needs both watched"
        )
    else:
        out["monitor_pair"] = None if all_sim else "no independent monitor on the pair"
    if dev is None:
        out["watchdog"] = "no agonist channel"
    elif dev.family == "board":
        out["watchdog"] = None
    else:
        out["watchdog"] = (
            f"a {dev.family} has no device-side watchdog: a lost link leaves its output as it was"
        )
    if dev is not None and dev.simulated:
        out["link_fault"] = (
            None if dev.family == "board" else "only a simulated board's link can be cut"
        )
        out["lead_off_fault"] = None
        out["stuck_fault"] = None
    else:
        out["link_fault"] = manual
        out["lead_off_fault"] = manual
        out["stuck_fault"] = "a stuck output cannot be made on a real device; runs on the simulator"
    out["estop_input"] = None if rig.estop is not None else "the rig has no [estop] input"
    return out


def pytest_runtest_setup(item: pytest.Item) -> None:
    marks = list(item.iter_markers("hil_requires"))
    if not marks:
        return
    wanted = [f for m in marks for f in m.args]
    unknown = [f for f in wanted if f not in FEATURES]
    if unknown:
        raise pytest.UsageError(
            f"{item.nodeid}: unknown hil_requires feature(s) {unknown}; known: {FEATURES}"
        )
    features = rig_features(_rig(item.config), _interactive(item.config))
    missing = [f"{f}: {features[f]}" for f in wanted if features[f] is not None]
    if missing:
        _report(item.config).scenario(item.nodeid).title = item.name
        pytest.skip("rig cannot run this: " + "; ".join(missing))


def _report(config: pytest.Config) -> RunReport:
    report = config.stash.get(_REPORT_KEY, None)
    if report is None:
        from controller import __version__

        rig = _rig(config)
        report = RunReport(
            {
                "name": rig.name,
                "source": rig.source,
                "description": rig.description,
                "devices": [
                    {"name": d.name, "family": d.family, "resource": d.resource}
                    for d in rig.devices
                ],
                "channels": [
                    {"name": c.name, "device": c.device, "output": c.output} for c in rig.channels
                ],
                "meter": None if rig.meter is None else dataclasses.asdict(rig.meter),
                "scenario": dataclasses.asdict(rig.scenario),
                "estop": None if rig.estop is None else rig.estop.port,
            },
            __version__,
        )
        config.stash[_REPORT_KEY] = report
    return report


def _record(request: pytest.FixtureRequest) -> ScenarioRecord:
    return _report(request.config).scenario(request.node.nodeid)


@pytest.fixture(scope="session")
def rig(request: pytest.FixtureRequest) -> Rig:
    """The rig of this run (--rig FILE, or the built-in simulated rig)."""
    return _rig(request.config)


@pytest.fixture
def measure(request: pytest.FixtureRequest) -> Callable[..., Measurement]:
    """measure(name, value, unit, limit=None, verdict=None, comparison="<=", note="") records a
    figure for the JSON report and the JUnit properties. Without a verdict it is judged from
    the limit. Returns the Measurement; assert on `.passed` to fail the test."""
    record = _record(request)

    def _measure(
        name: str,
        value: float | None,
        unit: str,
        limit: float | None = None,
        verdict: Verdict | None = None,
        comparison: Comparison = "<=",
        note: str = "",
    ) -> Measurement:
        v = verdict if verdict is not None else judge(value, limit, comparison)
        m = Measurement(name, value, unit, limit, v, comparison, note)
        record.measurements.append(m)
        request.node.user_properties.append((name, m.describe()))
        return m

    return _measure


@pytest.fixture
def hil_run(
    request: pytest.FixtureRequest, rig: Rig, tmp_path: Path
) -> Callable[[Callable[[Any], Awaitable[None]]], ScenarioRecord]:
    """hil_run(scenario) runs `async def scenario(ctx)` on the rig (see hil.context)."""
    from hil.context import ScenarioSkipped, run_scenario
    from hil.faults import FaultUnavailable

    report = _report(request.config)
    record = _record(request)
    interactive = _interactive(request.config)

    def _run(scenario: Callable[[Any], Awaitable[None]]) -> ScenarioRecord:
        summary = " ".join((scenario.__doc__ or "").strip().split("\n\n")[0].split())
        record.title = f"{getattr(scenario, '__name__', 'scenario')}: {summary}"
        identities: dict[str, dict[str, Any]] = {}
        workdir = tmp_path
        out_dir = request.config.getoption("--hil-report")
        if out_dir:
            # Keep each scenario's audit logs next to the report: they are the controller's
            # own account of what it did, to read beside the measured figures.
            safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name).strip("_")
            workdir = Path(out_dir) / "audit" / safe
            workdir.mkdir(parents=True, exist_ok=True)
        try:
            run_scenario(
                rig,
                scenario,
                record=record,
                workdir=workdir,
                interactive=interactive,
                identities=identities,
            )
        except (ScenarioSkipped, FaultUnavailable) as exc:
            pytest.skip(str(exc))
        finally:
            record.audit_logs = sorted(str(p) for p in workdir.glob("audit-*.jsonl"))
            for name, ident in identities.items():
                report.add_device(name, ident)
            for m in record.measurements:
                request.node.user_properties.append((m.name, m.describe()))
        return record

    return _run


@_async_fixture
async def hil_context(
    request: pytest.FixtureRequest, rig: Rig, tmp_path: Path
) -> AsyncIterator[Any]:
    """The scenario context in the test's own (real-time) loop, for async tests."""
    from hil.context import open_context

    async with open_context(
        rig, _record(request), tmp_path, interactive=_interactive(request.config)
    ) as ctx:
        yield ctx


@pytest.fixture
def output_monitor(hil_context: Any) -> Any:
    return hil_context.monitor


@pytest.fixture
def fault_injector(hil_context: Any) -> Any:
    return hil_context.faults


@_async_fixture
async def hil_session(hil_context: Any) -> AsyncIterator[Any]:
    """A connected controller session on the rig's agonist channel, armed and ready to start."""
    from hil.scenarios.library import scenario_profile, scenario_program

    s = hil_context.settings
    program = scenario_program(hil_context, "fixture", [s.agonist], duration_s=10.0)
    async with hil_context.session(program, scenario_profile(hil_context, "fixture")) as sess:
        await sess.arm()
        yield sess


class _Reporter:
    """Feeds test outcomes into the run report and writes it at the end."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.paths: list[Path] = []

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        # Only tests that used the HIL fixtures have a record; the others are not HIL tests.
        run = self.config.stash.get(_REPORT_KEY, None)
        if run is None or report.nodeid not in run.scenarios:
            return
        rec = run.scenarios[report.nodeid]
        if report.when == "call" or (report.when == "setup" and report.outcome != "passed"):
            rec.outcome = report.outcome
            rec.duration_s += report.duration
            if report.outcome != "passed":
                rec.message = report.longreprtext[-4000:]
        elif report.when == "teardown" and report.outcome == "failed":
            rec.outcome = "error"
            rec.message = report.longreprtext[-4000:]

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        out_dir = self.config.getoption("--hil-report")
        run = self.config.stash.get(_REPORT_KEY, None)
        if run is None or not out_dir:
            return
        run.finish()
        d = Path(out_dir)
        self.paths = [run.write_json(d / "hil-report.json"), run.write_html(d / "hil-report.html")]

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        run = self.config.stash.get(_REPORT_KEY, None)
        if run is None:
            return
        recs = [r for r in run.scenarios.values() if r.measurements]
        if not recs:
            return
        tr = terminalreporter
        tr.section(f"stimctl HIL figures (rig {run.rig.get('name')})")
        for rec in recs:
            tr.write_line(f"{rec.nodeid}  [{rec.outcome}]")
            for m in rec.measurements:
                tr.write_line(f"    {m.describe()}")
        if self.paths:
            tr.write_line("report: " + ", ".join(os.fspath(p) for p in self.paths))
