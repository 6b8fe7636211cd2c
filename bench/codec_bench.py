"""Encode + decode rate of the board protocol codec, beside pysciencemode's ScienceMode codec.

    python bench/codec_bench.py [--seconds 1.0] [--repeats 5]

Both codecs do the same job per round: build one stimulation-parameter command frame, then
split and parse one acknowledgement frame out of a received byte stream.

- stimctl: `Connection.send(ConfigureChannel(...))` (COBS, CRC-16, 25-byte payload), then
  `Connection.receive_data(ack_frame)` (resync scan, COBS decode, CRC check, payload decode).
- ScienceMode (Rehastim 2): `utils.packet_construction(count, "StartChannelListMode", data)`
  for one channel (mode, pulse width, amplitude; CRC-8, byte stuffing), then
  `RehastimGeneric._read_packet` on the ack bytes (stream split at start/stop bytes) and
  `Rehastim2._calling_ack` (dispatch and parse of StartChannelListModeAck). That parse checks
  neither the CRC nor the stuffing, so it does less work per frame than ours.

A second stimctl figure, command encode + device-side decode of the same command, shows the
codec on its own. The figure printed is the best of --repeats timed runs (the least disturbed
by other processes), in frames per second; one frame = one encode plus one decode.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from firmware_protocol import (  # noqa: E402
    Ack,
    ConfigureChannel,
    Connection,
    Received,
    Role,
    WaveformCode,
)

COMMAND = ConfigureChannel(
    channel=1,
    waveform=WaveformCode.BIPHASIC_SYMMETRIC,
    amplitude_ua=15_000,
    frequency_mhz=50_000,
    pulse_width_us=250,
    interphase_gap_us=50,
)


def stimctl_command_and_ack() -> Callable[[int], None]:
    host = Connection(Role.HOST)
    _, ack_frame = Connection(Role.DEVICE).send(Ack(acked_seq=0))

    def run(rounds: int) -> None:
        send = host.send
        receive = host.receive_data
        for _ in range(rounds):
            send(COMMAND)
            events = receive(ack_frame)
        if not (events and isinstance(events[0], Received)):
            raise RuntimeError("stimctl ack did not decode")

    return run


def stimctl_command_both_ends() -> Callable[[int], None]:
    host = Connection(Role.HOST)
    device = Connection(Role.DEVICE)

    def run(rounds: int) -> None:
        send = host.send
        receive = device.receive_data
        for _ in range(rounds):
            _, frame = send(COMMAND)
            events = receive(frame)
        if events != [Received((host.next_seq - 1) % 65536, COMMAND)]:
            raise RuntimeError("stimctl command did not round-trip")

    return run


class _BytesPort:
    """Just enough of a pyserial port for `_read_packet`: serves one buffer, then nothing."""

    def __init__(self) -> None:
        self._data = b""

    def load(self, data: bytes) -> None:
        self._data = data

    def inWaiting(self) -> int:  # noqa: N802 - pyserial's name
        return len(self._data)

    def read(self, size: int) -> bytes:
        chunk, self._data = self._data[:size], self._data[size:]
        return chunk


def sciencemode_command_and_ack() -> Callable[[int], None] | str:
    try:
        from pysciencemode.enums import Rehastim2Commands
        from pysciencemode.rehastim2_interface import Rehastim2
        from pysciencemode.utils import packet_construction
    except ImportError as error:
        return f"pysciencemode not importable ({error}); pip install -e .[bench]"

    # Build the interface object without opening a serial port: the parse methods only
    # need a port to read from and the command table.
    port = _BytesPort()
    reha = object.__new__(Rehastim2)
    reha.port = port
    reha.Rehastim2Commands = Rehastim2Commands
    # One channel: mode 0 (single pulse), pulse width 250 us as MSB/LSB, 15 mA.
    msb, lsb = Rehastim2._msb_lsb_pulse_stim(250)
    data = [0, msb, lsb, 15]
    ack_frame = packet_construction(0, "StartChannelListModeAck", [0])

    def run(rounds: int) -> None:
        build = packet_construction
        read = reha._read_packet
        parse = reha._calling_ack
        for count in range(rounds):
            build(count & 0xFF, "StartChannelListMode", data)
            port.load(ack_frame)
            answer = parse(read()[0])
        if answer != "Stimulation started":
            raise RuntimeError(f"ScienceMode ack parsed as {answer!r}")

    return run


def rate(run: Callable[[int], None], seconds: float, repeats: int) -> float:
    rounds = 200
    while True:  # size one run to last about `seconds`
        start = time.perf_counter()
        run(rounds)
        elapsed = time.perf_counter() - start
        if elapsed >= seconds / 4:
            break
        rounds *= 4
    rounds = max(1, int(rounds * seconds / elapsed))
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        run(rounds)
        best = min(best, time.perf_counter() - start)
    return rounds / best


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=1.0, help="length of one timed run")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs; the best is kept")
    args = parser.parse_args()

    print(f"python {platform.python_version()} on {platform.machine()}, best of {args.repeats}")
    ours = rate(stimctl_command_and_ack(), args.seconds, args.repeats)
    print(f"stimctl     command encode + ack decode   {ours:12,.0f} frames/s")
    both = rate(stimctl_command_both_ends(), args.seconds, args.repeats)
    print(f"stimctl     command encode + decode       {both:12,.0f} frames/s")
    science = sciencemode_command_and_ack()
    if isinstance(science, str):
        print(f"ScienceMode skipped: {science}")
        return 0
    theirs = rate(science, args.seconds, args.repeats)
    print(f"ScienceMode command encode + ack decode   {theirs:12,.0f} frames/s")
    print(f"ratio stimctl / ScienceMode (command encode + ack decode): {ours / theirs:.1f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
