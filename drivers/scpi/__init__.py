"""SCPI instrument drivers: Keithley 6221 current source, Keysight 33500B-class generator.

`ScpiInstrument` picks the driver from `*IDN?`; `K6221` and `K33500B` may be used directly when
the model is known. See docs/scpi-drivers.md.
"""

from drivers.scpi.front import ScpiInstrument
from drivers.scpi.k6221 import K6221
from drivers.scpi.k33500b import K33500B
from drivers.scpi.models import MODELS, ModelSpec
from drivers.scpi.session import ScpiSession, open_resource

__all__ = ["K6221", "K33500B", "MODELS", "ModelSpec", "ScpiInstrument", "ScpiSession",
           "open_resource"]
