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
by other processes), in frames per CPU-second; one frame = one encode plus one decode.
"""

from __future__ import annotations

import argparse
import platform
import time
from collections.abc import Callable

from firmware_protocol import (
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

    def inWaiting(self) -> int:  # pyserial's (legacy) name, which _read_packet calls
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


def frame_sizes() -> str:
    command = len(Connection(Role.HOST).send(COMMAND)[1])
    ack = len(Connection(Role.DEVICE).send(Ack(acked_seq=0))[1])
    sizes = f"stimctl command {command} B, ack {ack} B"
    try:
        from pysciencemode.rehastim2_interface import Rehastim2
        from pysciencemode.utils import packet_construction
    except ImportError:
        return sizes
    msb, lsb = Rehastim2._msb_lsb_pulse_stim(250)
    their_command = len(packet_construction(0, "StartChannelListMode", [0, msb, lsb, 15]))
    their_ack = len(packet_construction(0, "StartChannelListModeAck", [0]))
    return f"{sizes}; ScienceMode command {their_command} B, ack {their_ack} B"


def _rounds_for(run: Callable[[int], None], seconds: float) -> int:
    """How many rounds one timed run needs to last about `seconds` of CPU time."""
    rounds = 200
    while True:
        start = time.process_time()
        run(rounds)
        elapsed = time.process_time() - start
        if elapsed >= seconds / 4:
            return max(1, int(rounds * seconds / elapsed))
        rounds *= 4


def rates(runs: dict[str, Callable[[int], None]], seconds: float, repeats: int) -> dict[str, float]:
    """Best rate of each run, in rounds per CPU-second.

    Timed runs of the different codecs alternate, so a burst of load from other processes
    hits all of them alike, and CPU time (not wall time) is measured, so time spent waiting
    for a core does not count against either.
    """
    sizes = {name: _rounds_for(run, seconds) for name, run in runs.items()}
    best = dict.fromkeys(runs, float("inf"))
    for _ in range(repeats):
        for name, run in runs.items():
            start = time.process_time()
            run(sizes[name])
            best[name] = min(best[name], time.process_time() - start)
    return {name: sizes[name] / best[name] for name in runs}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=1.0, help="CPU time of one timed run")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs; the best is kept")
    args = parser.parse_args()

    runs: dict[str, Callable[[int], None]] = {
        "stimctl command encode + ack decode": stimctl_command_and_ack(),
        "stimctl command encode + decode": stimctl_command_both_ends(),
    }
    science = sciencemode_command_and_ack()
    if isinstance(science, str):
        print(f"ScienceMode skipped: {science}")
    else:
        runs["ScienceMode command encode + ack decode"] = science
    print(
        f"python {platform.python_version()} on {platform.machine()}, "
        f"best of {args.repeats} runs of ~{args.seconds:g} CPU-s each"
    )
    print(f"frame sizes on the wire: {frame_sizes()}")
    measured = rates(runs, args.seconds, args.repeats)
    for name, value in measured.items():
        print(f"{name:<42}{value:12,.0f} frames/s")
    if not isinstance(science, str):
        ratio = (
            measured["stimctl command encode + ack decode"]
            / measured["ScienceMode command encode + ack decode"]
        )
        print(f"ratio stimctl / ScienceMode (command encode + ack decode): {ratio:.1f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
