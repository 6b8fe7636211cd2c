"""Electrode-tissue load model shared by every simulated device.

Each channel drives a series resistance (leads, electrode-skin interface, bulk tissue) in series
with a parallel R-C (the electrode double layer). For a constant-current phase of width t the
voltage the source must supply at the end of the phase is

    V(I, t) = I * (R_s + R_p * (1 - exp(-t / (R_p * C_p))))

which is linear in I, so the most current a source with compliance V_c can push through this
load for the whole phase is V_c / (R_s + R_p * (1 - exp(-t / (R_p * C_p)))). Past it the
delivered current falls to that value and the compliance flag is set: the behaviour of a real
constant-current source at its rail, and the signature of poor electrode contact.

Lead-off is an open circuit (nothing is delivered, compliance set); a short is a near-zero load.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace


@dataclass(frozen=True)
class ElectrodeLoad:
    series_ohm: float = 500.0
    parallel_ohm: float = 1000.0
    parallel_uf: float = 1.0
    open_circuit: bool = False

    def __post_init__(self) -> None:
        if self.series_ohm < 0 or self.parallel_ohm < 0 or self.parallel_uf < 0:
            raise ValueError("load resistances and capacitance must be >= 0")

    def effective_ohm(self, pulse_width_us: float) -> float:
        """Voltage per amp at the end of a phase of this width (the load the source sees)."""
        if self.open_circuit:
            return math.inf
        tau_s = self.parallel_ohm * self.parallel_uf * 1e-6
        t_s = max(pulse_width_us, 0.0) * 1e-6
        charge_part = self.parallel_ohm * (1.0 - math.exp(-t_s / tau_s)) if tau_s > 0 else 0.0
        return self.series_ohm + charge_part

    def required_voltage_v(self, amplitude_ma: float, pulse_width_us: float) -> float:
        ohm = self.effective_ohm(pulse_width_us)
        if amplitude_ma == 0:
            return 0.0
        return math.inf if math.isinf(ohm) else abs(amplitude_ma) * 1e-3 * ohm

    def deliver(
        self, amplitude_ma: float, pulse_width_us: float, compliance_v: float
    ) -> tuple[float, bool]:
        """(delivered amplitude in mA, compliance reached) for a set amplitude."""
        if amplitude_ma == 0:
            return 0.0, False
        ohm = self.effective_ohm(pulse_width_us)
        if math.isinf(ohm):
            return 0.0, True
        limit_ma = compliance_v / ohm * 1e3 if ohm > 0 else math.inf
        if abs(amplitude_ma) <= limit_ma:
            return amplitude_ma, False
        return math.copysign(limit_ma, amplitude_ma), True

    def lead_off(self) -> ElectrodeLoad:
        return replace(self, open_circuit=True)

    def shorted(self) -> ElectrodeLoad:
        return replace(self, series_ohm=1.0, parallel_ohm=0.0, open_circuit=False)


DEFAULT_LOAD = ElectrodeLoad()
"""500 ohm in series, as the IEC 60601-2-10 test load, plus a 1 kohm / 1 uF double layer."""
