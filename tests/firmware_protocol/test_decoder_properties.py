"""The decoder never raises on any bytes, and garbage never costs a valid frame after it."""

from __future__ import annotations

from dataclasses import fields

from hypothesis import given, settings
from hypothesis import strategies as st

from firmware_protocol import Connection, Message, Received, Role
from firmware_protocol.framing import MAX_ENCODED_BYTES
from tests.firmware_protocol.strategies import host_message

PROPERTY_SETTINGS = settings(max_examples=200, deadline=None)


def _frame(msg: Message, seq: int = 7) -> bytes:
    host = Connection(Role.HOST)
    host._next_seq = seq
    return host.send(msg)[1]


def _feed(connection: Connection, data: bytes, cuts: list[int]) -> list[object]:
    """Deliver `data` split at the given offsets."""
    points = sorted({c % (len(data) + 1) for c in cuts})
    events: list[object] = []
    start = 0
    for point in [*points, len(data)]:
        events.extend(connection.receive_data(data[start:point]))
        start = point
    return events


def _check_stats(connection: Connection, total_bytes: int) -> None:
    stats = connection.stats
    assert all(getattr(stats, f.name) >= 0 for f in fields(stats))
    assert stats.dropped_bytes <= total_bytes
    assert stats.unknown_message <= stats.malformed


@PROPERTY_SETTINGS
@given(st.binary(max_size=2000), st.sampled_from(list(Role)))
def test_random_bytes_never_raise(data: bytes, role: Role) -> None:
    connection = Connection(role)
    connection.receive_data(data)
    _check_stats(connection, len(data))


@PROPERTY_SETTINGS
@given(st.binary(max_size=2000), host_message, st.lists(st.integers(0, 10_000), max_size=8))
def test_a_valid_frame_after_random_garbage_is_never_lost(
    garbage: bytes, msg: Message, cuts: list[int]
) -> None:
    device = Connection(Role.DEVICE)
    events = _feed(device, garbage + _frame(msg), cuts)
    assert events, "the valid frame was lost"
    assert events[-1] == Received(7, msg)
    _check_stats(device, len(garbage) + len(_frame(msg)))


@st.composite
def mutated_frame(draw: st.DrawFn) -> bytes:
    """A valid frame damaged the ways a serial line damages frames."""
    data = bytearray(_frame(draw(host_message), seq=draw(st.integers(0, 0xFFFF))))
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(
            st.sampled_from(["flip", "truncate", "insert", "delete", "delimiter", "duplicate"])
        )
        if not data:
            data = bytearray(b"\x00")
        index = draw(st.integers(0, len(data) - 1))
        if kind == "flip":
            data[index] ^= 1 << draw(st.integers(0, 7))
        elif kind == "truncate":
            data = data[:index]
        elif kind == "insert":
            data[index:index] = draw(st.binary(min_size=1, max_size=8))
        elif kind == "delete":
            del data[index]
        elif kind == "delimiter":
            data[index] = 0
        else:
            data[index:index] = b"\x00" * draw(st.integers(1, 3))
    return bytes(data)


@PROPERTY_SETTINGS
@given(st.lists(mutated_frame(), min_size=1, max_size=5), host_message, st.lists(st.integers()))
def test_mutated_frames_never_raise_nor_cost_the_next_frame(
    damaged: list[bytes], msg: Message, cuts: list[int]
) -> None:
    device = Connection(Role.DEVICE)
    stream = b"".join(damaged) + _frame(msg)
    events = _feed(device, stream, cuts)
    assert events and events[-1] == Received(7, msg)
    _check_stats(device, len(stream))


@PROPERTY_SETTINGS
@given(st.lists(host_message, min_size=1, max_size=12), st.lists(st.integers(), max_size=30))
def test_frames_split_at_any_chunk_boundaries(messages: list[Message], cuts: list[int]) -> None:
    host, device = Connection(Role.HOST), Connection(Role.DEVICE)
    stream = b"".join(host.send(m)[1] for m in messages)
    events = _feed(device, stream, cuts)
    assert events == [Received(i, m) for i, m in enumerate(messages)]
    assert device.stats.frames_ok == len(messages)
    assert device.stats.dropped_bytes == 0


@settings(max_examples=50, deadline=None)
@given(st.integers(MAX_ENCODED_BYTES + 1, 5000), st.integers(1, 700), host_message)
def test_oversize_runs_are_discarded_in_bounded_memory(
    length: int, chunk: int, msg: Message
) -> None:
    device = Connection(Role.DEVICE)
    noise = b"\x01" * length
    events = []
    for start in range(0, length, chunk):
        events.extend(device.receive_data(noise[start : start + chunk]))
        assert len(device._buffer) <= MAX_ENCODED_BYTES
    events.extend(device.receive_data(_frame(msg)))
    assert events == [Received(7, msg)]
    assert device.stats.oversize == 1
    assert device.stats.dropped_bytes == length


@PROPERTY_SETTINGS
@given(
    st.lists(st.tuples(host_message, st.booleans()), min_size=1, max_size=10),
    st.data(),
    st.lists(st.integers(), max_size=20),
)
def test_damage_to_some_frames_costs_only_those_frames(
    plan: list[tuple[Message, bool]], data: st.DataObject, cuts: list[int]
) -> None:
    host, device = Connection(Role.HOST), Connection(Role.DEVICE)
    stream = b""
    intact: list[Received] = []
    for msg, damage in plan:
        seq, frame = host.send(msg)
        if damage:
            stream += data.draw(mutated_frame())
        else:
            stream += frame
            intact.append(Received(seq, msg))
    received = [e for e in _feed(device, stream, cuts) if isinstance(e, Received)]
    # Every intact frame arrives, in order. (A damaged frame whose CRC still matched by
    # chance, 1 in 65536, would be an extra event, not a lost one.)
    remaining = iter(received)
    assert all(any(event == wanted for event in remaining) for wanted in intact)
    _check_stats(device, len(stream))
