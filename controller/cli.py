"""The `stimctl` command line. Each command lives in the module named for it; this file only
assembles the groups so `stimctl --help` lists everything."""

from __future__ import annotations

import click

from controller import __version__
from sim.cli import sim_group


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="stimctl")
def main() -> None:
    """stimctl: run electrical stimulation programs on a current source, a waveform generator
    or a stimulator board, behind a safety interlock. Every command works on the built-in
    simulator when no device is given.

    \b
    First steps:
      stimctl demo                      a short alternating session on the simulator
      stimctl check examples/face.toml  what the interlock computes for a program
      stimctl run examples/face.toml    run it (on the simulator unless --device is given)
    """


main.add_command(sim_group)

from controller.check_cli import check_command  # noqa: E402
from controller.log_cli import log_group  # noqa: E402

main.add_command(check_command)
main.add_command(log_group)

from controller.plot_cli import plot_command  # noqa: E402
from controller.run_cli import demo_command, run_command  # noqa: E402

main.add_command(run_command)
main.add_command(demo_command)
main.add_command(plot_command)

from controller.hil_cli import hil_group  # noqa: E402

main.add_command(hil_group)

from controller.check_cli import profiles_command  # noqa: E402

main.add_command(profiles_command)
