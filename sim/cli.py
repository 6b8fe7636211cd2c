"""`stimctl sim ...`: serve the simulated devices on real transports for other processes."""

from __future__ import annotations

import click


@click.group("sim")
def sim_group() -> None:
    """Simulated devices that stand in for the hardware, on real transports."""


@sim_group.group("serve")
def serve() -> None:
    """Serve a simulated device until interrupted. The first line printed is the address to
    connect to (a pyserial URL or path, or a VISA resource string)."""


from sim.scpi.cli import scpi_serve_commands  # stimctl sim serve k6221|k33500b

for _scpi_command in scpi_serve_commands:
    serve.add_command(_scpi_command)

from sim.board.cli import firmware_command  # stimctl sim serve firmware

serve.add_command(firmware_command)
