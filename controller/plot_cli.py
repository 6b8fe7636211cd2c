"""`stimctl plot`: a PNG of each channel's current over time."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from controller import exit_codes
from controller.plot import PlotInputError, plot_file
from controller.program import ProgramError, load_program
from sim.trace import load_trace


@click.command("plot")
@click.argument("source", metavar="LOG_OR_TRACE",
                type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("-o", "--output", "out", required=True,
              type=click.Path(dir_okay=False, path_type=Path), help="The PNG to write.")
@click.option("--program", "program_file", type=click.Path(exists=True, dir_okay=False),
              help="For a trace: the program it ran, to name the channels and draw each "
                   "antagonist pair in one row. (An audit log already names them.)")
def plot_command(source: Path, out: Path, program_file: str | None) -> None:
    """Plot each channel's amplitude over time from a simulator trace (what the device
    delivered) or an audit log (what the controller commanded).

    \b
    All rows share one time axis; an antagonist pair shares a row in two colours, and any time
    both were on is shaded red. Faults in a log are dashed red lines.

    \b
    Examples:
      stimctl plot trace.jsonl -o session.png --program examples/demo.toml
      stimctl plot audit.jsonl -o session.png
    """
    names: dict[tuple[str, int], str] = {}
    pairs: list[tuple[str, str]] = []
    try:
        if program_file is not None:
            program = load_program(program_file)
            pairs = [(p.agonist, p.antagonist) for p in program.pairs]
            trace_devices = sorted({e.device for e in load_trace(source)}) \
                if _looks_like_trace(source) else []
            for spec in program.channels:
                for dev in trace_devices:
                    if dev == spec.device or len(trace_devices) == 1:
                        names[(dev, spec.output)] = spec.name
        data = plot_file(source, out, names, pairs)
    except (PlotInputError, ProgramError) as exc:
        click.echo(f"invalid input: {exc}", err=True)
        sys.exit(exit_codes.INVALID_INPUT)
    except OSError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(exit_codes.INVALID_INPUT)
    click.echo(f"wrote {out}: {len(data.series)} channel(s), {data.what} current")


def _looks_like_trace(path: Path) -> bool:
    try:
        return bool(load_trace(path))
    except (OSError, ValueError):
        return False
