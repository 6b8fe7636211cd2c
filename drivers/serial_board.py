"""`SerialBoard`: the stimctl stimulator board over its serial firmware protocol.

Works with any pyserial URL that has a file descriptor: a device path (/dev/ttyACM0), a
`socket://host:port` (the simulator, a serial-to-TCP bridge) or the simulator's pty. It is
asyncio all the way down and sleeps on nothing but the loop, so tests run it in virtual time.

The board's watchdog is fed only by `heartbeat()` (and by any other command): the controller
calls it every `capabilities.recommended_heartbeat_s`. A hung controller therefore stops
feeding it, and the board switches itself off. That is deliberate.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections import deque
from typing import TypeVar

from drivers.base import (
    AlternationSchedule,
    Capabilities,
    ChannelCapability,
    ChannelConfig,
    ChannelStatus,
    DeviceIdentity,
    DeviceStatus,
    FaultKind,
    FaultListener,
    FaultReport,
    Stimulator,
    Waveform,
)
from drivers.errors import (
    CapabilityError,
    CommandRejected,
    ConnectionLost,
    DeviceError,
    DeviceTimeout,
    NotSupported,
    ProtocolError,
    ReadbackMismatch,
)
from drivers.serial_link import SerialLink
from firmware_protocol import Connection, Received, Role
from firmware_protocol import messages as m

log = logging.getLogger(__name__)

R = TypeVar("R", m.Ack, m.HelloReply, m.StatusReport)

_FAULT_KINDS = {
    m.FaultCode.OVERCURRENT: FaultKind.OVERCURRENT,
    m.FaultCode.LEAD_OFF: FaultKind.LEAD_OFF,
    m.FaultCode.WATCHDOG: FaultKind.WATCHDOG,
    m.FaultCode.INTERNAL: FaultKind.INTERNAL,
    m.FaultCode.ESTOP: FaultKind.DEVICE_ERROR,
    m.FaultCode.RESET: FaultKind.RESET,
}

_NACK_ADVICE = {
    m.NackCode.UNKNOWN_MESSAGE: "the firmware does not know this command; update it",
    m.NackCode.MALFORMED: "the frame did not decode on the board; report this as a bug",
    m.NackCode.BAD_CHANNEL: "use a channel number the board has",
    m.NackCode.OUT_OF_RANGE: "stay within the limits the board advertised",
    m.NackCode.UNSUPPORTED: "this board cannot do it",
    m.NackCode.BAD_STATE: (
        "not allowed now (before the handshake, channel not configured, or the channel is "
        "alternating: stop alternation first)"
    ),
    m.NackCode.FAULT_LATCHED: "a fault is latched on the board: find its cause, then clear_faults()",
    m.NackCode.VERSION: "the board speaks another protocol version; update host or firmware",
    m.NackCode.BUSY: "the board is busy; try again",
}

_HEARTBEAT_MODULUS = 1 << 32
_FAULT_HISTORY = 32


class SerialBoard(Stimulator):
    """The board driver. Every wait is bounded: no reply within reply_timeout_s is retried
    (idempotent commands only, `retries` times, each a new frame) and then `DeviceTimeout`."""

    def __init__(
        self,
        url: str,
        *,
        reply_timeout_s: float = 0.05,
        retries: int = 2,
        open_timeout_s: float = 1.0,
    ) -> None:
        if reply_timeout_s <= 0 or open_timeout_s <= 0:
            raise ValueError("reply_timeout_s and open_timeout_s must be > 0")
        if retries < 0:
            raise ValueError("retries must be >= 0")
        self.url = url
        self.reply_timeout_s = reply_timeout_s
        self.retries = retries
        self.open_timeout_s = open_timeout_s
        self._link: SerialLink | None = None
        self._conn = Connection(Role.HOST)
        self._pending: dict[int, asyncio.Future[m.DeviceMessage]] = {}
        self._listeners: list[FaultListener] = []
        self._caps: Capabilities | None = None
        self._faults: deque[FaultReport] = deque(maxlen=_FAULT_HISTORY)
        self._heartbeat_count = 0
        self._closing = False
        self._reset_seen = False

    # ---- lifecycle ---------------------------------------------------------------------------

    async def open(self) -> Capabilities:
        if self._caps is not None and self._link is not None and self._link.is_open:
            return self._caps
        if self._link is not None:
            self._release()  # a link that failed earlier: drop its port before opening anew
        self._closing = False
        self._reset_seen = False
        self._conn = Connection(Role.HOST)
        link = SerialLink(self._on_data, self._on_lost)
        link.open(self.url)
        self._link = link
        try:
            # Hello is not retried blindly (a lost HelloReply would leave us guessing); a board
            # that is still booting gets the whole open timeout to answer.
            hello = m.Hello(m.PROTOCOL_VERSION, m.PROTOCOL_MINOR)
            reply = await self._request(hello, m.HelloReply, idempotent=False, timeout_s=self.open_timeout_s)
            self._caps = _capabilities(reply)
            status = await self.status()
            on = [st.channel for st in status.channels if st.output_on]
            if on:
                raise ReadbackMismatch(f"outputs {on} after the handshake", "off", "on")
        except BaseException:
            self._release()
            raise
        return self._caps

    async def close(self) -> None:
        link = self._link
        if link is None:
            return
        self._closing = True
        try:
            if link.is_open and self._caps is not None:
                try:
                    await self.all_outputs_off()
                except DeviceError as exc:
                    log.warning("closing %s: outputs not confirmed off: %s", self.url, exc)
                try:
                    await self._request(m.Goodbye(), m.Ack, idempotent=False)
                except DeviceError as exc:
                    log.warning("closing %s: goodbye not acknowledged: %s", self.url, exc)
                await link.drain(self.reply_timeout_s)
        finally:
            self._release()

    def _release(self) -> None:
        link, self._link = self._link, None
        self._caps = None
        if link is not None:
            link.close()
        self._fail_pending(ConnectionLost(f"the link to {self.url} was closed"))

    @property
    def capabilities(self) -> Capabilities:
        if self._caps is None:
            raise ConnectionLost(f"the board at {self.url} is not open: call open() first")
        return self._caps

    def add_fault_listener(self, listener: FaultListener) -> None:
        self._listeners.append(listener)

    # ---- outputs -----------------------------------------------------------------------------

    async def configure_channel(self, channel: int, config: ChannelConfig) -> None:
        cap = self._channel_cap(channel)
        msg = self._configure_message(cap, config)
        await self._request(msg, m.Ack, idempotent=True)
        st = (await self.status()).channel(channel)
        expected_ma = msg.amplitude_ua / 1000
        if not math.isclose(st.set_amplitude_ma, expected_ma, abs_tol=1e-9):
            raise ReadbackMismatch(f"channel {channel} amplitude (mA)", expected_ma, st.set_amplitude_ma)

    async def set_amplitude(self, channel: int, amplitude_ma: float) -> float:
        cap = self._channel_cap(channel)
        amplitude_ua = _amplitude_ua(cap, amplitude_ma)
        await self._request(m.SetAmplitude(channel, amplitude_ua), m.Ack, idempotent=True)
        # The board acks only what it was sent, on its resolution grid: that value is the readback.
        return amplitude_ua / 1000

    async def set_output(self, channel: int, on: bool) -> None:
        self._channel_cap(channel)
        await self._request(m.SetOutput(channel, on), m.Ack, idempotent=True)
        st = (await self.status()).channel(channel)
        if st.output_on != on:
            raise ReadbackMismatch(f"channel {channel} output", "on" if on else "off",
                                   "on" if st.output_on else "off")

    async def all_outputs_off(self) -> None:
        caps = self.capabilities
        # Pipelined: every frame goes out before the first ack is awaited. The board handles
        # them in order, so StopAlternation frees the pair before its SetOutput(off) arrives.
        commands: list[m.HostMessage] = []
        if caps.hardware_alternation:
            commands.append(m.StopAlternation())
        commands += [m.SetOutput(cap.channel, False) for cap in caps.channels]
        results = await asyncio.gather(
            *(self._request(cmd, m.Ack, idempotent=True) for cmd in commands),
            return_exceptions=True,
        )
        status = await self.status()
        still_on = [st.channel for st in status.channels if st.output_on]
        if still_on:
            raise ReadbackMismatch(f"outputs {still_on} after all-off", "off", "on")
        for result in results:
            if isinstance(result, BaseException):
                raise result

    async def emergency_stop(self) -> None:
        await self._request(m.EmergencyStop(), m.Ack, idempotent=True)
        status = await self.status()
        still_on = [st.channel for st in status.channels if st.output_on]
        if still_on:
            raise ReadbackMismatch(f"outputs {still_on} after emergency stop", "off", "on")

    async def status(self) -> DeviceStatus:
        report = await self._request(m.StatusRequest(), m.StatusReport, idempotent=True)
        return DeviceStatus(
            channels=tuple(
                ChannelStatus(
                    channel=st.channel,
                    output_on=st.output_on,
                    set_amplitude_ma=st.set_ua / 1000,
                    measured_amplitude_ma=st.measured_ua / 1000,
                    compliance=st.compliance,
                    load_ohm=float(st.load_ohm) if st.load_ohm else None,
                )
                for st in report.channels
            ),
            alternation_running=report.alternation_running,
            fault_latched=report.fault_latched,
            faults=tuple(self._faults),
        )

    async def heartbeat(self) -> None:
        self._heartbeat_count = (self._heartbeat_count + 1) % _HEARTBEAT_MODULUS
        await self._request(m.Heartbeat(self._heartbeat_count), m.Ack, idempotent=True)

    async def program_alternation(self, schedule: AlternationSchedule) -> None:
        caps = self.capabilities
        if not caps.hardware_alternation:
            raise NotSupported("this board cannot run alternation on its own clock")
        for ch in (schedule.channel_a, schedule.channel_b):
            self._channel_cap(ch)
        if schedule.channel_a == schedule.channel_b:
            raise CapabilityError("an alternating pair needs two different channels")
        msg = m.ProgramAlternation(
            channel_a=schedule.channel_a,
            channel_b=schedule.channel_b,
            on_ms=_whole_ms("on_s", schedule.on_s),
            dead_time_ms=_whole_ms("dead_time_s", schedule.dead_time_s),
            rest_ms=_whole_ms("rest_s", schedule.rest_s),
            ramp_up_ms=_whole_ms("ramp_up_s", schedule.ramp_up_s),
            ramp_down_ms=_whole_ms("ramp_down_s", schedule.ramp_down_s),
        )
        if msg.dead_time_ms < 1:
            raise CapabilityError("the board needs a dead time of at least 1 ms between channels")
        if msg.ramp_up_ms + msg.ramp_down_ms > msg.on_ms:
            raise CapabilityError("ramp_up_s + ramp_down_s must fit inside on_s")
        if msg.rest_ms < msg.dead_time_ms:
            raise CapabilityError("rest_s must be at least dead_time_s")
        await self._request(msg, m.Ack, idempotent=False)

    async def start_alternation(self) -> None:
        try:
            await self._request(m.StartAlternation(), m.Ack, idempotent=False)
        except DeviceTimeout:
            # Not retried blindly: ask the board whether the first one took effect.
            if not (await self.status()).alternation_running:
                raise
            log.info("start_alternation: reply lost, but status shows alternation running")

    async def stop_alternation(self) -> None:
        await self._request(m.StopAlternation(), m.Ack, idempotent=True)

    async def clear_faults(self) -> None:
        await self._request(m.ClearFaults(), m.Ack, idempotent=True)
        self._faults.clear()

    # ---- conversions -------------------------------------------------------------------------

    def _channel_cap(self, channel: int) -> ChannelCapability:
        caps = self.capabilities
        try:
            return caps.channel(channel)
        except KeyError:
            numbers = ", ".join(str(c.channel) for c in caps.channels)
            raise CapabilityError(f"the board has no channel {channel}; it has {numbers}") from None

    def _configure_message(self, cap: ChannelCapability, config: ChannelConfig) -> m.ConfigureChannel:
        if config.waveform not in cap.waveforms:
            names = ", ".join(sorted(w.value for w in cap.waveforms))
            raise CapabilityError(
                f"channel {cap.channel} cannot produce {config.waveform.value}; it supports {names}"
            )
        amplitude_ua = _amplitude_ua(cap, config.amplitude_ma)
        code = m.WaveformCode[config.waveform.name]
        if config.waveform is Waveform.AMPLIPULSE:
            if config.carrier_hz is None or config.modulation_hz is None:
                raise CapabilityError("amplipulse needs carrier_hz and modulation_hz")
            carrier_hz = _whole("carrier_hz", config.carrier_hz, 1, "Hz")
            modulation_mhz = _whole("modulation_hz", config.modulation_hz, 1000, "mHz")
            _within("modulation_hz", config.modulation_hz, cap.min_frequency_hz, cap.max_frequency_hz, "Hz")
            if carrier_hz < 1:
                raise CapabilityError(f"carrier_hz must be >= 1 Hz, got {config.carrier_hz}")
            if not 0.0 <= config.modulation_depth <= 1.0:
                raise CapabilityError(f"modulation_depth must be within 0..1, got {config.modulation_depth}")
            return m.ConfigureChannel(
                channel=cap.channel,
                waveform=code,
                amplitude_ua=amplitude_ua,
                frequency_mhz=modulation_mhz,
                pulse_width_us=0,
                carrier_hz=carrier_hz,
                modulation_mhz=modulation_mhz,
                modulation_depth_pct=_whole("modulation_depth", config.modulation_depth, 100, "%"),
            )
        _within("frequency_hz", config.frequency_hz, cap.min_frequency_hz, cap.max_frequency_hz, "Hz")
        _within("pulse_width_us", config.pulse_width_us, cap.min_pulse_width_us, cap.max_pulse_width_us, "us")
        if config.interphase_gap_us < 0 or config.interphase_gap_us > cap.max_pulse_width_us:
            raise CapabilityError(
                f"interphase_gap_us {config.interphase_gap_us} is outside 0..{cap.max_pulse_width_us:g} us"
            )
        if not 1.0 <= config.asymmetry_ratio <= 10.0:
            raise CapabilityError(f"asymmetry_ratio must be within 1..10, got {config.asymmetry_ratio}")
        return m.ConfigureChannel(
            channel=cap.channel,
            waveform=code,
            amplitude_ua=amplitude_ua,
            frequency_mhz=_whole("frequency_hz", config.frequency_hz, 1000, "mHz"),
            pulse_width_us=_whole("pulse_width_us", config.pulse_width_us, 1, "us"),
            interphase_gap_us=_whole("interphase_gap_us", config.interphase_gap_us, 1, "us"),
            asymmetry_ratio_pct=_whole("asymmetry_ratio", config.asymmetry_ratio, 100, "%"),
        )

    # ---- request/reply -----------------------------------------------------------------------

    async def _request(
        self,
        msg: m.HostMessage,
        expect: type[R],
        *,
        idempotent: bool,
        timeout_s: float | None = None,
    ) -> R:
        timeout_s = self.reply_timeout_s if timeout_s is None else timeout_s
        attempts = 1 + (self.retries if idempotent else 0)
        loop = asyncio.get_running_loop()
        reply_future: asyncio.Future[m.DeviceMessage] = loop.create_future()
        seqs: list[int] = []
        name = type(msg).__name__
        try:
            for _ in range(attempts):
                link = self._link
                if link is None:
                    raise ConnectionLost(f"the board at {self.url} is not open: call open() first")
                seq, frame = self._conn.send(msg)
                # Every attempt's seq answers the same future: a late reply to the first copy
                # is as good as the reply to the retransmission.
                self._pending[seq] = reply_future
                seqs.append(seq)
                link.write(frame)
                try:
                    # asyncio.timeout, not wait_for: on 3.11 wait_for swallows a cancellation
                    # that arrives in the same loop iteration as the reply, and a session that
                    # cannot cancel its runner cannot stop.
                    async with asyncio.timeout(timeout_s):
                        reply = await asyncio.shield(reply_future)
                    break
                except TimeoutError:
                    continue
            else:
                raise DeviceTimeout(
                    f"{name}: no reply from the board at {self.url} within "
                    f"{timeout_s * 1000:.0f} ms ({attempts} attempt{'s' if attempts > 1 else ''}). "
                    "Check the cable or port and that the board is powered and not hung."
                )
        finally:
            for seq in seqs:
                self._pending.pop(seq, None)
            if not reply_future.done():
                reply_future.cancel()
        if isinstance(reply, m.Nack):
            raise self._rejected(name, reply)
        if not isinstance(reply, expect):
            raise ProtocolError(f"{name} was answered by {type(reply).__name__}, not {expect.__name__}")
        return reply

    def _rejected(self, name: str, nack: m.Nack) -> DeviceError:
        where = f" (field {nack.field_index})" if nack.field_index else ""
        advice = _NACK_ADVICE.get(nack.code, "")
        if nack.code is m.NackCode.BAD_STATE and self._reset_seen:
            advice = "the board restarted on its own and lost its settings: close() and open() again"
        if nack.code is m.NackCode.VERSION:
            return ProtocolError(f"the board refused {name}: {nack.code.name}; {advice}")
        return CommandRejected(f"the board refused {name}: {nack.code.name}{where}; {advice}", int(nack.code))

    def _on_data(self, data: bytes) -> None:
        for event in self._conn.receive_data(data):
            if not isinstance(event, Received):
                log.warning("undecodable frame from the board (seq %d): %s", event.seq, event.reason)
                continue
            msg = event.message
            if isinstance(msg, m.FaultReport):
                self._device_fault(msg)
            elif isinstance(msg, (m.Ack, m.Nack, m.HelloReply, m.StatusReport)):
                future = self._pending.get(msg.acked_seq)
                if future is not None and not future.done():
                    future.set_result(msg)

    def _device_fault(self, msg: m.FaultReport) -> None:
        kind = _FAULT_KINDS.get(msg.code, FaultKind.DEVICE_ERROR)
        if msg.code is m.FaultCode.RESET:
            self._reset_seen = True
        detail = f"board reports {msg.code.name}"
        if msg.detail:
            unit = {m.FaultCode.OVERCURRENT: " uA", m.FaultCode.LEAD_OFF: " ohm",
                    m.FaultCode.WATCHDOG: " ms silent"}.get(msg.code, "")
            detail += f" ({msg.detail}{unit})"
        self._notify(FaultReport(kind, msg.channel or None, detail))

    def _on_lost(self, exc: Exception) -> None:
        self._fail_pending(ConnectionLost(f"the link to {self.url} failed: {exc}"))
        if not self._closing:
            self._notify(FaultReport(FaultKind.COMMS, None, f"serial link lost: {exc}"))

    def _fail_pending(self, exc: Exception) -> None:
        for future in set(self._pending.values()):
            if not future.done():
                future.set_exception(exc)
        self._pending.clear()

    def _notify(self, report: FaultReport) -> None:
        self._faults.append(report)
        for listener in list(self._listeners):
            try:
                listener(report)
            except Exception:  # one broken listener must not silence the others
                log.exception("fault listener %r failed on %s", listener, report)


def _capabilities(reply: m.HelloReply) -> Capabilities:
    watchdog_s = reply.watchdog_timeout_ms / 1000 if reply.watchdog_timeout_ms else None
    return Capabilities(
        identity=DeviceIdentity(
            manufacturer="stimctl",
            model="stimctl board",
            serial=reply.serial,
            firmware_version=reply.firmware_version,
            protocol_version=f"{reply.protocol_version}.{reply.protocol_minor}",
        ),
        channels=tuple(
            ChannelCapability(
                channel=info.channel,
                max_amplitude_ma=info.max_amplitude_ua / 1000,
                amplitude_resolution_ma=info.resolution_ua / 1000,
                min_frequency_hz=info.min_frequency_mhz / 1000,
                max_frequency_hz=info.max_frequency_mhz / 1000,
                min_pulse_width_us=float(info.min_pulse_width_us),
                max_pulse_width_us=float(info.max_pulse_width_us),
                compliance_v=info.compliance_mv / 1000,
                waveforms=frozenset(Waveform[w.name] for w in info.waveforms),
                measures_current=True,
                measures_impedance=True,
            )
            for info in reply.channels
        ),
        watchdog_timeout_s=watchdog_s,
        hardware_alternation=reply.can_alternate,
        recommended_heartbeat_s=watchdog_s / 3 if watchdog_s else None,
    )


def _amplitude_ua(cap: ChannelCapability, amplitude_ma: float) -> int:
    if not math.isfinite(amplitude_ma) or amplitude_ma < 0:
        raise CapabilityError(f"amplitude must be a finite value >= 0 mA, got {amplitude_ma}")
    if amplitude_ma > cap.max_amplitude_ma + 1e-9:
        raise CapabilityError(
            f"{amplitude_ma} mA is above channel {cap.channel}'s maximum of {cap.max_amplitude_ma:g} mA"
        )
    resolution_ua = round(cap.amplitude_resolution_ma * 1000)
    steps = amplitude_ma * 1000 / resolution_ua
    # Exact within float error only: a value between two steps would be silently changed.
    if abs(steps - round(steps)) > 1e-6:
        raise CapabilityError(
            f"{amplitude_ma} mA is not a multiple of channel {cap.channel}'s resolution "
            f"({cap.amplitude_resolution_ma:g} mA); round it first"
        )
    return round(steps) * resolution_ua


def _whole(name: str, value: float, scale: int, unit: str) -> int:
    scaled = value * scale
    if not math.isfinite(scaled) or abs(scaled - round(scaled)) > 1e-6 * max(1.0, abs(scaled)):
        raise CapabilityError(f"{name} = {value} is not a whole number of {unit} (the board's unit)")
    return round(scaled)


def _whole_ms(name: str, seconds: float) -> int:
    if seconds < 0:
        raise CapabilityError(f"{name} must be >= 0, got {seconds}")
    return _whole(name, seconds, 1000, "ms")


def _within(name: str, value: float, low: float, high: float, unit: str) -> None:
    if not low - 1e-9 <= value <= high + 1e-9:
        raise CapabilityError(f"{name} = {value} {unit} is outside the board's range {low:g}..{high:g} {unit}")
