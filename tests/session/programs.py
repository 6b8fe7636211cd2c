"""Programs the session tests run, built as the TOML form's dict."""

from __future__ import annotations

from typing import Any

from controller.program import Program, parse_program


def channel(name: str, output: int, amplitude_ma: float = 8.0, **over: Any) -> dict[str, Any]:
    ch: dict[str, Any] = {
        "name": name,
        "output": output,
        "electrode": {"kind": "pad", "area_cm2": 4.0},
        "waveform": "biphasic_symmetric",
        "amplitude_ma": amplitude_ma,
        "frequency_hz": 50,
        "pulse_width_us": 200,
        "ramp_up_s": 1.0,
        "ramp_down_s": 1.0,
    }
    ch.update(over)
    return ch


def pair(a: str, b: str, **over: Any) -> dict[str, Any]:
    p: dict[str, Any] = {"agonist": a, "antagonist": b, "on_s": 4, "off_s": 4,
                         "dead_time_s": 0.5, "ramp_up_s": 1, "ramp_down_s": 1}
    p.update(over)
    return p


def program(
    channels: list[dict[str, Any]],
    pairs: list[dict[str, Any]] | None = None,
    *,
    profile: str = "body",
    duration_s: float = 30,
    name: str = "test",
) -> Program:
    data: dict[str, Any] = {
        "session": {"name": name, "profile": profile, "duration_s": duration_s},
        "channel": channels,
    }
    if pairs:
        data["pair"] = pairs
    return parse_program(data, f"<{name}>")


def single(amplitude_ma: float = 8.0, duration_s: float = 30, profile: str = "body") -> Program:
    return program([channel("quad", 1, amplitude_ma)], profile=profile, duration_s=duration_s)


def antagonists(duration_s: float = 60, profile: str = "body", **pair_over: Any) -> Program:
    return program([channel("biceps", 1), channel("triceps", 2)],
                   [pair("biceps", "triceps", **pair_over)],
                   profile=profile, duration_s=duration_s)
