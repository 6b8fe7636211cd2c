"""SCPI error codes and the error queue every simulated instrument keeps.

The codes and their standard messages come from SCPI-1999 volume 2, chapter 21. A queued error
reads back from SYSTem:ERRor? as `<code>,"<message>[; <detail>]"`, the detail saying what was
wrong and what to do, as real instruments add device-dependent information after a semicolon.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

STANDARD_MESSAGES: dict[int, str] = {
    0: "No error",
    -100: "Command error",
    -101: "Invalid character",
    -102: "Syntax error",
    -103: "Invalid separator",
    -104: "Data type error",
    -108: "Parameter not allowed",
    -109: "Missing parameter",
    -112: "Program mnemonic too long",
    -113: "Undefined header",
    -114: "Header suffix out of range",
    -120: "Numeric data error",
    -123: "Exponent too large",
    -131: "Invalid suffix",
    -138: "Suffix not allowed",
    -144: "Character data too long",
    -151: "Invalid string data",
    -161: "Invalid block data",
    -200: "Execution error",
    -221: "Settings conflict",
    -222: "Data out of range",
    -224: "Illegal parameter value",
    -225: "Out of memory",
    -300: "Device-specific error",
    -310: "System error",
    -350: "Queue overflow",
    -363: "Input buffer overrun",
    -400: "Query error",
    -410: "Query INTERRUPTED",
    -420: "Query UNTERMINATED",
}


def standard_message(code: int) -> str:
    """The standard message for a code, or the message of its class (-1xx, -2xx, ...)."""
    if code in STANDARD_MESSAGES:
        return STANDARD_MESSAGES[code]
    if -199 <= code <= -100:
        return "Command error"
    if -299 <= code <= -200:
        return "Execution error"
    if -399 <= code <= -300:
        return "Device-specific error"
    if -499 <= code <= -400:
        return "Query error"
    return "Device-specific error"


class ScpiError(Exception):
    """Raised by the parser and by command handlers; the instrument queues it, never the peer."""

    def __init__(self, code: int, detail: str = "") -> None:
        self.code = code
        self.detail = detail
        super().__init__(self.text)

    @property
    def text(self) -> str:
        base = standard_message(self.code)
        return f"{base}; {self.detail}" if self.detail else base


# IEEE 488.2 standard event status register bits that each error class sets.
ESR_OPC = 1 << 0
ESR_QYE = 1 << 2
ESR_DDE = 1 << 3
ESR_EXE = 1 << 4
ESR_CME = 1 << 5
ESR_PON = 1 << 7


def esr_bit_for(code: int) -> int:
    """The standard event status bit an error of this code sets (488.2 section 11.5.1)."""
    if -199 <= code <= -100:
        return ESR_CME
    if -299 <= code <= -200:
        return ESR_EXE
    if -499 <= code <= -400:
        return ESR_QYE
    return ESR_DDE


@dataclass(frozen=True)
class QueuedError:
    code: int
    text: str

    def response(self) -> str:
        # Strings in responses double their own quote character (488.2 8.7.8).
        return f'{self.code},"{self.text.replace(chr(34), chr(34) * 2)}"'


class ErrorQueue:
    """A bounded FIFO of errors. When full, the newest entry is replaced by -350 Queue
    overflow and further errors are lost, as SCPI-1999 section 21.8 requires."""

    def __init__(self, capacity: int = 32) -> None:
        if capacity < 2:
            raise ValueError("error queue capacity must be >= 2 (one slot is kept for -350)")
        self.capacity = capacity
        self._items: deque[QueuedError] = deque()

    def push(self, code: int, detail: str = "") -> None:
        if len(self._items) >= self.capacity:
            if self._items[-1].code != -350:
                self._items[-1] = QueuedError(-350, standard_message(-350))
            return
        err = ScpiError(code, detail)
        self._items.append(QueuedError(code, err.text))

    def pop(self) -> QueuedError:
        if not self._items:
            return QueuedError(0, "No error")
        return self._items.popleft()

    def clear(self) -> None:
        self._items.clear()

    def __len__(self) -> int:
        return len(self._items)

    def snapshot(self) -> list[QueuedError]:
        return list(self._items)
