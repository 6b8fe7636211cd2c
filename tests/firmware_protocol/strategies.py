"""Hypothesis strategies for every board protocol message, fields anywhere in their wire range."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from firmware_protocol.layouts import (
    DEVICE_BIT,
    LAYOUTS,
    MAX_CHANNELS,
    MAX_TEXT_BYTES,
    TYPE_CODE,
    FieldKind,
    FieldSpec,
    FlatLayout,
)
from firmware_protocol.messages import (
    ChannelInfo,
    ChannelState,
    HelloReply,
    Message,
    StatusReport,
    WaveformCode,
)


def _field(spec: FieldSpec) -> st.SearchStrategy[Any]:
    if spec.kind is FieldKind.BOOL:
        return st.booleans()
    if spec.kind is FieldKind.ENUM:
        assert spec.enum_type is not None
        return st.sampled_from(list(spec.enum_type))
    low, high = spec.wire_range
    return st.integers(low, high)


def _flat(layout: FlatLayout) -> st.SearchStrategy[Message]:
    return st.builds(layout.cls, *[_field(spec) for spec in layout.specs])


u8 = st.integers(0, 0xFF)
u16 = st.integers(0, 0xFFFF)
u32 = st.integers(0, 0xFFFF_FFFF)

channel_info = st.builds(
    ChannelInfo,
    channel=u8,
    max_amplitude_ua=u32,
    resolution_ua=u16,
    min_frequency_mhz=u32,
    max_frequency_mhz=u32,
    min_pulse_width_us=u16,
    max_pulse_width_us=u16,
    compliance_mv=u32,
    waveforms=st.frozensets(st.sampled_from(list(WaveformCode))),
)
channel_state = st.builds(
    ChannelState,
    channel=u8,
    output_on=st.booleans(),
    set_ua=u32,
    measured_ua=u32,
    compliance=st.booleans(),
    load_ohm=u32,
)


def _text() -> st.SearchStrategy[str]:
    return st.text(max_size=MAX_TEXT_BYTES).filter(
        lambda s: len(s.encode("utf-8")) <= MAX_TEXT_BYTES
    )


hello_reply = st.builds(
    HelloReply,
    acked_seq=u16,
    protocol_version=u8,
    firmware_version=_text(),
    serial=_text(),
    watchdog_timeout_ms=u16,
    can_alternate=st.booleans(),
    channels=st.lists(channel_info, max_size=MAX_CHANNELS).map(tuple),
    protocol_minor=u8,
)
status_report = st.builds(
    StatusReport,
    acked_seq=u16,
    uptime_ms=u32,
    alternation_running=st.booleans(),
    fault_latched=st.booleans(),
    channels=st.lists(channel_state, max_size=MAX_CHANNELS).map(tuple),
)

_BY_CLASS: dict[type[Any], st.SearchStrategy[Message]] = {}
for _layout in LAYOUTS:
    if isinstance(_layout, FlatLayout):
        _BY_CLASS[_layout.cls] = _flat(_layout)
_BY_CLASS[HelloReply] = hello_reply
_BY_CLASS[StatusReport] = status_report


def message_of(cls: type[Any]) -> st.SearchStrategy[Message]:
    return _BY_CLASS[cls]


def _is_device(cls: type[Any]) -> bool:
    return bool(TYPE_CODE[cls] & DEVICE_BIT)


host_message: st.SearchStrategy[Message] = st.one_of(
    *[s for c, s in _BY_CLASS.items() if not _is_device(c)]
)
device_message: st.SearchStrategy[Message] = st.one_of(
    *[s for c, s in _BY_CLASS.items() if _is_device(c)]
)
