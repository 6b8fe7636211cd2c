"""The 6221 simulator and a client in one virtual-time loop over loopback TCP: sessions of many
minutes run in a fraction of a second and land on exact times in the trace."""

from __future__ import annotations

import asyncio

import pytest

from sim.faults import FaultSpec
from sim.scpi.k6221 import K6221
from sim.scpi.server import ScpiTcpServer, serve_tcp
from sim.trace import active_intervals, all_off_at
from sim.virtual_time import run_virtual


class Client:
    """A minimal SCPI-over-TCP client, written to the manual: lines end with "\\n"."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def connect(cls, server: ScpiTcpServer) -> Client:
        reader, writer = await asyncio.open_connection(server.host, server.port)
        return cls(reader, writer)

    async def write(self, line: str) -> None:
        self.writer.write(line.encode() + b"\n")
        await self.writer.drain()

    async def query(self, line: str, timeout_s: float = 5.0) -> str:
        await self.write(line)
        reply = await asyncio.wait_for(self.reader.readline(), timeout_s)
        return reply.decode().rstrip("\n")

    async def close(self) -> None:
        self.writer.close()
        await self.writer.wait_closed()


def test_twenty_minute_sine_session_in_virtual_time() -> None:
    async def scenario() -> tuple[K6221, float]:
        inst = K6221()
        server = await serve_tcp(inst)
        client = await Client.connect(server)
        await client.write("*RST;:SOUR:WAVE:FUNC SIN;FREQ 50;AMPL 4e-3;DUR:TIME 1200")
        await client.write("SOUR:WAVE:ARM;INIT")
        assert await client.query("OUTP?") == "1"
        t0 = asyncio.get_running_loop().time()
        await asyncio.sleep(1300)  # virtual: the waveform ends on its own at t0 + 1200 s
        assert await client.query("SYST:ERR?") == '0,"No error"'
        await client.write("OUTP OFF")
        await client.query("*OPC?")
        await client.close()
        await server.close()
        inst.close()
        return inst, t0

    inst, t0 = run_virtual(scenario())
    events = inst.trace.events
    ((start, end),) = active_intervals(events, 1)
    assert start == pytest.approx(t0, abs=1e-3)
    assert end - start == pytest.approx(1200.0, abs=1e-9)
    assert all_off_at(events, 0.0) == pytest.approx(end)


def test_arb_pulse_train_for_ten_minutes_then_stop() -> None:
    async def scenario() -> tuple[K6221, float, float]:
        inst = K6221()
        server = await serve_tcp(inst)
        client = await Client.connect(server)
        points = ["1"] * 5 + ["-1"] * 5 + ["0"] * 90
        await client.write("SOUR:WAVE:ARB:DATA " + ",".join(points))
        await client.write("SOUR:WAVE:FUNC ARB0;FREQ 40;AMPL 6e-3;DUR:TIME INF")
        await client.write("SOUR:WAVE:ARM;INIT")
        assert await client.query("OUTP?") == "1"
        loop = asyncio.get_running_loop()
        t_on = loop.time()
        await asyncio.sleep(600)
        t_off = loop.time()
        await client.write("SOUR:WAVE:ABOR;:OUTP OFF")
        assert await client.query("OUTP?") == "0"
        await client.close()
        await server.close()
        inst.close()
        return inst, t_on, t_off

    inst, t_on, t_off = run_virtual(scenario())
    ((start, end),) = active_intervals(inst.trace.events, 1)
    assert start == pytest.approx(t_on, abs=1e-3)
    assert end == pytest.approx(t_off, abs=1e-3)
    assert max(e.amplitude_ma for e in inst.trace.events) == pytest.approx(6.0)


def test_disconnect_leaves_the_output_on_and_the_next_client_turns_it_off() -> None:
    async def scenario() -> tuple[K6221, float, float]:
        inst = K6221()
        server = await serve_tcp(inst)
        loop = asyncio.get_running_loop()
        first = await Client.connect(server)
        await first.write("SOUR:CURR 1e-3;:OUTP ON")
        await first.query("*OPC?")
        await first.close()
        t_gone = loop.time()
        await asyncio.sleep(30)  # nobody is connected; the instrument keeps sourcing
        assert inst.trace.events[-1].active
        second = await Client.connect(server)
        assert await second.query("OUTP?") == "1"
        await second.write("OUTP OFF")
        t_off = loop.time()
        assert await second.query("OUTP?") == "0"
        await second.close()
        await server.close()
        inst.close()
        return inst, t_gone, t_off

    inst, t_gone, t_off = run_virtual(scenario())
    ((start, end),) = active_intervals(inst.trace.events, 1)
    assert start <= t_gone and end >= t_gone + 30
    assert end == pytest.approx(t_off, abs=1e-3)


def test_stall_keeps_the_socket_open_and_the_output_on() -> None:
    async def scenario() -> K6221:
        inst = K6221()
        server = await serve_tcp(inst)
        client = await Client.connect(server)
        await client.write("SOUR:CURR 1e-3;:OUTP ON")
        await client.query("*OPC?")
        inst.inject(FaultSpec("stall"))
        with pytest.raises(asyncio.TimeoutError):
            await client.query("OUTP?", timeout_s=3.0)
        assert not client.reader.at_eof()
        assert inst.trace.events[-1].active
        inst.clear_faults()
        assert await client.query("*OPC?") in ("1", "1\n")  # the stalled OUTP? answers first
        await client.close()
        await server.close()
        inst.close()
        return inst

    run_virtual(scenario())


def test_reset_after_fault_switches_off_on_the_virtual_clock() -> None:
    async def scenario() -> tuple[K6221, float]:
        inst = K6221(faults=[FaultSpec("reset-after", value=90.0)])
        server = await serve_tcp(inst)
        t_start = asyncio.get_running_loop().time()
        client = await Client.connect(server)
        await client.write("SOUR:CURR 1e-3;:OUTP ON")
        await asyncio.sleep(120)
        assert await client.query("OUTP?") == "0"
        assert await client.query("*ESR?") == "128"
        await client.close()
        await server.close()
        inst.close()
        return inst, t_start

    inst, t_start = run_virtual(scenario())
    ((_, end),) = active_intervals(inst.trace.events, 1)
    assert end == pytest.approx(t_start + 90.0, abs=1e-6)


def test_block_data_with_newlines_is_framed_by_length() -> None:
    async def scenario() -> list[str]:
        inst = K6221()
        server = await serve_tcp(inst)
        client = await Client.connect(server)
        # The 6221 takes no block here: the whole block, "\n" and all, is one bad parameter.
        client.writer.write(b"SOUR:WAVE:ARB:DATA #16a\nb\nc\n\n*OPC?\n")
        replies = [(await asyncio.wait_for(client.reader.readline(), 5.0)).decode().strip()]
        replies.append(await client.query("SYST:ERR?"))
        replies.append(await client.query("SYST:ERR?"))
        await client.close()
        await server.close()
        inst.close()
        return replies

    replies = run_virtual(scenario())
    assert replies[0] == "1"
    assert replies[1].startswith("-104,")
    assert replies[2] == '0,"No error"'
