"""Process exit codes shared by every `stimctl` command, so scripts and HIL rigs can tell a
refusal by the interlock from a fault during a session or a typo in a file."""

from __future__ import annotations

import enum


class ExitCode(enum.IntEnum):
    OK = 0
    INTERNAL = 1
    """A bug in stimctl: an unexpected exception. Outputs were switched off on the way out."""
    INVALID_INPUT = 2
    """A file or option could not be read or is malformed (the message names what and where)."""
    REFUSED = 3
    """The interlock refused the program or a setting: nothing reached a device."""
    FAULT = 4
    """A fault stopped the session (outputs off, latched), or an audit log failed verification."""
    ESTOP = 5
    """An emergency stop ended the session."""
    INTERRUPTED = 130
    """Ctrl-C (128 + SIGINT), after a normal ramp-down."""


OK = ExitCode.OK
INTERNAL = ExitCode.INTERNAL
INVALID_INPUT = ExitCode.INVALID_INPUT
REFUSED = ExitCode.REFUSED
FAULT = ExitCode.FAULT
ESTOP = ExitCode.ESTOP
INTERRUPTED = ExitCode.INTERRUPTED
