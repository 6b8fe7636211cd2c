"""Errors a driver raises. Each one means the controller can no longer trust the device state.

The controller treats every `DeviceError` raised while outputs may be on as a fault: it switches
all outputs off and latches. Validation errors (a value the device cannot do) are raised before
any byte is sent, as `CapabilityError`.
"""

from __future__ import annotations


class DeviceError(Exception):
    """Base for everything a driver raises about the device or the link to it."""


class DeviceTimeout(DeviceError):
    """The device did not answer within the allowed time. A silent device is a fault."""


class ConnectionLost(DeviceError):
    """The transport closed or failed (cable pulled, peer gone, port error)."""


class CommandRejected(DeviceError):
    """The device refused a command (a protocol nack, a SCPI error in the queue)."""

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


class ReadbackMismatch(DeviceError):
    """The device reports a value other than the one just set: it did not do what it was told."""

    def __init__(self, what: str, expected: object, actual: object) -> None:
        super().__init__(f"readback mismatch for {what}: set {expected!r}, device reports {actual!r}")
        self.what = what
        self.expected = expected
        self.actual = actual


class CapabilityError(DeviceError):
    """A request is outside what the device can do (checked before anything is sent)."""


class NotSupported(DeviceError):
    """The device family has no such function (e.g. hardware-timed alternation)."""


class ProtocolError(DeviceError):
    """The peer broke the protocol (wrong version, unexpected message, malformed reply)."""
