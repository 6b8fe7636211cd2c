"""The two building blocks, against published values."""

from __future__ import annotations

import binascii

import pytest
from hypothesis import given
from hypothesis import strategies as st

from firmware_protocol.cobs import CobsError, cobs_decode, cobs_encode
from firmware_protocol.crc import CRC16_CHECK, CRC16_TABLE, crc16, crc16_reference


def test_crc_check_value_of_the_catalogue() -> None:
    # CRC-16/CCITT-FALSE in the CRC RevEng catalogue: check=0x29b1.
    assert crc16(b"123456789") == 0x29B1 == CRC16_CHECK
    assert crc16_reference(b"123456789") == 0x29B1


def test_crc_table_first_entries() -> None:
    assert CRC16_TABLE[:4] == (0x0000, 0x1021, 0x2042, 0x3063)
    assert CRC16_TABLE[255] == 0x1EF0


def test_crc_of_empty_is_init() -> None:
    assert crc16(b"") == 0xFFFF


@given(st.binary(max_size=600))
def test_fast_crc_equals_reference(data: bytes) -> None:
    assert crc16(data) == crc16_reference(data)


@given(st.binary(max_size=600))
def test_crc_residue_is_zero_when_appended_big_endian(data: bytes) -> None:
    assert crc16(data + crc16(data).to_bytes(2, "big")) == 0


# Cheshire and Baker's scheme, with the examples that test its edge cases.
_SEQ_1_FE = bytes(range(1, 0xFF))
COBS_EXAMPLES = [
    (b"\x00", b"\x01\x01"),
    (b"\x00\x00", b"\x01\x01\x01"),
    (b"\x00\x11\x00", b"\x01\x02\x11\x01"),
    (b"\x11\x22\x00\x33", b"\x03\x11\x22\x02\x33"),
    (b"\x11\x22\x33\x44", b"\x05\x11\x22\x33\x44"),
    (b"\x11\x00\x00\x00", b"\x02\x11\x01\x01\x01"),
    (b"", b"\x01"),
    (_SEQ_1_FE, b"\xff" + _SEQ_1_FE),
    (b"\x00" + _SEQ_1_FE, b"\x01\xff" + _SEQ_1_FE),
    (bytes(range(1, 0x100)), b"\xff" + _SEQ_1_FE + b"\x02\xff"),
    (bytes(range(2, 0x100)) + b"\x00", b"\xff" + bytes(range(2, 0x100)) + b"\x01\x01"),
    (bytes(range(3, 0x100)) + b"\x00\x01", b"\xfe" + bytes(range(3, 0x100)) + b"\x02\x01"),
]


@pytest.mark.parametrize(("raw", "encoded"), COBS_EXAMPLES)
def test_cobs_examples(raw: bytes, encoded: bytes) -> None:
    assert cobs_encode(raw) == encoded
    assert cobs_decode(encoded) == raw


@given(st.binary(max_size=1200))
def test_cobs_round_trip_and_no_zero(data: bytes) -> None:
    encoded = cobs_encode(data)
    assert 0 not in encoded
    assert len(encoded) <= len(data) + 1 + len(data) // 254
    assert cobs_decode(encoded) == data


@pytest.mark.parametrize(
    "block",
    [b"", b"\x05\x01\x02", b"\x02\x01\x00", b"\x03\x01\x02\xff"],
    ids=["empty", "points-past-end", "contains-zero", "ff-past-end"],
)
def test_cobs_rejects_invalid_blocks(block: bytes) -> None:
    with pytest.raises(CobsError):
        cobs_decode(block)


def test_crc_matches_binascii_model() -> None:
    # binascii.crc_hqx is XMODEM when started at 0: our init 0xFFFF is what makes it FALSE.
    assert binascii.crc_hqx(b"123456789", 0) == 0x31C3
    assert crc16(b"123456789") != 0x31C3


@given(st.binary(min_size=1, max_size=700).map(lambda b: b.replace(b"\x00", b"\x01")))
def test_fast_decode_agrees_with_the_group_by_group_decoder(block: bytes) -> None:
    # Any zero-free block: the fast path and the plain walk accept and reject the same ones.
    from firmware_protocol.cobs import _decode_with_long_runs

    try:
        expected: bytes | None = _decode_with_long_runs(block)
    except CobsError:
        expected = None
    try:
        actual: bytes | None = cobs_decode(block)
    except CobsError:
        actual = None
    assert actual == expected
