"""Fault injection shared by every simulator, with one spelling for the CLI and the Python API.

CLI spellings (repeat --fault for several):
    lead-off:CH        channel CH goes open circuit (compliance, nothing delivered)
    short:CH           channel CH sees a near-zero load
    stall              the device stops answering (and stops reading), outputs keep their state
    corrupt:P          each byte the device sends is flipped with probability P (0..1)
    drop:P             each reply the device would send is dropped with probability P
    stuck:CH           channel CH ignores "off" (a welded relay): only readback can catch it
    reset-after:S      the device restarts on its own after S seconds (outputs off, state lost)
    overcurrent:CH     channel CH reports an over-current fault at once (SCPI sims: an error)
    scpi-error:CODE    (SCPI sims) push CODE onto the error queue after the next command
    garble             (SCPI sims) the next reply is garbled
    delay-after:S      (any) the fault takes effect S seconds after start instead of at once
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FaultSpec:
    kind: str
    channel: int | None = None
    value: float | None = None

    KINDS_WITH_CHANNEL = ("lead-off", "short", "stuck", "overcurrent")
    KINDS_WITH_VALUE = ("corrupt", "drop", "reset-after", "scpi-error", "delay-after")
    KINDS_BARE = ("stall", "garble")

    def __str__(self) -> str:
        if self.channel is not None:
            return f"{self.kind}:{self.channel}"
        if self.value is not None:
            return f"{self.kind}:{self.value:g}"
        return self.kind


def parse_fault(text: str) -> FaultSpec:
    """Parse one --fault value; ValueError names what was wrong and what is accepted."""
    kind, _, arg = text.strip().partition(":")
    kind = kind.lower()
    allowed = FaultSpec.KINDS_WITH_CHANNEL + FaultSpec.KINDS_WITH_VALUE + FaultSpec.KINDS_BARE
    if kind not in allowed:
        raise ValueError(f"unknown fault {kind!r}; one of: {', '.join(allowed)}")
    if kind in FaultSpec.KINDS_BARE:
        if arg:
            raise ValueError(f"fault {kind!r} takes no argument")
        return FaultSpec(kind)
    if not arg:
        what = "a channel number" if kind in FaultSpec.KINDS_WITH_CHANNEL else "a number"
        raise ValueError(f"fault {kind!r} needs {what}: {kind}:N")
    if kind in FaultSpec.KINDS_WITH_CHANNEL:
        try:
            ch = int(arg)
        except ValueError:
            raise ValueError(f"fault {kind!r}: channel must be an integer, got {arg!r}") from None
        if ch < 1:
            raise ValueError(f"fault {kind!r}: channels are numbered from 1, got {ch}")
        return FaultSpec(kind, channel=ch)
    try:
        value = float(arg)
    except ValueError:
        raise ValueError(f"fault {kind!r}: expected a number, got {arg!r}") from None
    if kind in ("corrupt", "drop") and not 0.0 <= value <= 1.0:
        raise ValueError(f"fault {kind!r}: probability must be within 0..1, got {value}")
    if kind in ("reset-after", "delay-after") and value < 0:
        raise ValueError(f"fault {kind!r}: seconds must be >= 0, got {value}")
    return FaultSpec(kind, value=value)
