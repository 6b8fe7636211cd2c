"""Opening the devices a session drives, including the built-in simulator.

A program names its devices ("main" unless it says otherwise). The caller gives, for the whole
program or per device name, either a URL (a VISA resource or a pyserial URL, opened by
`drivers.factory.open_stimulator`), an already constructed `Stimulator`, or nothing: then each
device is a simulated stimulator board served on a loopback socket by a thread of its own, in
real time, exactly the code path a real board over a serial link takes.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from controller.program import Program
from drivers.base import Stimulator

DeviceArg = str | Stimulator | Mapping[str, "str | Stimulator"] | None


class DeviceSetupError(Exception):
    """The devices could not be opened as asked (the message says which and what to do)."""


class _Closable(Protocol):
    def stop(self) -> None: ...


@dataclass
class OpenedDevices:
    devices: dict[str, Stimulator]
    urls: dict[str, str]
    simulators: list[Any] = field(default_factory=list)
    trace_paths: list[Path] = field(default_factory=list)

    def stop_simulators(self) -> None:
        for sim in self.simulators:
            with contextlib.suppress(Exception):
                sim.stop()
        self.simulators.clear()


def device_names(program: Program) -> list[str]:
    names: list[str] = []
    for spec in program.channels:
        if spec.device not in names:
            names.append(spec.device)
    return names


def _per_device(arg: DeviceArg, names: list[str]) -> dict[str, str | Stimulator | None]:
    if arg is None or isinstance(arg, (str, Stimulator)):
        if isinstance(arg, (str, Stimulator)) and len(names) > 1:
            raise DeviceSetupError(
                f"the program uses {len(names)} devices ({', '.join(names)}) but one device was "
                "given; pass one per name, e.g. --device main=URL --device second=URL"
            )
        return {n: arg for n in names}
    unknown = sorted(set(arg) - set(names))
    if unknown:
        raise DeviceSetupError(
            f"device name(s) {', '.join(unknown)} are not used by the program; "
            f"it uses: {', '.join(names)}"
        )
    return {n: arg.get(n) for n in names}


def parse_device_options(values: tuple[str, ...] | list[str]) -> DeviceArg:
    """CLI form: one bare URL, or NAME=URL for each device of a multi-device program."""
    if not values:
        return None
    if len(values) == 1 and "=" not in values[0].split("://", 1)[0]:
        return values[0]
    out: dict[str, str | Stimulator] = {}
    for v in values:
        name, sep, url = v.partition("=")
        if not sep or not name or not url or "://" in name:
            raise DeviceSetupError(
                f"--device {v!r}: with several devices, write NAME=URL (e.g. main=socket://...)"
            )
        out[name] = url
    return out


def start_builtin_board(trace_path: Path | None, device_name: str) -> tuple[Any, str]:
    del device_name  # the board's trace names itself; one trace file per device
    """A simulated board thread on 127.0.0.1; returns (thread handle, pyserial URL)."""
    from sim.board import BoardThread

    board = BoardThread(trace_path=trace_path)
    url = board.start()
    return board, url


async def open_stimulator_url(url: str) -> Stimulator:
    from drivers.factory import open_stimulator

    try:
        dev = open_stimulator(url)
    except ValueError as exc:
        raise DeviceSetupError(str(exc)) from None
    await dev.open()
    return dev


async def open_devices(
    arg: DeviceArg, program: Program, trace_path: str | Path | None = None
) -> OpenedDevices:
    """Open (handshake, read capabilities) every device the program uses. On any failure the
    ones already opened are closed again before the error propagates."""
    names = device_names(program)
    wanted = _per_device(arg, names)
    opened = OpenedDevices(devices={}, urls={})
    try:
        for name, target in wanted.items():
            if isinstance(target, Stimulator):
                await target.open()
                opened.devices[name] = target
                opened.urls[name] = f"<{type(target).__name__}>"
                continue
            if target is None:
                path = None
                if trace_path is not None:
                    path = Path(trace_path)
                    if len(names) > 1:
                        # One trace per simulated device, named after it.
                        path = path.with_name(f"{path.stem}-{name}{path.suffix}")
                    opened.trace_paths.append(path)
                board, url = start_builtin_board(path, name)
                opened.simulators.append(board)
                target = url
            dev = await open_stimulator_url(target)
            opened.devices[name] = dev
            opened.urls[name] = target
    except BaseException:
        for dev in opened.devices.values():
            with contextlib.suppress(Exception):
                await dev.close()
        opened.stop_simulators()
        raise
    return opened
