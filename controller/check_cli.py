"""`stimctl check`: what the interlock computes for a program, without touching any output."""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import sys
from collections.abc import Mapping
from dataclasses import asdict, fields, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from controller.exit_codes import ExitCode
from controller.history import HistoryError, SessionHistory
from controller.interlock import CheckReport, Finding, check_program
from controller.limits import Profile, ProfileError
from controller.profiles import BUILTIN_PROFILES, load_profile, profile_for
from controller.program import Program, ProgramError, load_program
from drivers.base import Capabilities, Waveform

DEVICE_TIMEOUT_S = 15.0


class DeviceProbeError(Exception):
    def __init__(self, message: str, code: ExitCode) -> None:
        super().__init__(message)
        self.code = code


async def _read_capabilities(values: tuple[str, ...], program: Program) -> dict[str, Capabilities]:
    """Connect to each device just long enough to read its capabilities. Opening a driver
    leaves every output off, and close() switches them off again."""
    from controller.devices import DeviceSetupError, open_devices, parse_device_options

    try:
        arg = None if values == ("sim",) else parse_device_options(values)
        opened = await asyncio.wait_for(open_devices(arg, program), DEVICE_TIMEOUT_S)
    except (DeviceSetupError, ValueError) as exc:
        raise DeviceProbeError(str(exc), ExitCode.INVALID_INPUT) from None
    except TimeoutError:
        raise DeviceProbeError(
            f"no answer from {', '.join(values)} within {DEVICE_TIMEOUT_S:g} s; is it on and connected?",
            ExitCode.FAULT,
        ) from None
    try:
        return {name: dev.capabilities for name, dev in opened.devices.items()}
    finally:
        for dev in opened.devices.values():
            with contextlib.suppress(Exception):
                await dev.close()
        opened.stop_simulators()


def _num(v: float, digits: int = 3) -> str:
    if math.isinf(v):
        return "-inf" if v < 0 else "inf"
    return f"{v:.{digits}g}"


def _settings_table(report: CheckReport) -> Table:
    t = Table(title="Channels", title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
    t.add_column("channel", no_wrap=True)
    t.add_column("dev:out", no_wrap=True)
    t.add_column("waveform", no_wrap=True)
    t.add_column("electrode")
    t.add_column("setting")
    for spec, _m in report.channels:
        c = spec.config
        if c.waveform is Waveform.AMPLIPULSE:
            setting = (f"{c.amplitude_ma:g} mA, carrier {c.carrier_hz or 0:g} Hz, "
                       f"mod {c.modulation_hz or 0:g} Hz x{c.modulation_depth:g}")
        else:
            setting = f"{c.amplitude_ma:g} mA, {c.frequency_hz:g} Hz, {c.pulse_width_us:g} us"
            if c.waveform is Waveform.BIPHASIC_ASYMMETRIC:
                setting += f", ratio {c.asymmetry_ratio:g}"
        t.add_row(spec.name, f"{spec.device}:{spec.output}", c.waveform.value,
                  f"{spec.electrode.kind}\n{spec.electrode.area_cm2:g} cm^2", setting)
    return t


def _metrics_table(report: CheckReport, profile: Profile) -> Table:
    t = Table(title="Delivered, computed (500 ohm reference load)", title_justify="left",
              box=box.SIMPLE_HEAD, pad_edge=False)
    t.add_column("channel", no_wrap=True)
    for col in ("peak\nmA", "RMS\nmA", "Q/phase\nuC", "Q dens.\nuC/cm^2", "J rms\nmA/cm^2",
                "energy\nmJ", "Shannon\nk"):
        t.add_column(col, justify="right", no_wrap=True)
    bad = {f.channel for f in report.violations}
    for spec, m in report.channels:
        t.add_row(
            spec.name, _num(m.peak_ma), _num(m.rms_ma), _num(m.charge_per_phase_uc),
            _num(m.charge_density_uc_cm2), _num(m.rms_current_density_ma_cm2),
            _num(m.pulse_energy_mj_500ohm),
            _num(m.shannon_k) if profile.shannon_k_max is not None else "-",
            style="red" if spec.name in bad else None,
        )
    return t


def _timeline_table(program: Program, report: CheckReport) -> Table:
    t = Table(title=f"Timeline, {report.effective_duration_s:g} s", title_justify="left",
              box=box.SIMPLE_HEAD, pad_edge=False)
    for col, j in (("from s", "right"), ("to s", "right"), ("channel", "left"), ("", "left")):
        t.add_column(col, justify=j)  # type: ignore[arg-type]
    for e in report.timeline:
        if e.pair is None:
            t.add_row(_num(e.start_s, 6), _num(e.end_s, 6), ", ".join(e.channels), e.phase)
    for i, p in enumerate(program.pairs):
        entries = [e for e in report.timeline if e.pair == i]
        contractions = sum(1 for e in entries if e.phase == "on" and e.channels == (p.agonist,))
        t.add_section()
        for e in entries:
            if e.start_s >= p.cycle_s:
                break
            if e.phase == "on":
                what = f"on, ramps {p.ramp_up_s:g}/{p.ramp_down_s:g} s inside"
            else:
                what = "both off (dead time)" if e.phase == "dead_time" else "both off (rest)"
            t.add_row(_num(e.start_s, 6), _num(e.end_s, 6), ", ".join(e.channels), what)
        t.add_row("", "", f"{p.agonist}/{p.antagonist}",
                  f"cycle of {p.cycle_s:g} s repeats: {contractions} contractions each", style="dim")
    if report.timeline_truncated:
        t.add_row("", "", "", "(timeline truncated)", style="dim")
    return t


def _finding_dict(f: Finding) -> dict[str, Any]:
    d = asdict(f)
    for k in ("value", "limit"):
        if isinstance(d[k], float) and not math.isfinite(d[k]):
            d[k] = repr(d[k])
    return d


def _report_json(program: Program, profile: Profile, report: CheckReport) -> str:
    def metrics(m: Any) -> dict[str, Any]:
        return {k: (v if math.isfinite(v) else repr(v)) for k, v in asdict(m).items()}

    return json.dumps({
        "program": program.source,
        "session": program.session.name,
        "profile": profile.name,
        "ok": report.ok,
        "effective_duration_s": report.effective_duration_s,
        "violations": [_finding_dict(f) for f in report.violations],
        "warnings": [_finding_dict(f) for f in report.warnings],
        "channels": [{"name": s.name, "device": s.device, "output": s.output, **metrics(m)}
                     for s, m in report.channels],
        "timeline": [asdict(e) for e in report.timeline],
    }, indent=2)


@click.command("check")
@click.argument("program_path", metavar="PROGRAM", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--profile", "profile_opt", metavar="NAME|FILE",
              help="Limits profile to check against instead of the program's own "
                   "(face, body, needle, microcurrent, amplipulse, or a profile file).")
@click.option("--device", "devices", metavar="URL", multiple=True,
              help="Also check against a connected device's capabilities: a VISA resource "
                   "(TCPIP::127.0.0.1::5025::SOCKET), a pyserial URL or port, 'sim' for the "
                   "built-in simulated board, or NAME=URL once per device of a multi-device "
                   "program. Outputs stay off.")
@click.option("--subject", metavar="ID",
              help="Also check the rest period since this subject's last session under the "
                   "profile (session history in $STIMCTL_STATE_DIR or ~/.local/state/stimctl).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON instead of tables.")
def check_command(program_path: Path, profile_opt: str | None, devices: tuple[str, ...],
                  subject: str | None, as_json: bool) -> None:
    """Check PROGRAM against the interlock without stimulating: per channel the peak and RMS
    current, charge per phase, charge and current density and pulse energy; the session's
    timeline; every limit it breaks and every warning.

    \b
    Exit codes:
      0  the interlock accepts the program (warnings may be printed)
      2  the program, profile or device option is invalid (the message says where)
      3  refused by the interlock (each violation is listed)
      4  a device given with --device did not answer or reported an error

    \b
    Examples:
      stimctl check examples/face.toml
      stimctl check examples/face.toml --profile examples/profiles/tight-face.toml
      stimctl check examples/body.toml --device sim
      stimctl check examples/face.toml --subject S-042
    """
    console = Console(stderr=False, highlight=False)
    err = Console(stderr=True, highlight=False)
    try:
        program = load_program(program_path)
        profile = profile_for(program, profile_opt)
    except (ProgramError, ProfileError) as exc:
        err.print(f"[bold red]error:[/] {escape(str(exc))}", soft_wrap=True)
        sys.exit(ExitCode.INVALID_INPUT)

    caps: Mapping[str, Capabilities] | None = None
    if devices:
        try:
            caps = asyncio.run(_read_capabilities(devices, program))
        except KeyboardInterrupt:
            err.print("interrupted: the devices were closed (outputs off)")
            sys.exit(ExitCode.INTERRUPTED)
        except DeviceProbeError as exc:
            err.print(f"[bold red]error:[/] {escape(str(exc))}", soft_wrap=True)
            sys.exit(exc.code)
        except Exception as exc:  # a driver error: the device is there but not usable
            err.print(f"[bold red]device error:[/] {type(exc).__name__}: {escape(str(exc))}", soft_wrap=True)
            sys.exit(ExitCode.FAULT)

    report = check_program(program, profile, caps)
    if subject is not None:
        try:
            rest = SessionHistory().check_rest(subject, profile, datetime.now(UTC))
        except HistoryError as exc:
            err.print(f"[bold red]error:[/] {escape(str(exc))}", soft_wrap=True)
            sys.exit(ExitCode.INVALID_INPUT)
        if rest is not None:
            report = replace(report, ok=False, violations=report.violations + (rest,))
    if as_json:
        click.echo(_report_json(program, profile, report))
    else:
        _print_report(console, program, profile, report, caps)
    sys.exit(ExitCode.OK if report.ok else ExitCode.REFUSED)


def _print_report(console: Console, program: Program, profile: Profile, report: CheckReport,
                  caps: Mapping[str, Capabilities] | None) -> None:
    console.print(f"[bold]{program.session.name}[/]  ({program.source})")
    base = f", based on {profile.base}" if profile.base != profile.name else ""
    console.print(
        f"profile [bold]{profile.name}[/]{base}: peak <= {profile.max_amplitude_ma:g} mA, "
        f"RMS <= {profile.effective_max_rms_ma():g} mA, {profile.min_frequency_hz:g}-"
        f"{profile.max_frequency_hz:g} Hz, session <= {profile.max_session_s / 60:g} min, "
        f"rest {profile.min_rest_between_sessions_s / 86400:g} day(s)"
    )
    if caps is not None:
        for name, c in caps.items():
            console.print(f"device {name}: {c.identity.manufacturer} {c.identity.model} "
                          f"({len(c.channels)} outputs)")
    console.print(_settings_table(report))
    console.print(_metrics_table(report, profile))
    if report.timeline:
        console.print(_timeline_table(program, report))
    for f in report.violations:
        console.print(f"[bold red]REFUSED[/] {escape(f.message)}", soft_wrap=True)
    for f in report.warnings:
        console.print(f"[yellow]warning[/] {escape(f.message)}", soft_wrap=True)
    if report.ok:
        console.print(f"[bold green]OK[/]: the interlock accepts this program under profile "
                      f"{profile.name!r} ({report.effective_duration_s:g} s).")
        if program.session.subject_prompt and profile.contraindications:
            console.print("Before a session the operator confirms none of these applies: "
                          + "; ".join(profile.contraindications) + ".", soft_wrap=True, style="dim")
    else:
        console.print(f"[bold red]REFUSED[/]: {len(report.violations)} violation(s). Nothing was "
                      f"sent to any device. Fix the values above, or check against another profile.")


@click.command("profiles")
@click.argument("name", metavar="[NAME|FILE]", required=False)
def profiles_command(name: str | None) -> None:
    """List the built-in limits profiles, or show every limit of one profile (a built-in name
    or a user profile file) with its contraindications. Sources: docs/limits.md.

    \b
    Examples:
      stimctl profiles
      stimctl profiles needle
      stimctl profiles examples/profiles/tight-face.toml
    """
    console = Console(highlight=False, soft_wrap=True)
    if name is None:
        t = Table(box=box.SIMPLE_HEAD, pad_edge=False, title="Built-in profiles, under the ceilings "
                  "(50 mA RMS and 300 mJ/pulse into 500 ohm, charge-balanced only)", title_justify="left")
        t.add_column("name", no_wrap=True)
        for col in ("peak mA", "RMS mA", "Hz", "pulse us", "session", "rest"):
            t.add_column(col, no_wrap=True)

        def g(v: float) -> str:
            return f"{v:.10g}"

        for p in BUILTIN_PROFILES.values():
            t.add_row(p.name, g(p.max_amplitude_ma), g(p.effective_max_rms_ma()),
                      f"{g(p.min_frequency_hz)}-{g(p.max_frequency_hz)}",
                      f"{g(p.min_pulse_width_us)}-{g(p.max_pulse_width_us)}", f"{g(p.max_session_s / 60)} min",
                      f"{g(p.min_rest_between_sessions_s / 86400)} d")
        console.print(t)
        for p in BUILTIN_PROFILES.values():
            console.print(f"  {p.name}: {p.description}")
        console.print("A user profile file names a base and may only tighten it: see "
                      "examples/profiles/tight-face.toml and docs/limits.md.")
        return
    try:
        prof = load_profile(name)
    except ProfileError as exc:
        Console(stderr=True).print(f"[bold red]error:[/] {escape(str(exc))}", soft_wrap=True)
        sys.exit(ExitCode.INVALID_INPUT)
    t = Table(box=box.SIMPLE_HEAD, pad_edge=False, show_header=False,
              title=f"profile {prof.name}" + (f" (based on {prof.base})" if prof.base != prof.name else ""),
              title_justify="left")
    t.add_column("limit")
    t.add_column("value")
    for f in fields(prof):
        if f.name in ("name", "base", "contraindications"):
            continue
        v = getattr(prof, f.name)
        if isinstance(v, frozenset):
            v = ", ".join(sorted(w.value for w in v))
        elif v is None:
            v = "not applied"
        t.add_row(f.name, str(v))
    t.add_row("max_rms_ma in effect", f"{prof.effective_max_rms_ma():g} (ceiling 50)")
    console.print(t)
    console.print("contraindications: " + "; ".join(prof.contraindications))
