"""Metrics against values computed by hand."""

from __future__ import annotations

import math

import pytest

from controller.metrics import amplipulse_rms_factor, channel_metrics, shannon_max_charge_uc
from drivers.base import Waveform
from tests.controller.builders import spec


def test_biphasic_symmetric_by_hand() -> None:
    # 10 mA, 200 us per phase, 50 Hz: conducting 400 us per 20 ms -> duty 0.02,
    # I_rms = 10 * sqrt(0.02) = 1.41421 mA; Q = 10 mA * 200 us = 2 uC; on 4 cm^2: 0.5 uC/cm^2;
    # energy both phases: 2 * (0.01 A)^2 * 500 ohm * 200e-6 s = 0.02 J... = 2e-5 J = 0.02 mJ.
    m = channel_metrics(spec(amplitude_ma=10, pulse_width_us=200, frequency_hz=50, area_cm2=4))
    assert m.peak_ma == 10
    assert m.duty == pytest.approx(0.02)
    assert m.rms_ma == pytest.approx(1.414214, rel=1e-6)
    assert m.charge_per_phase_uc == pytest.approx(2.0)
    assert m.net_charge_uc == 0
    assert m.charge_density_uc_cm2 == pytest.approx(0.5)
    assert m.rms_current_density_ma_cm2 == pytest.approx(1.414214 / 4, rel=1e-6)
    assert m.pulse_energy_mj_500ohm == pytest.approx(0.02)
    assert m.shannon_k == pytest.approx(math.log10(2.0) + math.log10(0.5))


def test_rms_formula_from_safety_reference() -> None:
    # I_rms = I_pk * sqrt(phase_dur * f), both phases counted: 50 mA, 300 us, 100 Hz -> 600 us
    # per 10 ms -> 50 * sqrt(0.06) = 12.247 mA.
    m = channel_metrics(spec(amplitude_ma=50, pulse_width_us=300, frequency_hz=100))
    assert m.rms_ma == pytest.approx(50 * math.sqrt(0.06))


def test_monophasic_has_net_charge() -> None:
    m = channel_metrics(spec(waveform=Waveform.MONOPHASIC, amplitude_ma=5, pulse_width_us=200))
    assert m.net_charge_uc == pytest.approx(1.0)
    assert m.rms_ma == pytest.approx(5 * math.sqrt(200e-6 * 50))
    assert m.pulse_energy_mj_500ohm == pytest.approx(0.005**2 * 500 * 200e-6 * 1e3)


def test_asymmetric_recovery_phase() -> None:
    # 20 mA 250 us, then 5 mA for 1000 us (ratio 4). Mean square per period at 40 Hz:
    # 40 * (0.02^2 * 250e-6 + 0.005^2 * 1000e-6) = 40 * (1e-7 + 2.5e-8) = 5e-6 A^2 -> 2.236 mA.
    m = channel_metrics(spec(waveform=Waveform.BIPHASIC_ASYMMETRIC, amplitude_ma=20, pulse_width_us=250,
                             frequency_hz=40, asymmetry_ratio=4.0))
    assert m.rms_ma == pytest.approx(math.sqrt(5e-6) * 1e3)
    assert m.charge_per_phase_uc == pytest.approx(5.0)
    assert m.net_charge_uc == 0
    assert m.duty == pytest.approx(1250e-6 * 40)


def test_amplipulse_modulated_sinusoid() -> None:
    # Unmodulated: sine RMS = peak / sqrt(2). Full depth: envelope 0..1, mean(env^2) = 3/8,
    # RMS = peak * sqrt(3/16) = 0.4330 peak.
    assert amplipulse_rms_factor(0.0) == pytest.approx(1 / math.sqrt(2))
    assert amplipulse_rms_factor(1.0) == pytest.approx(math.sqrt(3 / 16))
    m = channel_metrics(spec(waveform=Waveform.AMPLIPULSE, amplitude_ma=20, frequency_hz=100,
                             pulse_width_us=100, carrier_hz=5000, modulation_hz=100, modulation_depth=1.0))
    assert m.rms_ma == pytest.approx(20 * math.sqrt(3 / 16))
    # Half a sine at 5 kHz: Q = I / (pi f) = 0.02 / (pi * 5000) C = 1.2732 uC.
    assert m.charge_per_phase_uc == pytest.approx(0.02 / (math.pi * 5000) * 1e6)
    assert m.duty == 1.0 and m.net_charge_uc == 0


def test_needle_shannon_example() -> None:
    # SAFETY-REFERENCE: needle ~0.08 cm^2 -> Q <= ~2.4 uC per phase (~9.4 mA at 250 us).
    q = shannon_max_charge_uc(0.08, 1.85)
    assert q == pytest.approx(2.38, abs=0.01)
    assert q / 250e-6 * 1e-3 == pytest.approx(9.5, abs=0.1)  # mA at 250 us
    assert shannon_max_charge_uc(0.079, 1.85) / 250e-3 == pytest.approx(9.4, abs=0.1)
    at_limit = channel_metrics(spec(kind="needle", area_cm2=0.08, amplitude_ma=q / 0.25, pulse_width_us=250))
    assert at_limit.shannon_k == pytest.approx(1.85)
    m = channel_metrics(spec(kind="needle", area_cm2=0.08, amplitude_ma=9.4, pulse_width_us=250))
    assert m.charge_per_phase_uc == pytest.approx(2.35)
    assert m.shannon_k < 1.85


def test_zero_amplitude_is_harmless() -> None:
    m = channel_metrics(spec(amplitude_ma=0.0))
    assert m.rms_ma == 0 and m.charge_per_phase_uc == 0 and m.shannon_k == -math.inf
