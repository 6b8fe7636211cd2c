"""`stimctl sim serve firmware`: the simulated stimulator board on a pty or a TCP port."""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path

import click

from sim.board.config import BoardConfig
from sim.board.device import SimulatedBoard
from sim.board.server import BoardServer, serve_pty, serve_tcp
from sim.faults import FaultSpec, parse_fault
from sim.trace import OutputTrace


def _parse_listen(ctx: click.Context, param: click.Parameter, value: str | None) -> tuple[str, int] | None:
    if value is None:
        return None
    host, sep, port_text = value.rpartition(":")
    if not sep:
        host, port_text = "", value
    try:
        port = int(port_text)
    except ValueError:
        raise click.BadParameter(f"port must be a number, got {port_text!r}; use HOST:PORT, e.g. 127.0.0.1:7000") from None
    if not 0 <= port <= 65535:
        raise click.BadParameter(f"port must be within 0..65535, got {port}")
    return host.strip("[]") or "127.0.0.1", port


def _parse_faults(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> list[FaultSpec]:
    specs = []
    for text in values:
        try:
            spec = parse_fault(text)
        except ValueError as exc:
            raise click.BadParameter(str(exc)) from None
        if spec.kind in ("scpi-error", "garble"):
            raise click.BadParameter(f"{spec.kind!r} applies to the SCPI simulators only, not the board")
        specs.append(spec)
    return specs


async def _serve(
    config: BoardConfig, use_pty: bool, listen: tuple[str, int], trace_path: Path | None,
    faults: list[FaultSpec],
) -> int:
    loop = asyncio.get_running_loop()
    trace = OutputTrace(loop.time, trace_path, device="board")
    board = SimulatedBoard(config, trace, faults)
    server: BoardServer
    try:
        server = await serve_pty(board) if use_pty else await serve_tcp(board, *listen)
    except OSError as exc:
        trace.close()
        where = "a pseudo-terminal" if use_pty else f"{listen[0]}:{listen[1]}"
        click.echo(f"error: cannot serve on {where}: {exc.strerror or exc}. "
                   "Pick another address with --listen HOST:PORT (port 0 picks a free one).", err=True)
        return 2
    click.echo(server.url)
    sys.stdout.flush()
    click.echo(
        f"stimctl board simulator: {config.channels} channels, watchdog {config.watchdog_ms} ms; "
        "Ctrl-C to stop.", err=True,
    )
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):
            pass
    try:
        await stop.wait()
    finally:
        # Power off: every output off, recorded in the trace, before the port goes away.
        board.shutdown()
        await server.close()
        trace.close()
    return 0


@click.command("firmware", context_settings={"max_content_width": 100})
@click.option("--pty", "use_pty", is_flag=True,
              help="Serve on a new pseudo-terminal (opened like a USB serial port) instead of TCP.")
@click.option("--listen", callback=_parse_listen, metavar="HOST:PORT",
              help="TCP address to serve on [default: 127.0.0.1:0, a free port]. "
                   "Connect with the URL socket://HOST:PORT.")
@click.option("--trace", "trace_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Append the output trace (JSON Lines, flushed on every change) to FILE.")
@click.option("--fault", "faults", multiple=True, callback=_parse_faults, metavar="SPEC",
              help="Inject a fault (repeatable): lead-off:CH, short:CH, stuck:CH, overcurrent:CH, "
                   "stall, corrupt:P, drop:P, reset-after:S; delay-after:S delays the others by S s.")
@click.option("--channels", type=click.IntRange(1, 16), default=4, show_default=True,
              help="Number of output channels.")
@click.option("--watchdog-ms", type=click.IntRange(5, 60_000), default=75, show_default=True,
              help="Outputs off if no valid frame arrives for this long after the handshake.")
@click.option("--no-off-on-compliance", is_flag=True,
              help="On lead-off/compliance only report it (status flag, FaultReport) and keep "
                   "outputs on, so the host must catch it itself.")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Seed for the random draws of the corrupt and drop faults.")
def firmware_command(
    use_pty: bool,
    listen: tuple[str, int] | None,
    trace_path: Path | None,
    faults: list[FaultSpec],
    channels: int,
    watchdog_ms: int,
    no_off_on_compliance: bool,
    seed: int,
) -> None:
    """Serve the simulated stimctl stimulator board until interrupted.

    The first line printed (and flushed) is where to connect: a pty path such as /dev/pts/7
    with --pty, else a pyserial URL such as socket://127.0.0.1:40123. Pass it to the board
    driver (drivers.serial_board.SerialBoard) as its URL.

    Each channel: 100 mA peak at 10 uA resolution, 1-200 Hz, 20-1000 us, 80 V compliance,
    a 500 ohm + 1 kohm || 1 uF electrode load. Alternation ramps step every 10 ms.
    Ctrl-C powers the board off: every output off in the trace, then exit.

    \b
    Examples:
      stimctl sim serve firmware --pty --trace board.jsonl
      stimctl sim serve firmware --listen 127.0.0.1:7000 --fault lead-off:2 --fault delay-after:30

    The protocol is specified in docs/firmware-protocol.md.
    """
    if use_pty and listen is not None:
        raise click.UsageError("choose one transport: --pty or --listen HOST:PORT, not both")
    config = BoardConfig(channels=channels, watchdog_ms=watchdog_ms,
                         off_on_compliance=not no_off_on_compliance, seed=seed)
    for spec in faults:
        if spec.channel is not None and spec.channel > channels:
            raise click.BadParameter(f"fault {spec}: the board has channels 1..{channels}",
                                     param_hint="--fault")
    sys.exit(asyncio.run(_serve(config, use_pty, listen or ("127.0.0.1", 0), trace_path, faults)))
