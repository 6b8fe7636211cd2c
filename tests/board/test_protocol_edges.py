"""What the board does with commands the driver would never send: out-of-range values, the
wrong state, the wrong version, and bytes that are not frames at all."""

from __future__ import annotations

import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from drivers.base import ChannelConfig, Waveform
from drivers.errors import CapabilityError
from firmware_protocol import messages as m
from firmware_protocol.framing import build_frame
from sim.board import BoardConfig, SimulatedBoard, serve_tcp
from sim.trace import OutputTrace
from sim.virtual_time import run_virtual
from tests.board.helpers import CFG_10MA, RawHost, tcp_rig

GOOD = m.ConfigureChannel(1, m.WaveformCode.BIPHASIC_SYMMETRIC, 10_000, 50_000, 200)


async def raw_rig(config: BoardConfig | None = None):  # type: ignore[no-untyped-def]
    import asyncio

    trace = OutputTrace(asyncio.get_running_loop().time, device="board")
    board = SimulatedBoard(config or BoardConfig(), trace)
    server = await serve_tcp(board)
    host = await RawHost.connect(server.url)
    return board, server, trace, host


def test_every_command_before_hello_gets_bad_state() -> None:
    async def main() -> None:
        board, server, _trace, host = await raw_rig()
        for msg in (GOOD, m.SetOutput(1, True), m.EmergencyStop(), m.StatusRequest(), m.Goodbye()):
            reply = await host.request(msg)
            assert isinstance(reply, m.Nack) and reply.code is m.NackCode.BAD_STATE, msg
        assert not board.watchdog_armed
        await host.close()
        await server.close()

    run_virtual(main())


def test_other_major_version_is_refused() -> None:
    async def main() -> None:
        board, server, _trace, host = await raw_rig()
        reply = await host.request(m.Hello(2))
        assert reply == m.Nack(0, m.NackCode.VERSION, 1)
        assert not board.greeted
        reply = await host.request(m.Hello(m.PROTOCOL_VERSION, 7))  # a newer minor is fine
        assert isinstance(reply, m.HelloReply) and reply.acked_seq == 1
        await host.close()
        await server.close()

    run_virtual(main())


@pytest.mark.parametrize(
    ("command", "code", "field"),
    [
        (m.ConfigureChannel(5, m.WaveformCode.BIPHASIC_SYMMETRIC, 1000, 50_000, 200), m.NackCode.BAD_CHANNEL, 1),
        (m.ConfigureChannel(1, m.WaveformCode.BIPHASIC_SYMMETRIC, 100_010, 50_000, 200), m.NackCode.OUT_OF_RANGE, 3),
        (m.ConfigureChannel(1, m.WaveformCode.BIPHASIC_SYMMETRIC, 1000, 250_000, 200), m.NackCode.OUT_OF_RANGE, 4),
        (m.ConfigureChannel(1, m.WaveformCode.BIPHASIC_SYMMETRIC, 1000, 500, 200), m.NackCode.OUT_OF_RANGE, 4),
        (m.ConfigureChannel(1, m.WaveformCode.BIPHASIC_SYMMETRIC, 1000, 50_000, 10), m.NackCode.OUT_OF_RANGE, 5),
        (m.ConfigureChannel(1, m.WaveformCode.BIPHASIC_SYMMETRIC, 1000, 50_000, 1001), m.NackCode.OUT_OF_RANGE, 5),
        (m.ConfigureChannel(1, m.WaveformCode.BIPHASIC_ASYMMETRIC, 1000, 50_000, 200, 0, 50), m.NackCode.OUT_OF_RANGE, 7),
        (m.ConfigureChannel(1, m.WaveformCode.BIPHASIC_ASYMMETRIC, 1000, 200_000, 1000, 1000, 400), m.NackCode.OUT_OF_RANGE, 5),
        (m.ConfigureChannel(1, m.WaveformCode.AMPLIPULSE, 1000, 0, 0, carrier_hz=20_000, modulation_mhz=50_000, modulation_depth_pct=50), m.NackCode.OUT_OF_RANGE, 8),
        (m.ConfigureChannel(1, m.WaveformCode.AMPLIPULSE, 1000, 0, 0, carrier_hz=5000, modulation_mhz=50_000, modulation_depth_pct=101), m.NackCode.OUT_OF_RANGE, 10),
        (m.SetAmplitude(1, 100_001), m.NackCode.OUT_OF_RANGE, 2),
        (m.SetAmplitude(0, 1000), m.NackCode.BAD_CHANNEL, 1),
        (m.SetOutput(9, True), m.NackCode.BAD_CHANNEL, 1),
        (m.ProgramAlternation(1, 1, 100, 10, 10), m.NackCode.BAD_CHANNEL, 2),
        (m.ProgramAlternation(1, 2, 100, 0, 10), m.NackCode.OUT_OF_RANGE, 4),
        (m.ProgramAlternation(1, 2, 100, 10, 5), m.NackCode.OUT_OF_RANGE, 5),
        (m.ProgramAlternation(1, 2, 100, 10, 10, 60, 60), m.NackCode.OUT_OF_RANGE, 7),
        (m.StartAlternation(), m.NackCode.BAD_STATE, 0),
    ],
)
def test_refused_commands_change_nothing(command: m.HostMessage, code: m.NackCode, field: int) -> None:
    async def main() -> None:
        board, server, trace, host = await raw_rig()
        await host.hello()
        for ch in (1, 2):
            assert await host.request(GOOD.__class__(**{**GOOD.__dict__, "channel": ch})) == m.Ack(ch)
        assert isinstance(await host.request(m.SetOutput(1, True)), m.Ack)
        before = trace.events
        reply = await host.request(command)
        assert isinstance(reply, m.Nack)
        assert (reply.code, reply.field_index) == (code, field)
        assert trace.events == before
        assert board.set_amplitudes_ua[1] == 10_000 and board.output_states[1]
        await host.close()
        await server.close()

    run_virtual(main())


def test_switching_on_an_unconfigured_channel_is_bad_state() -> None:
    async def main() -> None:
        _board, server, trace, host = await raw_rig()
        await host.hello()
        reply = await host.request(m.SetOutput(3, True))
        assert isinstance(reply, m.Nack) and reply.code is m.NackCode.BAD_STATE
        assert not any(e.active for e in trace.events)
        await host.close()
        await server.close()

    run_virtual(main())


def test_off_grid_amplitude_is_rounded_to_the_resolution_by_the_board() -> None:
    async def main() -> None:
        board, server, _trace, host = await raw_rig()
        await host.hello()
        await host.request(GOOD)
        assert isinstance(await host.request(m.SetAmplitude(1, 12_346)), m.Ack)
        assert board.set_amplitudes_ua[1] == 12_350
        await host.close()
        await server.close()

    run_virtual(main())


def test_driver_refuses_what_the_board_cannot_do_before_sending() -> None:
    async def main() -> None:
        async with tcp_rig() as rig:
            d = rig.driver
            await d.configure_channel(1, CFG_10MA)
            sent = rig.board.commands_received
            bad = [
                d.set_amplitude(1, 100.01),
                d.set_amplitude(1, 1.005),  # between two 10 uA steps
                d.set_amplitude(1, -1.0),
                d.set_amplitude(7, 1.0),
                d.configure_channel(1, CFG_10MA.with_amplitude(float("nan"))),
                d.configure_channel(1, ChannelConfig(Waveform.BIPHASIC_SYMMETRIC, 1.0, 250.0, 200.0)),
                d.configure_channel(1, ChannelConfig(Waveform.BIPHASIC_SYMMETRIC, 1.0, 50.0, 10.0)),
                d.configure_channel(1, ChannelConfig(Waveform.BIPHASIC_SYMMETRIC, 1.0, 50.0004, 200.0)),
                d.configure_channel(1, ChannelConfig(Waveform.BIPHASIC_SYMMETRIC, 1.0, 50.0, 200.5)),
                d.configure_channel(1, ChannelConfig(Waveform.AMPLIPULSE, 1.0, 50.0, 200.0)),
            ]
            for call in bad:
                with pytest.raises(CapabilityError):
                    await call
            assert rig.board.commands_received == sent
            assert rig.board.set_amplitudes_ua[1] == 10_000

    run_virtual(main())


def test_garbage_and_broken_frames_never_crash_the_board() -> None:
    async def main() -> None:
        _board, server, trace, host = await raw_rig()
        await host.hello()
        rng = random.Random(1)
        await host.send_raw(bytes(rng.randrange(256) for _ in range(5000)))
        await host.send_raw(b"\x00" * 100)
        await host.send_raw(b"\x01" * 2000 + b"\x00")  # oversize block
        frame = bytearray(host.conn.send(m.SetOutput(1, True))[1])
        frame[4] ^= 0xFF  # checksum now wrong
        await host.send_raw(bytes(frame))
        # A good checksum around a type the board does not know, and a truncated payload.
        await host.send_raw(build_frame(0x7E, 4000, b"\x01\x02"))
        await host.send_raw(build_frame(0x04, 4001, b"\x01"))
        # A device-to-host frame sent to the device is dropped without a reply.
        await host.send_raw(build_frame(0x82, 4002, b"\x00\x00"))
        replies = [await host.reply_to(4000), await host.reply_to(4001)]
        assert replies == [m.Nack(4000, m.NackCode.UNKNOWN_MESSAGE), m.Nack(4001, m.NackCode.MALFORMED)]
        # Still alive and talking, with nothing switched on by the noise.
        reply = await host.request(m.StatusRequest())
        assert isinstance(reply, m.StatusReport)
        assert not any(e.active for e in trace.events)
        await host.close()
        await server.close()

    run_virtual(main())


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(min_size=1, max_size=600))
def test_any_bytes_leave_the_board_answering(noise: bytes) -> None:
    async def main() -> None:
        _board, server, trace, host = await raw_rig()
        await host.hello()
        await host.send_raw(noise)
        # A delimiter ends whatever the noise left half-open; the next frame must be answered.
        await host.send_raw(b"\x00")
        reply = await host.request(m.StatusRequest())
        assert isinstance(reply, m.StatusReport)
        assert not any(e.active for e in trace.events)
        await host.close()
        await server.close()

    run_virtual(main())
