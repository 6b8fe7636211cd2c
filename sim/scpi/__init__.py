"""Simulated SCPI instruments (Keithley 6221, Keysight 33500B) served on raw TCP like LXI.

Public API (the contract between the simulator, the drivers and the controller):

- `ScpiServerThread(model, *, trace_path=None, faults=(), port=0, **model_options)` with
  `.start() -> resource`, `.stop()`, `.trace`, `.instrument`, thread-safe `.inject(FaultSpec)`.
- `await serve_tcp(instrument, host="127.0.0.1", port=0) -> server` with `.resource` and
  `async close()`, for use inside one event loop (virtual time).
- `create_instrument(model, **options)`; models "k6221" and "k33500b".
- For model authors: `ScpiInstrument` (sim.scpi.instrument), `CommandTree` and the parameter
  specs `Number`, `Integer`, `Boolean`, `Choice`, `String`, `Block`, `NumberList`, `Raw`
  (sim.scpi.tree), `ScpiError` (sim.scpi.errors). See docs/scpi-simulators.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sim.scpi.errors import ScpiError
from sim.scpi.instrument import ScpiInstrument, ScpiSession
from sim.scpi.models import MODELS, create_instrument

if TYPE_CHECKING:
    from sim.scpi.server import ScpiServerThread, ScpiTcpServer, serve_tcp

__all__ = [
    "MODELS",
    "ScpiError",
    "ScpiInstrument",
    "ScpiServerThread",
    "ScpiSession",
    "ScpiTcpServer",
    "create_instrument",
    "serve_tcp",
]


def __getattr__(name: str) -> Any:
    # The server pulls in asyncio machinery; import it when asked for.
    if name in ("ScpiServerThread", "ScpiTcpServer", "serve_tcp", "resource_string"):
        from sim.scpi import server

        return getattr(server, name)
    raise AttributeError(name)
