"""The simulated stimulator board: the device side of the board protocol on real transports.

    board = SimulatedBoard(BoardConfig(), OutputTrace(loop.time))
    server = await serve_tcp(board)          # server.url == "socket://127.0.0.1:PORT"
    server = await serve_pty(board)          # server.url == "/dev/pts/N"
    BoardThread(transport="pty").start()     # the same in a background thread, in real time

Alternation ramps move in steps of at most `BoardConfig.ramp_step_ms` (10 ms by default).
"""

from sim.board.config import BoardConfig, ChannelLimits
from sim.board.device import OPEN_CIRCUIT_OHM, SimulatedBoard
from sim.board.link import BoardLink
from sim.board.server import BoardServer, serve_pty, serve_tcp
from sim.board.thread import BoardThread

__all__ = [
    "OPEN_CIRCUIT_OHM",
    "BoardConfig",
    "BoardLink",
    "BoardServer",
    "BoardThread",
    "ChannelLimits",
    "SimulatedBoard",
    "serve_pty",
    "serve_tcp",
]
