"""Consistent Overhead Byte Stuffing (Cheshire and Baker, 1999).

COBS removes every 0x00 from a block so that 0x00 can delimit frames: a receiver that lost
sync finds the next frame at the next 0x00, whatever garbage came before. The overhead is one
byte per started 254 bytes.
"""

from __future__ import annotations

# One-byte `bytes` objects for every code, so the encoder never builds them per call.
_CODE = tuple(bytes((n,)) for n in range(256))
_ZERO = b"\x00"


class CobsError(ValueError):
    """The block is not valid COBS (a code byte of 0, or one that points past the end)."""


def cobs_encode(data: bytes | bytearray) -> bytes:
    parts: list[bytes] = []
    pieces = bytes(data).split(_ZERO)
    last = len(pieces) - 1
    for index, piece in enumerate(pieces):
        length = len(piece)
        if length < 254:
            parts.append(_CODE[length + 1])
            parts.append(piece)
            continue
        # A run of 254 non-zero bytes becomes a 0xFF block that implies no zero.
        start = 0
        while length - start >= 254:
            parts.append(b"\xff")
            parts.append(piece[start : start + 254])
            start += 254
        rest = piece[start:]
        if rest or index != last:
            parts.append(_CODE[len(rest) + 1])
            parts.append(rest)
    return b"".join(parts)


def cobs_decode(block: bytes | bytearray | memoryview) -> bytes:
    """Decode one block (without its delimiters). Raises CobsError if it is not valid COBS."""
    data = bytes(block)
    if not data:
        raise CobsError("empty block")
    if _ZERO in data:
        raise CobsError("0x00 inside a COBS block")
    parts: list[bytes] = []
    position = 0
    end = len(data)
    while position < end:
        code = data[position]
        following = position + code
        if following > end:
            raise CobsError(f"code byte 0x{code:02X} at offset {position} points past the end")
        parts.append(data[position + 1 : following])
        if code != 0xFF and following < end:
            parts.append(_ZERO)
        position = following
    return b"".join(parts)
