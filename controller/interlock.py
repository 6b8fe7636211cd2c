"""The static half of the interlock: a whole program against a profile, the ceilings and the
devices' capabilities, before anything is armed. Also `check_setpoint`, the cheap per-change
check the runtime gate calls on every live amplitude change.

A program passes only with no violation. Warnings (a duration the timer will cut short, a
current density worth the operator's attention) are shown but do not refuse.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from controller.limits import CEILINGS, Profile
from controller.metrics import (
    ChannelMetrics,
    channel_metrics,
    config_metrics,
    shannon_max_charge_uc,
)
from controller.program import NEEDLE_AREA_CM2, ChannelSpec, Program, pulse_train_us
from drivers.base import Capabilities, ChannelCapability, Waveform

MAX_TIMELINE_ENTRIES = 20_000
"""A 30 min program with a 1 s cycle would list 7,200 cycles; this keeps the report bounded."""


@dataclass(frozen=True)
class Finding:
    channel: str | None
    """The channel it concerns, or None for the session or a pair (named in the message)."""
    quantity: str
    value: float
    limit: float
    unit: str
    message: str

    def __str__(self) -> str:
        return self.message


@dataclass(frozen=True)
class TimelineEntry:
    start_s: float
    end_s: float
    channels: tuple[str, ...]
    """The channels delivering current in this interval (empty while all are off)."""
    phase: str
    """"ramp_up", "on", "ramp_down", "dead_time" or "rest"."""
    pair: int | None = None
    """Index into Program.pairs when the entry belongs to an antagonist pair's cycle."""


@dataclass(frozen=True)
class CheckReport:
    ok: bool
    violations: tuple[Finding, ...]
    warnings: tuple[Finding, ...]
    channels: tuple[tuple[ChannelSpec, ChannelMetrics], ...]
    effective_duration_s: float
    """The program's duration, cut to the profile's max_session_s."""
    timeline: tuple[TimelineEntry, ...]
    timeline_truncated: bool = False


class _Collector:
    def __init__(self) -> None:
        self.violations: list[Finding] = []
        self.warnings: list[Finding] = []

    def over(
        self, channel: str | None, quantity: str, value: float, limit: float, unit: str,
        message: str, warn: bool = False,
    ) -> None:
        (self.warnings if warn else self.violations).append(
            Finding(channel, quantity, value, limit, unit, message)
        )


def _fmt(v: float) -> str:
    return f"{v:.4g}"


def _channel_checks(
    spec: ChannelSpec, m: ChannelMetrics, profile: Profile, out: _Collector,
    include_ramps: bool = True,
) -> None:
    c = spec.config
    amplitude_ma = m.peak_ma  # the live setpoint when called from check_setpoint
    n = spec.name
    w = c.waveform
    pname = f"profile {profile.name!r}"

    for label, v in (("amplitude_ma", amplitude_ma), ("frequency_hz", c.frequency_hz),
                     ("pulse_width_us", c.pulse_width_us)):
        if not math.isfinite(v) or v < 0 or (label != "amplitude_ma" and v == 0):
            out.over(n, label, v, 0.0, "", f"{n}: {label} = {v!r} is not a usable value")
            return

    # Ceiling: charge balance. A profile can lift it only by saying so explicitly.
    if not w.charge_balanced and not profile.allow_monophasic:
        out.over(n, "net_charge_uc", m.net_charge_uc, 0.0, "uC",
                 f"{n}: {w.value} pulses leave net DC charge ({_fmt(m.net_charge_uc)} uC per "
                 f"period); only charge-balanced waveforms are allowed unless the profile sets "
                 f"allow_monophasic")
    # Monophasic is governed by the charge-balance rule above alone, so it is not reported twice.
    if w is not Waveform.MONOPHASIC and w not in profile.waveforms:
        allowed = ", ".join(sorted(x.value for x in profile.waveforms))
        out.over(n, "waveform", 0.0, 0.0, "",
                 f"{n}: waveform {w.value!r} is not allowed by {pname} (allowed: {allowed})")

    # Ceilings in code: min() so that no profile can raise them.
    rms_limit = min(profile.max_rms_ma, CEILINGS.max_rms_ma)
    if m.rms_ma > rms_limit:
        src = "the 50 mA RMS ceiling" if rms_limit == CEILINGS.max_rms_ma else pname
        out.over(n, "rms_ma", m.rms_ma, rms_limit, "mA",
                 f"{n}: RMS current {_fmt(m.rms_ma)} mA exceeds {_fmt(rms_limit)} mA ({src})")
    if m.pulse_energy_mj_500ohm > CEILINGS.max_pulse_energy_mj:
        out.over(n, "pulse_energy_mj", m.pulse_energy_mj_500ohm, CEILINGS.max_pulse_energy_mj, "mJ",
                 f"{n}: pulse energy {_fmt(m.pulse_energy_mj_500ohm)} mJ into 500 ohm exceeds the "
                 f"{_fmt(CEILINGS.max_pulse_energy_mj)} mJ ceiling")

    if amplitude_ma > profile.max_amplitude_ma:
        out.over(n, "amplitude_ma", amplitude_ma, profile.max_amplitude_ma, "mA",
                 f"{n}: peak current {_fmt(amplitude_ma)} mA exceeds {_fmt(profile.max_amplitude_ma)} "
                 f"mA ({pname})")

    if not profile.min_frequency_hz <= c.frequency_hz <= profile.max_frequency_hz:
        what = "modulation" if w is Waveform.AMPLIPULSE else "frequency"
        limit = profile.max_frequency_hz if c.frequency_hz > profile.max_frequency_hz else profile.min_frequency_hz
        out.over(n, "frequency_hz", c.frequency_hz, limit, "Hz",
                 f"{n}: {what} {_fmt(c.frequency_hz)} Hz is outside {_fmt(profile.min_frequency_hz)}-"
                 f"{_fmt(profile.max_frequency_hz)} Hz ({pname})")

    if w is Waveform.AMPLIPULSE:
        carrier = c.carrier_hz
        if profile.min_carrier_hz is None or profile.max_carrier_hz is None or carrier is None:
            if carrier is None:
                out.over(n, "carrier_hz", 0.0, 0.0, "Hz", f"{n}: an amplipulse channel needs carrier_hz")
        elif not profile.min_carrier_hz <= carrier <= profile.max_carrier_hz:
            limit = profile.max_carrier_hz if carrier > profile.max_carrier_hz else profile.min_carrier_hz
            out.over(n, "carrier_hz", carrier, limit, "Hz",
                     f"{n}: carrier {_fmt(carrier)} Hz is outside {_fmt(profile.min_carrier_hz)}-"
                     f"{_fmt(profile.max_carrier_hz)} Hz ({pname})")
        if not 0.0 <= c.modulation_depth <= 1.0:
            out.over(n, "modulation_depth", c.modulation_depth, 1.0, "",
                     f"{n}: modulation_depth {c.modulation_depth!r} is outside 0-1")
    else:
        if not profile.min_pulse_width_us <= c.pulse_width_us <= profile.max_pulse_width_us:
            limit = (profile.max_pulse_width_us if c.pulse_width_us > profile.max_pulse_width_us
                     else profile.min_pulse_width_us)
            out.over(n, "pulse_width_us", c.pulse_width_us, limit, "us",
                     f"{n}: pulse width {_fmt(c.pulse_width_us)} us is outside "
                     f"{_fmt(profile.min_pulse_width_us)}-{_fmt(profile.max_pulse_width_us)} us ({pname})")
        period_us = 1e6 / c.frequency_hz
        train_us = pulse_train_us(c)
        if train_us > period_us:
            out.over(n, "pulse_train_us", train_us, period_us, "us",
                     f"{n}: one pulse takes {_fmt(train_us)} us, longer than the period at "
                     f"{_fmt(c.frequency_hz)} Hz ({_fmt(period_us)} us)")
        if w is Waveform.BIPHASIC_ASYMMETRIC and not c.asymmetry_ratio >= 1.0:
            out.over(n, "asymmetry_ratio", c.asymmetry_ratio, 1.0, "",
                     f"{n}: asymmetry_ratio {c.asymmetry_ratio!r} must be at least 1")

    if profile.max_charge_per_phase_uc is not None and m.charge_per_phase_uc > profile.max_charge_per_phase_uc:
        out.over(n, "charge_per_phase_uc", m.charge_per_phase_uc, profile.max_charge_per_phase_uc, "uC",
                 f"{n}: charge per phase {_fmt(m.charge_per_phase_uc)} uC exceeds "
                 f"{_fmt(profile.max_charge_per_phase_uc)} uC ({pname})")
    if (profile.max_charge_density_uc_cm2 is not None
            and m.charge_density_uc_cm2 > profile.max_charge_density_uc_cm2):
        out.over(n, "charge_density_uc_cm2", m.charge_density_uc_cm2, profile.max_charge_density_uc_cm2,
                 "uC/cm^2",
                 f"{n}: charge density {_fmt(m.charge_density_uc_cm2)} uC/cm^2 exceeds "
                 f"{_fmt(profile.max_charge_density_uc_cm2)} uC/cm^2 ({pname})")
    if profile.shannon_k_max is not None and m.shannon_k >= profile.shannon_k_max:
        q_max = shannon_max_charge_uc(spec.electrode.area_cm2, profile.shannon_k_max)
        out.over(n, "shannon_k", m.shannon_k, profile.shannon_k_max, "",
                 f"{n}: Shannon k = {m.shannon_k:.3f} reaches {profile.shannon_k_max:g} ({pname}): "
                 f"{_fmt(m.charge_per_phase_uc)} uC per phase on {_fmt(spec.electrode.area_cm2)} cm^2; "
                 f"keep the charge per phase below {q_max:.3g} uC (lower amplitude_ma or pulse_width_us)")

    # The IEC operator-attention figure is about skin under surface electrodes; a needle's
    # tissue limit is its charge density, which Shannon's criterion covers.
    if spec.electrode.kind == "pad" and m.rms_current_density_ma_cm2 > profile.rms_current_density_warn_ma_cm2:
        out.over(n, "rms_current_density_ma_cm2", m.rms_current_density_ma_cm2,
                 profile.rms_current_density_warn_ma_cm2, "mA/cm^2",
                 f"{n}: RMS current density {_fmt(m.rms_current_density_ma_cm2)} mA/cm^2 is above "
                 f"{_fmt(profile.rms_current_density_warn_ma_cm2)} mA/cm^2: watch the skin under the "
                 f"electrode (IEC 60601-2-10 operator attention)", warn=True)

    if include_ramps:
        _electrode_warnings(spec, profile, out)
        for label, v in (("ramp_up_s", spec.ramp_up_s), ("ramp_down_s", spec.ramp_down_s)):
            _ramp_check(n, f"{n}: {label}", label, v, profile, out)


def _electrode_warnings(spec: ChannelSpec, profile: Profile, out: _Collector) -> None:
    # The area is the user's word, and a larger area loosens every charge-density cap (Shannon's
    # most of all), so an area out of the ordinary for its kind is pointed out.
    e = spec.electrode
    n = spec.name
    if e.kind == "needle" and e.area_cm2 > NEEDLE_AREA_CM2:
        out.over(n, "electrode_area_cm2", e.area_cm2, NEEDLE_AREA_CM2, "cm^2",
                 f"{n}: needle area {_fmt(e.area_cm2)} cm^2 is larger than a typical needle "
                 f"({NEEDLE_AREA_CM2:g} cm^2); the charge caps grow with the area: check it", warn=True)
    if profile.shannon_k_max is not None and e.kind == "pad":
        out.over(n, "electrode_kind", e.area_cm2, 0.0, "cm^2",
                 f"{n}: a pad electrode under profile {profile.name!r}, which is meant for needles; "
                 f"the Shannon cap is computed from the pad's {_fmt(e.area_cm2)} cm^2", warn=True)


def _ramp_check(channel: str | None, what: str, quantity: str, v: float, profile: Profile,
                out: _Collector) -> None:
    if not (math.isfinite(v) and profile.min_ramp_s <= v <= profile.max_ramp_s):
        limit = profile.max_ramp_s if v > profile.max_ramp_s else profile.min_ramp_s
        out.over(channel, quantity, v, limit, "s",
                 f"{what} {_fmt(v)} s is outside {_fmt(profile.min_ramp_s)}-{_fmt(profile.max_ramp_s)} s "
                 f"(profile {profile.name!r})")


def _capability_checks(spec: ChannelSpec, cap: ChannelCapability, device: str, profile: Profile,
                       out: _Collector) -> None:
    c = spec.config
    n = spec.name
    if c.waveform not in cap.waveforms:
        can = ", ".join(sorted(w.value for w in cap.waveforms)) or "none"
        out.over(n, "device_waveform", 0.0, 0.0, "",
                 f"{n}: device {device!r} output {spec.output} cannot produce {c.waveform.value} "
                 f"(it can: {can})")
    if c.amplitude_ma > cap.max_amplitude_ma:
        out.over(n, "device_amplitude_ma", c.amplitude_ma, cap.max_amplitude_ma, "mA",
                 f"{n}: {_fmt(c.amplitude_ma)} mA is above what device {device!r} output "
                 f"{spec.output} can deliver ({_fmt(cap.max_amplitude_ma)} mA)")
    if not cap.min_frequency_hz <= c.frequency_hz <= cap.max_frequency_hz:
        limit = cap.max_frequency_hz if c.frequency_hz > cap.max_frequency_hz else cap.min_frequency_hz
        out.over(n, "device_frequency_hz", c.frequency_hz, limit, "Hz",
                 f"{n}: {_fmt(c.frequency_hz)} Hz is outside device {device!r} output {spec.output}'s "
                 f"range {_fmt(cap.min_frequency_hz)}-{_fmt(cap.max_frequency_hz)} Hz")
    if not cap.min_pulse_width_us <= c.pulse_width_us <= cap.max_pulse_width_us:
        limit = cap.max_pulse_width_us if c.pulse_width_us > cap.max_pulse_width_us else cap.min_pulse_width_us
        out.over(n, "device_pulse_width_us", c.pulse_width_us, limit, "us",
                 f"{n}: {_fmt(c.pulse_width_us)} us pulse width is outside device {device!r} output "
                 f"{spec.output}'s range {_fmt(cap.min_pulse_width_us)}-{_fmt(cap.max_pulse_width_us)} us")
    if profile.max_voltage_v is not None and cap.compliance_v > profile.max_voltage_v:
        # A warning, not a refusal: the current limit is enforced, and the voltage only reaches
        # the compliance into a high load. The operator must limit it on the instrument.
        out.over(n, "compliance_v", cap.compliance_v, profile.max_voltage_v, "V",
                 f"{n}: device {device!r} output {spec.output} can drive up to {_fmt(cap.compliance_v)} V; "
                 f"profile {profile.name!r} allows {_fmt(profile.max_voltage_v)} V: set the instrument's "
                 f"compliance to at most {_fmt(profile.max_voltage_v)} V", warn=True)


def check_setpoint(spec: ChannelSpec, amplitude_ma: float, profile: Profile) -> tuple[Finding, ...]:
    """The violations a live amplitude change would cause (empty: allowed). Cheap: arithmetic
    only, no I/O; the runtime gate calls it before every set."""
    if not math.isfinite(amplitude_ma) or amplitude_ma < 0:
        return (Finding(spec.name, "amplitude_ma", amplitude_ma, 0.0, "mA",
                        f"{spec.name}: amplitude {amplitude_ma!r} mA is not a usable value"),)
    out = _Collector()
    m = config_metrics(spec.config, spec.electrode, amplitude_ma)
    _channel_checks(spec, m, profile, out, include_ramps=False)
    return tuple(out.violations)


def check_program(
    program: Program, profile: Profile, capabilities: Mapping[str, Capabilities] | None = None,
) -> CheckReport:
    """Everything that can be known before arming: each channel against the profile, the
    ceilings and (when given, keyed by ChannelSpec.device) each device's capabilities; each
    antagonist pair's timing; the session duration."""
    out = _Collector()
    rows: list[tuple[ChannelSpec, ChannelMetrics]] = []
    names: dict[str, ChannelSpec] = {}
    used: dict[tuple[str, int], str] = {}
    for spec in program.channels:
        if spec.name in names:
            out.over(spec.name, "channel_name", 0.0, 0.0, "", f"two channels are named {spec.name!r}")
        names[spec.name] = spec
        if (spec.device, spec.output) in used:
            out.over(spec.name, "output", spec.output, 0.0, "",
                     f"{spec.name}: output {spec.output} of device {spec.device!r} is already used by "
                     f"{used[(spec.device, spec.output)]!r}")
        used[(spec.device, spec.output)] = spec.name
        m = channel_metrics(spec)
        rows.append((spec, m))
        _channel_checks(spec, m, profile, out)
        if capabilities is not None:
            caps = capabilities.get(spec.device)
            if caps is None:
                known = ", ".join(sorted(capabilities)) or "none"
                out.over(spec.name, "device", 0.0, 0.0, "",
                         f"{spec.name}: no device named {spec.device!r} is connected (devices: {known})")
            else:
                try:
                    cap = caps.channel(spec.output)
                except KeyError:
                    have = ", ".join(str(c.channel) for c in caps.channels) or "none"
                    out.over(spec.name, "output", spec.output, 0.0, "",
                             f"{spec.name}: device {spec.device!r} ({caps.identity.model}) has no "
                             f"output {spec.output} (outputs: {have})")
                else:
                    _capability_checks(spec, cap, spec.device, profile, out)

    in_pair: dict[str, int] = {}
    for i, p in enumerate(program.pairs):
        label = f"pair[{i}] ({p.agonist}/{p.antagonist})"
        for n in (p.agonist, p.antagonist):
            if n not in names:
                out.over(None, "pair_channel", 0.0, 0.0, "", f"{label}: no channel named {n!r}")
        if p.agonist == p.antagonist:
            out.over(None, "pair_channel", 0.0, 0.0, "", f"{label}: a channel cannot be its own antagonist")
        for n in {p.agonist, p.antagonist}:
            if n in in_pair:
                out.over(n, "pair_channel", 0.0, 0.0, "",
                         f"{label}: channel {n!r} is already in pair[{in_pair[n]}]; a channel may be in "
                         f"at most one pair")
            in_pair[n] = i
        if not (math.isfinite(p.dead_time_s) and p.dead_time_s >= profile.min_dead_time_s):
            out.over(None, "dead_time_s", p.dead_time_s, profile.min_dead_time_s, "s",
                     f"{label}: dead time {_fmt(p.dead_time_s)} s is below the minimum "
                     f"{_fmt(profile.min_dead_time_s)} s between antagonists")
        if not p.on_s > p.ramp_up_s + p.ramp_down_s:
            out.over(None, "on_s", p.on_s, p.ramp_up_s + p.ramp_down_s, "s",
                     f"{label}: on_s {_fmt(p.on_s)} s must be longer than ramp_up_s + ramp_down_s "
                     f"({_fmt(p.ramp_up_s + p.ramp_down_s)} s)")
        if not p.off_s >= p.dead_time_s:
            out.over(None, "off_s", p.off_s, p.dead_time_s, "s",
                     f"{label}: off_s {_fmt(p.off_s)} s must be at least the dead time "
                     f"({_fmt(p.dead_time_s)} s)")
        for label_q, v in (("ramp_up_s", p.ramp_up_s), ("ramp_down_s", p.ramp_down_s)):
            _ramp_check(None, f"{label}: {label_q}", label_q, v, profile, out)
        if p.off_s < p.on_s:
            out.over(None, "off_s", p.off_s, p.on_s, "s",
                     f"{label}: off_s {_fmt(p.off_s)} s is shorter than on_s {_fmt(p.on_s)} s; "
                     f"muscles tire sooner (typical on/off: 5/10, 10/20, 10/50 s)", warn=True)

    duration = program.session.duration_s
    effective = min(duration, profile.max_session_s)
    if duration > profile.max_session_s:
        out.over(None, "duration_s", duration, profile.max_session_s, "s",
                 f"session: {_fmt(duration)} s is longer than profile {profile.name!r} allows; the "
                 f"session will be stopped at {_fmt(profile.max_session_s)} s", warn=True)
    if not (math.isfinite(duration) and duration > 0):
        out.over(None, "duration_s", duration, 0.0, "s", f"session: duration_s {duration!r} is not usable")
        effective = 0.0

    timeline, truncated = build_timeline(program, effective) if not out.violations else ((), False)
    return CheckReport(
        ok=not out.violations,
        violations=tuple(out.violations),
        warnings=tuple(out.warnings),
        channels=tuple(rows),
        effective_duration_s=effective,
        timeline=timeline,
        timeline_truncated=truncated,
    )


def build_timeline(program: Program, duration_s: float) -> tuple[tuple[TimelineEntry, ...], bool]:
    """When each channel delivers current, from session start to duration_s. Unpaired channels
    ramp up, stay on and ramp down at the end; each pair repeats its cycle."""
    entries: list[TimelineEntry] = []
    truncated = False
    paired = program.paired_names()
    for ch in program.channels:
        if ch.name in paired:
            continue
        up_end = min(ch.ramp_up_s, duration_s)
        down_start = max(up_end, duration_s - ch.ramp_down_s)
        entries.append(TimelineEntry(0.0, up_end, (ch.name,), "ramp_up"))
        if down_start > up_end:
            entries.append(TimelineEntry(up_end, down_start, (ch.name,), "on"))
        entries.append(TimelineEntry(down_start, duration_s, (ch.name,), "ramp_down"))
    for i, p in enumerate(program.pairs):
        t = 0.0
        steps = (
            (p.on_s, (p.agonist,), "on"),
            (p.dead_time_s, (), "dead_time"),
            (p.on_s, (p.antagonist,), "on"),
            (p.off_s, (), "rest"),
        )
        while t < duration_s and not truncated:
            for length, chans, phase in steps:
                if t >= duration_s:
                    break
                if len(entries) >= MAX_TIMELINE_ENTRIES:
                    truncated = True
                    break
                end = min(t + length, duration_s)
                if end > t:
                    entries.append(TimelineEntry(t, end, chans, phase, pair=i))
                t = end
            if p.cycle_s <= 0:
                break
    entries.sort(key=lambda e: (e.start_s, e.pair if e.pair is not None else -1))
    return tuple(entries), truncated
