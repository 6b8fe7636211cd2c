"""Consistent Overhead Byte Stuffing (Cheshire and Baker, 1999).

COBS removes every 0x00 from a block so that 0x00 can delimit frames: a receiver that lost
sync finds the next frame at the next 0x00, whatever garbage came before. The overhead is one
byte per started 254 bytes.
"""

from __future__ import annotations

# The code byte for a piece of n non-zero bytes, prebuilt so the encoder never builds it.
_CODE_FOR_LENGTH = tuple(bytes((n + 1,)) for n in range(255))
_ZERO = b"\x00"


class CobsError(ValueError):
    """The block is not valid COBS (a code byte of 0, or one that points past the end)."""


def cobs_encode(data: bytes | bytearray) -> bytes:
    pieces = (data if type(data) is bytes else bytes(data)).split(_ZERO)
    if max(map(len, pieces)) < 254:
        # The common case, every piece short: one code byte per piece, joined at C speed.
        return b"".join([_CODE_FOR_LENGTH[len(piece)] + piece for piece in pieces])
    return _encode_with_long_runs(pieces)


def _encode_with_long_runs(pieces: list[bytes]) -> bytes:
    parts: list[bytes] = []
    last = len(pieces) - 1
    for index, piece in enumerate(pieces):
        length = len(piece)
        start = 0
        # A run of 254 non-zero bytes becomes a 0xFF block that implies no zero.
        while length - start >= 254:
            parts.append(b"\xff")
            parts.append(piece[start : start + 254])
            start += 254
        rest = piece[start:]
        if rest or index != last or length < 254:
            parts.append(_CODE_FOR_LENGTH[len(rest)])
            parts.append(rest)
    return b"".join(parts)


def cobs_decode(block: bytes | bytearray | memoryview) -> bytes:
    """Decode one block (without its delimiters). Raises CobsError if it is not valid COBS."""
    data = bytes(block)
    if not data:
        raise CobsError("empty block")
    if _ZERO in data:
        raise CobsError("0x00 inside a COBS block")
    end = len(data)
    # Without 0xFF codes every code byte but the first stands for one zero: overwrite the
    # codes in place and drop the first. The walk touches one byte per group.
    out = bytearray(data)
    position = data[0]
    if position != 0xFF:
        while position < end:
            code = data[position]
            if code == 0xFF:
                break
            out[position] = 0
            position += code
        else:
            if position > end:
                raise CobsError(f"the last code byte points {position - end} bytes past the end")
            return bytes(out[1:])
    return _decode_with_long_runs(data)


def _decode_with_long_runs(data: bytes) -> bytes:
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
