"""The simulated stimulator board: the device side of the board protocol, messages in and out.

The board knows nothing of bytes: a transport link (sim/board/link.py) decodes frames and calls
`receive` / `reject`, and the board answers through the `BoardPort` attached to it. Every timer
runs on the running asyncio loop's clock, so the board works in virtual time in tests and in
real time from the command line.

What the trace records is what each output physically delivers: after the load model
(compliance), after injected faults (a stuck output stays on whatever the firmware believes).
"""

from __future__ import annotations

import asyncio
import math
import random
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Protocol

from firmware_protocol.messages import (
    PROTOCOL_VERSION,
    Ack,
    ChannelInfo,
    ChannelState,
    ClearFaults,
    ConfigureChannel,
    DeviceMessage,
    EmergencyStop,
    FaultCode,
    FaultReport,
    Goodbye,
    Heartbeat,
    Hello,
    HelloReply,
    HostMessage,
    Nack,
    NackCode,
    ProgramAlternation,
    SetAmplitude,
    SetOutput,
    StartAlternation,
    StatusReport,
    StatusRequest,
    StopAlternation,
)
from sim.board.alternation import Step, cycle_ms, cycle_steps
from sim.board.checks import (
    alternation_refusal,
    amplitude_refusal,
    configure_refusal,
    phase_width_us,
)
from sim.board.config import BoardConfig, ChannelLimits
from sim.faults import FaultSpec
from sim.load import ElectrodeLoad
from sim.trace import OutputTrace

OPEN_CIRCUIT_OHM = 0xFFFF_FFFF
"""What status reports as the load of an open circuit (the largest uint32)."""

_EPS_S = 1e-6
"""Timers may fire this much before their nominal time (the loop's clock resolution)."""

def _round_to(value: int, step: int) -> int:
    return round(value / step) * step


_SUPPORTED_FAULTS = (
    "lead-off", "short", "stall", "corrupt", "drop", "stuck", "reset-after", "overcurrent",
    "delay-after",
)


class BoardPort(Protocol):
    """Where the board's outgoing messages go (a transport link)."""

    def send(self, message: DeviceMessage) -> None: ...

    def restart(self) -> None:
        """The device rebooted: drop any protocol state (sequence numbers, partial frames)."""


@dataclass
class _Channel:
    number: int
    limits: ChannelLimits
    base_load: ElectrodeLoad
    config: ConfigureChannel | None = None
    set_ua: int = 0
    commanded_on: bool = False
    alt_fraction: float | None = None
    """The alternation engine's position on this channel's ramp; None when not alternating."""
    alt_plateau_ua: int = 0
    """The plateau of the present on-phase, latched from set_ua when the phase began."""
    # injected conditions
    lead_off: bool = False
    shorted: bool = False
    stuck: bool = False
    overcurrent: bool = False
    # what the output physically does
    on: bool = False
    drive_ua: int = 0
    delivered_ma: float = 0.0
    compliance: bool = False
    last_phase_us: float = 200.0
    last_waveform: str = "biphasic_symmetric"

    def load(self) -> ElectrodeLoad:
        if self.lead_off:
            return self.base_load.lead_off()
        if self.shorted:
            return self.base_load.shorted()
        return self.base_load

    def commanded_drive_ua(self) -> int:
        if self.alt_fraction is None:
            return self.set_ua
        return _round_to(round(self.alt_plateau_ua * self.alt_fraction), self.limits.resolution_ua)


@dataclass
class _Alternation:
    program: ProgramAlternation
    steps: tuple[Step, ...]
    cycle_s: float
    t0: float
    index: int = 0
    """Steps done so far, counted over all cycles."""
    handle: asyncio.TimerHandle | None = None
    last_off_s: dict[int, float] = field(default_factory=dict)


class SimulatedBoard:
    """The board. Create it anywhere; it binds to the running loop at `start()` (the servers
    call it). Tests read its state through the read-only properties."""

    def __init__(
        self,
        config: BoardConfig | None = None,
        trace: OutputTrace | None = None,
        faults: Iterable[FaultSpec] = (),
    ) -> None:
        self.config = config or BoardConfig()
        self.trace = trace
        self._channels = {
            n: _Channel(n, self.config.limits_for(n), self.config.load_for(n))
            for n in range(1, self.config.channels + 1)
        }
        self._rng = random.Random(self.config.seed)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._boot_s = 0.0
        self._port: BoardPort | None = None
        self._powered = True
        self._greeted = False
        self._latched: set[FaultCode] = set()
        self._program: ProgramAlternation | None = None
        self._alt: _Alternation | None = None
        self._wd_deadline: float | None = None
        self._wd_handle: asyncio.TimerHandle | None = None
        self._stalled = False
        self._corrupt_p = 0.0
        self._drop_p = 0.0
        self._next_delay_s: float | None = None
        self._fault_handles: list[asyncio.TimerHandle] = []
        self._pending: list[FaultSpec] = []
        self._commands_received = 0
        self._last_frame_s: float | None = None
        for spec in faults:
            self.inject(spec)

    # ---- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        """Bind to the running loop, record every output off, apply the faults given so far."""
        if self._loop is not None:
            return
        self._loop = asyncio.get_running_loop()
        self._boot_s = self._loop.time()
        for ch in self._channels.values():
            self._apply(ch)
        pending, self._pending = self._pending, []
        # Given together (the constructor, the CLI), a delay-after delays all the others.
        delay_s = sum(float(s.value or 0.0) for s in pending if s.kind == "delay-after")
        for spec in pending:
            if spec.kind != "delay-after":
                self._next_delay_s = delay_s or None
                self.inject(spec)

    def shutdown(self) -> None:
        """Power the board off: every output off (a stuck relay too: there is no power behind
        it), every timer cancelled; it answers nothing afterwards."""
        self._stop_alternation()
        self._disarm_watchdog()
        for handle in self._fault_handles:
            handle.cancel()
        self._fault_handles.clear()
        self._powered = False
        for ch in self._channels.values():
            ch.commanded_on = False
            self._apply(ch)

    def attach(self, port: BoardPort) -> None:
        if self._port is not None and self._port is not port:
            raise RuntimeError("the board already has a host connected")
        self._port = port

    def detach(self, port: BoardPort) -> None:
        # The firmware cannot tell that the host went away; only its watchdog will notice.
        if self._port is port:
            self._port = None

    # ---- read-only state for tests -----------------------------------------------------------

    @property
    def started(self) -> bool:
        return self._loop is not None

    @property
    def connected(self) -> bool:
        return self._port is not None

    @property
    def output_states(self) -> dict[int, bool]:
        """What each output physically does (a stuck output is on here)."""
        return {n: ch.on for n, ch in self._channels.items()}

    @property
    def delivered_ma(self) -> dict[int, float]:
        return {n: ch.delivered_ma for n, ch in self._channels.items()}

    @property
    def set_amplitudes_ua(self) -> dict[int, int]:
        return {n: ch.set_ua for n, ch in self._channels.items()}

    @property
    def fault_latched(self) -> bool:
        return bool(self._latched)

    @property
    def latched_faults(self) -> frozenset[FaultCode]:
        return frozenset(self._latched)

    @property
    def watchdog_armed(self) -> bool:
        return self._wd_deadline is not None

    @property
    def greeted(self) -> bool:
        return self._greeted

    @property
    def alternation_running(self) -> bool:
        return self._alt is not None

    @property
    def stalled(self) -> bool:
        return self._stalled

    @property
    def commands_received(self) -> int:
        """Host commands decoded and handled (retransmissions count once each)."""
        return self._commands_received

    @property
    def last_frame_s(self) -> float | None:
        """Loop time of the last valid frame from the host: where the watchdog counts from."""
        return self._last_frame_s

    # ---- fault injection ---------------------------------------------------------------------

    def inject(self, spec: FaultSpec) -> None:
        """Apply a fault now. Injected on its own, `delay-after:S` delays the next fault
        injected (by S seconds from that call); among the faults given before `start()` (the
        constructor's, the CLI's), it delays all the others, counted from `start()`.
        Raises ValueError for a fault the board cannot have."""
        if spec.kind not in _SUPPORTED_FAULTS:
            raise ValueError(
                f"fault {spec.kind!r} is for the SCPI simulators; the board takes: "
                + ", ".join(_SUPPORTED_FAULTS)
            )
        if spec.channel is not None and spec.channel not in self._channels:
            raise ValueError(
                f"fault {spec}: the board has channels 1..{self.config.channels}"
            )
        if self._loop is None:
            self._pending.append(spec)
            return
        if spec.kind == "delay-after":
            self._next_delay_s = float(spec.value or 0.0)
            return
        delay_s, self._next_delay_s = self._next_delay_s, None
        if delay_s:
            self._fault_handles.append(self._loop.call_later(delay_s, self._activate, spec))
        else:
            self._activate(spec)

    def clear_injected(self) -> None:
        """Remove every injected fault (pending ones too). A fault the board latched because
        of one stays latched until the host sends ClearFaults."""
        for handle in self._fault_handles:
            handle.cancel()
        self._fault_handles.clear()
        self._pending.clear()
        self._next_delay_s = None
        self._corrupt_p = self._drop_p = 0.0
        for ch in self._channels.values():
            ch.lead_off = ch.shorted = ch.stuck = ch.overcurrent = False
        if self._stalled:
            self._resume()
        for ch in self._channels.values():
            self._apply(ch)

    def _activate(self, spec: FaultSpec) -> None:
        ch = self._channels[spec.channel] if spec.channel is not None else None
        value = float(spec.value or 0.0)
        if spec.kind == "lead-off" and ch:
            ch.lead_off = True
        elif spec.kind == "short" and ch:
            ch.shorted = True
        elif spec.kind == "stuck" and ch:
            ch.stuck = True
        elif spec.kind == "overcurrent" and ch:
            ch.overcurrent = True
        elif spec.kind == "corrupt":
            self._corrupt_p = value
        elif spec.kind == "drop":
            self._drop_p = value
        elif spec.kind == "stall":
            self._stall()
        elif spec.kind == "reset-after":
            assert self._loop is not None
            self._fault_handles.append(self._loop.call_later(value, self._restart))
        if ch is not None:
            self._apply(ch)

    def mangle(self, data: bytes) -> bytes:
        """The corrupt fault: flip bits in each outgoing byte with its probability."""
        if self._corrupt_p <= 0.0:
            return data
        out = bytearray(data)
        for i in range(len(out)):
            if self._rng.random() < self._corrupt_p:
                out[i] ^= 1 << self._rng.randrange(8)
        return bytes(out)

    # ---- incoming ----------------------------------------------------------------------------

    def receive(self, seq: int, message: HostMessage) -> None:
        """A frame decoded into a host command."""
        if self._stalled or not self._powered or self._loop is None:
            return
        self._commands_received += 1
        self._last_frame_s = self._loop.time()
        if self._greeted:
            self._feed_watchdog()
        self._reply(self._dispatch(seq, message))

    def reject(self, seq: int, code: NackCode) -> None:
        """A frame with a good checksum but an undecodable payload."""
        if self._stalled or not self._powered or self._loop is None:
            return
        self._last_frame_s = self._loop.time()
        if self._greeted:
            self._feed_watchdog()  # a frame answered by Nack is still a valid frame
        self._reply(Nack(seq, code))

    def _reply(self, message: DeviceMessage) -> None:
        if self._drop_p > 0.0 and self._rng.random() < self._drop_p:
            return
        self._send(message)

    def _send(self, message: DeviceMessage) -> None:
        if self._port is not None and not self._stalled and self._powered:
            self._port.send(message)

    def _dispatch(self, seq: int, msg: HostMessage) -> DeviceMessage:
        if isinstance(msg, Hello):
            return self._hello(seq, msg)
        if not self._greeted:
            return Nack(seq, NackCode.BAD_STATE)
        if isinstance(msg, Heartbeat):
            return Ack(seq)
        if isinstance(msg, StatusRequest):
            return self._status(seq)
        if isinstance(msg, ConfigureChannel):
            return self._configure(seq, msg)
        if isinstance(msg, SetAmplitude):
            return self._set_amplitude(seq, msg)
        if isinstance(msg, SetOutput):
            return self._set_output(seq, msg)
        if isinstance(msg, ProgramAlternation):
            return self._program_alternation(seq, msg)
        if isinstance(msg, StartAlternation):
            return self._start_alternation(seq)
        if isinstance(msg, StopAlternation):
            self._stop_alternation()
            return Ack(seq)
        if isinstance(msg, EmergencyStop):
            self._trip(FaultCode.ESTOP, 0, report=False)
            return Ack(seq)
        if isinstance(msg, ClearFaults):
            self._latched.clear()
            return Ack(seq)
        if isinstance(msg, Goodbye):
            self._stop_alternation()
            self._all_commanded_off()
            self._disarm_watchdog()
            self._greeted = False
            return Ack(seq)
        return Nack(seq, NackCode.UNKNOWN_MESSAGE)

    def _hello(self, seq: int, msg: Hello) -> DeviceMessage:
        if msg.protocol_version != PROTOCOL_VERSION:
            return Nack(seq, NackCode.VERSION, 1)
        # A host (re)introducing itself must not inherit outputs it does not know are on.
        self._stop_alternation()
        self._all_commanded_off()
        self._greeted = True
        self._feed_watchdog()
        return HelloReply(
            acked_seq=seq,
            protocol_version=PROTOCOL_VERSION,
            firmware_version=self.config.firmware_version,
            serial=self.config.serial,
            watchdog_timeout_ms=self.config.watchdog_ms,
            can_alternate=self.config.hardware_alternation,
            channels=tuple(self._channel_info(ch) for ch in self._channels.values()),
        )

    @staticmethod
    def _channel_info(ch: _Channel) -> ChannelInfo:
        lim = ch.limits
        return ChannelInfo(
            channel=ch.number,
            max_amplitude_ua=lim.max_amplitude_ua,
            resolution_ua=lim.resolution_ua,
            min_frequency_mhz=lim.min_frequency_mhz,
            max_frequency_mhz=lim.max_frequency_mhz,
            min_pulse_width_us=lim.min_pulse_width_us,
            max_pulse_width_us=lim.max_pulse_width_us,
            compliance_mv=lim.compliance_mv,
            waveforms=lim.waveforms,
        )

    def _status(self, seq: int) -> StatusReport:
        assert self._loop is not None
        states = []
        for ch in self._channels.values():
            ohm = 0
            if ch.on:
                eff = ch.load().effective_ohm(ch.last_phase_us)
                ohm = OPEN_CIRCUIT_OHM if math.isinf(eff) else min(round(eff), OPEN_CIRCUIT_OHM)
            states.append(
                ChannelState(
                    channel=ch.number,
                    output_on=ch.on,
                    set_ua=ch.set_ua if ch.alt_fraction is None else ch.commanded_drive_ua(),
                    measured_ua=round(ch.delivered_ma * 1000),
                    compliance=ch.compliance,
                    load_ohm=ohm,
                )
            )
        uptime_ms = int((self._loop.time() - self._boot_s) * 1000) & 0xFFFF_FFFF
        return StatusReport(
            acked_seq=seq,
            uptime_ms=uptime_ms,
            alternation_running=self._alt is not None,
            fault_latched=bool(self._latched),
            channels=tuple(states),
        )

    def _in_running_pair(self, channel: int) -> bool:
        alt = self._alt
        return alt is not None and channel in (alt.program.channel_a, alt.program.channel_b)

    def _configure(self, seq: int, msg: ConfigureChannel) -> DeviceMessage:
        ch = self._channels.get(msg.channel)
        if ch is None:
            return Nack(seq, NackCode.BAD_CHANNEL, 1)
        if self._in_running_pair(msg.channel):
            return Nack(seq, NackCode.BAD_STATE)
        refused = configure_refusal(msg, ch.limits)
        if refused:
            return Nack(seq, refused[0], refused[1])
        ch.config = msg
        ch.set_ua = _round_to(msg.amplitude_ua, ch.limits.resolution_ua)
        self._apply(ch)
        return Ack(seq)

    def _set_amplitude(self, seq: int, msg: SetAmplitude) -> DeviceMessage:
        ch = self._channels.get(msg.channel)
        if ch is None:
            return Nack(seq, NackCode.BAD_CHANNEL, 1)
        refused = amplitude_refusal(msg.amplitude_ua, ch.limits, 2)
        if refused:
            return Nack(seq, refused[0], refused[1])
        if ch.config is None:
            return Nack(seq, NackCode.BAD_STATE)
        # Rounded to the DAC's resolution; during alternation it takes effect from the next
        # on-phase (the engine latches the plateau when a phase begins).
        ch.set_ua = _round_to(msg.amplitude_ua, ch.limits.resolution_ua)
        self._apply(ch)
        return Ack(seq)

    def _set_output(self, seq: int, msg: SetOutput) -> DeviceMessage:
        ch = self._channels.get(msg.channel)
        if ch is None:
            return Nack(seq, NackCode.BAD_CHANNEL, 1)
        if self._in_running_pair(msg.channel):
            return Nack(seq, NackCode.BAD_STATE)
        if msg.on:
            if self._latched:
                return Nack(seq, NackCode.FAULT_LATCHED)
            if ch.config is None:
                return Nack(seq, NackCode.BAD_STATE)
        ch.commanded_on = msg.on
        self._apply(ch)
        return Ack(seq)

    def _program_alternation(self, seq: int, msg: ProgramAlternation) -> DeviceMessage:
        if not self.config.hardware_alternation:
            return Nack(seq, NackCode.UNSUPPORTED)
        if self._alt is not None:
            return Nack(seq, NackCode.BAD_STATE)
        refused = alternation_refusal(msg, self.config.channels)
        if refused:
            return Nack(seq, refused[0], refused[1])
        if self._channels[msg.channel_a].config is None or self._channels[msg.channel_b].config is None:
            return Nack(seq, NackCode.BAD_STATE)
        self._program = msg
        return Ack(seq)

    def _start_alternation(self, seq: int) -> DeviceMessage:
        if self._latched:
            return Nack(seq, NackCode.FAULT_LATCHED)
        program = self._program
        if program is None or self._alt is not None:
            return Nack(seq, NackCode.BAD_STATE)
        assert self._loop is not None
        a, b = self._channels[program.channel_a], self._channels[program.channel_b]
        now = self._loop.time()
        delay_s = 0.0
        if a.on or b.on:
            # Taking over outputs the host left on: off first, then a full dead time.
            a.commanded_on = b.commanded_on = False
            self._apply(a)
            self._apply(b)
            delay_s = program.dead_time_ms / 1000
        a.alt_fraction = b.alt_fraction = 0.0
        self._alt = _Alternation(
            program=program,
            steps=cycle_steps(program, self.config.ramp_step_ms),
            cycle_s=cycle_ms(program) / 1000,
            t0=now + delay_s,
            last_off_s={0: -math.inf, 1: -math.inf},
        )
        self._schedule_alternation()
        return Ack(seq)

    # ---- the alternation engine --------------------------------------------------------------

    def _step_time(self, alt: _Alternation, index: int) -> float:
        cycle, i = divmod(index, len(alt.steps))
        return alt.t0 + cycle * alt.cycle_s + alt.steps[i].offset_ms / 1000

    def _schedule_alternation(self) -> None:
        alt = self._alt
        assert alt is not None and self._loop is not None
        alt.handle = self._loop.call_at(self._step_time(alt, alt.index), self._alternation_tick)

    def _alternation_tick(self) -> None:
        alt = self._alt
        if alt is None or self._stalled or self._loop is None:
            return
        alt.handle = None
        first = True
        while self._alt is alt and (
            first or self._step_time(alt, alt.index) <= self._loop.time() + _EPS_S
        ):
            first = False
            step = alt.steps[alt.index % len(alt.steps)]
            now = self._loop.time()
            if step.on:
                # Under load the loop may run late; never let that eat into the dead time.
                other_off = alt.last_off_s[1 - step.which]
                wait_s = alt.program.dead_time_ms / 1000 - (now - other_off)
                if wait_s > _EPS_S:
                    alt.t0 += wait_s
                    break
            ch_no = alt.program.channel_a if step.which == 0 else alt.program.channel_b
            ch = self._channels[ch_no]
            if step.begins:
                ch.alt_plateau_ua = ch.set_ua
            ch.alt_fraction = step.fraction
            ch.commanded_on = step.on
            if not step.on:
                alt.last_off_s[step.which] = now
            alt.index += 1
            self._apply(ch)
        if self._alt is alt:
            self._schedule_alternation()

    def _stop_alternation(self) -> None:
        alt = self._alt
        if alt is None:
            return
        if alt.handle is not None:
            alt.handle.cancel()
        self._alt = None
        for ch_no in (alt.program.channel_a, alt.program.channel_b):
            ch = self._channels[ch_no]
            ch.commanded_on = False
            ch.alt_fraction = None
            self._apply(ch)

    # ---- outputs and faults ------------------------------------------------------------------

    def _all_commanded_off(self) -> None:
        for ch in self._channels.values():
            ch.commanded_on = False
        for ch in self._channels.values():
            self._apply(ch)

    def _apply(self, ch: _Channel) -> None:
        """Work out what the output physically delivers, record it, and react to it."""
        if ch.config is not None:
            ch.last_phase_us = phase_width_us(ch.config)
            ch.last_waveform = ch.config.waveform.name.lower()
        was_compliant = ch.compliance
        if not self._powered:
            on, drive_ua = False, 0
        elif ch.commanded_on:
            on, drive_ua = True, ch.commanded_drive_ua()
        elif ch.stuck and ch.on:
            on, drive_ua = True, ch.drive_ua  # a welded relay keeps the last drive level
        else:
            on, drive_ua = False, 0
        ch.on, ch.drive_ua = on, drive_ua
        drive_ma = drive_ua / 1000
        if on and drive_ua > 0:
            delivered_ma, compliance = ch.load().deliver(
                drive_ma, ch.last_phase_us, ch.limits.compliance_mv / 1000
            )
            if ch.overcurrent:
                delivered_ma = drive_ma * 1.25 + 0.5
        else:
            delivered_ma, compliance = 0.0, False
        ch.delivered_ma, ch.compliance = delivered_ma, compliance
        if self.trace is not None and self._loop is not None:
            self.trace.record(ch.number, on, delivered_ma, ch.last_waveform, device="board")
        if not on:
            return
        if delivered_ma > drive_ma * 1.1 + 0.1 and FaultCode.OVERCURRENT not in self._latched:
            self._trip(FaultCode.OVERCURRENT, ch.number, detail=round(delivered_ma * 1000))
        elif compliance and not was_compliant:
            eff = ch.load().effective_ohm(ch.last_phase_us)
            load_ohm = 0 if math.isinf(eff) else min(round(eff), OPEN_CIRCUIT_OHM)
            self._send(FaultReport(FaultCode.LEAD_OFF, ch.number, load_ohm))
            if self.config.off_on_compliance and FaultCode.LEAD_OFF not in self._latched:
                self._trip(FaultCode.LEAD_OFF, ch.number, report=False)

    def _trip(self, code: FaultCode, channel: int, report: bool = True, detail: int = 0) -> None:
        """Every output off at once (no ramp), alternation stopped, the fault latched."""
        self._latched.add(code)
        alt, self._alt = self._alt, None
        if alt is not None and alt.handle is not None:
            alt.handle.cancel()
        for ch in self._channels.values():
            ch.commanded_on = False
            ch.alt_fraction = None
        for ch in self._channels.values():
            self._apply(ch)
        if report:
            self._send(FaultReport(code, channel, detail))

    # ---- watchdog ----------------------------------------------------------------------------

    def _feed_watchdog(self) -> None:
        assert self._loop is not None
        self._wd_deadline = self._loop.time() + self.config.watchdog_ms / 1000
        if self._wd_handle is None:
            self._wd_handle = self._loop.call_at(self._wd_deadline, self._watchdog_check)

    def _watchdog_check(self) -> None:
        self._wd_handle = None
        if self._wd_deadline is None or self._stalled or self._loop is None:
            return
        if self._loop.time() + _EPS_S < self._wd_deadline:
            # Fed since this timer was set: sleep until the new deadline.
            self._wd_handle = self._loop.call_at(self._wd_deadline, self._watchdog_check)
            return
        silent_ms = (self._loop.time() - self._wd_deadline) * 1000 + self.config.watchdog_ms
        self._wd_deadline = None
        self._trip(FaultCode.WATCHDOG, 0, detail=max(0, round(silent_ms)))

    def _disarm_watchdog(self) -> None:
        self._wd_deadline = None
        if self._wd_handle is not None:
            self._wd_handle.cancel()
            self._wd_handle = None

    # ---- stall and restart -------------------------------------------------------------------

    def _stall(self) -> None:
        """The firmware hangs: no reading, no replies, no timers; outputs hold their state."""
        self._stalled = True
        if self._wd_handle is not None:
            self._wd_handle.cancel()
            self._wd_handle = None
        if self._alt is not None and self._alt.handle is not None:
            self._alt.handle.cancel()
            self._alt.handle = None

    def _resume(self) -> None:
        """The firmware runs again. Its watchdog, starved meanwhile, fires at once if due."""
        self._stalled = False
        if self._wd_deadline is not None:
            self._watchdog_check()
        if self._alt is not None:
            self._alternation_tick()

    def _restart(self) -> None:
        """A spontaneous reset: outputs off, every setting and the session lost."""
        assert self._loop is not None
        self._stop_alternation()
        self._disarm_watchdog()
        self._stalled = False
        self._greeted = False
        self._latched.clear()
        self._program = None
        self._boot_s = self._loop.time()
        for ch in self._channels.values():
            ch.commanded_on = False
            ch.config = None
            ch.set_ua = 0
        for ch in self._channels.values():
            self._apply(ch)
        if self._port is not None:
            self._port.restart()
        self._send(FaultReport(FaultCode.RESET, 0))
