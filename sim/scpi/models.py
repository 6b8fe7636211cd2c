"""The simulated SCPI models by name, as `stimctl sim serve <model>` and ScpiServerThread take."""

from __future__ import annotations

import importlib
from typing import Any

from sim.scpi.instrument import ScpiInstrument

MODELS: dict[str, tuple[str, str, str]] = {
    "k6221": ("sim.scpi.k6221", "K6221", "Keithley 6221 AC and DC current source"),
    "k33500b": ("sim.scpi.k33500b", "K33500B", "Keysight 33522B two-channel waveform generator"),
}


def model_class(model: str) -> type[ScpiInstrument]:
    key = model.strip().lower()
    if key not in MODELS:
        raise ValueError(f"unknown SCPI model {model!r}; one of: {', '.join(MODELS)}")
    module_name, class_name, _ = MODELS[key]
    module = importlib.import_module(module_name)
    cls = getattr(module, class_name)
    if not (isinstance(cls, type) and issubclass(cls, ScpiInstrument)):
        raise TypeError(f"{module_name}.{class_name} is not a ScpiInstrument")
    return cls


def create_instrument(model: str, **options: Any) -> ScpiInstrument:
    """A new instrument of the named model; options go to its constructor."""
    return model_class(model)(**options)
