"""What a channel setting delivers, computed analytically from its config and electrode.

These are the quantities the interlock limits and `stimctl check` prints. Shapes the simulator
draws with curves (neuron_like) are bounded here by the rectangular pulse of the same peak and
width, so the figures are never below what is delivered.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from controller.limits import CEILINGS
from controller.program import ChannelSpec, Electrode
from drivers.base import ChannelConfig, Waveform


@dataclass(frozen=True)
class ChannelMetrics:
    peak_ma: float
    rms_ma: float
    charge_per_phase_uc: float
    """Charge of the first (largest) phase; for amplipulse, one half-cycle of the carrier at peak."""
    net_charge_uc: float
    """Net charge per period: zero for charge-balanced waveforms, the whole phase for monophasic."""
    charge_density_uc_cm2: float
    rms_current_density_ma_cm2: float
    pulse_energy_mj_500ohm: float
    """All phases of one pulse into the 500 ohm reference load (one carrier cycle for amplipulse)."""
    duty: float
    """Fraction of time current flows (1.0 for a continuous carrier)."""
    shannon_k: float
    """log10(Q) + log10(Q/A) with Q in uC and A in cm^2; -inf when Q is zero."""

    @property
    def pulse_energy_mj(self) -> float:
        return self.pulse_energy_mj_500ohm


def channel_metrics(spec: ChannelSpec) -> ChannelMetrics:
    return config_metrics(spec.config, spec.electrode)


def amplipulse_rms_factor(depth: float) -> float:
    """I_rms / I_pk for a sinusoidal carrier whose envelope swings from (1 - depth) to 1 of the
    peak, sinusoidally: mean(envelope^2) / 2."""
    mean_env_sq = (1.0 - depth / 2.0) ** 2 + (depth / 2.0) ** 2 / 2.0
    return math.sqrt(mean_env_sq / 2.0)


def config_metrics(
    config: ChannelConfig, electrode: Electrode, amplitude_ma: float | None = None,
) -> ChannelMetrics:
    """amplitude_ma, when given, replaces config.amplitude_ma (a live setpoint, without
    building a new config)."""
    i_ma = config.amplitude_ma if amplitude_ma is None else amplitude_ma
    i_a = i_ma * 1e-3
    r = CEILINGS.reference_load_ohm
    f = config.frequency_hz
    pw_s = config.pulse_width_us * 1e-6
    w = config.waveform

    if w is Waveform.AMPLIPULSE:
        carrier = config.carrier_hz if config.carrier_hz else 1.0 / (2.0 * pw_s)
        rms_ma = i_ma * amplipulse_rms_factor(config.modulation_depth)
        # A half sine of peak I over T/2 carries I * T / pi.
        q_uc = i_a / (math.pi * carrier) * 1e6
        net_uc = 0.0
        duty = 1.0
        # One carrier cycle at peak: I^2 R T / 2.
        energy_j = i_a * i_a * r / (2.0 * carrier)
    else:
        q_uc = i_a * pw_s * 1e6
        if w is Waveform.MONOPHASIC:
            ms_a2 = i_a * i_a * pw_s * f
            duty = pw_s * f
            net_uc = q_uc
            energy_j = i_a * i_a * r * pw_s
        elif w is Waveform.BIPHASIC_ASYMMETRIC:
            ratio = config.asymmetry_ratio
            # Recovery phase: ratio times longer at 1/ratio the current, same charge.
            ms_a2 = f * i_a * i_a * pw_s * (1.0 + 1.0 / ratio)
            duty = pw_s * (1.0 + ratio) * f
            net_uc = 0.0
            energy_j = i_a * i_a * r * pw_s * (1.0 + 1.0 / ratio)
        else:
            # Symmetric biphasic, neuron-like (bounded by the rectangle) and microcurrent
            # (alternating square phases): two equal and opposite phases per period.
            ms_a2 = 2.0 * i_a * i_a * pw_s * f
            duty = 2.0 * pw_s * f
            net_uc = 0.0
            energy_j = 2.0 * i_a * i_a * r * pw_s
        rms_ma = math.sqrt(ms_a2) * 1e3 if ms_a2 > 0 else 0.0

    area = electrode.area_cm2
    density = q_uc / area
    k = math.log10(q_uc) + math.log10(density) if q_uc > 0 else -math.inf
    return ChannelMetrics(
        peak_ma=i_ma,
        rms_ma=rms_ma,
        charge_per_phase_uc=q_uc,
        net_charge_uc=net_uc,
        charge_density_uc_cm2=density,
        rms_current_density_ma_cm2=rms_ma / area,
        pulse_energy_mj_500ohm=energy_j * 1e3,
        duty=duty,
        shannon_k=k,
    )


def shannon_max_charge_uc(area_cm2: float, k: float) -> float:
    """The charge per phase at which log10(Q) + log10(Q/A) = k: Q = sqrt(A * 10^k)."""
    return math.sqrt(area_cm2 * 10.0**k)
