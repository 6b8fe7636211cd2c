"""Message type codes and payload layouts: one entry per message, little-endian throughout.

The type code's top bit says who sends it: 0x01-0x7F host -> device, 0x81-0xFF device -> host
(0x00 and 0x80 are reserved). A receiver can therefore drop a frame of the wrong direction
before it looks the type up.

Encoding checks every field against its wire range and raises ValueError naming the field;
decoding raises `PayloadError`, which the connection turns into a `Rejected` event.
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Callable
from dataclasses import dataclass, fields
from operator import attrgetter
from typing import Any

from firmware_protocol.messages import (
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

DEVICE_BIT = 0x80
MAX_CHANNELS = 16
"""Most channel entries a HelloReply or StatusReport may carry."""
MAX_TEXT_BYTES = 32
"""Longest firmware_version or serial, in UTF-8 bytes."""


class PayloadError(ValueError):
    """A payload whose checksum was good but whose contents do not decode."""


class FieldKind(enum.Enum):
    INT = "int"
    BOOL = "bool"
    ENUM = "enum"


@dataclass(frozen=True)
class FieldSpec:
    name: str
    fmt: str
    """struct format character: B u8, H u16, I u32."""
    kind: FieldKind = FieldKind.INT
    enum_type: type[enum.IntEnum] | None = None

    @property
    def size(self) -> int:
        return struct.calcsize("<" + self.fmt)

    @property
    def fmt_name(self) -> str:
        return {"B": "u8", "H": "u16", "I": "u32"}[self.fmt]

    @property
    def wire_range(self) -> tuple[int, int]:
        if self.kind is FieldKind.BOOL:
            return (0, 1)
        return (0, (1 << (8 * self.size)) - 1)


def _u8(name: str) -> FieldSpec:
    return FieldSpec(name, "B")


def _u16(name: str) -> FieldSpec:
    return FieldSpec(name, "H")


def _u32(name: str) -> FieldSpec:
    return FieldSpec(name, "I")


def _bool(name: str) -> FieldSpec:
    return FieldSpec(name, "B", FieldKind.BOOL)


def _enum(name: str, enum_type: type[enum.IntEnum]) -> FieldSpec:
    return FieldSpec(name, "B", FieldKind.ENUM, enum_type)


def fast_constructor(cls: type[Any]) -> Callable[..., Any]:
    """A constructor taking every field positionally, for values the decoder has validated.

    A frozen dataclass's __init__ sets each field through object.__setattr__, which costs
    more than the rest of decoding a small frame; filling __dict__ directly gives an equal
    object. Classes with __post_init__ or __slots__ keep their real constructor.
    """
    if hasattr(cls, "__post_init__") or hasattr(cls, "__slots__"):
        return cls
    names = tuple(f.name for f in fields(cls))
    new = object.__new__

    def make(*values: Any) -> Any:
        obj = new(cls)
        obj.__dict__.update(zip(names, values, strict=True))
        return obj

    return make


def _decode_table(spec: FieldSpec) -> dict[int, Any]:
    if spec.kind is FieldKind.BOOL:
        return {0: False, 1: True}
    assert spec.enum_type is not None
    return {int(member): member for member in spec.enum_type}


class FlatLayout:
    """A message whose payload is a fixed sequence of integer fields."""

    def __init__(self, type_code: int, cls: type[Any], specs: tuple[FieldSpec, ...]) -> None:
        declared = [f.name for f in fields(cls)]
        if [s.name for s in specs] != declared:
            raise AssertionError(f"{cls.__name__}: layout fields {specs} != {declared}")
        self.type_code = type_code
        self.cls = cls
        self.specs = specs
        self.struct = struct.Struct("<" + "".join(s.fmt for s in specs))
        self._get: Callable[[Any], Any] | None = attrgetter(*declared) if declared else None
        self._single = len(declared) == 1
        self._checked = tuple((i, s) for i, s in enumerate(specs) if s.kind is not FieldKind.INT)
        self._tables = tuple((i, _decode_table(s), s) for i, s in self._checked)
        self._make = fast_constructor(cls)
        self._empty = cls() if not declared else None

    def encode(self, msg: Any) -> bytes:
        if self._get is None:
            return b""
        values = self._get(msg)
        if self._single:
            values = (values,)
        for index, spec in self._checked:
            _check_coded(spec, values[index], self.cls.__name__)
        try:
            return self.struct.pack(*values)
        except struct.error:
            _raise_range_error(self.cls.__name__, self.specs, values)
            raise

    def decode(self, payload: bytes) -> Any:
        if len(payload) != self.struct.size:
            raise PayloadError(
                f"{self.cls.__name__} payload must be {self.struct.size} bytes, got {len(payload)}"
            )
        if self._empty is not None:
            return self._empty  # frozen and fieldless: one instance serves every frame
        values = self.struct.unpack(payload)
        if not self._tables:
            return self._make(*values)
        converted = list(values)
        for index, table, spec in self._tables:
            value = table.get(values[index])
            if value is None:
                raise PayloadError(_bad_code_reason(spec, values[index], self.cls.__name__))
            converted[index] = value
        return self._make(*converted)


def _bad_code_reason(spec: FieldSpec, raw: int, owner: str) -> str:
    if spec.kind is FieldKind.BOOL:
        return f"{owner}.{spec.name} must be 0 or 1, got {raw}"
    assert spec.enum_type is not None
    return f"{owner}.{spec.name}: {raw} is not a {spec.enum_type.__name__}"


def _check_coded(spec: FieldSpec, value: Any, owner: str) -> None:
    if spec.kind is FieldKind.BOOL:
        if value is not True and value is not False:
            raise ValueError(f"{owner}.{spec.name} must be a bool, got {value!r}")
    elif spec.enum_type is not None and not isinstance(value, spec.enum_type):
        try:
            spec.enum_type(value)
        except ValueError:
            names = ", ".join(m.name for m in spec.enum_type)
            raise ValueError(
                f"{owner}.{spec.name} must be a {spec.enum_type.__name__} ({names}), got {value!r}"
            ) from None


def _raise_range_error(owner: str, specs: tuple[FieldSpec, ...], values: tuple[Any, ...]) -> None:
    for spec, value in zip(specs, values, strict=True):
        low, high = spec.wire_range
        if not isinstance(value, int):
            raise ValueError(f"{owner}.{spec.name} must be an int, got {value!r}")  # noqa: TRY004
        if not low <= value <= high:
            raise ValueError(
                f"{owner}.{spec.name}={value} does not fit the wire field "
                f"({spec.fmt_name}, {low}..{high})"
            )


# ---- the two variable-length replies -------------------------------------------------------

_FLAG_CAN_ALTERNATE = 0x01
_FLAG_ALTERNATION_RUNNING = 0x01
_FLAG_FAULT_LATCHED = 0x02
_FLAG_OUTPUT_ON = 0x01
_FLAG_COMPLIANCE = 0x02
_ALL_WAVEFORM_BITS = sum(1 << int(code) for code in WaveformCode)

CHANNEL_INFO_SPECS = (
    _u8("channel"),
    _u32("max_amplitude_ua"),
    _u16("resolution_ua"),
    _u32("min_frequency_mhz"),
    _u32("max_frequency_mhz"),
    _u16("min_pulse_width_us"),
    _u16("max_pulse_width_us"),
    _u32("compliance_mv"),
    FieldSpec("waveforms", "B"),
)
CHANNEL_STATE_SPECS = (
    _u8("channel"),
    FieldSpec("flags", "B"),
    _u32("set_ua"),
    _u32("measured_ua"),
    _u32("load_ohm"),
)
HELLO_REPLY_HEAD_SPECS = (
    _u16("acked_seq"),
    _u8("protocol_version"),
    _u8("protocol_minor"),
    _u16("watchdog_timeout_ms"),
    FieldSpec("flags", "B"),
)
STATUS_HEAD_SPECS = (
    _u16("acked_seq"),
    _u32("uptime_ms"),
    FieldSpec("flags", "B"),
    _u8("channel_count"),
)

_CHANNEL_INFO = struct.Struct("<" + "".join(s.fmt for s in CHANNEL_INFO_SPECS))
_CHANNEL_STATE = struct.Struct("<" + "".join(s.fmt for s in CHANNEL_STATE_SPECS))
_HELLO_REPLY_HEAD = struct.Struct("<" + "".join(s.fmt for s in HELLO_REPLY_HEAD_SPECS))
_STATUS_HEAD = struct.Struct("<" + "".join(s.fmt for s in STATUS_HEAD_SPECS))


def _pack(owner: str, layout: struct.Struct, specs: tuple[FieldSpec, ...], *values: Any) -> bytes:
    try:
        return layout.pack(*values)
    except struct.error:
        _raise_range_error(owner, specs, values)
        raise


def _encode_text(owner: str, name: str, text: str) -> bytes:
    if not isinstance(text, str):
        raise ValueError(f"{owner}.{name} must be a str, got {text!r}")  # noqa: TRY004
    raw = text.encode("utf-8")
    if len(raw) > MAX_TEXT_BYTES:
        raise ValueError(
            f"{owner}.{name} is {len(raw)} UTF-8 bytes; the wire allows {MAX_TEXT_BYTES}"
        )
    return _CODE_BYTE[len(raw)] + raw


_CODE_BYTE = tuple(bytes((n,)) for n in range(256))


def _check_channel_count(owner: str, count: int) -> None:
    if count > MAX_CHANNELS:
        raise ValueError(f"{owner} carries {count} channels; the wire allows {MAX_CHANNELS}")


class HelloReplyLayout:
    type_code = 0x81
    cls = HelloReply

    def encode(self, msg: HelloReply) -> bytes:
        owner = "HelloReply"
        _check_coded(_bool("can_alternate"), msg.can_alternate, owner)
        _check_channel_count(owner, len(msg.channels))
        parts = [
            _pack(
                owner,
                _HELLO_REPLY_HEAD,
                HELLO_REPLY_HEAD_SPECS,
                msg.acked_seq,
                msg.protocol_version,
                msg.protocol_minor,
                msg.watchdog_timeout_ms,
                _FLAG_CAN_ALTERNATE if msg.can_alternate else 0,
            ),
            _encode_text(owner, "firmware_version", msg.firmware_version),
            _encode_text(owner, "serial", msg.serial),
            _CODE_BYTE[len(msg.channels)],
        ]
        for info in msg.channels:
            parts.append(_encode_channel_info(info))
        return b"".join(parts)

    def decode(self, payload: bytes) -> HelloReply:
        owner = "HelloReply"
        reader = _Reader(owner, payload)
        acked_seq, version, minor, watchdog_ms, flags = reader.unpack(_HELLO_REPLY_HEAD)
        if flags & ~_FLAG_CAN_ALTERNATE:
            raise PayloadError(f"{owner}.flags has reserved bits set: 0x{flags:02X}")
        firmware_version = reader.text("firmware_version")
        serial = reader.text("serial")
        count = reader.count("channel_count")
        channels = tuple(_decode_channel_info(reader.unpack(_CHANNEL_INFO)) for _ in range(count))
        reader.finish()
        return HelloReply(
            acked_seq=acked_seq,
            protocol_version=version,
            firmware_version=firmware_version,
            serial=serial,
            watchdog_timeout_ms=watchdog_ms,
            can_alternate=bool(flags & _FLAG_CAN_ALTERNATE),
            channels=channels,
            protocol_minor=minor,
        )


def _encode_channel_info(info: ChannelInfo) -> bytes:
    owner = "ChannelInfo"
    bits = 0
    for code in info.waveforms:
        _check_coded(_enum("waveforms", WaveformCode), code, owner)
        bits |= 1 << int(code)
    return _pack(
        owner,
        _CHANNEL_INFO,
        CHANNEL_INFO_SPECS,
        info.channel,
        info.max_amplitude_ua,
        info.resolution_ua,
        info.min_frequency_mhz,
        info.max_frequency_mhz,
        info.min_pulse_width_us,
        info.max_pulse_width_us,
        info.compliance_mv,
        bits,
    )


def _decode_channel_info(values: tuple[Any, ...]) -> ChannelInfo:
    channel, max_ua, resolution_ua, min_mhz, max_mhz, min_pw_us, max_pw_us, compliance_mv, bits = (
        values
    )
    if bits & ~_ALL_WAVEFORM_BITS:
        raise PayloadError(f"ChannelInfo.waveforms has undefined bits set: 0x{bits:02X}")
    waveforms = frozenset(code for code in WaveformCode if bits & (1 << int(code)))
    return ChannelInfo(
        channel=channel,
        max_amplitude_ua=max_ua,
        resolution_ua=resolution_ua,
        min_frequency_mhz=min_mhz,
        max_frequency_mhz=max_mhz,
        min_pulse_width_us=min_pw_us,
        max_pulse_width_us=max_pw_us,
        compliance_mv=compliance_mv,
        waveforms=waveforms,
    )


class StatusReportLayout:
    type_code = 0x84
    cls = StatusReport

    def encode(self, msg: StatusReport) -> bytes:
        owner = "StatusReport"
        _check_coded(_bool("alternation_running"), msg.alternation_running, owner)
        _check_coded(_bool("fault_latched"), msg.fault_latched, owner)
        _check_channel_count(owner, len(msg.channels))
        flags = (_FLAG_ALTERNATION_RUNNING if msg.alternation_running else 0) | (
            _FLAG_FAULT_LATCHED if msg.fault_latched else 0
        )
        parts = [
            _pack(
                owner,
                _STATUS_HEAD,
                STATUS_HEAD_SPECS,
                msg.acked_seq,
                msg.uptime_ms,
                flags,
                len(msg.channels),
            )
        ]
        for state in msg.channels:
            parts.append(_encode_channel_state(state))
        return b"".join(parts)

    def decode(self, payload: bytes) -> StatusReport:
        owner = "StatusReport"
        reader = _Reader(owner, payload)
        acked_seq, uptime_ms, flags, count = reader.unpack(_STATUS_HEAD)
        if flags & ~(_FLAG_ALTERNATION_RUNNING | _FLAG_FAULT_LATCHED):
            raise PayloadError(f"{owner}.flags has reserved bits set: 0x{flags:02X}")
        if count > MAX_CHANNELS:
            raise PayloadError(f"{owner}.channel_count {count} exceeds {MAX_CHANNELS}")
        channels = tuple(_decode_channel_state(reader.unpack(_CHANNEL_STATE)) for _ in range(count))
        reader.finish()
        return StatusReport(
            acked_seq=acked_seq,
            uptime_ms=uptime_ms,
            alternation_running=bool(flags & _FLAG_ALTERNATION_RUNNING),
            fault_latched=bool(flags & _FLAG_FAULT_LATCHED),
            channels=channels,
        )


def _encode_channel_state(state: ChannelState) -> bytes:
    owner = "ChannelState"
    _check_coded(_bool("output_on"), state.output_on, owner)
    _check_coded(_bool("compliance"), state.compliance, owner)
    flags = (_FLAG_OUTPUT_ON if state.output_on else 0) | (
        _FLAG_COMPLIANCE if state.compliance else 0
    )
    return _pack(
        owner,
        _CHANNEL_STATE,
        CHANNEL_STATE_SPECS,
        state.channel,
        flags,
        state.set_ua,
        state.measured_ua,
        state.load_ohm,
    )


def _decode_channel_state(values: tuple[Any, ...]) -> ChannelState:
    channel, flags, set_ua, measured_ua, load_ohm = values
    if flags & ~(_FLAG_OUTPUT_ON | _FLAG_COMPLIANCE):
        raise PayloadError(f"ChannelState.flags has reserved bits set: 0x{flags:02X}")
    return ChannelState(
        channel=channel,
        output_on=bool(flags & _FLAG_OUTPUT_ON),
        set_ua=set_ua,
        measured_ua=measured_ua,
        compliance=bool(flags & _FLAG_COMPLIANCE),
        load_ohm=load_ohm,
    )


class _Reader:
    """Walks a variable-length payload, turning every shortfall into a PayloadError."""

    def __init__(self, owner: str, payload: bytes) -> None:
        self.owner = owner
        self.payload = payload
        self.offset = 0

    def unpack(self, layout: struct.Struct) -> tuple[Any, ...]:
        end = self.offset + layout.size
        if end > len(self.payload):
            raise PayloadError(
                f"{self.owner} payload ends at byte {len(self.payload)}; needed {end} bytes"
            )
        values = layout.unpack_from(self.payload, self.offset)
        self.offset = end
        return values

    def count(self, name: str) -> int:
        (count,) = self.unpack(_U8)
        if count > MAX_CHANNELS:
            raise PayloadError(f"{self.owner}.{name} {count} exceeds {MAX_CHANNELS}")
        return int(count)

    def text(self, name: str) -> str:
        (length,) = self.unpack(_U8)
        if length > MAX_TEXT_BYTES:
            raise PayloadError(f"{self.owner}.{name} length {length} exceeds {MAX_TEXT_BYTES}")
        end = self.offset + length
        if end > len(self.payload):
            raise PayloadError(f"{self.owner}.{name} runs past the end of the payload")
        raw = self.payload[self.offset : end]
        self.offset = end
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise PayloadError(f"{self.owner}.{name} is not valid UTF-8") from None

    def finish(self) -> None:
        if self.offset != len(self.payload):
            raise PayloadError(
                f"{self.owner} payload has {len(self.payload) - self.offset} bytes "
                "after its last field"
            )


_U8 = struct.Struct("<B")


# ---- the registry ------------------------------------------------------------------------

Layout = FlatLayout | HelloReplyLayout | StatusReportLayout

LAYOUTS: tuple[Layout, ...] = (
    FlatLayout(0x01, Hello, (_u8("protocol_version"), _u8("protocol_minor"))),
    FlatLayout(0x02, Goodbye, ()),
    FlatLayout(
        0x03,
        ConfigureChannel,
        (
            _u8("channel"),
            _enum("waveform", WaveformCode),
            _u32("amplitude_ua"),
            _u32("frequency_mhz"),
            _u16("pulse_width_us"),
            _u16("interphase_gap_us"),
            _u16("asymmetry_ratio_pct"),
            _u32("carrier_hz"),
            _u32("modulation_mhz"),
            _u8("modulation_depth_pct"),
        ),
    ),
    FlatLayout(0x04, SetAmplitude, (_u8("channel"), _u32("amplitude_ua"))),
    FlatLayout(0x05, SetOutput, (_u8("channel"), _bool("on"))),
    FlatLayout(
        0x06,
        ProgramAlternation,
        (
            _u8("channel_a"),
            _u8("channel_b"),
            _u32("on_ms"),
            _u32("dead_time_ms"),
            _u32("rest_ms"),
            _u32("ramp_up_ms"),
            _u32("ramp_down_ms"),
        ),
    ),
    FlatLayout(0x07, StartAlternation, ()),
    FlatLayout(0x08, StopAlternation, ()),
    FlatLayout(0x09, EmergencyStop, ()),
    FlatLayout(0x0A, ClearFaults, ()),
    FlatLayout(0x0B, Heartbeat, (_u32("counter"),)),
    FlatLayout(0x0C, StatusRequest, ()),
    HelloReplyLayout(),
    FlatLayout(0x82, Ack, (_u16("acked_seq"),)),
    FlatLayout(
        0x83,
        Nack,
        (_u16("acked_seq"), _enum("code", NackCode), _u8("field_index")),
    ),
    StatusReportLayout(),
    FlatLayout(
        0x85,
        FaultReport,
        (_enum("code", FaultCode), _u8("channel"), _u32("detail")),
    ),
)

BY_TYPE_CODE: dict[int, Layout] = {layout.type_code: layout for layout in LAYOUTS}
BY_CLASS: dict[type[Any], Layout] = {layout.cls: layout for layout in LAYOUTS}
TYPE_CODE: dict[type[Any], int] = {layout.cls: layout.type_code for layout in LAYOUTS}


def is_device_type(type_code: int) -> bool:
    return bool(type_code & DEVICE_BIT)


def encode_payload(msg: Message) -> tuple[int, bytes]:
    """(type code, payload bytes). Raises ValueError for a field the wire cannot carry."""
    layout = BY_CLASS.get(type(msg))
    if layout is None:
        raise ValueError(f"{type(msg).__name__} is not a firmware protocol message")
    return layout.type_code, layout.encode(msg)  # type: ignore[arg-type]


def decode_payload(type_code: int, payload: bytes) -> Message:
    """Raises KeyError for an unknown type code and PayloadError for a bad payload."""
    result: Message = BY_TYPE_CODE[type_code].decode(payload)
    return result
