"""What each supported instrument model can do, by the model name its `*IDN?` reports.

The drivers take every range and limit from here, never from constants of their own, so a new
model of a family is one entry in `MODELS`. Figures are from the instruments' data sheets and
reference manuals (Keithley 6221 reference manual, Keysight 33500B series data sheet).
"""

from __future__ import annotations

from dataclasses import dataclass

from drivers.errors import CapabilityError
from drivers.waveforms import ArbLimits


@dataclass(frozen=True)
class ModelSpec:
    family: str
    """"k6221" (current source) or "k33500b" (waveform generator)."""
    model: str
    channels: int
    arb: ArbLimits
    min_frequency_hz: float
    max_frequency_hz: float
    """Repetition frequency range of an arbitrary waveform / pulse train."""
    min_pulse_width_us: float
    max_pulse_width_us: float
    # Current sources (6221): output current and compliance voltage.
    max_current_ma: float = 0.0
    min_compliance_v: float = 0.0
    max_compliance_v: float = 0.0
    arb_chunk_points: int = 0
    """Points per SOUR:WAVE:ARB:DATA / :APP command (6221: 100)."""
    compliance_bit: int = -1
    """Bit of STAT:MEAS:COND? that is set while the source is in compliance (6221)."""
    # Generators (33500B): output voltage.
    max_vpp_high_z: float = 0.0
    min_vpp_high_z: float = 0.0
    # Readback tolerance: the instrument's setting resolution, relative and absolute.
    rel_resolution: float = 1e-4
    abs_resolution: float = 0.0


_K6221_ARB = ArbLimits(min_points=2, max_points=65536, min_sample_rate_hz=1e-3 * 2,
                       max_sample_rate_hz=10e6, dac_bits=14)

_33522B_ARB = ArbLimits(min_points=8, max_points=1_000_000, min_sample_rate_hz=1e-6,
                        max_sample_rate_hz=250e6, dac_bits=16)
_33512B_ARB = ArbLimits(min_points=8, max_points=1_000_000, min_sample_rate_hz=1e-6,
                        max_sample_rate_hz=160e6, dac_bits=16)

MODELS: dict[str, ModelSpec] = {
    "6221": ModelSpec(
        family="k6221", model="6221", channels=1, arb=_K6221_ARB,
        min_frequency_hz=1e-3, max_frequency_hz=100e3,
        min_pulse_width_us=0.1, max_pulse_width_us=1e6,
        max_current_ma=105.0, min_compliance_v=0.1, max_compliance_v=105.0,
        arb_chunk_points=100, compliance_bit=3,
        rel_resolution=1e-4, abs_resolution=2e-9,  # mA: 2 pA steps on the lowest range
    ),
    "33522B": ModelSpec(
        family="k33500b", model="33522B", channels=2, arb=_33522B_ARB,
        min_frequency_hz=1e-6, max_frequency_hz=30e6,
        min_pulse_width_us=0.016, max_pulse_width_us=1e12,
        max_vpp_high_z=20.0, min_vpp_high_z=2e-3,
        rel_resolution=1e-4, abs_resolution=1e-4,  # V: 4 digits, 0.1 mV
    ),
    "33521B": ModelSpec(
        family="k33500b", model="33521B", channels=1, arb=_33522B_ARB,
        min_frequency_hz=1e-6, max_frequency_hz=30e6,
        min_pulse_width_us=0.016, max_pulse_width_us=1e12,
        max_vpp_high_z=20.0, min_vpp_high_z=2e-3,
        rel_resolution=1e-4, abs_resolution=1e-4,
    ),
    "33512B": ModelSpec(
        family="k33500b", model="33512B", channels=2, arb=_33512B_ARB,
        min_frequency_hz=1e-6, max_frequency_hz=20e6,
        min_pulse_width_us=0.016, max_pulse_width_us=1e12,
        max_vpp_high_z=20.0, min_vpp_high_z=2e-3,
        rel_resolution=1e-4, abs_resolution=1e-4,
    ),
    "33511B": ModelSpec(
        family="k33500b", model="33511B", channels=1, arb=_33512B_ARB,
        min_frequency_hz=1e-6, max_frequency_hz=20e6,
        min_pulse_width_us=0.016, max_pulse_width_us=1e12,
        max_vpp_high_z=20.0, min_vpp_high_z=2e-3,
        rel_resolution=1e-4, abs_resolution=1e-4,
    ),
}


@dataclass(frozen=True)
class Idn:
    manufacturer: str
    model: str
    serial: str
    firmware: str


def parse_idn(reply: str) -> Idn:
    """Split a `*IDN?` reply. The 6221 says "MODEL 6221"; generators say "33522B"."""
    parts = [p.strip() for p in reply.strip().split(",")]
    if len(parts) < 4:
        raise CapabilityError(
            f"*IDN? reply {reply.strip()!r} is not 'maker,model,serial,firmware'; is this a SCPI "
            "instrument?")
    model = parts[1].upper()
    if model.startswith("MODEL "):
        model = model[len("MODEL "):].strip()
    return Idn(parts[0], model, parts[2], ",".join(parts[3:]))


def spec_for(idn: Idn) -> ModelSpec:
    try:
        return MODELS[idn.model]
    except KeyError:
        known = ", ".join(sorted(MODELS))
        raise CapabilityError(
            f"instrument {idn.manufacturer} {idn.model} is not supported; stimctl drives: {known}"
        ) from None
