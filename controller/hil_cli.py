"""`stimctl hil ...`: run the safety scenario library on a rig (simulated or a real bench)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from controller.exit_codes import ExitCode

# pytest's exit codes -> stimctl's (controller/exit_codes.py).
_PYTEST_TO_STIMCTL = {
    0: ExitCode.OK,
    1: ExitCode.FAULT,  # a scenario failed: a protection did not hold on this rig
    2: ExitCode.INTERRUPTED,
    3: ExitCode.INTERNAL,
    4: ExitCode.INVALID_INPUT,
    5: ExitCode.INVALID_INPUT,  # nothing selected (a -k that matches no scenario)
}


@click.group("hil")
def hil_group() -> None:
    """Hardware-in-the-loop: the safety scenarios, on the simulator or on a real bench."""


def _load(rig_path: str | None) -> object:
    from hil.rig import RigError, default_rig, load_rig

    try:
        return load_rig(rig_path) if rig_path else default_rig()
    except RigError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(ExitCode.INVALID_INPUT)


@hil_group.command("run")
@click.option(
    "--rig",
    "rig_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="Rig file (TOML). Default: the built-in simulated board (examples/rigs/sim.toml).",
)
@click.option(
    "--report",
    "report_dir",
    type=click.Path(file_okay=False),
    default="hil-report",
    show_default=True,
    help="Directory for hil-report.json, hil-report.html (plots) and junit.xml.",
)
@click.option(
    "--junitxml",
    type=click.Path(dir_okay=False),
    default=None,
    help="JUnit XML path. Default: REPORT/junit.xml.",
)
@click.option(
    "-k",
    "select",
    default=None,
    metavar="EXPR",
    help="Only scenarios matching EXPR (pytest -k), e.g. -k 'emergency or comms'.",
)
@click.option("-x", "--exitfirst", is_flag=True, help="Stop at the first failing scenario.")
@click.option(
    "--manual",
    is_flag=True,
    help="An operator is at the bench: faults that need a hand (pull a lead, pull a "
    "cable, press the e-stop) become timed prompts instead of skips.",
)
@click.option(
    "--list",
    "list_only",
    is_flag=True,
    help="List the scenarios, what each needs, and whether this rig can run it.",
)
@click.argument("pytest_args", nargs=-1, type=click.UNPROCESSED)
def run_command(
    rig_path: str | None,
    report_dir: str,
    junitxml: str | None,
    select: str | None,
    exitfirst: bool,
    manual: bool,
    list_only: bool,
    pytest_args: tuple[str, ...],
) -> None:
    """Run the safety scenarios on a rig, with progress, and write the reports.

    \b
    Scenarios: over-limit refusal, start ramp (<= 2% first output), antagonist non-overlap
    and dead time, session time limit, comms loss (watchdog), lead-off, e-stop latency,
    fault latching and reset, stuck output caught by readback. Each measures its figures
    (latencies, dead times, overlaps, currents) against limits and gives a verdict; a
    scenario the rig cannot do is skipped with the reason.

    \b
    Examples:
      stimctl hil run                                 the simulated rig (seconds)
      stimctl hil run --rig examples/rigs/bench-6221-dmm.toml --manual
      stimctl hil run -k "emergency or comms" --report out/
      stimctl hil run -- --tb=long                    extra pytest options after --

    \b
    Exit codes: 0 every scenario passed or was skipped; 2 the rig file or an option is
    wrong; 4 a scenario failed (a protection did not hold); 130 interrupted.
    """
    rig = _load(rig_path)
    if list_only:
        _list(rig, manual)
        return
    import pytest

    out = Path(report_dir)
    args = [
        "--pyargs",
        "hil.scenarios",
        "-v",
        "-rs",
        "-p",
        "no:cacheprovider",
        f"--hil-report={out}",
        f"--junitxml={junitxml or out / 'junit.xml'}",
    ]
    if rig_path:
        args.append(f"--rig={rig_path}")
    if select:
        args += ["-k", select]
    if exitfirst:
        args.append("-x")
    if manual:
        args += ["--hil-manual", "-s"]
    args += list(pytest_args)
    code = int(pytest.main(args))
    sys.exit(int(_PYTEST_TO_STIMCTL.get(code, ExitCode.INTERNAL)))


def _list(rig: object, manual: bool) -> None:
    from hil.plugin import rig_features
    from hil.rig import Rig
    from hil.scenarios.library import SCENARIOS

    assert isinstance(rig, Rig)
    features = rig_features(rig, manual)
    click.echo(f"rig {rig.name} ({rig.source})")
    for name, info in SCENARIOS.items():
        missing = [f"{f}: {features[f]}" for f in info.requires if features[f] is not None]
        doc = (info.run.__doc__ or "").strip().split("\n\n")[0].replace("\n", " ")
        verdict = "runs" if not missing else "skips (" + "; ".join(missing) + ")"
        click.echo(f"  {name:<24} {verdict}\n      {' '.join(doc.split())}")
