"""The published vectors: byte-exact both ways, complete, and in step with the spec."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from firmware_protocol import TYPE_CODE, Connection, Received, Role
from firmware_protocol.cobs import cobs_encode
from firmware_protocol.crc import crc16_reference
from firmware_protocol.layouts import (
    CHANNEL_INFO_SPECS,
    CHANNEL_STATE_SPECS,
    HELLO_REPLY_HEAD_SPECS,
    LAYOUTS,
    STATUS_HEAD_SPECS,
    FieldKind,
    FieldSpec,
    FlatLayout,
    decode_payload,
)
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
    decoded = decode_payload(vector["type_code"], payload)
    assert message_to_fields(decoded) == vector["fields"]
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


def _table_after(spec: str, marker: str) -> list[list[str]]:
    """The rows of the first Markdown table after `marker`, header and rule excluded."""
    lines = spec[spec.index(marker) :].splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("|"))
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip("|").split("|")])
    return rows


def _expected_rows(specs: tuple[FieldSpec, ...]) -> list[tuple[str, str, str]]:
    rows, offset = [], 0
    for spec in specs:
        rows.append(
            (str(offset), spec.name, "bool" if spec.kind is FieldKind.BOOL else spec.fmt_name)
        )
        offset += spec.size
    return rows


@pytest.mark.parametrize(
    "layout",
    [layout for layout in LAYOUTS if isinstance(layout, FlatLayout) and layout.specs],
    ids=lambda layout: layout.cls.__name__,
)
def test_spec_field_table_matches_the_layout(layout: FlatLayout) -> None:
    rows = _table_after(SPEC.read_text("utf-8"), f"(`0x{layout.type_code:02X}`)")
    documented = [(offset, field, kind) for index, offset, field, kind, *_ in rows]
    assert documented == _expected_rows(layout.specs)
    assert [row[0] for row in rows] == [str(i) for i in range(1, len(rows) + 1)]


@pytest.mark.parametrize(
    ("marker", "specs"),
    [
        ("ChannelInfo (24 bytes):", CHANNEL_INFO_SPECS),
        ("ChannelState (14 bytes):", CHANNEL_STATE_SPECS),
    ],
)
def test_spec_nested_tables_match_the_layout(marker: str, specs: tuple[FieldSpec, ...]) -> None:
    rows = _table_after(SPEC.read_text("utf-8"), marker)
    assert [(offset, field, kind) for offset, field, kind, *_ in rows] == _expected_rows(specs)


@pytest.mark.parametrize(
    ("code", "specs"),
    [(0x81, HELLO_REPLY_HEAD_SPECS), (0x84, STATUS_HEAD_SPECS)],
)
def test_spec_variable_length_heads_match_the_layout(
    code: int, specs: tuple[FieldSpec, ...]
) -> None:
    rows = _table_after(SPEC.read_text("utf-8"), f"(`0x{code:02X}`)")
    documented = [(offset, field, kind) for _, offset, field, kind, *_ in rows[: len(specs)]]
    assert documented == _expected_rows(specs)
