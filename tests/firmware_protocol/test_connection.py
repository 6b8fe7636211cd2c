"""Host <-> device in memory: every message round-trips, the contract's rules hold."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from firmware_protocol import (
    MAX_CHANNELS,
    MAX_TEXT_BYTES,
    TYPE_CODE,
    Ack,
    ChannelInfo,
    ChannelState,
    ConfigureChannel,
    Connection,
    DecoderStats,
    FaultCode,
    FaultReport,
    Heartbeat,
    Hello,
    HelloReply,
    Message,
    Nack,
    NackCode,
    Received,
    Rejected,
    Role,
    SetAmplitude,
    SetOutput,
    StatusReport,
    StatusRequest,
    WaveformCode,
)
from firmware_protocol.framing import MAX_FRAME_BYTES
from tests.firmware_protocol.strategies import device_message, host_message, message_of


def _sender_for(cls: type[Any]) -> Role:
    return Role.DEVICE if TYPE_CODE[cls] & 0x80 else Role.HOST


def _peer(role: Role) -> Role:
    return Role.DEVICE if role is Role.HOST else Role.HOST


@pytest.mark.parametrize("cls", list(TYPE_CODE), ids=lambda c: c.__name__)
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_every_message_round_trips(cls: type[Any], data: st.DataObject) -> None:
    msg = data.draw(message_of(cls))
    sender = Connection(_sender_for(cls))
    receiver = Connection(_peer(_sender_for(cls)))
    seq, wire = sender.send(msg)
    assert seq == 0
    assert len(wire) <= MAX_FRAME_BYTES + 5
    assert wire[0] == 0 and wire[-1] == 0 and 0 not in wire[1:-1]
    assert receiver.receive_data(wire) == [Received(0, msg)]
    assert receiver.stats == DecoderStats(frames_ok=1)


@settings(max_examples=50, deadline=None)
@given(st.lists(host_message, min_size=1, max_size=20), st.lists(device_message, max_size=20))
def test_conversation_in_both_directions(commands: list[Message], replies: list[Message]) -> None:
    host, device = Connection(Role.HOST), Connection(Role.DEVICE)
    wire_to_device = b"".join(host.send(m)[1] for m in commands)
    wire_to_host = b"".join(device.send(m)[1] for m in replies)
    assert device.receive_data(wire_to_device) == [Received(i, m) for i, m in enumerate(commands)]
    assert host.receive_data(wire_to_host) == [Received(i, m) for i, m in enumerate(replies)]


def test_sequence_numbers_increment_and_wrap() -> None:
    host = Connection(Role.HOST)
    seqs = [host.send(Heartbeat(i))[0] for i in range(3)]
    assert seqs == [0, 1, 2]
    host._next_seq = 0xFFFF  # reach the wrap without 65k sends
    assert host.send(StatusRequest())[0] == 0xFFFF
    assert host.next_seq == 0
    seq, wire = host.send(StatusRequest())
    assert seq == 0
    assert Connection(Role.DEVICE).receive_data(wire) == [Received(0, StatusRequest())]


@pytest.mark.parametrize(
    ("role", "msg"),
    [(Role.HOST, Ack(1)), (Role.DEVICE, Hello(1)), (Role.DEVICE, StatusRequest())],
)
def test_a_role_may_only_send_its_own_messages(role: Role, msg: Message) -> None:
    connection = Connection(role)
    with pytest.raises(ValueError, match="may not send"):
        connection.send(msg)
    assert connection.next_seq == 0


def test_non_messages_are_refused() -> None:
    with pytest.raises(ValueError, match="may not send"):
        Connection(Role.HOST).send("hello")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("msg", "match"),
    [
        (SetAmplitude(1, -1), r"SetAmplitude.amplitude_ua=-1 does not fit .*u32"),
        (SetAmplitude(256, 10), r"SetAmplitude.channel=256 does not fit .*u8"),
        (SetAmplitude(1, 2**32), r"amplitude_ua=4294967296"),
        (SetAmplitude(1, 1.5), r"SetAmplitude.amplitude_ua must be an int"),  # type: ignore[arg-type]
        (SetOutput(1, 1), r"SetOutput.on must be a bool"),  # type: ignore[arg-type]
        (
            ConfigureChannel(1, 17, 1000, 50_000, 200),  # type: ignore[arg-type]
            r"ConfigureChannel.waveform must be a WaveformCode",
        ),
        (
            ConfigureChannel(1, WaveformCode.MONOPHASIC, 1000, 50_000, 70_000),
            r"pulse_width_us=70000 does not fit the wire field \(u16, 0..65535\)",
        ),
        (Heartbeat(-5), r"Heartbeat.counter=-5"),
    ],
)
def test_fields_outside_the_wire_range_are_refused(msg: Message, match: str) -> None:
    host = Connection(Role.HOST)
    with pytest.raises(ValueError, match=match):
        host.send(msg)
    assert host.next_seq == 0


def _info(channel: int) -> ChannelInfo:
    return ChannelInfo(channel, 1000, 1, 1000, 2000, 10, 20, 1000, frozenset())


def _reply(**changes: Any) -> HelloReply:
    base: dict[str, Any] = {
        "acked_seq": 0,
        "protocol_version": 1,
        "firmware_version": "1",
        "serial": "s",
        "watchdog_timeout_ms": 75,
        "can_alternate": True,
        "channels": (_info(1),),
    }
    base.update(changes)
    return HelloReply(**base)


@pytest.mark.parametrize(
    ("msg", "match"),
    [
        (_reply(serial="x" * (MAX_TEXT_BYTES + 1)), r"HelloReply.serial is 33 UTF-8 bytes"),
        (_reply(firmware_version="é" * 17), r"firmware_version is 34 UTF-8 bytes"),
        (
            _reply(channels=tuple(_info(i) for i in range(MAX_CHANNELS + 1))),
            r"HelloReply carries 17 channels; the wire allows 16",
        ),
        (_reply(watchdog_timeout_ms=70_000), r"watchdog_timeout_ms=70000"),
        (_reply(can_alternate=None), r"can_alternate must be a bool"),
        (
            _reply(channels=(ChannelInfo(1, 1, 1, 1, 1, 1, 1, 1, frozenset({7})),)),  # type: ignore[arg-type]
            r"ChannelInfo.waveforms must be a WaveformCode",
        ),
        (
            StatusReport(1, 2**32, False, False, ()),
            r"StatusReport.uptime_ms=4294967296",
        ),
        (
            StatusReport(1, 0, False, False, (ChannelState(1, True, -1, 0, False, 0),)),
            r"ChannelState.set_ua=-1",
        ),
        (Nack(1, 99), r"Nack.code must be a NackCode"),  # type: ignore[arg-type]
        (FaultReport(FaultCode.WATCHDOG, 0, -1), r"FaultReport.detail=-1"),
    ],
)
def test_device_fields_outside_the_wire_range_are_refused(msg: Message, match: str) -> None:
    device = Connection(Role.DEVICE)
    with pytest.raises(ValueError, match=match):
        device.send(msg)
    assert device.next_seq == 0


def test_plain_ints_for_enum_fields_are_accepted() -> None:
    # A caller that holds a raw code (e.g. echoing a Nack) need not rebuild the enum.
    _, wire = Connection(Role.DEVICE).send(Nack(3, 4, 2))  # type: ignore[arg-type]
    [event] = Connection(Role.HOST).receive_data(wire)
    assert event == Received(0, Nack(3, NackCode.OUT_OF_RANGE, 2))


def test_wrong_direction_is_counted_and_dropped() -> None:
    _, wire = Connection(Role.HOST).send(Heartbeat(1))
    host = Connection(Role.HOST)
    assert host.receive_data(wire) == []
    assert host.stats == DecoderStats(wrong_direction=1)


def test_unknown_type_and_malformed_payload_become_rejected_events() -> None:
    from firmware_protocol.framing import build_frame

    device = Connection(Role.DEVICE)
    events = device.receive_data(
        build_frame(0x70, 9, b"") + build_frame(TYPE_CODE[SetOutput], 10, b"\x01")
    )
    assert events == [
        Rejected(9, NackCode.UNKNOWN_MESSAGE, "unknown message type 0x70"),
        Rejected(10, NackCode.MALFORMED, "SetOutput payload must be 2 bytes, got 1"),
    ]
    assert device.stats == DecoderStats(malformed=2, unknown_message=1)


def test_stats_is_a_snapshot() -> None:
    device = Connection(Role.DEVICE)
    before = device.stats
    device.receive_data(Connection(Role.HOST).send(Heartbeat(1))[1])
    assert before.frames_ok == 0
    assert device.stats.frames_ok == 1


def test_largest_hello_reply_fits_a_frame() -> None:
    reply = _reply(
        firmware_version="v" * MAX_TEXT_BYTES,
        serial="s" * MAX_TEXT_BYTES,
        channels=tuple(_info(i + 1) for i in range(MAX_CHANNELS)),
    )
    _, wire = Connection(Role.DEVICE).send(reply)
    assert Connection(Role.HOST).receive_data(wire) == [Received(0, reply)]


def test_receive_accepts_bytearray_and_memoryview_chunks() -> None:
    _, wire = Connection(Role.HOST).send(SetAmplitude(2, 700))
    device = Connection(Role.DEVICE)
    events = device.receive_data(bytearray(wire[:5])) + device.receive_data(memoryview(wire)[5:])
    assert events == [Received(0, SetAmplitude(2, 700))]
