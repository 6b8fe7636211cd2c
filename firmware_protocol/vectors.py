"""Test vectors: every message as exact wire bytes, plus invalid inputs and their outcomes.

`vectors.json` beside this file is the published copy, for our tests and a firmware team's.
`python -m firmware_protocol.vectors` prints what the reference implementation produces; the
tests require the committed file to match it byte for byte, so the file cannot drift from
the codec unnoticed. Regenerate it only for a deliberate protocol change:

    python -m firmware_protocol.vectors > firmware_protocol/vectors.json
"""

from __future__ import annotations

import enum
import json
import sys
from dataclasses import fields, is_dataclass
from importlib import resources
from typing import Any

from firmware_protocol import messages
from firmware_protocol.cobs import cobs_decode
from firmware_protocol.connection import Connection, Received, Rejected, Role
from firmware_protocol.crc import CRC16_CHECK, CRC16_INIT, CRC16_POLY, CRC16_XOROUT
from firmware_protocol.framing import MAX_ENCODED_BYTES, MAX_FRAME_BYTES, build_frame
from firmware_protocol.layouts import TYPE_CODE, encode_payload
from firmware_protocol.messages import (
    PROTOCOL_MINOR,
    PROTOCOL_VERSION,
    Ack,
    ChannelInfo,
    ChannelState,
    ClearFaults,
    ConfigureChannel,
    EmergencyStop,
    FaultCode,
    FaultReport,
    Goodbye,
    Heartbeat,
    Hello,
    HelloReply,
    Message,
    Nack,
    NackCode,
    ProgramAlternation,
    SetAmplitude,
    SetOutput,
    StartAlternation,
    StatusReport,
    StatusRequest,
    StopAlternation,
    WaveformCode,
)

VECTORS_FILE = "vectors.json"

_NESTED: dict[str, type[Any]] = {"channels_info": ChannelInfo, "channels_state": ChannelState}


def message_to_fields(msg: Any) -> dict[str, Any]:
    """JSON-ready fields: enums by name, waveform sets as sorted name lists, nested dicts."""
    out: dict[str, Any] = {}
    for f in fields(msg):
        value = getattr(msg, f.name)
        out[f.name] = _to_json(value)
    return out


def _to_json(value: Any) -> Any:
    if isinstance(value, enum.Enum):
        return value.name
    if isinstance(value, frozenset):
        return sorted(code.name for code in value)
    if isinstance(value, tuple):
        return [_to_json(item) for item in value]
    if is_dataclass(value) and not isinstance(value, type):
        return message_to_fields(value)
    return value


def message_from_fields(type_name: str, values: dict[str, Any]) -> Message:
    """The inverse of `message_to_fields`, given the message class name."""
    cls = getattr(messages, type_name, None)
    if cls is None or cls not in TYPE_CODE:
        raise ValueError(f"{type_name!r} is not a firmware protocol message")
    return _build(cls, values)  # type: ignore[no-any-return]


def _build(cls: type[Any], values: dict[str, Any]) -> Any:
    kwargs: dict[str, Any] = {}
    hints = {f.name: f.type for f in fields(cls)}
    for name, raw in values.items():
        hint = str(hints[name])
        if name == "channels":
            item_cls = ChannelInfo if cls is HelloReply else ChannelState
            kwargs[name] = tuple(_build(item_cls, item) for item in raw)
        elif name == "waveforms":
            kwargs[name] = frozenset(WaveformCode[item] for item in raw)
        elif hint in ("WaveformCode", "NackCode", "FaultCode"):
            kwargs[name] = getattr(messages, hint)[raw]
        else:
            kwargs[name] = raw
    return cls(**kwargs)


_ALL_WAVEFORMS = frozenset(WaveformCode)
_CH1 = ChannelInfo(
    channel=1,
    max_amplitude_ua=100_000,
    resolution_ua=10,
    min_frequency_mhz=500,
    max_frequency_mhz=200_000,
    min_pulse_width_us=20,
    max_pulse_width_us=1000,
    compliance_mv=60_000,
    waveforms=_ALL_WAVEFORMS,
)
_CH2 = ChannelInfo(
    channel=2,
    max_amplitude_ua=50_000,
    resolution_ua=5,
    min_frequency_mhz=1000,
    max_frequency_mhz=150_000,
    min_pulse_width_us=50,
    max_pulse_width_us=500,
    compliance_mv=40_000,
    waveforms=frozenset({WaveformCode.BIPHASIC_SYMMETRIC, WaveformCode.MICROCURRENT}),
)

# (name, seq, message): every message type at least once, edge values where they matter.
FRAME_CASES: tuple[tuple[str, int, Message], ...] = (
    ("hello", 0, Hello(PROTOCOL_VERSION, PROTOCOL_MINOR)),
    ("goodbye", 41, Goodbye()),
    (
        "configure_channel_biphasic",
        1,
        ConfigureChannel(
            channel=1,
            waveform=WaveformCode.BIPHASIC_SYMMETRIC,
            amplitude_ua=15_000,
            frequency_mhz=50_000,
            pulse_width_us=250,
            interphase_gap_us=50,
        ),
    ),
    (
        "configure_channel_amplipulse",
        2,
        ConfigureChannel(
            channel=2,
            waveform=WaveformCode.AMPLIPULSE,
            amplitude_ua=20_000,
            frequency_mhz=100_000,
            pulse_width_us=100,
            interphase_gap_us=0,
            asymmetry_ratio_pct=100,
            carrier_hz=5000,
            modulation_mhz=100_000,
            modulation_depth_pct=75,
        ),
    ),
    (
        "configure_channel_asymmetric",
        3,
        ConfigureChannel(
            channel=1,
            waveform=WaveformCode.BIPHASIC_ASYMMETRIC,
            amplitude_ua=8_000,
            frequency_mhz=30_000,
            pulse_width_us=300,
            asymmetry_ratio_pct=400,
        ),
    ),
    ("set_amplitude", 5, SetAmplitude(channel=1, amplitude_ua=12_500)),
    ("set_amplitude_zero", 6, SetAmplitude(channel=2, amplitude_ua=0)),
    ("set_output_on", 7, SetOutput(channel=1, on=True)),
    ("set_output_off", 8, SetOutput(channel=1, on=False)),
    (
        "program_alternation",
        9,
        ProgramAlternation(
            channel_a=1,
            channel_b=2,
            on_ms=5000,
            dead_time_ms=20,
            rest_ms=10_000,
            ramp_up_ms=1000,
            ramp_down_ms=500,
        ),
    ),
    ("start_alternation", 10, StartAlternation()),
    ("stop_alternation", 11, StopAlternation()),
    ("emergency_stop", 12, EmergencyStop()),
    ("clear_faults", 13, ClearFaults()),
    ("heartbeat", 14, Heartbeat(counter=1)),
    ("heartbeat_max_counter", 0xFFFF, Heartbeat(counter=0xFFFF_FFFF)),
    ("status_request", 15, StatusRequest()),
    (
        "hello_reply",
        0,
        HelloReply(
            acked_seq=0,
            protocol_version=PROTOCOL_VERSION,
            firmware_version="1.4.2",
            serial="STIM-000123",
            watchdog_timeout_ms=75,
            can_alternate=True,
            channels=(_CH1, _CH2),
            protocol_minor=PROTOCOL_MINOR,
        ),
    ),
    (
        "hello_reply_no_channels",
        1,
        HelloReply(
            acked_seq=0x1234,
            protocol_version=2,
            firmware_version="",
            serial="µ-board",
            watchdog_timeout_ms=65_535,
            can_alternate=False,
            channels=(),
        ),
    ),
    ("ack", 2, Ack(acked_seq=5)),
    ("nack_out_of_range", 3, Nack(acked_seq=1, code=NackCode.OUT_OF_RANGE, field_index=3)),
    ("nack_version", 4, Nack(acked_seq=0, code=NackCode.VERSION)),
    (
        "status_report",
        5,
        StatusReport(
            acked_seq=15,
            uptime_ms=123_456,
            alternation_running=True,
            fault_latched=False,
            channels=(
                ChannelState(1, True, 12_500, 12_480, False, 1000),
                ChannelState(2, False, 0, 0, False, 0),
            ),
        ),
    ),
    (
        "status_report_compliance",
        6,
        StatusReport(
            acked_seq=16,
            uptime_ms=0xFFFF_FFFF,
            alternation_running=False,
            fault_latched=True,
            channels=(ChannelState(1, True, 20_000, 9_100, True, 6_593),),
        ),
    ),
    ("fault_report_watchdog", 7, FaultReport(code=FaultCode.WATCHDOG, channel=0, detail=75)),
    ("fault_report_lead_off", 8, FaultReport(code=FaultCode.LEAD_OFF, channel=2, detail=0)),
    (
        "fault_report_overcurrent",
        9,
        FaultReport(code=FaultCode.OVERCURRENT, channel=1, detail=14_000),
    ),
    ("fault_report_reset", 0, FaultReport(code=FaultCode.RESET, channel=0, detail=1)),
)


def _sender(msg: Message) -> Role:
    return Role.DEVICE if TYPE_CODE[type(msg)] & 0x80 else Role.HOST


def frame_for(seq: int, msg: Message) -> bytes:
    type_code, payload = encode_payload(msg)
    return build_frame(type_code, seq, payload)


def _valid(name: str) -> bytes:
    for case_name, seq, msg in FRAME_CASES:
        if case_name == name:
            return frame_for(seq, msg)
    raise KeyError(name)


def _flip(frame: bytes, index: int, mask: int) -> bytes:
    data = bytearray(frame)
    data[index] ^= mask
    return bytes(data)


# (name, receiving role, bytes, why): the outcome is computed and recorded with each.
INVALID_CASES: tuple[tuple[str, Role, bytes, str], ...] = (
    (
        "bad_checksum",
        Role.DEVICE,
        _flip(_valid("set_amplitude"), 10, 0x01),
        "set_amplitude with one bit of its CRC flipped: dropped, no reply",
    ),
    (
        "bit_flip_in_payload",
        Role.DEVICE,
        _flip(_valid("set_amplitude"), 6, 0x80),
        "set_amplitude with a payload bit flipped: bad checksum",
    ),
    (
        "unknown_type",
        Role.DEVICE,
        build_frame(0x3F, 20, b"\x01\x02"),
        "host-direction type 0x3F is not defined: the device answers Nack(UNKNOWN_MESSAGE)",
    ),
    (
        "reserved_type_zero",
        Role.DEVICE,
        build_frame(0x00, 21, b""),
        "type 0x00 is reserved: unknown, Nack(UNKNOWN_MESSAGE)",
    ),
    (
        "short_payload",
        Role.DEVICE,
        build_frame(TYPE_CODE[SetAmplitude], 22, b"\x01\xd4\x30\x00"),
        "SetAmplitude with 4 payload bytes instead of 5: Nack(MALFORMED)",
    ),
    (
        "long_payload",
        Role.DEVICE,
        build_frame(TYPE_CODE[StatusRequest], 23, b"\x00"),
        "StatusRequest with a payload byte: Nack(MALFORMED)",
    ),
    (
        "bool_not_0_or_1",
        Role.DEVICE,
        build_frame(TYPE_CODE[SetOutput], 24, b"\x01\x02"),
        "SetOutput.on = 2: Nack(MALFORMED)",
    ),
    (
        "undefined_waveform",
        Role.DEVICE,
        build_frame(
            TYPE_CODE[ConfigureChannel],
            25,
            bytes([1, 9]) + bytes(23),
        ),
        "ConfigureChannel.waveform = 9: Nack(MALFORMED)",
    ),
    (
        "wrong_direction",
        Role.DEVICE,
        _valid("ack"),
        "an Ack arriving at the device: counted and dropped without a reply",
    ),
    (
        "status_reserved_flag",
        Role.HOST,
        build_frame(TYPE_CODE[StatusReport], 26, b"\x0f\x00" + bytes(4) + b"\x04\x00"),
        "StatusReport.flags bit 2 set: rejected as malformed",
    ),
    (
        "runt",
        Role.DEVICE,
        b"\x00\x03\x04\x05\x00",
        "a block that decodes to 2 bytes, shorter than header and CRC: bad framing",
    ),
    (
        "cobs_points_past_end",
        Role.DEVICE,
        b"\x00\x09\x04\x05\x01\x00",
        "code byte 0x09 with only 3 bytes left: bad framing",
    ),
    (
        "oversize",
        Role.DEVICE,
        b"\x00" + b"\x01" * (MAX_ENCODED_BYTES + 1) + b"\x00",
        "a block one byte longer than the maximum: oversize, discarded",
    ),
    (
        "garbage_then_frame",
        Role.DEVICE,
        b"\x17\x42\xff\x01\x99" + _valid("heartbeat"),
        "noise with no delimiter, then a valid Heartbeat: the Heartbeat is decoded",
    ),
    (
        "back_to_back_with_extra_delimiters",
        Role.DEVICE,
        _valid("heartbeat") + b"\x00\x00" + _valid("status_request"),
        "empty blocks between frames are ignored and not counted",
    ),
)


def _event_json(event: Received | Rejected) -> dict[str, Any]:
    if isinstance(event, Received):
        return {
            "event": "received",
            "seq": event.seq,
            "type": type(event.message).__name__,
            "fields": message_to_fields(event.message),
        }
    return {"event": "rejected", "seq": event.seq, "code": event.code.name}


def outcome(role: Role, data: bytes) -> dict[str, Any]:
    """What a fresh connection of `role` reports after receiving `data`."""
    connection = Connection(role)
    events = connection.receive_data(data)
    stats = connection.stats
    return {
        "events": [_event_json(e) for e in events],
        "stats": {f.name: getattr(stats, f.name) for f in fields(stats)},
    }


def build_vectors() -> dict[str, Any]:
    frames = []
    for name, seq, msg in FRAME_CASES:
        _, payload = encode_payload(msg)
        frame = frame_for(seq, msg)
        block = cobs_decode(frame[1:-1])
        frames.append(
            {
                "name": name,
                "sender": _sender(msg).value,
                "type": type(msg).__name__,
                "type_code": TYPE_CODE[type(msg)],
                "seq": seq,
                "fields": message_to_fields(msg),
                "payload_hex": payload.hex(),
                "block_hex": block.hex(),
                "frame_hex": frame.hex(),
            }
        )
    invalid = []
    for name, role, data, why in INVALID_CASES:
        invalid.append(
            {
                "name": name,
                "receiver": role.value,
                "why": why,
                "hex": data.hex(),
                "expect": outcome(role, data),
            }
        )
    return {
        "protocol": "stimctl board protocol",
        "version": f"{PROTOCOL_VERSION}.{PROTOCOL_MINOR}",
        "spec": "docs/firmware-protocol.md",
        "crc": {
            "name": "CRC-16/CCITT-FALSE",
            "width": 16,
            "poly": f"0x{CRC16_POLY:04X}",
            "init": f"0x{CRC16_INIT:04X}",
            "refin": False,
            "refout": False,
            "xorout": f"0x{CRC16_XOROUT:04X}",
            "check": f"0x{CRC16_CHECK:04X}",
        },
        "max_frame_bytes": MAX_FRAME_BYTES,
        "max_encoded_bytes": MAX_ENCODED_BYTES,
        "frames": frames,
        "invalid": invalid,
    }


def render() -> str:
    return json.dumps(build_vectors(), indent=1, ensure_ascii=False) + "\n"


def load_vectors() -> dict[str, Any]:
    """The committed vectors file, parsed."""
    text = resources.files("firmware_protocol").joinpath(VECTORS_FILE).read_text("utf-8")
    result: dict[str, Any] = json.loads(text)
    return result


if __name__ == "__main__":
    sys.stdout.write(render())
