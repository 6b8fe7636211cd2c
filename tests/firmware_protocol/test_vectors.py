"""The published vectors: byte-exact both ways, complete, and in step with the spec."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from firmware_protocol import TYPE_CODE, Connection, Received, Role
from firmware_protocol.cobs import cobs_encode
from firmware_protocol.crc import crc16_reference
from firmware_protocol.vectors import (
    load_vectors,
    message_from_fields,
    message_to_fields,
    outcome,
    render,
)

VECTORS = load_vectors()
SPEC = Path(__file__).resolve().parents[2] / "docs" / "firmware-protocol.md"


def test_committed_file_matches_the_reference_implementation() -> None:
    committed = Path(__file__).resolve().parents[2] / "firmware_protocol" / "vectors.json"
    assert committed.read_text("utf-8") == render(), (
        "vectors.json differs from the codec: if the protocol change is deliberate, run "
        "`python -m firmware_protocol.vectors > firmware_protocol/vectors.json`"
    )


def test_every_message_type_has_a_vector() -> None:
    covered = {v["type"] for v in VECTORS["frames"]}
    assert covered == {cls.__name__ for cls in TYPE_CODE}


@pytest.mark.parametrize("vector", VECTORS["frames"], ids=lambda v: v["name"])
def test_frame_vector_encodes_byte_exactly(vector: dict[str, Any]) -> None:
    msg = message_from_fields(vector["type"], vector["fields"])
    assert TYPE_CODE[type(msg)] == vector["type_code"]
    sender = Connection(Role(vector["sender"]))
    sender._next_seq = vector["seq"]
    seq, wire = sender.send(msg)
    assert seq == vector["seq"]
    assert wire.hex() == vector["frame_hex"]


@pytest.mark.parametrize("vector", VECTORS["frames"], ids=lambda v: v["name"])
def test_frame_vector_layers_are_consistent(vector: dict[str, Any]) -> None:
    # What a firmware team checks layer by layer: payload, then header + CRC, then COBS.
    payload = bytes.fromhex(vector["payload_hex"])
    block = bytes.fromhex(vector["block_hex"])
    assert block[0] == vector["type_code"]
    assert int.from_bytes(block[1:3], "little") == vector["seq"]
    assert block[3:-2] == payload
    assert crc16_reference(block[:-2]) == int.from_bytes(block[-2:], "big")
    assert bytes.fromhex(vector["frame_hex"]) == b"\x00" + cobs_encode(block) + b"\x00"


@pytest.mark.parametrize("vector", VECTORS["frames"], ids=lambda v: v["name"])
def test_frame_vector_decodes_exactly(vector: dict[str, Any]) -> None:
    receiver = Connection(Role.DEVICE if vector["sender"] == "host" else Role.HOST)
    [event] = receiver.receive_data(bytes.fromhex(vector["frame_hex"]))
    assert isinstance(event, Received)
    assert event.seq == vector["seq"]
    assert type(event.message).__name__ == vector["type"]
    assert message_to_fields(event.message) == vector["fields"]


@pytest.mark.parametrize("vector", VECTORS["invalid"], ids=lambda v: v["name"])
def test_invalid_vector_outcome(vector: dict[str, Any]) -> None:
    data = bytes.fromhex(vector["hex"])
    assert outcome(Role(vector["receiver"]), data) == vector["expect"]
    # Fed one byte at a time, the outcome is the same.
    receiver = Connection(Role(vector["receiver"]))
    events = [e for i in range(len(data)) for e in receiver.receive_data(data[i : i + 1])]
    assert len(events) == len(vector["expect"]["events"])


def test_invalid_vectors_exercise_every_counter() -> None:
    seen = {
        name
        for vector in VECTORS["invalid"]
        for name, count in vector["expect"]["stats"].items()
        if count
    }
    assert seen == set(VECTORS["invalid"][0]["expect"]["stats"])


def test_spec_worked_example_is_the_set_amplitude_vector() -> None:
    [vector] = [v for v in VECTORS["frames"] if v["name"] == "set_amplitude"]
    spec = SPEC.read_text("utf-8")
    wire = bytes.fromhex(vector["frame_hex"])
    assert " ".join(f"{b:02X}" for b in wire) in spec
    assert f'"frame_hex": "{vector["frame_hex"]}"' in spec


def test_spec_type_table_matches_the_codec() -> None:
    spec = SPEC.read_text("utf-8")
    table = {
        name: int(code, 16)
        for code, name in re.findall(r"^\| `(0x[0-9A-F]{2})` \| (\w+) \|", spec, re.MULTILINE)
    }
    assert table == {cls.__name__: code for cls, code in TYPE_CODE.items()}


def test_spec_crc_parameters_match_the_vectors_file() -> None:
    spec = SPEC.read_text("utf-8")
    crc = VECTORS["crc"]
    for key in ("poly", "init", "xorout", "check"):
        assert f"| {key} | `{crc[key]}`" in spec
