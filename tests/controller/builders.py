"""Programs built in code for the controller tests."""

from __future__ import annotations

from typing import Any

from controller.program import ChannelSpec, Electrode, PairSpec, Program, SessionSpec
from drivers.base import ChannelConfig, Waveform


def channel_dict(**over: Any) -> dict[str, Any]:
    d: dict[str, Any] = {
        "name": "ch1",
        "output": 1,
        "electrode": {"kind": "pad", "area_cm2": 4.0},
        "waveform": "biphasic_symmetric",
        "amplitude_ma": 8.0,
        "frequency_hz": 50,
        "pulse_width_us": 200,
        "ramp_up_s": 1.0,
        "ramp_down_s": 1.0,
    }
    d.update(over)
    return d


def program_dict(channels: list[dict[str, Any]] | None = None, **session: Any) -> dict[str, Any]:
    s: dict[str, Any] = {"name": "t", "profile": "face", "duration_s": 600}
    s.update(session)
    return {"session": s, "channel": channels if channels is not None else [channel_dict()]}


def spec(
    name: str = "ch1", *, waveform: Waveform = Waveform.BIPHASIC_SYMMETRIC, amplitude_ma: float = 8.0,
    frequency_hz: float = 50.0, pulse_width_us: float = 200.0, area_cm2: float = 4.0,
    kind: str = "pad", output: int = 1, device: str = "main", ramp_s: float = 1.0, **cfg: Any,
) -> ChannelSpec:
    return ChannelSpec(
        name=name, device=device, output=output,
        electrode=Electrode(kind=kind, area_cm2=area_cm2),  # type: ignore[arg-type]
        config=ChannelConfig(waveform=waveform, amplitude_ma=amplitude_ma, frequency_hz=frequency_hz,
                             pulse_width_us=pulse_width_us, **cfg),
        ramp_up_s=ramp_s, ramp_down_s=ramp_s,
    )


def program(*channels: ChannelSpec, pairs: tuple[PairSpec, ...] = (), duration_s: float = 600.0,
            profile: str = "face") -> Program:
    return Program(
        session=SessionSpec(name="t", profile=profile, duration_s=duration_s),
        channels=channels, pairs=pairs, source="<test>",
    )


def pair(a: str = "a", b: str = "b", **over: float) -> PairSpec:
    d: dict[str, float] = dict(on_s=5.0, off_s=10.0, dead_time_s=0.5, ramp_up_s=1.0, ramp_down_s=1.0)
    d.update(over)
    return PairSpec(agonist=a, antagonist=b, **d)
