"""The isolated voltage-to-current stage the simulated 33500B rig puts after each channel.

A generator cannot drive a person directly: the rig puts a transconductance stage (voltage in,
current out, isolated) between each generator channel and its electrodes. Its transconductance
comes from the rig configuration; its output stage has a supply rail (the stage compliance), and
past it the current it can push through the electrode load falls, exactly as for a current
source at its rail (sim/load.py does that arithmetic).

The generator side follows the real instrument: a 50 ohm source behind the front-panel
connector, and an amplitude setting that is only *interpreted* through OUTPut:LOAD. What reaches
the stage input is the open-circuit voltage divided between the 50 ohm source and the stage's
input resistance.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from sim.load import ElectrodeLoad

SOURCE_OHM = 50.0
"""The 33500B's fixed series output impedance."""


def open_circuit_v(displayed_v: float, load_setting_ohm: float) -> float:
    """The open-circuit voltage behind a displayed level set for OUTPut:LOAD load_setting_ohm.

    The instrument assumes the stated load forms a divider with its 50 ohm source; the
    displayed value is what that load would see. INF (math.inf) means the displayed value is
    the open-circuit voltage itself.
    """
    if math.isinf(load_setting_ohm):
        return displayed_v
    return displayed_v * (load_setting_ohm + SOURCE_OHM) / load_setting_ohm


@dataclass(frozen=True)
class VIStage:
    """One channel's voltage-to-current converter.

    transconductance_ma_per_v: output current per input volt.
    stage_compliance_v: the most voltage the stage's output can put across its load.
    input_ohm: the stage's input resistance as the generator sees it (inf: high impedance).
    """

    transconductance_ma_per_v: float = 5.0
    stage_compliance_v: float = 60.0
    input_ohm: float = math.inf

    def __post_init__(self) -> None:
        if not self.transconductance_ma_per_v > 0:
            raise ValueError(
                "transconductance_ma_per_v must be > 0 (mA per volt at the stage input), "
                f"got {self.transconductance_ma_per_v}"
            )
        if not self.stage_compliance_v > 0:
            raise ValueError(f"stage_compliance_v must be > 0 volts, got {self.stage_compliance_v}")
        if not self.input_ohm > 0:
            raise ValueError(f"input_ohm must be > 0 (use math.inf for high-Z), got {self.input_ohm}")

    def input_v(self, open_circuit_level_v: float) -> float:
        """Voltage at the stage input for a generator open-circuit level."""
        if math.isinf(self.input_ohm):
            return open_circuit_level_v
        return open_circuit_level_v * self.input_ohm / (self.input_ohm + SOURCE_OHM)

    def deliver_ma(
        self,
        open_circuit_level_v: float,
        phase_width_us: float,
        load: ElectrodeLoad,
    ) -> tuple[float, bool]:
        """(current delivered to the load in mA, compliance reached) for a generator level.

        The sign of the level is kept; callers that record envelopes take the magnitude.
        """
        set_ma = self.input_v(open_circuit_level_v) * self.transconductance_ma_per_v
        return load.deliver(set_ma, phase_width_us, self.stage_compliance_v)
