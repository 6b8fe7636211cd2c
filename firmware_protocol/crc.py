"""CRC-16/CCITT-FALSE, the frame checksum.

Parameters (Rocksoft model): width 16, poly 0x1021, init 0xFFFF, refin false, refout false,
xorout 0x0000, check 0x29B1 (the CRC of the ASCII bytes "123456789").

The hot path uses `binascii.crc_hqx`, which is this exact CRC implemented in C. The table
version below is the reference a firmware team can port line by line; the tests prove the two
agree.
"""

from __future__ import annotations

import binascii

CRC16_POLY = 0x1021
CRC16_INIT = 0xFFFF
CRC16_XOROUT = 0x0000
CRC16_CHECK = 0x29B1


def _make_table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ CRC16_POLY) if crc & 0x8000 else (crc << 1)
            crc &= 0xFFFF
        table.append(crc)
    return tuple(table)


CRC16_TABLE = _make_table()


def crc16_reference(data: bytes) -> int:
    """Table-driven, one byte at a time: the form to port to firmware."""
    crc = CRC16_INIT
    for byte in data:
        crc = ((crc << 8) & 0xFFFF) ^ CRC16_TABLE[(crc >> 8) ^ byte]
    return crc ^ CRC16_XOROUT


def crc16(data: bytes | bytearray | memoryview) -> int:
    return binascii.crc_hqx(data, CRC16_INIT) ^ CRC16_XOROUT
