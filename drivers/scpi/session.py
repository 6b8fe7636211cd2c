"""A small SCPI session over a pyvisa resource: lines out, lines in, blocks, the error queue.

Why the calls block inside coroutines: pyvisa is synchronous, and one SCPI round trip on a LAN
instrument takes a fraction of a millisecond to a few milliseconds. Handing each call to a
thread would cost more than the call itself (the benchmark target is within 1.1x raw pyvisa) and
would hide the work from `sim.virtual_time`'s loop, whose clock must see every step. The price
is that the event loop stalls for the length of each call, so the VISA timeout is kept short
(default 500 ms): a silent instrument holds the loop for at most that long before the call
raises `DeviceTimeout`.

The resource only needs `write(str)`, `read() -> str`, `write_raw(bytes)`, `close()` and a
`timeout` attribute in milliseconds, so unit tests hand in a transcript double instead.
"""

from __future__ import annotations

import re
from typing import Any, Protocol

from drivers.errors import (
    CommandRejected,
    ConnectionLost,
    DeviceError,
    DeviceTimeout,
    ProtocolError,
)

DEFAULT_TIMEOUT_S = 0.5
DEFAULT_BACKEND = "@py"
MAX_ERRORS_DRAINED = 64
"""A 6221 queue holds 10 entries, a 33500B 20; more than this means SYST:ERR? is not working."""

_ERR_RE = re.compile(r'^\s*([+-]?\d+)\s*,\s*"?(.*?)"?\s*$')


class Resource(Protocol):
    timeout: Any

    def write(self, message: str) -> Any: ...

    def read(self) -> str: ...

    def write_raw(self, message: bytes) -> Any: ...

    def close(self) -> None: ...


def open_resource(resource_name: str, *, backend: str = DEFAULT_BACKEND,
                  timeout_s: float = DEFAULT_TIMEOUT_S) -> Resource:
    """Open a VISA resource with "\\n" termination both ways and a short timeout."""
    try:
        import pyvisa
        from pyvisa.errors import VisaIOError
    except ImportError as exc:  # pragma: no cover - a declared dependency
        raise ConnectionLost(f"pyvisa is not importable ({exc}); pip install pyvisa pyvisa-py")
    try:
        rm = pyvisa.ResourceManager(backend)
        res = rm.open_resource(resource_name, read_termination="\n", write_termination="\n",
                               timeout=int(timeout_s * 1000))
    except VisaIOError as exc:
        raise ConnectionLost(
            f"cannot open VISA resource {resource_name!r}: {exc.description}. Check the "
            "address, that the instrument is on and reachable, and that nothing else holds it"
        ) from exc
    except (ValueError, OSError) as exc:
        raise ConnectionLost(
            f"cannot open VISA resource {resource_name!r}: {exc}. Expected forms like "
            "TCPIP0::192.168.1.5::5025::SOCKET, TCPIP0::host::INSTR, USB0::...::INSTR, "
            "GPIB0::12::INSTR, ASRL/dev/ttyUSB0::INSTR"
        ) from exc
    if "::SOCKET" in resource_name.upper():
        _disable_nagle(res)
    return res  # type: ignore[return-value]


def _disable_nagle(res: object) -> bool:
    """A set followed at once by its readback query is two small writes in a row: with Nagle's
    algorithm on, the second waits for the instrument's delayed ACK of the first (measured:
    ~43 ms per set-with-readback on Linux loopback, 0.3 ms without). Try the standard
    VI_ATTR_TCPIP_NODELAY first; pyvisa-py 0.7 does not route it for SOCKET sessions, so fall
    back to its session's socket. True if Nagle is off."""
    import socket

    from pyvisa.constants import ResourceAttribute

    try:
        res.set_visa_attribute(ResourceAttribute.tcpip_nodelay, True)  # type: ignore[attr-defined]
        return True
    except Exception:  # noqa: BLE001 - fall through to the backend's socket
        pass
    try:
        sock = res.visalib.sessions[res.session].interface  # type: ignore[attr-defined]
        if isinstance(sock, socket.socket):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            return True
    except Exception:  # noqa: BLE001 - another backend: merely slower
        pass
    return False


def format_number(value: float) -> str:
    """SCPI NRf text for a value, stable to the byte (transcript tests pin it)."""
    text = f"{value:.10g}"
    return "0" if text in ("-0", "0") else text


def definite_block(payload: bytes) -> bytes:
    """IEEE 488.2 definite-length arbitrary block: #<digits><length><payload>."""
    length = str(len(payload)).encode()
    return b"#" + str(len(length)).encode() + length + payload


class ScpiSession:
    """One instrument link. Every failure comes out as a `drivers.errors.DeviceError`.

    After a timeout a late reply may still arrive and pair with the wrong query, so the session
    marks itself `desynchronised`; only writes (the all-off path) are attempted after that.
    """

    def __init__(self, resource: Resource, name: str = "instrument") -> None:
        self._res = resource
        self.name = name
        self.desynchronised = False
        self.closed = False

    @property
    def resource(self) -> Resource:
        return self._res

    def _fail(self, exc: Exception, what: str) -> DeviceError:
        from pyvisa.constants import StatusCode
        from pyvisa.errors import VisaIOError

        if isinstance(exc, DeviceError):
            return exc
        if isinstance(exc, VisaIOError):
            if exc.error_code == StatusCode.error_timeout:
                self.desynchronised = True
                return DeviceTimeout(f"{self.name} did not answer {what!r} within the VISA "
                                     "timeout; the link is treated as lost")
            self.desynchronised = True
            return ConnectionLost(f"{self.name}: {what!r} failed: {exc.description}")
        if isinstance(exc, TimeoutError):
            self.desynchronised = True
            return DeviceTimeout(f"{self.name} did not answer {what!r} in time")
        if isinstance(exc, (OSError, EOFError)):
            self.desynchronised = True
            return ConnectionLost(f"{self.name}: {what!r} failed: {exc}")
        if isinstance(exc, UnicodeDecodeError):
            self.desynchronised = True
            return ProtocolError(f"{self.name}: reply to {what!r} is not text: {exc}")
        return ConnectionLost(f"{self.name}: {what!r} failed: {type(exc).__name__}: {exc}")

    def _ensure_usable(self, what: str) -> None:
        if self.closed:
            raise ConnectionLost(f"{self.name}: {what!r} after close(); open it again")
        if self.desynchronised:
            raise ConnectionLost(
                f"{self.name}: the link lost step after an earlier failure; {what!r} not sent. "
                "Close and reopen the instrument")

    def write(self, command: str) -> None:
        self._ensure_usable(command)
        try:
            self._res.write(command)
        except Exception as exc:  # noqa: BLE001 - every transport failure is a device fault
            raise self._fail(exc, command) from exc

    def write_unchecked(self, command: str) -> bool:
        """Best-effort write for the all-off path: sent even after a desync, never raises."""
        if self.closed:
            return False
        try:
            self._res.write(command)
            return True
        except Exception:  # noqa: BLE001
            return False

    def query(self, command: str) -> str:
        self._ensure_usable(command)
        try:
            self._res.write(command)
            reply = self._res.read()
        except Exception as exc:  # noqa: BLE001
            raise self._fail(exc, command) from exc
        return reply.strip()

    def query_float(self, command: str) -> float:
        reply = self.query(command)
        try:
            return float(reply)
        except ValueError:
            pass
        try:
            return float(reply.strip('"'))
        except ValueError:
            raise ProtocolError(
                f"{self.name}: {command!r} answered {reply!r}, expected a number") from None

    def query_bool(self, command: str) -> bool:
        reply = self.query(command).upper()
        if reply in ("1", "ON", "+1"):
            return True
        if reply in ("0", "OFF", "+0"):
            return False
        raise ProtocolError(f"{self.name}: {command!r} answered {reply!r}, expected 0 or 1")

    def query_int(self, command: str) -> int:
        reply = self.query(command)
        try:
            return int(float(reply))
        except ValueError:
            raise ProtocolError(
                f"{self.name}: {command!r} answered {reply!r}, expected an integer") from None

    def write_block(self, header: str, payload: bytes) -> None:
        """`header` then a definite-length block of payload, then the line end."""
        self._ensure_usable(header)
        message = header.encode("ascii") + definite_block(payload) + b"\n"
        try:
            self._res.write_raw(message)
        except Exception as exc:  # noqa: BLE001
            raise self._fail(exc, header) from exc

    def read_errors(self) -> list[tuple[int, str]]:
        """SYST:ERR? until it answers 0; the entries found, oldest first."""
        found: list[tuple[int, str]] = []
        for _ in range(MAX_ERRORS_DRAINED):
            reply = self.query("SYST:ERR?")
            if not found and reply.startswith(('0,', '+0,')):
                return found  # the common case, without the regex
            m = _ERR_RE.match(reply)
            if not m:
                raise ProtocolError(
                    f"{self.name}: SYST:ERR? answered {reply!r}, expected 'code,\"message\"'")
            code = int(m.group(1))
            if code == 0:
                return found
            found.append((code, m.group(2)))
        raise ProtocolError(
            f"{self.name}: the error queue did not empty after {MAX_ERRORS_DRAINED} reads")

    def check_errors(self, context: str) -> None:
        """Drain the error queue; raise `CommandRejected` naming every entry if any."""
        errors = self.read_errors()
        if errors:
            listed = "; ".join(f"{c},{m!r}" for c, m in errors)
            raise CommandRejected(f"{self.name} reported after {context}: {listed}",
                                  code=errors[0][0])

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        try:
            self._res.close()
        except Exception:  # noqa: BLE001 - closing a dead link must not raise
            pass
