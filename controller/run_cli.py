"""`stimctl run` and `stimctl demo`: run a program with a live display.

Ctrl-C ramps every output down and ends the session (exit 130); a second Ctrl-C is an emergency
stop (exit 5). Whatever happens, including a crash, every output is off when the command ends:
the session's context switches them off, and the board's own watchdog switches them off if
the process dies.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
import time
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.live import Live

from controller import exit_codes
from controller.api import open_session, state_dir
from controller.devices import DeviceArg, DeviceSetupError, parse_device_options
from controller.gate import InterlockRefused
from controller.history import HistoryError
from controller.limits import Profile, ProfileError
from controller.live import print_events, render
from controller.machine import OUTPUT_MAY_BE_ON, State
from controller.profiles import load_profile
from controller.program import Program, ProgramError, load_program
from controller.session import ArmRefused, Session, SessionOptions
from drivers.errors import DeviceError

STOP_HINT = "Ctrl-C: ramp down and stop.  Ctrl-C twice: emergency stop."


def _ask_screening(console: Console) -> Callable[[tuple[str, ...]], bool]:
    def ask(items: tuple[str, ...]) -> bool:
        console.print("[bold]Contraindication screening.[/] Confirm that the subject has "
                      "[bold]none[/] of the following:")
        for item in items:
            console.print(f"  - {item}")
        return click.confirm("The subject has none of these", default=False)

    return ask


class _Interrupts:
    """First Ctrl-C: ramp down. Second: emergency stop."""

    def __init__(self, session: Session, console: Console) -> None:
        self.session = session
        self.console = console
        self.count = 0
        self.tasks: list[asyncio.Task[None]] = []

    def __call__(self) -> None:
        self.count += 1
        loop = asyncio.get_running_loop()
        if self.count == 1:
            if self.session.state in OUTPUT_MAY_BE_ON:
                self.tasks.append(loop.create_task(self.session.stop("Ctrl-C")))
            else:
                self.tasks.append(loop.create_task(self.session.emergency_stop("Ctrl-C")))
        else:
            self.tasks.append(loop.create_task(
                self.session.emergency_stop("second Ctrl-C during ramp-down")))


async def run_program(
    program: Program,
    profile: Profile,
    device: DeviceArg,
    *,
    log: Path | None,
    trace: Path | None,
    subject: str | None,
    confirm: Callable[[tuple[str, ...]], bool] | bool,
    console: Console,
    options: SessionOptions = SessionOptions(),
    live: bool = True,
) -> int:
    """Run one session to its end; returns the process exit code."""
    loop = asyncio.get_running_loop()
    async with open_session(program, device, profile=profile, log=log, subject=subject,
                            confirm=confirm, options=options, trace=trace) as session:
        console.print(f"device: {', '.join(f'{k} = {v}' for k, v in session.device_urls.items())}")
        console.print(f"audit log: {session.log_path}")
        if not (live and console.is_terminal):
            print_events(console, session)
        try:
            report = await session.arm()
        except ArmRefused as exc:
            console.print(f"[bold red]refused:[/] {exc}")
            return exit_codes.REFUSED
        for w in report.warnings:
            console.print(f"[yellow]warning:[/] {w.message}")
        interrupts = _Interrupts(session, console)
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signal.SIGINT, interrupts)
        try:
            await session.start()
            if live and console.is_terminal:
                with Live(render(session, STOP_HINT), console=console, refresh_per_second=8,
                          transient=False) as view:
                    done = asyncio.ensure_future(session.wait())
                    while not done.done():
                        await asyncio.wait({done}, timeout=0.125)
                        view.update(render(session, STOP_HINT))
            else:
                await session.wait()
            for t in interrupts.tasks:
                with contextlib.suppress(Exception):
                    await t
        finally:
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(signal.SIGINT)
        final = session.state
        for f in session.faults:
            console.print(f"[bold red]fault:[/] {f['reason']}")
        console.print(f"final state: {final.value}; elapsed {session.elapsed_s:.1f} s")
    if final is State.ESTOP:
        return exit_codes.ESTOP
    if final is State.FAULT:
        return exit_codes.FAULT
    if interrupts.count:
        return exit_codes.INTERRUPTED
    return exit_codes.OK


def _execute(coro_factory: Callable[[], Any], console: Console) -> int:
    try:
        return int(asyncio.run(coro_factory()))
    except (DeviceSetupError, InterlockRefused) as exc:
        console.print(f"[bold red]error:[/] {exc}")
        return exit_codes.INVALID_INPUT if isinstance(exc, DeviceSetupError) \
            else exit_codes.REFUSED
    except HistoryError as exc:
        console.print(f"[bold red]error:[/] session history: {exc}")
        return exit_codes.INVALID_INPUT
    except DeviceError as exc:
        console.print(f"[bold red]device error:[/] {exc}. Every output was switched off "
                      "(or the device's watchdog does it).")
        return exit_codes.FAULT
    except OSError as exc:
        console.print(f"[bold red]error:[/] {exc}")
        return exit_codes.INVALID_INPUT
    except KeyboardInterrupt:
        console.print("interrupted")
        return exit_codes.INTERRUPTED


@click.command("run")
@click.argument("program_file", metavar="PROGRAM", type=click.Path(dir_okay=False))
@click.option("--device", "devices", multiple=True, metavar="URL",
              help="The device: a VISA resource (TCPIP0::host::5025::SOCKET) or a serial port "
                   "or URL (/dev/ttyACM0, socket://host:port). For a program using several "
                   "devices, repeat as NAME=URL. Default: the built-in simulator.")
@click.option("--profile", metavar="NAME|FILE",
              help="Limits profile (face, body, needle, microcurrent, amplipulse, or a TOML file "
                   "tightening one). Default: the one the program names.")
@click.option("--log", "log_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Audit log (JSON Lines, hash-chained). Default: under $STIMCTL_STATE_DIR or "
                   "~/.local/state/stimctl/logs/.")
@click.option("--subject", metavar="ID",
              help="Subject id, for the rest-period check against the session history.")
@click.option("--yes", is_flag=True,
              help="The operator has already screened the subject for the profile's "
                   "contraindications (recorded in the audit log). Needed without a terminal.")
@click.option("--trace", "trace_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Built-in simulator only: where it writes its output trace (JSON Lines).")
@click.option("--software-alternation", is_flag=True,
              help="Alternate antagonist pairs from the host (break-before-make) even where "
                   "the device can alternate on its own clock.")
@click.option("--no-live", is_flag=True, help="Print events line by line instead of the "
                                               "live table.")
def run_command(program_file: str, devices: tuple[str, ...], profile: str | None,
                log_path: Path | None, subject: str | None, yes: bool, trace_path: Path | None,
                software_alternation: bool, no_live: bool) -> None:
    """Run a stimulation PROGRAM (TOML) through the interlock, with a live display.

    \b
    The session: static checks against the profile and the device (nothing reaches the device
    if they fail), the rest period since the subject's last session, the contraindication
    screening, an electrode check, a ramp up from zero, supervision until the program's
    duration or the profile's maximum, then a ramp down.

    \b
    Exit codes: 0 done, 2 invalid input, 3 refused by the interlock, 4 fault during the
    session (outputs were switched off), 5 emergency stop, 130 stopped by Ctrl-C.

    \b
    Examples:
      stimctl run examples/demo.toml --yes
      stimctl run face.toml --subject S01 --device /dev/ttyACM0 --log s01.jsonl
    """
    console = Console(stderr=False)
    try:
        program = load_program(program_file)
        prof = load_profile(profile if profile is not None else program.session.profile)
        device = parse_device_options(devices)
    except (ProgramError, ProfileError, DeviceSetupError) as exc:
        console.print(f"[bold red]invalid input:[/] {exc}")
        sys.exit(exit_codes.INVALID_INPUT)
    if trace_path is not None and device is not None:
        console.print("[bold red]invalid input:[/] --trace is written by the built-in "
                      "simulator; leave out --device to use it, or drop --trace")
        sys.exit(exit_codes.INVALID_INPUT)
    confirm: Callable[[tuple[str, ...]], bool] | bool
    if yes:
        confirm = True
    elif sys.stdin.isatty():
        confirm = _ask_screening(console)
    else:
        console.print(
            "[bold red]refused:[/] the contraindication screening needs an answer and there is "
            "no terminal to ask it on. Run interactively, or pass --yes to record that the "
            "operator has screened the subject.")
        sys.exit(exit_codes.REFUSED)
    code = _execute(lambda: run_program(
        program, prof, device, log=log_path, trace=trace_path, subject=subject,
        confirm=confirm, console=console,
        options=SessionOptions(software_alternation=software_alternation),
        live=not no_live), console)
    sys.exit(code)


DEMO_RESOURCE = "demo.toml"


def demo_program_path() -> Path:
    return Path(str(resources.files("controller").joinpath(DEMO_RESOURCE)))


@click.command("demo")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Where to write the audit log and the trace. Default: a new directory "
                   "under $STIMCTL_STATE_DIR or ~/.local/state/stimctl/demo/.")
@click.option("--no-live", is_flag=True, help="Print events line by line.")
def demo_command(out_dir: Path | None, no_live: bool) -> None:
    """Run a short demonstration session on the built-in simulator (about 20 s).

    Two antagonist channels alternate on the simulated board's own clock and a third ramps up
    and holds, all watched by the supervisor. Afterwards, plot what the board delivered:

    \b
      stimctl plot <trace printed at the end> -o demo.png
    """
    console = Console()
    program = load_program(demo_program_path())
    prof = load_profile(program.session.profile)
    if out_dir is None:
        out_dir = state_dir() / "demo" / time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    out_dir.mkdir(parents=True, exist_ok=True)
    log = out_dir / "audit.jsonl"
    trace = out_dir / "trace.jsonl"
    console.print("[bold]stimctl demo[/]: a simulated board, no hardware, nobody attached. "
                  "The screening is answered 'yes' for you.")
    code = _execute(lambda: run_program(
        program, prof, None, log=log, trace=trace, subject=None, confirm=True,
        console=console, live=not no_live), console)
    console.print(f"\naudit log: {log}\ntrace:     {trace}\n"
                  f"next:      stimctl plot {trace} -o demo.png   and   "
                  f"stimctl log verify {log}")
    sys.exit(code)
