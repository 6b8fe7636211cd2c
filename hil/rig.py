"""Rig configuration: what a HIL bench is made of, read from a TOML file.

A rig names its stimulating devices (a resource string or URL and a family), wires logical
channels to device outputs, says which dummy load sits on each channel, and optionally adds an
independent measurement instrument (a DMM across a shunt, or an oscilloscope) and a hardware
emergency-stop input (a modem-status line of a serial port). The resource ``"sim"`` stands for
the built-in simulator of the device's family, started fresh for every scenario, so the default
rig (examples/rigs/sim.toml) needs no hardware.

Every error is a `RigError` that names the file and the key path (``device[0].family``) and
says what is allowed. The parsed rig is a tree of frozen dataclasses; nothing in it is live.
"""

from __future__ import annotations

import difflib
import math
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

Family = Literal["board", "k6221", "k33500b"]
FAMILIES: tuple[Family, ...] = ("board", "k6221", "k33500b")
SIM_RESOURCE = "sim"

ElectrodeKind = Literal["pad", "needle"]
MeterKind = Literal["dmm", "scope"]
EstopLine = Literal["cts", "dsr"]
EstopActive = Literal["low", "high"]


class RigError(ValueError):
    """A rig file is unreadable or wrong. Carries the file and the key path."""

    def __init__(self, source: str, key: str, message: str) -> None:
        where = f"{source}: {key}" if key else source
        super().__init__(f"{where}: {message}")
        self.source = source
        self.key = key
        self.reason = message


@dataclass(frozen=True)
class OutputStage:
    """What sits between a device output and the load: a voltage-to-current stage after a
    generator (transconductance) and the compliance voltage of whatever drives the load."""

    output: int
    transconductance_ma_per_v: float | None = None
    compliance_v: float | None = None


@dataclass(frozen=True)
class DeviceSpec:
    name: str
    family: Family
    resource: str
    """A VISA resource string, a pyserial URL or device path, or "sim"."""
    outputs: tuple[OutputStage, ...] = ()
    sim_options: Mapping[str, Any] = field(default_factory=dict)
    """Keyword options for the built-in simulator (e.g. BoardConfig fields); only with "sim"."""
    timeout_s: float | None = None

    @property
    def simulated(self) -> bool:
        return self.resource == SIM_RESOURCE

    def stage(self, output: int) -> OutputStage | None:
        for st in self.outputs:
            if st.output == output:
                return st
        return None


@dataclass(frozen=True)
class LoadSpec:
    """A dummy load as the sim's load model describes it (sim/load.py): R_s + (R_p || C_p)."""

    name: str
    series_ohm: float = 500.0
    parallel_ohm: float = 1000.0
    parallel_uf: float = 1.0


@dataclass(frozen=True)
class ElectrodeSpec:
    kind: ElectrodeKind
    area_cm2: float


@dataclass(frozen=True)
class ChannelWiring:
    """A logical channel: which device output drives it, into which load."""

    name: str
    device: str
    output: int
    electrode: ElectrodeSpec
    load: str | None = None


@dataclass(frozen=True)
class MeterSpec:
    """An independent instrument that reads the current delivered to one channel.

    dmm: a DMM measuring AC+DC RMS volts across shunt_ohm in series with the load; current is
    V / shunt_ohm. scope: an oscilloscope channel across the same shunt, read as V peak-to-peak
    / 2. Either is polled every poll_interval_s; a channel counts as active above
    active_threshold_ma.
    """

    kind: MeterKind
    resource: str
    channel: str
    shunt_ohm: float
    poll_interval_s: float = 0.05
    active_threshold_ma: float = 0.5
    scope_source: str = "CHAN1"
    timeout_s: float = 2.0


@dataclass(frozen=True)
class EstopSpec:
    """A hardware e-stop wired to a modem-status input of a serial port.

    active = "low" suits a normally-closed button fed from RTS/DTR: pressing it (or a cut wire)
    drops the line, so a broken circuit also stops. "loop://" is pyserial's loopback, where
    RTS drives CTS and DTR drives DSR, so a simulated rig can press the button in software.
    """

    port: str
    line: EstopLine = "cts"
    active: EstopActive = "low"
    poll_interval_s: float = 0.005


@dataclass(frozen=True)
class ScenarioSettings:
    """The stimulation the safety scenarios use on this rig (kept low: a dummy load or a
    volunteer may be on the bench)."""

    profile: str = "body"
    agonist: str = ""
    antagonist: str = ""
    amplitude_ma: float = 10.0
    frequency_hz: float = 50.0
    pulse_width_us: float = 200.0
    ramp_s: float = 0.5
    on_s: float = 2.0
    off_s: float = 2.0
    dead_time_s: float = 0.1
    session_limit_s: float = 6.0
    """The tightened session maximum used by the session time-limit scenario."""
    estop_latency_limit_s: float = 0.05
    comms_loss_limit_s: float = 0.1
    """Outputs must be off this soon after the link goes silent, whatever watchdog the device
    advertises (a device with a slower or no watchdog fails the comms-loss scenario)."""
    fault_latency_limit_s: float = 0.1
    manual_action_timeout_s: float = 30.0


@dataclass(frozen=True)
class Rig:
    name: str
    source: str
    devices: tuple[DeviceSpec, ...]
    channels: tuple[ChannelWiring, ...]
    loads: tuple[LoadSpec, ...] = ()
    meter: MeterSpec | None = None
    estop: EstopSpec | None = None
    scenario: ScenarioSettings = field(default_factory=ScenarioSettings)
    description: str = ""

    def device(self, name: str) -> DeviceSpec:
        for dev in self.devices:
            if dev.name == name:
                return dev
        raise KeyError(f"rig {self.name!r} has no device {name!r}")

    def channel(self, name: str) -> ChannelWiring:
        for ch in self.channels:
            if ch.name == name:
                return ch
        known = ", ".join(c.name for c in self.channels)
        raise KeyError(f"rig {self.name!r} has no channel {name!r} (channels: {known})")

    def load(self, name: str) -> LoadSpec:
        for ld in self.loads:
            if ld.name == name:
                return ld
        raise KeyError(f"rig {self.name!r} has no load {name!r}")

    @property
    def all_simulated(self) -> bool:
        return all(d.simulated for d in self.devices)

    @property
    def pair(self) -> tuple[ChannelWiring, ChannelWiring]:
        return self.channel(self.scenario.agonist), self.channel(self.scenario.antagonist)


# ---- parsing -------------------------------------------------------------------------------


class _Table:
    """One TOML table being read: tracks which keys were used so leftovers are errors."""

    def __init__(self, source: str, key: str, data: Any) -> None:
        if not isinstance(data, dict):
            raise RigError(source, key, f"must be a table, got {type(data).__name__}")
        self.source = source
        self.key = key
        self.data: dict[str, Any] = data
        self.used: set[str] = set()

    def path(self, name: str) -> str:
        return f"{self.key}.{name}" if self.key else name

    def _get(self, name: str) -> Any:
        self.used.add(name)
        return self.data.get(name)

    def has(self, name: str) -> bool:
        return name in self.data

    def str_(self, name: str, default: str | None = None, *, choices: tuple[str, ...] = ()) -> str:
        value = self._get(name)
        if value is None:
            if default is None:
                raise RigError(self.source, self.path(name), "is missing" + _hint(choices))
            return default
        if not isinstance(value, str) or not value.strip():
            raise RigError(
                self.source, self.path(name), f"must be a non-empty string, got {value!r}"
            )
        if choices and value not in choices:
            raise RigError(
                self.source, self.path(name), f"is {value!r}; allowed: {', '.join(choices)}"
            )
        return value

    def num(
        self,
        name: str,
        default: float | None = None,
        *,
        positive: bool = True,
        allow_zero: bool = False,
    ) -> float:
        value = self._get(name)
        if value is None:
            if default is None:
                raise RigError(self.source, self.path(name), "is missing (a number)")
            return default
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise RigError(self.source, self.path(name), f"must be a number, got {value!r}")
        v = float(value)
        if not math.isfinite(v):
            raise RigError(self.source, self.path(name), f"must be finite, got {value!r}")
        if positive and (v < 0 or (v == 0 and not allow_zero)):
            need = ">= 0" if allow_zero else "> 0"
            raise RigError(self.source, self.path(name), f"must be {need}, got {value!r}")
        return v

    def opt_num(self, name: str) -> float | None:
        if self.data.get(name) is None:
            self.used.add(name)
            return None
        return self.num(name)

    def int_(self, name: str, default: int | None = None, *, minimum: int = 1) -> int:
        value = self._get(name)
        if value is None:
            if default is None:
                raise RigError(self.source, self.path(name), "is missing (an integer)")
            return default
        if isinstance(value, bool) or not isinstance(value, int):
            raise RigError(self.source, self.path(name), f"must be an integer, got {value!r}")
        if value < minimum:
            raise RigError(self.source, self.path(name), f"must be >= {minimum}, got {value}")
        return value

    def table(self, name: str) -> _Table | None:
        value = self._get(name)
        if value is None:
            return None
        return _Table(self.source, self.path(name), value)

    def array(self, name: str) -> list[_Table]:
        value = self._get(name)
        if value is None:
            return []
        if not isinstance(value, list):
            raise RigError(self.source, self.path(name), f"must be an array of tables ([[{name}]])")
        return [_Table(self.source, f"{self.path(name)}[{i}]", v) for i, v in enumerate(value)]

    def finish(self, allowed: tuple[str, ...]) -> None:
        for key in self.data:
            if key not in self.used:
                close = difflib.get_close_matches(key, allowed, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise RigError(
                    self.source,
                    self.path(key),
                    f"unknown key{hint}; allowed here: {', '.join(allowed)}",
                )


def _hint(choices: tuple[str, ...]) -> str:
    return f"; one of: {', '.join(choices)}" if choices else ""


_DEVICE_KEYS = ("name", "family", "resource", "output", "sim", "timeout_s")
_OUTPUT_KEYS = ("output", "transconductance_ma_per_v", "compliance_v")
_CHANNEL_KEYS = ("name", "device", "output", "electrode", "load")
_LOAD_KEYS = ("name", "series_ohm", "parallel_ohm", "parallel_uf")
_METER_KEYS = (
    "kind",
    "resource",
    "channel",
    "shunt_ohm",
    "poll_interval_s",
    "active_threshold_ma",
    "scope_source",
    "timeout_s",
)
_ESTOP_KEYS = ("port", "line", "active", "poll_interval_s")
_SCENARIO_KEYS = tuple(ScenarioSettings.__dataclass_fields__)
_TOP_KEYS = ("rig", "device", "channel", "load", "meter", "estop", "scenario")


def _parse_device(t: _Table) -> DeviceSpec:
    family = t.str_("family", choices=FAMILIES)
    resource = t.str_("resource")
    outputs: list[OutputStage] = []
    seen: set[int] = set()
    for ot in t.array("output"):
        number = ot.int_("output")
        if number in seen:
            raise RigError(ot.source, ot.path("output"), f"output {number} is listed twice")
        seen.add(number)
        outputs.append(
            OutputStage(
                number,
                transconductance_ma_per_v=ot.opt_num("transconductance_ma_per_v"),
                compliance_v=ot.opt_num("compliance_v"),
            )
        )
        ot.finish(_OUTPUT_KEYS)
    if family == "k33500b" and resource != SIM_RESOURCE:
        # A generator puts out volts: without the stage's gain no current can be computed.
        for number in (1, 2):
            st = next((o for o in outputs if o.output == number), None)
            if st is None or st.transconductance_ma_per_v is None:
                raise RigError(
                    t.source,
                    t.path("output"),
                    f"a 33500B needs transconductance_ma_per_v for output {number} "
                    "(the gain of its voltage-to-current stage, e.g. 5.0)",
                )
    sim = t.table("sim")
    sim_options: dict[str, Any] = {}
    if sim is not None:
        if resource != SIM_RESOURCE:
            raise RigError(t.source, sim.key, 'simulator options apply only with resource = "sim"')
        sim_options = dict(sim.data)
    timeout_s = t.opt_num("timeout_s")
    name = t.str_("name", "main")
    t.finish(_DEVICE_KEYS)
    return DeviceSpec(name, family, resource, tuple(outputs), sim_options, timeout_s)  # type: ignore[arg-type]


def _parse_channel(
    t: _Table, devices: dict[str, DeviceSpec], loads: dict[str, LoadSpec]
) -> ChannelWiring:
    name = t.str_("name")
    device = t.str_("device", "main")
    if device not in devices:
        raise RigError(
            t.source, t.path("device"), f"no device named {device!r}; devices: {', '.join(devices)}"
        )
    output = t.int_("output")
    family = devices[device].family
    max_outputs = {"k6221": 1, "k33500b": 2}.get(family)
    if max_outputs is not None and output > max_outputs:
        raise RigError(
            t.source, t.path("output"), f"a {family} has outputs 1..{max_outputs}, got {output}"
        )
    et = t.table("electrode")
    if et is None:
        raise RigError(
            t.source,
            t.path("electrode"),
            'is missing; e.g. electrode = { kind = "pad", area_cm2 = 25.0 }',
        )
    kind = et.str_("kind", choices=("pad", "needle"))
    area = et.num("area_cm2", 0.08 if kind == "needle" else None)
    et.finish(("kind", "area_cm2"))
    load: str | None = None
    if t.has("load"):
        load = t.str_("load")
        if load not in loads:
            known = ", ".join(loads) or "none defined"
            raise RigError(t.source, t.path("load"), f"no [[load]] named {load!r} ({known})")
    t.finish(_CHANNEL_KEYS)
    return ChannelWiring(name, device, output, ElectrodeSpec(kind, area), load)  # type: ignore[arg-type]


def _parse_scenario(t: _Table | None, channels: dict[str, ChannelWiring]) -> ScenarioSettings:
    names = list(channels)
    defaults = ScenarioSettings(
        agonist=names[0] if names else "", antagonist=names[1] if len(names) > 1 else ""
    )
    if t is None:
        return defaults
    values: dict[str, Any] = {}
    for key in ScenarioSettings.__dataclass_fields__:
        default = getattr(defaults, key)
        if isinstance(default, str):
            values[key] = t.str_(key) if t.has(key) else default
        else:
            values[key] = t.num(key, float(default))
    t.finish(_SCENARIO_KEYS)
    s = ScenarioSettings(**values)
    for key in ("agonist", "antagonist"):
        name = getattr(s, key)
        if name and name not in channels:
            raise RigError(
                t.source, t.path(key), f"no channel named {name!r}; channels: {', '.join(names)}"
            )
    if s.agonist and s.agonist == s.antagonist:
        raise RigError(t.source, t.path("antagonist"), "must differ from the agonist")
    if s.on_s <= 2 * s.ramp_s:
        raise RigError(
            t.source, t.path("on_s"), f"must exceed 2 x ramp_s ({2 * s.ramp_s:g} s), got {s.on_s:g}"
        )
    return s


def parse_rig(data: Mapping[str, Any], source: str = "<rig>") -> Rig:
    top = _Table(source, "", dict(data))
    rig_t = top.table("rig")
    name = "rig"
    description = ""
    if rig_t is not None:
        name = rig_t.str_("name", "rig")
        description = rig_t.str_("description", "") if rig_t.has("description") else ""
        rig_t.finish(("name", "description"))

    devices: dict[str, DeviceSpec] = {}
    device_tables = top.array("device")
    if not device_tables:
        raise RigError(
            source,
            "device",
            'is missing: add at least one [[device]] (resource = "sim" for the simulator)',
        )
    for dt in device_tables:
        dev = _parse_device(dt)
        if dev.name in devices:
            raise RigError(source, dt.path("name"), f"device name {dev.name!r} is used twice")
        devices[dev.name] = dev

    loads: dict[str, LoadSpec] = {}
    for lt in top.array("load"):
        ld = LoadSpec(
            lt.str_("name"),
            lt.num("series_ohm", 500.0, allow_zero=True),
            lt.num("parallel_ohm", 1000.0, allow_zero=True),
            lt.num("parallel_uf", 1.0, allow_zero=True),
        )
        lt.finish(_LOAD_KEYS)
        if ld.name in loads:
            raise RigError(source, lt.path("name"), f"load name {ld.name!r} is used twice")
        loads[ld.name] = ld

    channels: dict[str, ChannelWiring] = {}
    used_outputs: dict[tuple[str, int], str] = {}
    channel_tables = top.array("channel")
    if not channel_tables:
        raise RigError(
            source, "channel", "is missing: wire at least one [[channel]] to a device output"
        )
    for ct in channel_tables:
        ch = _parse_channel(ct, devices, loads)
        if ch.name in channels:
            raise RigError(source, ct.path("name"), f"channel name {ch.name!r} is used twice")
        other = used_outputs.get((ch.device, ch.output))
        if other is not None:
            raise RigError(
                source,
                ct.path("output"),
                f"{ch.device} output {ch.output} is already wired to {other!r}",
            )
        used_outputs[(ch.device, ch.output)] = ch.name
        channels[ch.name] = ch

    meter: MeterSpec | None = None
    mt = top.table("meter")
    if mt is not None:
        kind = mt.str_("kind", choices=("dmm", "scope"))
        channel = mt.str_("channel")
        if channel not in channels:
            raise RigError(
                source,
                mt.path("channel"),
                f"no channel named {channel!r}; channels: {', '.join(channels)}",
            )
        meter = MeterSpec(
            kind,  # type: ignore[arg-type]
            mt.str_("resource"),
            channel,
            mt.num("shunt_ohm"),
            mt.num("poll_interval_s", 0.05),
            mt.num("active_threshold_ma", 0.5),
            mt.str_("scope_source", "CHAN1"),
            mt.num("timeout_s", 2.0),
        )
        mt.finish(_METER_KEYS)

    estop: EstopSpec | None = None
    et = top.table("estop")
    if et is not None:
        estop = EstopSpec(
            et.str_("port"),
            et.str_("line", "cts", choices=("cts", "dsr")),  # type: ignore[arg-type]
            et.str_("active", "low", choices=("low", "high")),  # type: ignore[arg-type]
            et.num("poll_interval_s", 0.005),
        )
        et.finish(_ESTOP_KEYS)

    scenario = _parse_scenario(top.table("scenario"), channels)
    if meter is not None and meter.channel != scenario.agonist:
        raise RigError(
            source,
            "meter.channel",
            f"is {meter.channel!r}, but the scenarios drive and watch the agonist "
            f"{scenario.agonist!r}: point the meter at it, or set [scenario] agonist",
        )
    top.finish(_TOP_KEYS)
    return Rig(
        name=name,
        source=source,
        devices=tuple(devices.values()),
        channels=tuple(channels.values()),
        loads=tuple(loads.values()),
        meter=meter,
        estop=estop,
        scenario=scenario,
        description=description,
    )


def load_rig(path: str | Path) -> Rig:
    """Read and validate a rig file. Raises RigError naming the file and key."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RigError(
            str(p), "", "no such file; the default simulated rig is examples/rigs/sim.toml"
        ) from None
    except OSError as exc:
        raise RigError(str(p), "", f"cannot read: {exc.strerror}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise RigError(str(p), "", f"not valid TOML: {exc}") from None
    return parse_rig(data, str(p))


DEFAULT_RIG_TOML = """\
[rig]
name = "sim"
description = "The built-in simulated stimulator board: no hardware needed."

[[device]]
name = "main"
family = "board"
resource = "sim"

[[load]]
name = "iec-500"
series_ohm = 500.0
parallel_ohm = 1000.0
parallel_uf = 1.0

[[channel]]
name = "biceps"
device = "main"
output = 1
electrode = { kind = "pad", area_cm2 = 25.0 }
load = "iec-500"

[[channel]]
name = "triceps"
device = "main"
output = 2
electrode = { kind = "pad", area_cm2 = 25.0 }
load = "iec-500"

[estop]
port = "loop://"
line = "cts"
active = "low"

[scenario]
profile = "body"
agonist = "biceps"
antagonist = "triceps"
"""


def default_rig() -> Rig:
    """The simulated rig that CI and `stimctl hil run` without --rig use."""
    return parse_rig(tomllib.loads(DEFAULT_RIG_TOML), "<built-in sim rig>")
