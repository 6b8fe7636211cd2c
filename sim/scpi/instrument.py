"""The base of every simulated SCPI instrument: IEEE 488.2 common commands, the status byte and
standard event status register, the error queue, fault injection and the output trace.

A model subclasses `ScpiInstrument`, declares its commands into `self.tree` in `declare()`, and
implements `identity()`, `reset()` and the fault hooks. The server feeds it program messages
through a `ScpiSession` (one per connection), which does the framing: lines end with "\n", but a
definite-length block (#<n><len><bytes>) is read by its length, so its bytes may hold "\n".

Status reporting follows IEEE 488.2 section 11:
- status byte (*STB?): bit 2 EAV (error queue not empty, SCPI), bit 4 MAV (a response is
  waiting), bit 5 ESB (ESR & ESE != 0), bit 6 MSS (STB & SRE, bit 6 excluded), and the model's
  own summary bits from `status_summary()` (bits 0, 1, 3, 7);
- standard event status register (*ESR? reads and clears): bit 0 OPC, 2 QYE, 3 DDE, 4 EXE,
  5 CME, 7 PON (set at power-on). Every queued error sets the bit of its class.
- *CLS clears the ESR, the error queue and the model's event registers, not the enables.

Error paths that are not a single command's fault:
- -410 Query INTERRUPTED: a new message arrives while the response to an earlier query is still
  undelivered (the client stopped reading and the socket's buffers filled). The old response is
  discarded.
- -420 Query UNTERMINATED: a query sits without its "\n" for `unterminated_timeout_s` (the
  client forgot its write termination and is waiting for an answer that cannot come). The
  partial message is discarded.
- -363 Input buffer overrun: a message grows past `max_message_bytes` without a terminator.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import ClassVar

from sim.faults import FaultSpec
from sim.scpi.clock import Clock, ManualClock, TimerHandle
from sim.scpi.errors import (
    ESR_OPC,
    ESR_PON,
    ErrorQueue,
    QueuedError,
    ScpiError,
    esr_bit_for,
)
from sim.scpi.parser import Header, HeaderNode, Param, iter_units
from sim.scpi.tree import Command, CommandTree, Integer
from sim.trace import OutputTrace

STB_EAV = 1 << 2
STB_MAV = 1 << 4
STB_ESB = 1 << 5
STB_MSS = 1 << 6


class ScpiInstrument:
    """Base class. Subclasses set `model`, `trace_device`, `channel_count` and implement the
    hooks below."""

    model: ClassVar[str] = "scpi"
    trace_device: ClassVar[str] = "scpi"
    channel_count: ClassVar[int] = 1

    def __init__(
        self,
        *,
        clock: Clock | None = None,
        trace: OutputTrace | None = None,
        trace_path: str | Path | None = None,
        faults: Iterable[FaultSpec] = (),
        error_queue_size: int = 32,
        seed: int = 0,
    ) -> None:
        self._clock: Clock = clock if clock is not None else ManualClock()
        self._clock_attached = clock is not None
        self._clock_proxy = _ClockProxy(self)
        self.trace_time: Callable[[], float] = self._clock_proxy.now
        """The clock the trace is built with; `setup()` may replace it (playback edges)."""
        self.setup()
        self.trace = trace if trace is not None else OutputTrace(
            self.trace_time, trace_path, device=self.trace_device
        )
        self.errors = ErrorQueue(error_queue_size)
        self.esr = ESR_PON
        self.ese = 0
        self.sre = 0
        self.output_queued = False
        """Set by the session while a response waits undelivered (the status byte's MAV)."""
        self.stalled = False
        self.rng = random.Random(seed)
        self.corrupt_probability = 0.0
        self.drop_probability = 0.0
        self._garble_next = False
        self._pending_codes: list[int] = []
        self._timers: list[TimerHandle] = []
        self._stall_listeners: list[Callable[[bool], None]] = []
        self.active_faults: list[FaultSpec] = []
        self._initial_faults = tuple(faults)
        self.tree = CommandTree()
        self.declare()
        self.reset()
        if self._clock_attached:
            self._arm_initial_faults()

    # --- hooks for models -----------------------------------------------------------------

    def setup(self) -> None:
        """Build the model's machinery before the trace exists (e.g. a playback engine on
        `self.clock`, setting `self.trace_time` to its edge clock). Runs before declare()."""

    def declare(self) -> None:
        """Declare the model's commands into self.tree."""

    def identity(self) -> str:
        raise NotImplementedError

    def reset(self) -> None:
        """*RST: the model's defaults. Must leave outputs as the manual says *RST leaves them."""

    def clear_status(self) -> None:
        """*CLS: clear the model's own event registers."""

    def status_summary(self) -> int:
        """The model's summary bits of the status byte (bits 0, 1, 3, 7)."""
        return 0

    def trigger(self) -> None:
        """*TRG: a bus trigger."""

    def all_outputs_off(self) -> None:
        """Open every output at once (power loss, restart, over-current protection)."""

    def apply_channel_fault(self, fault: FaultSpec) -> None:
        """lead-off, short, stuck, overcurrent on fault.channel."""
        raise ValueError(f"{self.model} does not simulate the fault {fault}")

    # --- clock ----------------------------------------------------------------------------

    @property
    def clock(self) -> Clock:
        """A stable handle on the instrument's current clock (follows attach_clock)."""
        return self._clock_proxy

    @property
    def clock_attached(self) -> bool:
        return self._clock_attached

    def attach_clock(self, clock: Clock) -> None:
        """Run on this clock from now on (the server attaches its loop's clock); arms the
        faults given at construction, whose delay-after counts from here."""
        self._clock = clock
        if not self._clock_attached:
            self._clock_attached = True
            self._arm_initial_faults()

    def call_later(self, delay_s: float, callback: Callable[[], None]) -> TimerHandle:
        handle = self._clock_proxy.call_later(delay_s, callback)
        self._timers.append(handle)
        return handle

    # --- errors and status ----------------------------------------------------------------

    def push_error(self, code: int, detail: str = "") -> None:
        self.errors.push(code, detail)
        self.esr |= esr_bit_for(code)

    def pop_error(self) -> QueuedError:
        return self.errors.pop()

    def status_byte(self) -> int:
        stb = self.status_summary() & ~(STB_EAV | STB_MAV | STB_ESB | STB_MSS)
        if len(self.errors):
            stb |= STB_EAV
        if self.output_queued:
            stb |= STB_MAV
        if self.esr & self.ese:
            stb |= STB_ESB
        if stb & self.sre & ~STB_MSS:
            stb |= STB_MSS
        return stb

    # --- program messages -----------------------------------------------------------------

    def process(self, message: bytes) -> bytes | None:
        """Execute one program message (terminator stripped). Returns the response message
        with its "\n", or None if the message held no query. Never raises for bad input."""
        responses: list[bytes] = []
        path: tuple[HeaderNode, ...] = ()
        try:
            for unit in iter_units(message):
                try:
                    reply = self._execute(unit.header, unit.params, path, bool(responses))
                except ScpiError as err:
                    self.push_error(err.code, err.detail)
                    reply = None
                if not unit.header.common:
                    typed = unit.header.nodes if unit.header.absolute else path + unit.header.nodes
                    path = typed[:-1]
                if reply is not None:
                    responses.append(reply.encode("ascii") if isinstance(reply, str) else reply)
        except ScpiError as err:
            self.push_error(err.code, err.detail)
        while self._pending_codes:
            code = self._pending_codes.pop(0)
            self.push_error(code, "injected by the scpi-error fault")
        if not responses:
            return None
        return b";".join(responses) + b"\n"

    def _execute(
        self,
        header: Header,
        params: Sequence[Param],
        path: tuple[HeaderNode, ...],
        earlier_response: bool,
    ) -> str | bytes | None:
        if header.common:
            return self._common(header, params, earlier_response)
        typed = header.nodes if header.absolute else path + header.nodes
        return self.tree.execute(header, typed, params)

    def finish_response(self, data: bytes) -> bytes | None:
        """Apply the reply faults (garble, drop, corrupt) to a response about to be sent."""
        if self._garble_next:
            self._garble_next = False
            body = data.rstrip(b"\n")
            return b"~" + body[::-1] + b"\n"
        if self.drop_probability and self.rng.random() < self.drop_probability:
            return None
        if self.corrupt_probability:
            out = bytearray(data)
            for i in range(len(out)):
                if self.rng.random() < self.corrupt_probability:
                    out[i] ^= 1 << self.rng.randrange(7)
            return bytes(out)
        return data

    # --- IEEE 488.2 common commands --------------------------------------------------------

    def _common(self, header: Header, params: Sequence[Param], earlier_response: bool) -> str | None:
        name = header.nodes[0].mnemonic
        key = name + ("?" if header.query else "")
        byte = Integer(name="value", min=0, max=255)
        none: tuple[Integer, ...] = ()

        def args(specs: tuple[Integer, ...]) -> list[int]:
            cmd = Command(key, (), specs, None, None, (), (1, 1))
            return cmd.convert(specs, params, header)

        if key == "*IDN?":
            args(none)
            return self.identity()
        if key == "*RST":
            args(none)
            self.reset()
            return None
        if key == "*CLS":
            args(none)
            self.esr = 0
            self.errors.clear()
            self.clear_status()
            return None
        if key == "*OPC":
            args(none)
            # Commands here complete before the next one is parsed: nothing is ever pending.
            self.esr |= ESR_OPC
            return None
        if key == "*OPC?":
            args(none)
            return "1"
        if key == "*WAI":
            args(none)
            return None
        if key == "*ESR?":
            args(none)
            value = self.esr
            self.esr = 0
            return str(value)
        if key == "*ESE":
            (self.ese,) = args((byte,))
            return None
        if key == "*ESE?":
            args(none)
            return str(self.ese)
        if key == "*SRE":
            (value,) = args((byte,))
            self.sre = value & ~STB_MSS  # 488.2 11.3.2.3: bit 6 of the SRE is ignored
            return None
        if key == "*SRE?":
            args(none)
            return str(self.sre)
        if key == "*STB?":
            args(none)
            stb = self.status_byte()
            if earlier_response:
                stb |= STB_MAV
            return str(stb)
        if key == "*TRG":
            args(none)
            self.trigger()
            return None
        if key == "*TST?":
            args(none)
            return "0"
        raise ScpiError(-113, f"{key} is not a common command of this instrument")

    # --- faults ---------------------------------------------------------------------------

    def add_stall_listener(self, listener: Callable[[bool], None]) -> None:
        self._stall_listeners.append(listener)

    def remove_stall_listener(self, listener: Callable[[bool], None]) -> None:
        if listener in self._stall_listeners:
            self._stall_listeners.remove(listener)

    def _set_stalled(self, stalled: bool) -> None:
        self.stalled = stalled
        for listener in list(self._stall_listeners):
            listener(stalled)

    def _arm_initial_faults(self) -> None:
        if self._initial_faults:
            self.apply_faults(self._initial_faults)

    def apply_faults(self, faults: Iterable[FaultSpec]) -> None:
        """Apply a set of faults as the CLI gives them: any delay-after:S delays the others."""
        faults = list(faults)
        delay_s = sum(f.value or 0.0 for f in faults if f.kind == "delay-after")
        for fault in faults:
            if fault.kind == "delay-after":
                continue
            if delay_s > 0:
                self.call_later(delay_s, lambda f=fault: self.inject(f))  # type: ignore[misc]
            else:
                self.inject(fault)

    def inject(self, fault: FaultSpec) -> None:
        """Make one fault take effect now. Call it from the instrument's loop thread
        (ScpiServerThread.inject marshals it there)."""
        kind = fault.kind
        if kind == "delay-after":
            raise ValueError("delay-after only delays other faults; use apply_faults([...])")
        if fault.channel is not None and not 1 <= fault.channel <= self.channel_count:
            raise ValueError(
                f"{self.model} has channels 1..{self.channel_count}, fault {fault} names {fault.channel}"
            )
        self.active_faults.append(fault)
        if kind == "stall":
            self._set_stalled(True)
        elif kind == "garble":
            self._garble_next = True
        elif kind == "scpi-error":
            self._pending_codes.append(int(fault.value or -300))
        elif kind == "corrupt":
            self.corrupt_probability = float(fault.value or 0.0)
        elif kind == "drop":
            self.drop_probability = float(fault.value or 0.0)
        elif kind == "reset-after":
            self.call_later(float(fault.value or 0.0), self.power_cycle)
        elif kind in ("lead-off", "short", "stuck", "overcurrent"):
            self.apply_channel_fault(fault)
        else:
            raise ValueError(f"{self.model} does not simulate the fault {fault}")

    def clear_faults(self) -> None:
        """Remove every injected fault (tests use it to model a repaired cable)."""
        self.active_faults.clear()
        self._garble_next = False
        self._pending_codes.clear()
        self.corrupt_probability = self.drop_probability = 0.0
        if self.stalled:
            self._set_stalled(False)
        self.clear_channel_faults()

    def clear_channel_faults(self) -> None:
        """Models undo their channel faults here."""

    def power_cycle(self) -> None:
        """The instrument restarts on its own: outputs off, settings and queues lost."""
        self.all_outputs_off()
        self.errors.clear()
        self.clear_status()
        self.reset()
        self.esr = ESR_PON

    def close(self) -> None:
        for handle in self._timers:
            handle.cancel()
        self._timers.clear()
        self.trace.close()


_QUERY_SCAN_LIMIT = 4096
"""A partial message longer than this is a data upload in progress, not a forgotten query."""
_SPECIAL = re.compile(rb"[\n#\"']")
_STRING_STOP = {34: re.compile(rb'["\n]'), 39: re.compile(rb"['\n]")}


class _ClockProxy:
    """Forwards to whatever clock the instrument runs on now, so machinery built at
    construction (timers, playback) follows the server's loop clock once attached."""

    def __init__(self, instrument: ScpiInstrument) -> None:
        self._instrument = instrument

    def now(self) -> float:
        return self._instrument._clock.now()

    def call_later(self, delay_s: float, callback: Callable[[], None]) -> TimerHandle:
        return self._instrument._clock.call_later(delay_s, callback)


class ScpiSession:
    """One client connection's framing and output queue over an instrument.

    `write` sends bytes to the peer; `can_write` says whether the transport accepts more now
    (False while the peer is not reading and the buffers are full).
    """

    def __init__(
        self,
        instrument: ScpiInstrument,
        write: Callable[[bytes], None],
        can_write: Callable[[], bool] = lambda: True,
        *,
        max_message_bytes: int = 64 * 1024 * 1024,
        unterminated_timeout_s: float = 2.0,
    ) -> None:
        self.instrument = instrument
        self._write = write
        self._can_write = can_write
        self.max_message_bytes = max_message_bytes
        self.unterminated_timeout_s = unterminated_timeout_s
        self._buf = bytearray()
        self._scan = 0
        self._quote: int | None = None
        self._unsent: list[bytes] = []
        self._unterminated_timer: TimerHandle | None = None
        self._overrun = False

    def feed(self, data: bytes) -> None:
        if self._unterminated_timer is not None:
            self._unterminated_timer.cancel()
            self._unterminated_timer = None
        if self._overrun:
            # Discard the rest of an overlong message up to its terminator.
            nl = data.find(b"\n")
            if nl < 0:
                return
            data = data[nl + 1 :]
            self._overrun = False
        self._buf += data
        while not self.instrument.stalled:
            message = self._next_message()
            if message is None:
                break
            self._handle(message)
        if len(self._buf) > self.max_message_bytes:
            self.instrument.push_error(
                -363, f"message longer than {self.max_message_bytes} bytes without a terminator"
            )
            self._buf.clear()
            self._scan = 0
            self._quote = None
            self._overrun = True
        elif (
            self._buf
            and len(self._buf) <= _QUERY_SCAN_LIMIT
            and b"?" in self._buf
            and not self.instrument.stalled
        ):
            self._unterminated_timer = self.instrument.clock.call_later(
                self.unterminated_timeout_s, self._unterminated
            )

    def _unterminated(self) -> None:
        self._unterminated_timer = None
        if self._buf:
            text = bytes(self._buf[:40]).decode("ascii", "replace")
            self.instrument.push_error(
                -420,
                f"query {text!r} arrived without its terminator: end every message with \\n",
            )
            self._buf.clear()
            self._scan = 0
            self._quote = None

    def _handle(self, message: bytes) -> None:
        if self._unsent:
            self._unsent.clear()
            self.instrument.push_error(
                -410, "a new command arrived before the previous response was read"
            )
        reply = self.instrument.process(message)
        if reply is None:
            self.instrument.output_queued = bool(self._unsent)
            return
        reply = self.instrument.finish_response(reply)
        if reply is None:
            return
        if self._can_write():
            self._write(reply)
        else:
            self._unsent.append(reply)
        self.instrument.output_queued = bool(self._unsent)

    def writable(self) -> None:
        """The transport accepts data again: deliver what waited."""
        while self._unsent and self._can_write():
            self._write(self._unsent.pop(0))
        self.instrument.output_queued = bool(self._unsent)

    def close(self) -> None:
        if self._unterminated_timer is not None:
            self._unterminated_timer.cancel()
            self._unterminated_timer = None
        self.instrument.output_queued = False

    def _next_message(self) -> bytes | None:
        buf = self._buf
        i = self._scan
        n = len(buf)
        while i < n:
            if self._quote is not None:
                # Inside a string only its closing quote or a "\n" (which ends the message
                # anyway, 488.2 7.5) matter.
                m = _STRING_STOP[self._quote].search(buf, i)
                if m is None:
                    i = n
                    break
                i = m.start()
                if buf[i] == 10:
                    break
                self._quote = None
                i += 1
                continue
            m = _SPECIAL.search(buf, i)
            if m is None:
                i = n
                break
            i = m.start()
            c = buf[i]
            if c == 10:
                break
            if c == 34 or c == 39:
                self._quote = c
                i += 1
                continue
            # "#": a definite-length block is skipped by its length.
            if i + 1 >= n:
                self._scan = i
                return None
            if 49 <= buf[i + 1] <= 57:
                ndig = buf[i + 1] - 48
                if i + 2 + ndig > n:
                    self._scan = i
                    return None
                digits = bytes(buf[i + 2 : i + 2 + ndig])
                if digits.isdigit():
                    end = i + 2 + ndig + int(digits)
                    if end > n:
                        self._scan = i
                        return None
                    i = end
                    continue
                i += 2
                continue
            i += 1
        if i >= n:
            self._scan = n
            return None
        message = bytes(buf[:i])
        del buf[: i + 1]
        self._scan = 0
        self._quote = None
        if message.endswith(b"\r"):
            message = message[:-1]
        return message
