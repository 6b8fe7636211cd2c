"""`stimctl sim serve k6221|k33500b`: a simulated SCPI instrument on a TCP port."""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path
from typing import Any

import click

from sim.faults import FaultSpec, parse_fault
from sim.load import DEFAULT_LOAD, ElectrodeLoad
from sim.scpi.models import MODELS, create_instrument
from sim.scpi.server import serve_tcp


def parse_listen(text: str) -> tuple[str, int]:
    """'HOST:PORT' (or ':PORT', or 'PORT') -> (host, port); ValueError says what is wrong."""
    host, sep, port_text = text.rpartition(":")
    if not sep:
        host, port_text = "", text
    host = host.strip("[]") or "127.0.0.1"
    try:
        port = int(port_text)
    except ValueError:
        raise ValueError(f"port must be a number, got {port_text!r} (use HOST:PORT, e.g. 127.0.0.1:5025)") from None
    if not 0 <= port <= 65535:
        raise ValueError(f"port must be within 0..65535, got {port}")
    return host, port


def _listen_option(ctx: click.Context, param: click.Parameter, value: str) -> tuple[str, int]:
    try:
        return parse_listen(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def _fault_option(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> list[FaultSpec]:
    out = []
    for text in values:
        try:
            out.append(parse_fault(text))
        except ValueError as exc:
            raise click.BadParameter(str(exc)) from None
    return out


async def _serve(model: str, host: str, port: int, options: dict[str, Any]) -> int:
    instrument = create_instrument(model, **options)
    loop = asyncio.get_running_loop()
    try:
        server = await serve_tcp(instrument, host, port)
    except OSError as exc:
        instrument.close()
        click.echo(f"error: cannot listen on {host}:{port}: {exc.strerror or exc}. "
                   "Pick another port with --listen HOST:PORT (port 0 picks a free one).", err=True)
        return 2
    click.echo(server.resource)
    sys.stdout.flush()
    click.echo(f"{MODELS[model][2]} simulator listening; Ctrl-C to stop.", err=True)
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):  # not on this platform or thread
            pass
    try:
        await stop.wait()
    finally:
        await server.close()
        still_on = [e.channel for e in _last_states(instrument) if e.active]
        instrument.close()
        if still_on:
            # The simulated instrument is left as a real one would be; say so, since a
            # controller that exits should have switched it off.
            click.echo(f"warning: output(s) {still_on} were still delivering when the simulator stopped",
                       err=True)
    return 0


def _last_states(instrument: Any) -> list[Any]:
    last: dict[int, Any] = {}
    for event in instrument.trace.events:
        last[event.channel] = event
    return list(last.values())


def _make_command(model: str) -> click.Command:
    description = MODELS[model][2]

    @click.command(model, context_settings={"max_content_width": 100})
    @click.option("--listen", "listen", default="127.0.0.1:0", show_default=True,
                  callback=_listen_option, metavar="HOST:PORT",
                  help="Address to listen on. Port 0 picks a free port; a real LXI instrument uses 5025.")
    @click.option("--trace", "trace_path", type=click.Path(dir_okay=False, path_type=Path),
                  help="Append the output trace (JSON Lines, flushed on every change) to FILE.")
    @click.option("--fault", "faults", multiple=True, callback=_fault_option, metavar="SPEC",
                  help="Inject a fault (repeatable): lead-off:CH, short:CH, stuck:CH, overcurrent:CH, "
                       "stall, garble, corrupt:P, drop:P, scpi-error:CODE, reset-after:S; "
                       "delay-after:S delays the others by S seconds.")
    @click.option("--load-ohm", type=click.FloatRange(min=0.0), default=DEFAULT_LOAD.series_ohm,
                  show_default=True, help="Series resistance of the electrode load model.")
    @click.option("--transconductance", "transconductance", type=click.FloatRange(min=0.0, min_open=True),
                  default=None, metavar="MA_PER_V",
                  help="k33500b only: the V->I stage's transconductance (default 5 mA/V).")
    @click.option("--stage-compliance", "stage_compliance", type=click.FloatRange(min=0.0, min_open=True),
                  default=None, metavar="V",
                  help="k33500b only: the V->I stage's compliance voltage (default 60 V).")
    def command(
        listen: tuple[str, int],
        trace_path: Path | None,
        faults: list[FaultSpec],
        load_ohm: float,
        transconductance: float | None,
        stage_compliance: float | None,
    ) -> None:
        host, port = listen
        load = ElectrodeLoad(series_ohm=load_ohm, parallel_ohm=DEFAULT_LOAD.parallel_ohm,
                             parallel_uf=DEFAULT_LOAD.parallel_uf)
        options: dict[str, Any] = {"trace_path": trace_path, "faults": tuple(faults), "load": load}
        if transconductance is not None or stage_compliance is not None:
            if model != "k33500b":
                raise click.UsageError("--transconductance and --stage-compliance apply to k33500b only")
            if transconductance is not None:
                options["transconductance_ma_per_v"] = transconductance
            if stage_compliance is not None:
                options["stage_compliance_v"] = stage_compliance
        try:
            code = asyncio.run(_serve(model, host, port, options))
        except ValueError as exc:
            raise click.UsageError(str(exc)) from None
        sys.exit(code)

    command.help = (
        f"Serve a simulated {description} over raw SCPI on TCP until interrupted.\n\n"
        "The first line printed (and flushed) is the VISA resource string to open, e.g. "
        "TCPIP0::127.0.0.1::5025::SOCKET; use read and write termination \"\\n\". "
        "Outputs stay as a client leaves them, as on the real instrument.\n\n"
        "\b\nExamples:\n"
        f"  stimctl sim serve {model} --trace trace.jsonl\n"
        f"  stimctl sim serve {model} --listen 127.0.0.1:5025 --fault lead-off:1 --fault delay-after:30\n\n"
        "The command set is documented in docs/scpi-simulators.md."
    )
    return command


scpi_serve_commands = [_make_command(model) for model in MODELS]
"""One `stimctl sim serve <model>` command per simulated SCPI model."""
