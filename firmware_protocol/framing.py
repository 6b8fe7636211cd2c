"""Frames: header and payload, checksummed, COBS-encoded, between 0x00 delimiters.

    wire frame = 0x00, COBS(type u8 | seq u16 LE | payload | CRC-16 BE), 0x00

The CRC (crc.py) covers type, seq and payload and is appended most significant byte first,
so the CRC of the whole decoded block, CRC included, is 0x0000: a receiver checks a frame
with one pass and one comparison. The leading 0x00 ends whatever line noise came before, so
a frame that follows garbage is never merged into it and lost.
"""

from __future__ import annotations

import struct
from binascii import crc_hqx

from firmware_protocol.cobs import cobs_encode
from firmware_protocol.crc import CRC16_INIT, CRC16_XOROUT

DELIMITER = 0x00
HEADER = struct.Struct("<BH")
"""type code, sequence number."""
CRC = struct.Struct(">H")
HEADER_BYTES = HEADER.size
CRC_BYTES = CRC.size
MIN_FRAME_BYTES = HEADER_BYTES + CRC_BYTES
MAX_FRAME_BYTES = 512
"""Largest decoded block (header + payload + CRC)."""
MAX_PAYLOAD_BYTES = MAX_FRAME_BYTES - MIN_FRAME_BYTES
MAX_ENCODED_BYTES = MAX_FRAME_BYTES + (MAX_FRAME_BYTES + 253) // 254
"""Largest COBS block between two delimiters; anything longer is oversize."""
SEQ_MODULUS = 1 << 16

# The hot path calls binascii.crc_hqx directly (crc.crc16 is the same CRC); that is only
# right while xorout is 0.
assert CRC16_XOROUT == 0


def build_frame(type_code: int, seq: int, payload: bytes) -> bytes:
    """The bytes to put on the wire, both delimiters included."""
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise ValueError(
            f"payload of {len(payload)} bytes exceeds the {MAX_PAYLOAD_BYTES}-byte maximum"
        )
    block = _pack_header(type_code, seq) + payload
    return b"\x00" + cobs_encode(block + _pack_crc(crc_hqx(block, CRC16_INIT))) + b"\x00"


_pack_header = HEADER.pack
_pack_crc = CRC.pack
