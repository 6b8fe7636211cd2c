"""A transcript double for a pyvisa resource, in the style of PyMeasure's expected_protocol.

The test lists every exchange as (bytes the driver must write, bytes the instrument replies or
None); the double checks each write byte-exactly, in order, and `assert_done()` checks nothing
was left unsaid. TIMEOUT as a reply makes the next read raise pyvisa's timeout error.
"""

from __future__ import annotations

from collections import deque

from pyvisa.constants import StatusCode
from pyvisa.errors import VisaIOError

TIMEOUT = b"<timeout>"


class TranscriptMismatch(AssertionError):
    pass


class TranscriptResource:
    def __init__(self, exchanges: list[tuple[bytes, bytes | None]]) -> None:
        self._expected = deque(exchanges)
        self._replies: deque[bytes] = deque()
        self.timeout: int = 0
        self.closed = False
        self.written: list[bytes] = []

    def _take(self, data: bytes) -> None:
        self.written.append(data)
        if not self._expected:
            raise TranscriptMismatch(f"unexpected write {data!r} after the transcript ended")
        want, reply = self._expected.popleft()
        if data != want:
            raise TranscriptMismatch(f"wrote {data!r}, transcript expects {want!r}")
        if reply is not None:
            self._replies.append(reply)

    def write(self, message: str) -> int:
        data = message.encode("ascii") + b"\n"
        self._take(data)
        return len(data)

    def write_raw(self, message: bytes) -> int:
        self._take(bytes(message))
        return len(message)

    def read(self) -> str:
        if not self._replies:
            raise TranscriptMismatch("read with no reply pending (a write that expects none?)")
        reply = self._replies.popleft()
        if reply == TIMEOUT:
            raise VisaIOError(StatusCode.error_timeout)
        return reply.decode("ascii").rstrip("\n")

    def close(self) -> None:
        self.closed = True

    def assert_done(self) -> None:
        if self._expected:
            raise TranscriptMismatch(f"transcript not finished; next expected {self._expected[0]!r}")
        if self._replies:
            raise TranscriptMismatch(f"replies never read: {list(self._replies)!r}")


def w(cmd: str) -> tuple[bytes, None]:
    """A write with no reply."""
    return (cmd.encode() + b"\n", None)


def q(cmd: str, reply: str | bytes) -> tuple[bytes, bytes]:
    """A query and its reply."""
    r = reply if isinstance(reply, bytes) else reply.encode() + b"\n"
    return (cmd.encode() + b"\n", r)


NO_ERROR = q("SYST:ERR?", '0,"No error"')
