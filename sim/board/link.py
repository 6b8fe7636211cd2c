"""Between a byte transport and the board: the device end of the protocol's framing."""

from __future__ import annotations

from collections.abc import Callable

from firmware_protocol import Connection, DecoderStats, Received, Role
from firmware_protocol.messages import (
    ClearFaults,
    ConfigureChannel,
    DeviceMessage,
    EmergencyStop,
    Goodbye,
    Heartbeat,
    Hello,
    ProgramAlternation,
    SetAmplitude,
    SetOutput,
    StartAlternation,
    StatusRequest,
    StopAlternation,
)
from sim.board.device import SimulatedBoard

_HOST_TYPES = (
    Hello, Goodbye, ConfigureChannel, SetAmplitude, SetOutput, ProgramAlternation,
    StartAlternation, StopAlternation, EmergencyStop, ClearFaults, Heartbeat, StatusRequest,
)


class BoardLink:
    """One host connection to the board (a TCP client, or the pty's far end)."""

    def __init__(self, board: SimulatedBoard, write: Callable[[bytes], None]) -> None:
        self._board = board
        self._write = write
        self._conn = Connection(Role.DEVICE)

    @property
    def stats(self) -> DecoderStats:
        return self._conn.stats

    def data_received(self, data: bytes) -> None:
        if self._board.stalled:
            return  # hung firmware reads nothing; the bytes are lost as in a UART overrun
        for event in self._conn.receive_data(data):
            if isinstance(event, Received):
                if isinstance(event.message, _HOST_TYPES):
                    self._board.receive(event.seq, event.message)
            else:
                self._board.reject(event.seq, event.code)

    def send(self, message: DeviceMessage) -> None:
        _, data = self._conn.send(message)
        self._write(self._board.mangle(data))

    def restart(self) -> None:
        # A rebooted device starts its sequence numbers at 0 and forgets half-received frames.
        self._conn = Connection(Role.DEVICE)
