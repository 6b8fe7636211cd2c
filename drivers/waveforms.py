"""Stimulation waveforms as numpy sample arrays, with their charge figures and resampling error.

Each shape is defined analytically over one period (`design(config)`), then sampled for an
instrument's arbitrary-waveform memory (`sample(design, limits)`): a number of points and a
sample rate the instrument accepts, and values quantised to its DAC resolution. Sampling
integrates the analytic current over each sample interval (a box filter), so a rectangular
phase keeps its charge even when its edges fall between samples; what quantisation and the
finite point count still cost is stated as `charge_error_pct` and `peak_error_pct`.

Polarity convention: the first (stimulating, "cathodic") phase is positive in the samples. The
rig decides which electrode that drives; nothing here depends on the sign.

Charge units: mA x us = nC, so charges are computed in nC and reported in uC.

Charge per phase is the charge of the largest single-polarity lobe in one period: the first
phase of a pulse, one carrier half-cycle at the modulation peak for amplipulse.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from drivers.base import ChannelConfig, Waveform

FloatArray = npt.NDArray[np.float64]

NEURON_RISE_FRACTION = 0.1
"""Neuron-like: the spike rises linearly over this fraction of the pulse width..."""
NEURON_DECAY_FRACTION = 0.25
"""...then decays exponentially with this fraction of the pulse width as time constant."""
AMPLIPULSE_CARRIER_RANGE_HZ = (2000.0, 10000.0)
AMPLIPULSE_MODULATION_RANGE_HZ = (10.0, 150.0)
MIN_POINTS_PER_PHASE = 8
"""Fewer samples than this across the shortest feature and the shape is not worth the name."""


class WaveformError(ValueError):
    """A waveform cannot be built or sampled as asked; the message says what to change."""


@dataclass(frozen=True)
class ArbLimits:
    """An instrument's arbitrary-waveform memory, as drivers.scpi.models describes it."""

    min_points: int
    max_points: int
    min_sample_rate_hz: float
    max_sample_rate_hz: float
    dac_bits: int

    @property
    def full_scale_code(self) -> int:
        return int(2 ** (self.dac_bits - 1) - 1)


@dataclass(frozen=True)
class WaveformDesign:
    """One period of a shape, analytically: current in mA as a function of time in s."""

    config: ChannelConfig
    period_s: float
    shortest_feature_s: float
    peak_ma: float
    charge_per_phase_uc: float
    net_charge_uc: float
    current_ma: Callable[[FloatArray], FloatArray]
    note: str = ""


@dataclass(frozen=True)
class SampledWaveform:
    """One period sampled for an instrument. `normalized` is in -1..1 (peak = 1) as the
    instruments' arb memories expect; `dac_codes` the same quantised to the DAC."""

    design: WaveformDesign
    normalized: FloatArray
    dac_codes: npt.NDArray[np.int16]
    sample_rate_hz: float
    charge_per_phase_uc: float
    net_charge_uc: float
    peak_ma: float
    charge_error_pct: float
    peak_error_pct: float

    @property
    def points(self) -> int:
        return int(self.normalized.size)

    @property
    def period_s(self) -> float:
        return self.points / self.sample_rate_hz


# ---- analytic shapes --------------------------------------------------------------------------


def _box(t: FloatArray, start_s: float, width_s: float) -> FloatArray:
    return ((t >= start_s) & (t < start_s + width_s)).astype(np.float64)


def design(config: ChannelConfig) -> WaveformDesign:
    """The analytic period of `config`'s waveform. Raises WaveformError for a config whose
    phases do not fit in one period or whose amplipulse figures are outside 2-10 kHz /
    10-150 Hz."""
    a = float(config.amplitude_ma)
    if a < 0 or not math.isfinite(a):
        raise WaveformError(f"amplitude_ma must be a finite value >= 0, got {a}")
    w = config.waveform
    if w is Waveform.AMPLIPULSE:
        return _amplipulse(config)
    if config.frequency_hz <= 0:
        raise WaveformError(f"frequency_hz must be > 0, got {config.frequency_hz}")
    if config.pulse_width_us <= 0:
        raise WaveformError(f"pulse_width_us must be > 0, got {config.pulse_width_us}")
    period = 1.0 / config.frequency_hz
    pw = config.pulse_width_us * 1e-6
    gap = max(config.interphase_gap_us, 0.0) * 1e-6
    q_nc = a * config.pulse_width_us

    if w is Waveform.MONOPHASIC:
        _fits(period, pw, config)
        return WaveformDesign(config, period, pw, a, q_nc / 1e3, q_nc / 1e3,
                              lambda t: a * _box(t, 0.0, pw))
    if w in (Waveform.BIPHASIC_SYMMETRIC, Waveform.MICROCURRENT):
        _fits(period, 2 * pw + gap, config)
        return WaveformDesign(
            config, period, _feature(pw, gap), a, q_nc / 1e3, 0.0,
            lambda t: a * _box(t, 0.0, pw) - a * _box(t, pw + gap, pw),
        )
    if w is Waveform.BIPHASIC_ASYMMETRIC:
        r = config.asymmetry_ratio
        if r < 1.0:
            raise WaveformError(f"asymmetry_ratio must be >= 1 (recovery phase longer), got {r}")
        _fits(period, pw * (1 + r) + gap, config)
        return WaveformDesign(
            config, period, _feature(pw, gap), a, q_nc / 1e3, 0.0,
            lambda t: a * _box(t, 0.0, pw) - (a / r) * _box(t, pw + gap, r * pw),
        )
    if w is Waveform.NEURON_LIKE:
        return _neuron_like(config, period, pw, gap)
    raise WaveformError(f"no sample design for waveform {w.value!r}")  # pragma: no cover


def _feature(pw: float, gap: float) -> float:
    # An interphase gap is resolved when it is a real part of the shape; a gap far shorter than
    # the phase is blurred by box sampling at no cost in charge, so it does not set the rate.
    return min(pw, gap) if gap >= 0.1 * pw else pw


def _fits(period_s: float, busy_s: float, config: ChannelConfig) -> None:
    if busy_s > period_s:
        raise WaveformError(
            f"{config.waveform.value}: the phases take {busy_s * 1e6:.0f} us but one period at "
            f"{config.frequency_hz:g} Hz is {period_s * 1e6:.0f} us; lower the frequency or "
            "the pulse width"
        )


def _neuron_like(config: ChannelConfig, period: float, pw: float, gap: float) -> WaveformDesign:
    a = config.amplitude_ma
    tr = NEURON_RISE_FRACTION * pw
    tau = NEURON_DECAY_FRACTION * pw
    # Spike charge, integrated analytically: linear rise, then exponential decay to the end of pw.
    q_ma_s = a * (tr / 2.0 + tau * (1.0 - math.exp(-(pw - tr) / tau)))
    r = max(config.asymmetry_ratio, 1.0)
    recovery_w = r * pw
    recovery_a = q_ma_s / recovery_w
    _fits(period, pw + gap + recovery_w, config)

    def current(t: FloatArray) -> FloatArray:
        rise = np.where(t < tr, a * t / tr, 0.0)
        decay = np.where((t >= tr) & (t < pw), a * np.exp(-(t - tr) / tau), 0.0)
        return np.asarray(rise + decay - recovery_a * _box(t, pw + gap, recovery_w),
                          dtype=np.float64)

    return WaveformDesign(config, period, tr, a, q_ma_s * 1e3, 0.0, current,
                          note="rectangular recovery phase balances the spike's charge")


def _amplipulse(config: ChannelConfig) -> WaveformDesign:
    a = config.amplitude_ma
    fc = config.carrier_hz
    fm = config.modulation_hz
    lo_c, hi_c = AMPLIPULSE_CARRIER_RANGE_HZ
    lo_m, hi_m = AMPLIPULSE_MODULATION_RANGE_HZ
    if fc is None or not lo_c <= fc <= hi_c:
        raise WaveformError(f"amplipulse needs carrier_hz within {lo_c:g}-{hi_c:g} Hz, got {fc}")
    if fm is None or not lo_m <= fm <= hi_m:
        raise WaveformError(
            f"amplipulse needs modulation_hz within {lo_m:g}-{hi_m:g} Hz, got {fm}")
    m = config.modulation_depth
    if not 0.0 <= m <= 1.0:
        raise WaveformError(f"modulation_depth must be within 0..1, got {m}")
    # A whole number of carrier cycles per modulation period keeps the period seamless and the
    # net charge zero; the carrier moves by at most half a modulation frequency for it.
    cycles = max(1, round(fc / fm))
    fc_used = cycles * fm
    period = 1.0 / fm

    def current(t: FloatArray) -> FloatArray:
        envelope = 1.0 - m * (1.0 + np.cos(2 * np.pi * fm * t)) / 2.0
        return np.asarray(a * envelope * np.sin(2 * np.pi * fc_used * t), dtype=np.float64)

    q_nc = a / (math.pi * fc_used) * 1e6
    note = f"carrier {fc_used:g} Hz ({cycles} cycles per modulation period)"
    return WaveformDesign(config, period, 1.0 / (2 * fc_used), a, q_nc / 1e3, 0.0, current,
                          note=note)


# ---- sampling ---------------------------------------------------------------------------------


def choose_points(d: WaveformDesign, limits: ArbLimits, points_per_feature: int = 32) -> int:
    """Enough points to resolve the shortest feature, within the instrument's memory and
    sample-rate limits. Raises WaveformError when even the minimum does not fit."""
    wanted = math.ceil(points_per_feature * d.period_s / d.shortest_feature_s)
    by_rate = math.floor(limits.max_sample_rate_hz * d.period_s)
    n = min(wanted, limits.max_points, by_rate)
    n = max(n, limits.min_points)
    least = math.ceil(MIN_POINTS_PER_PHASE * d.period_s / d.shortest_feature_s)
    if n < least:
        raise WaveformError(
            f"{d.config.waveform.value}: a {d.shortest_feature_s * 1e6:.1f} us feature in a "
            f"{d.period_s * 1e3:.3f} ms period needs {least} points, the instrument allows "
            f"{min(limits.max_points, by_rate)}; raise the frequency or the pulse width"
        )
    if n / d.period_s < limits.min_sample_rate_hz:
        raise WaveformError(
            f"period {d.period_s:g} s is too long for the instrument's "
            f"{limits.min_sample_rate_hz:g} Sa/s minimum with {n} points")
    return n


def box_sample(current_ma: Callable[[FloatArray], FloatArray], duration_s: float, points: int,
               oversample: int = 16) -> FloatArray:
    """The mean of current_ma over each of `points` equal intervals of [0, duration_s)."""
    fine = (np.arange(points * oversample, dtype=np.float64) + 0.5) * (
        duration_s / (points * oversample))
    return np.asarray(current_ma(fine).reshape(points, oversample).mean(axis=1),
                      dtype=np.float64)


def quantise(values_ma: FloatArray, peak_ma: float, dac_bits: int
             ) -> tuple[FloatArray, npt.NDArray[np.int16]]:
    """(normalized -1..1, DAC codes) for values scaled so that peak_ma is full scale."""
    full = 2 ** (dac_bits - 1) - 1
    if peak_ma <= 0:
        codes = np.zeros(values_ma.shape, dtype=np.int16)
    else:
        codes = np.clip(np.rint(values_ma / peak_ma * full), -full, full).astype(np.int16)
    return codes.astype(np.float64) / full, codes


def largest_lobe_charge_uc(values_ma: FloatArray, dt_s: float) -> float:
    """Charge of the largest contiguous single-polarity run of samples, in uC."""
    if values_ma.size == 0:
        return 0.0
    sign = np.sign(values_ma)
    edges = np.flatnonzero(np.diff(sign) != 0) + 1
    best = 0.0
    for run in np.split(values_ma, edges):
        best = max(best, abs(float(run.sum())))
    return best * dt_s * 1e3  # mA*s -> mC; *1e3 -> uC


def sample(d: WaveformDesign, limits: ArbLimits, points: int | None = None) -> SampledWaveform:
    """Sample one period of `d` for an instrument with `limits`, quantise it, and state what
    that cost in charge and peak current."""
    n = points if points is not None else choose_points(d, limits)
    if not limits.min_points <= n <= limits.max_points:
        raise WaveformError(
            f"{n} points is outside the instrument's {limits.min_points}-{limits.max_points}")
    rate = n / d.period_s
    if not limits.min_sample_rate_hz <= rate <= limits.max_sample_rate_hz:
        raise WaveformError(
            f"{n} points over {d.period_s:g} s needs {rate:g} Sa/s; the instrument does "
            f"{limits.min_sample_rate_hz:g}-{limits.max_sample_rate_hz:g} Sa/s")
    raw = box_sample(d.current_ma, d.period_s, n)
    peak = float(np.max(np.abs(raw))) if raw.size else 0.0
    normalized, codes = quantise(raw, peak, limits.dac_bits)
    delivered = normalized * peak
    dt = 1.0 / rate
    q_phase = largest_lobe_charge_uc(delivered, dt)
    q_net = float(delivered.sum()) * dt * 1e3
    return SampledWaveform(
        design=d,
        normalized=normalized,
        dac_codes=codes,
        sample_rate_hz=rate,
        charge_per_phase_uc=q_phase,
        net_charge_uc=q_net,
        peak_ma=peak,
        charge_error_pct=_pct(q_phase, d.charge_per_phase_uc),
        peak_error_pct=_pct(peak, d.peak_ma),
    )


def _pct(actual: float, expected: float) -> float:
    if expected == 0:
        return 0.0 if actual == 0 else math.inf
    return (actual - expected) / expected * 100.0


def build(config: ChannelConfig, limits: ArbLimits, points: int | None = None) -> SampledWaveform:
    """design() then sample(): the one call a driver makes."""
    return sample(design(config), limits, points)


# ---- trains and envelopes (for hardware-timed alternation) ------------------------------------


def pulse_train(config: ChannelConfig, sample_rate_hz: float, duration_s: float) -> FloatArray:
    """The config's waveform repeated from t=0 for duration_s, sampled (box filter) at
    sample_rate_hz, in mA."""
    d = design(config)
    n = int(round(duration_s * sample_rate_hz))
    if n <= 0:
        return np.zeros(0, dtype=np.float64)
    oversample = 8
    t = (np.arange(n * oversample, dtype=np.float64) + 0.5) / (sample_rate_hz * oversample)
    folded = np.mod(t, d.period_s)
    values = d.current_ma(folded).reshape(n, oversample).mean(axis=1)
    return np.asarray(values, dtype=np.float64)


def trapezoid_envelope(n: int, sample_rate_hz: float, ramp_up_s: float, ramp_down_s: float
                       ) -> FloatArray:
    """0..1 envelope over n samples: linear ramp up, plateau, linear ramp down."""
    t = np.arange(n, dtype=np.float64) / sample_rate_hz
    total = n / sample_rate_hz
    env = np.ones(n, dtype=np.float64)
    if ramp_up_s > 0:
        env = np.minimum(env, t / ramp_up_s)
    if ramp_down_s > 0:
        env = np.minimum(env, (total - t) / ramp_down_s)
    return np.clip(env, 0.0, 1.0)
