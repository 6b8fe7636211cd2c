"""`Connection`: one end of the board protocol, sans-I/O.

It numbers and frames what its role sends, and turns received bytes into events. It owns no
socket, clock or thread: the caller moves the bytes and keeps the time (for heartbeats, reply
timeouts and the watchdog).
"""

from __future__ import annotations

import enum
from binascii import crc_hqx
from dataclasses import dataclass

from firmware_protocol.cobs import CobsError, cobs_decode
from firmware_protocol.crc import CRC16_INIT
from firmware_protocol.framing import (
    HEADER,
    MAX_ENCODED_BYTES,
    MIN_FRAME_BYTES,
    SEQ_MODULUS,
    build_frame,
)
from firmware_protocol.layouts import (
    BY_CLASS,
    BY_TYPE_CODE,
    DEVICE_BIT,
    PayloadError,
    fast_constructor,
)
from firmware_protocol.messages import DeviceMessage, HostMessage, Message, NackCode


class Role(enum.Enum):
    HOST = "host"
    DEVICE = "device"


_HOST_TYPES: tuple[type, ...] = HostMessage.__args__
_DEVICE_TYPES: tuple[type, ...] = DeviceMessage.__args__


@dataclass(frozen=True)
class Received:
    """A valid frame from the peer."""

    seq: int
    message: Message


@dataclass(frozen=True)
class Rejected:
    """A frame whose checksum was good but whose payload could not be decoded.

    The device answers it with Nack(seq, code); the host logs it (it cannot know which
    command the device meant to answer, so the command's reply timeout handles it).
    """

    seq: int
    code: NackCode
    reason: str


@dataclass(frozen=True)
class DecoderStats:
    """What the receiver has seen. Every delimited block lands in exactly one counter
    (empty blocks between back-to-back delimiters are not counted)."""

    frames_ok: int = 0
    """Decoded into a `Received` event."""
    bad_checksum: int = 0
    oversize: int = 0
    """Blocks longer than MAX_ENCODED_BYTES; discarded up to the next delimiter."""
    malformed: int = 0
    """`Rejected` events: good checksum, undecodable payload (unknown types included)."""
    wrong_direction: int = 0
    """Valid frames of a type that only this role sends; dropped without a reply."""
    dropped_bytes: int = 0
    """Bytes skipped to resynchronise: the blocks counted in bad_checksum, oversize and
    bad_framing, delimiters excluded."""
    bad_framing: int = 0
    """Blocks that are not valid COBS or are shorter than a header and CRC."""
    unknown_message: int = 0
    """The part of `malformed` whose type code this version does not know."""


_new_received = fast_constructor(Received)


class Connection:
    """One end of the board protocol. `role` says which messages it may send."""

    def __init__(self, role: Role) -> None:
        self.role = role
        sendable = _HOST_TYPES if role is Role.HOST else _DEVICE_TYPES
        self._layouts = {cls: BY_CLASS[cls] for cls in sendable}
        # Frames from the peer have the device bit set exactly when we are the host.
        self._peer_bit = DEVICE_BIT if role is Role.HOST else 0
        self._next_seq = 0
        self._buffer = b""
        self._discarding = False
        self._frames_ok = 0
        self._bad_checksum = 0
        self._oversize = 0
        self._malformed = 0
        self._wrong_direction = 0
        self._dropped_bytes = 0
        self._bad_framing = 0
        self._unknown_message = 0

    @property
    def next_seq(self) -> int:
        """The sequence number the next `send` will use."""
        return self._next_seq

    @property
    def stats(self) -> DecoderStats:
        """A snapshot of the receive counters."""
        return DecoderStats(
            frames_ok=self._frames_ok,
            bad_checksum=self._bad_checksum,
            oversize=self._oversize,
            malformed=self._malformed,
            wrong_direction=self._wrong_direction,
            dropped_bytes=self._dropped_bytes,
            bad_framing=self._bad_framing,
            unknown_message=self._unknown_message,
        )

    def send(self, msg: Message) -> tuple[int, bytes]:
        """Frame `msg` with the next sequence number: (seq, bytes for the wire).

        Raises ValueError, and uses up no sequence number, if this role may not send `msg`
        or a field does not fit its wire range.
        """
        layout = self._layouts.get(type(msg))
        if layout is None:
            raise ValueError(
                f"a {self.role.value} may not send {type(msg).__name__}: "
                f"it is not a {'host' if self.role is Role.HOST else 'device'} message"
            )
        payload = layout.encode(msg)  # type: ignore[arg-type]
        seq = self._next_seq
        data = build_frame(layout.type_code, seq, payload)
        self._next_seq = (seq + 1) % SEQ_MODULUS
        return seq, data

    def receive_data(self, data: bytes | bytearray | memoryview) -> list[Received | Rejected]:
        """Feed bytes from the peer, in chunks of any size. Never raises on their content."""
        if self._buffer:
            data = self._buffer + data
        # All pieces but the last are complete blocks; the last waits for its delimiter.
        blocks = bytes(data).split(b"\x00")
        rest = blocks.pop()
        events: list[Received | Rejected] = []
        if blocks and self._discarding:
            # The tail of an oversize block that was already counted.
            self._dropped_bytes += len(blocks[0])
            self._discarding = False
            blocks[0] = b""
        handle = self._handle_block
        for block in blocks:
            if block:
                handle(block, events)
        if self._discarding:
            self._dropped_bytes += len(rest)
            rest = b""
        elif len(rest) > MAX_ENCODED_BYTES:
            self._oversize += 1
            self._dropped_bytes += len(rest)
            rest = b""
            self._discarding = True
        self._buffer = rest
        return events

    def _handle_block(self, block: bytes, events: list[Received | Rejected]) -> None:
        if len(block) > MAX_ENCODED_BYTES:
            self._oversize += 1
            self._dropped_bytes += len(block)
            return
        try:
            frame = cobs_decode(block)
        except CobsError:
            self._bad_framing += 1
            self._dropped_bytes += len(block)
            return
        if len(frame) < MIN_FRAME_BYTES:
            self._bad_framing += 1
            self._dropped_bytes += len(block)
            return
        if crc_hqx(frame, CRC16_INIT) != 0:  # the CRC residue: see framing.py
            self._bad_checksum += 1
            self._dropped_bytes += len(block)
            return
        type_code, seq = HEADER.unpack_from(frame)
        if type_code & DEVICE_BIT != self._peer_bit:
            self._wrong_direction += 1
            return
        layout = BY_TYPE_CODE.get(type_code)
        if layout is None:
            self._malformed += 1
            self._unknown_message += 1
            events.append(
                Rejected(
                    seq,
                    NackCode.UNKNOWN_MESSAGE,
                    f"unknown message type 0x{type_code:02X}",
                )
            )
            return
        try:
            message = layout.decode(frame[HEADER.size : -2])
        except PayloadError as error:
            self._malformed += 1
            events.append(Rejected(seq, NackCode.MALFORMED, str(error)))
            return
        self._frames_ok += 1
        events.append(_new_received(seq, message))
