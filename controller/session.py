"""One stimulation session: the state machine driven by device I/O, with supervision.

`Session` owns a `Gate` (and through it the devices), an audit log and the state machine. Its
public coroutines (`arm`, `start`, `stop`, `pause`, `resume`, `emergency_stop`, `reset`) each
do their I/O and then fire the matching trigger. While the session is connected a heartbeat task
feeds each device's watchdog and a supervision task polls status; while it runs, a runner task
ramps the channels and a timer stops the session at the profile's maximum.

The fault path is deliberately short: latch the gate (refuse all new "on"), switch every output
of every device off at once, fire `fault`, write the audit record durably. Every supervision
check, every driver error and every asynchronous device fault report ends there.

All timing uses the event loop's clock, so the whole session runs under virtual time in tests.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from controller.alternation import SoftwareAlternation
from controller.audit import AuditLog, AuditLogError
from controller.gate import Gate, InterlockRefused
from controller.history import HistoryError, SessionHistory
from controller.interlock import CheckReport, Finding, check_program
from controller.machine import LATCHED, OUTPUT_MAY_BE_ON, SessionMachine, State
from controller.limits import Profile
from controller.program import PairSpec, Program
from controller.ramp import ramp_levels
from controller.syncer import BackgroundSync
from drivers.base import DeviceStatus, FaultKind, FaultReport
from drivers.errors import DeviceError, NotSupported

_logger = logging.getLogger(__name__)

ConfirmFn = Callable[[tuple[str, ...]], "bool | Awaitable[bool]"]
Observer = Callable[["SessionEvent"], None]

ADJUST_RAMP_S = 0.5
"""A live amplitude change on a running channel is ramped over this long, never a jump."""

MAX_PROBE_LOAD_OHM = 20_000.0
"""Above this a probe reads as poor electrode contact (a pad on skin is a few kohm at most)."""


class ArmRefused(Exception):
    """Arming was refused: the program, the rest period or the screening failed. Nothing was
    sent to any device."""

    def __init__(self, message: str, findings: Sequence[Finding] = (),
                 report: CheckReport | None = None) -> None:
        super().__init__(message)
        self.findings = tuple(findings)
        self.report = report


class SessionFault(Exception):
    """The session ended in a latched fault (all outputs were switched off)."""


class SessionEStopped(Exception):
    """The session ended in an emergency stop."""


@dataclass(frozen=True)
class SessionOptions:
    software_alternation: bool = False
    """Run every pair in software (break-before-make) even where the device can alternate."""
    poll_interval_s: float = 0.05
    ramp_step_s: float = 0.05
    current_tolerance_rel: float = 0.10
    current_tolerance_ma: float = 0.2
    probe_impedance: bool = True
    command_timeout_s: float = 2.0
    """How long one step of a normal ramp-down may take before the session falls back to
    switching everything off at once."""


@dataclass(frozen=True)
class ChannelView:
    name: str
    device: str
    output: int
    phase: str
    setpoint_ma: float
    target_ma: float
    output_on: bool | None = None
    measured_ma: float | None = None
    compliance: bool = False
    load_ohm: float | None = None


@dataclass(frozen=True)
class SessionEvent:
    kind: str
    """'state', 'fault', 'status', 'phase', 'info'."""
    state: State
    t_s: float
    detail: dict[str, Any] = field(default_factory=dict)


class Session:
    """A session over already-open devices. Use `controller.api.open_session` (or
    `Session.open`) to get one with its devices, log and cleanup handled."""

    def __init__(
        self,
        gate: Gate,
        audit: AuditLog,
        *,
        history: SessionHistory | None = None,
        subject: str | None = None,
        confirm: ConfirmFn | bool | None = None,
        options: SessionOptions = SessionOptions(),
    ) -> None:
        self._gate = gate
        self._program: Program = gate.program
        self._profile: Profile = gate.profile
        self._audit = audit
        self._history = history
        self._subject = subject
        self._confirm = confirm
        self.options = options
        self._observers: list[Observer] = []
        self._syncer = BackgroundSync(audit.path)
        self._machine = SessionMachine(self._on_transition)
        self._loop = asyncio.get_running_loop()
        self._t0_loop: float | None = None
        self._end_at: float | None = None
        self._hard_end_at: float | None = None
        self._report: CheckReport | None = None
        self._phase: dict[str, str] = {c.name: "off" for c in self._program.channels}
        self._last_status: dict[str, DeviceStatus] = {}
        self._runner: asyncio.Task[None] | None = None
        self._alternations: list[SoftwareAlternation] = []
        self._hw_pairs: list[PairSpec] = []
        self._bg: list[asyncio.Task[None]] = []
        self._transition_lock = asyncio.Lock()
        self._finished = asyncio.Event()
        self._fault_reason: str | None = None
        self._faults: list[dict[str, Any]] = []
        self._closed = False
        self._started_wall: Any = None
        self._t_end_loop: float | None = None
        self.log_path: Path | None = None
        self.device_urls: dict[str, str] = {}
        self._machine.fire("connect")
        self._log("connected", durable=True, devices={
            name: _identity(caps) for name, caps in gate.all_capabilities().items()
        }, program=self._program.source, profile=self._profile.name, subject=subject,
            channels=[{"name": c.name, "device": c.device, "output": c.output,
                       "target_ma": c.config.amplitude_ma} for c in self._program.channels],
            pairs=[[p.agonist, p.antagonist] for p in self._program.pairs])
        gate.observe(self._on_command)
        for dev in gate.device_names:
            self._spawn(self._heartbeat_loop(dev), f"heartbeat:{dev}")
            self._spawn(self._status_loop(dev), f"status:{dev}")

    @staticmethod
    def open(program: Program | str | Path, device: Any = None,
             **kwargs: Any) -> contextlib.AbstractAsyncContextManager[Session]:
        """`async with Session.open(program, device=..., ...) as s:`; see
        `controller.api.open_session` for the arguments."""
        from controller.api import open_session

        return open_session(program, device, **kwargs)

    # ---- read-only views -------------------------------------------------------------------

    @property
    def state(self) -> State:
        return self._machine.state

    @property
    def program(self) -> Program:
        return self._program

    @property
    def profile(self) -> Profile:
        return self._profile

    @property
    def check_report(self) -> CheckReport | None:
        return self._report

    @property
    def fault_reason(self) -> str | None:
        return self._fault_reason

    @property
    def faults(self) -> list[dict[str, Any]]:
        return list(self._faults)

    @property
    def elapsed_s(self) -> float:
        """Time since the start, frozen when the session ends (done, fault, e-stop)."""
        if self._t0_loop is None:
            return 0.0
        end = self._t_end_loop if self._t_end_loop is not None else self._loop.time()
        return end - self._t0_loop

    @property
    def remaining_s(self) -> float | None:
        if self._end_at is None or self._t_end_loop is not None:
            return None
        return max(0.0, self._end_at - self._loop.time())

    @property
    def effective_duration_s(self) -> float:
        return min(self._program.session.duration_s, self._profile.max_session_s)

    def channel_views(self) -> list[ChannelView]:
        views = []
        for spec in self._program.channels:
            st = self._last_status.get(spec.device)
            ch = None
            if st is not None:
                with contextlib.suppress(KeyError):
                    ch = st.channel(spec.output)
            views.append(ChannelView(
                name=spec.name, device=spec.device, output=spec.output,
                phase=self._phase[spec.name], setpoint_ma=self._gate.setpoint_ma(spec.name),
                target_ma=self._gate.target_ma(spec.name),
                output_on=None if ch is None else ch.output_on,
                measured_ma=None if ch is None else ch.measured_amplitude_ma,
                compliance=False if ch is None else ch.compliance,
                load_ohm=None if ch is None else ch.load_ohm,
            ))
        return views

    def subscribe(self, observer: Observer) -> Callable[[], None]:
        """Call observer for every session event (in the loop). Returns an unsubscribe."""
        self._observers.append(observer)
        return lambda: self._observers.remove(observer)

    # ---- operator actions ------------------------------------------------------------------

    async def arm(self) -> CheckReport:
        """Run every static check, the rest-period check and the contraindication screening.
        Raises `ArmRefused` (state unchanged, nothing sent to a device) if any fails."""
        async with self._transition_lock:
            self._require("arm")
            report = check_program(self._program, self._profile, self._gate.all_capabilities())
            self._report = report
            if not report.ok:
                self._log("arm_refused", durable=True, reason="interlock",
                          violations=[_finding(f) for f in report.violations])
                lines = "\n".join(f"  - {f.message}" for f in report.violations)
                raise ArmRefused(f"the interlock refused the program:\n{lines}",
                                 report.violations, report)
            for w in report.warnings:
                self._log("check_warning", **_finding(w))
            if self._history is not None and self._subject is not None:
                finding = self._history.check_rest(self._subject, self._profile.name,
                                                   _utcnow())
                if finding is not None:
                    self._log("arm_refused", durable=True, reason="rest_period",
                              **_finding(finding))
                    raise ArmRefused(finding.message, (finding,), report)
            elif self._subject is None:
                self._log("rest_check_skipped", reason="no subject id given")
            await self._screen()
            self._machine.fire("arm")
            return report

    async def _screen(self) -> None:
        items = tuple(self._profile.contraindications)
        if not items:
            self._log("contraindications_confirmed", durable=True, answer="yes", items=[])
            return
        answer: bool
        if isinstance(self._confirm, bool):
            answer = self._confirm
        elif self._confirm is None:
            answer = False
        else:
            res = self._confirm(items)
            answer = bool(await res) if isinstance(res, Awaitable) else bool(res)
        if not answer:
            self._log("arm_refused", durable=True, reason="screening", items=list(items))
            raise ArmRefused(
                "contraindication screening not confirmed: the operator must confirm that the "
                "subject has none of: " + "; ".join(items)
            )
        self._log("contraindications_confirmed", durable=True, answer="yes", items=list(items))

    async def disarm(self) -> None:
        async with self._transition_lock:
            self._require("disarm")
            self._machine.fire("disarm")

    async def start(self) -> None:
        """Probe the electrodes where the devices can, then ramp up from zero. Returns once
        the ramp has begun; `wait()` waits for the session's end."""
        async with self._transition_lock:
            self._require("start")
            self._finished.clear()
            # The session's time counts from the first current the subject receives, which is
            # the electrode probe's, so the profile's maximum covers the probe too.
            now = self._loop.time()
            self._t0_loop = now
            self._t_end_loop = None
            self._started_wall = _utcnow()
            self._end_at = now + self.effective_duration_s
            self._hard_end_at = now + self._profile.max_session_s
            if self.options.probe_impedance:
                await self._probe_all()
                if self.state in LATCHED:
                    return
            self._machine.fire("start")
            self._log("session_started", durable=True,
                      duration_s=self.effective_duration_s,
                      max_session_s=self._profile.max_session_s,
                      software_alternation=self.options.software_alternation)
            self._runner = self._loop.create_task(self._run(), name="session-runner")
            self._spawn(self._session_timer(), "session-timer")

    async def wait(self) -> State:
        """Until the session is done, faulted or e-stopped. Returns the final state."""
        await self._finished.wait()
        return self.state

    async def stop(self, reason: str = "operator") -> None:
        """Normal stop: ramp every output down, then done."""
        async with self._transition_lock:
            if self.state not in (State.RAMPING_UP, State.STIMULATING, State.PAUSED):
                return
            self._machine.fire("stop")
            self._log("stop_requested", durable=True, reason=reason)
            await self._cancel_runner()
            try:
                await self._ramp_all_down()
            except (DeviceError, InterlockRefused, asyncio.TimeoutError) as exc:
                if self.state not in LATCHED:
                    await self._do_fault(f"ramp-down failed: {exc}", FaultKind.COMMS.value)
                return
            if self.state in LATCHED:
                return
            self._t_end_loop = self._loop.time()
            self._machine.fire("finished")
            self._log("session_done", durable=True, elapsed_s=round(self.elapsed_s, 3))
            self._record_history("done")
            self._finished.set()

    async def pause(self) -> None:
        async with self._transition_lock:
            self._require("pause")
            await self._cancel_runner()
            await self._ramp_all_down()
            if self.state not in LATCHED:
                self._machine.fire("pause")

    async def resume(self) -> None:
        async with self._transition_lock:
            self._require("resume")
            self._machine.fire("resume")
            self._runner = self._loop.create_task(self._run(), name="session-runner")

    async def adjust(self, channel: str, amplitude_ma: float) -> None:
        """Change a channel's plateau amplitude live (the operator's knob). The interlock
        checks the new value first (`InterlockRefused`, nothing changed, if it fails). A
        running single channel ramps to it over ADJUST_RAMP_S; a pair takes it for its next
        contraction (software) or at once on the device's plateau (hardware)."""
        async with self._transition_lock:
            if self.state not in (State.RAMPING_UP, State.STIMULATING, State.PAUSED,
                                  State.ARMED, State.IDLE):
                raise InterlockRefused(f"cannot adjust {channel!r} while {self.state.value}")
            previous = self._gate.target_ma(channel)
            self._gate.set_target(channel, amplitude_ma)
            self._log("adjust", durable=True, channel=channel, from_ma=previous,
                      to_ma=amplitude_ma)
            if self.state is not State.STIMULATING:
                return
            try:
                if self._gate.hw_alternating(channel):
                    await self._gate.set_amplitude(channel, amplitude_ma)
                elif self._program.pair_of(channel) is None and \
                        self._gate.confirmed_on(channel):
                    await self._ramp(channel, self._gate.setpoint_ma(channel), amplitude_ma,
                                     ADJUST_RAMP_S)
            except DeviceError as exc:
                await self._do_fault(f"adjusting {channel!r}: {exc}", _kind_of(exc),
                                     channel=channel)

    async def emergency_stop(self, reason: str = "operator") -> None:
        """Every output of every device off at once and latched. Never refused."""
        self._gate.latch(f"emergency stop: {reason}")
        failed = await self._gate.emergency_stop()
        self._machine.fire("estop")
        self._log("emergency_stop", durable=True, reason=reason,
                  failed_devices=[f"{n}: {e}" for n, e in failed])
        self._after_latch()
        self._record_history("estop")

    async def reset(self, reason: str) -> None:
        """Leave fault or e-stop for idle. The reason is mandatory and goes in the audit log;
        the program must be armed again before anything can start."""
        if not reason or not reason.strip():
            raise ValueError("reset needs a reason (what was wrong and what was done about it)")
        async with self._transition_lock:
            self._require("reset")
            await self._gate.all_off()
            with contextlib.suppress(DeviceError, NotSupported):
                await self._gate.clear_faults()
            self._gate.unlatch()
            self._fault_reason = None
            self._machine.fire("reset")
            self._log("reset", durable=True, reason=reason)

    async def close(self) -> None:
        """Switch everything off (ramping down if a session is running), stop supervision and
        close the devices. Safe to call twice."""
        if self._closed:
            return
        try:
            if self.state in OUTPUT_MAY_BE_ON:
                try:
                    await asyncio.wait_for(self.stop("session closed"),
                                           timeout=self._max_ramp_down_s() + 5.0)
                except (asyncio.TimeoutError, DeviceError, InterlockRefused) as exc:
                    await self._do_fault(f"closing: {exc}", FaultKind.INTERNAL.value)
        finally:
            self._closed = True
            await self._teardown()

    async def abort(self, reason: str) -> None:
        """Everything off at once and close, for a second Ctrl-C or an exception path."""
        if self.state not in LATCHED and self.state is not State.DISCONNECTED:
            await self.emergency_stop(reason)
        await self.close()

    async def _teardown(self) -> None:
        await self._cancel_runner()
        for t in self._bg:
            t.cancel()
        for t in self._bg:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        self._bg.clear()
        failed = await self._gate.close()
        if self._machine.can("disconnect"):
            self._machine.fire("disconnect")
        self._log("closed", durable=True, failed_devices=[f"{n}: {e}" for n, e in failed])
        self._syncer.close()
        self._finished.set()

    # ---- the run ---------------------------------------------------------------------------

    async def _run(self) -> None:
        try:
            await self._ramp_up()
            if self.state is State.RAMPING_UP:
                self._machine.fire("ramped")
            # Supervision and the timer end the session; the runner idles until cancelled.
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            raise
        except InterlockRefused as exc:
            if not self._gate.latched:
                await self._do_fault(f"interlock refused a command while running: {exc}",
                                     FaultKind.INTERNAL.value)
        except DeviceError as exc:
            await self._do_fault(f"device error while running: {exc}", _kind_of(exc))
        except Exception as exc:  # noqa: BLE001 - any crash here must still end in all-off
            await self._do_fault(f"internal error while running: {exc!r}",
                                 FaultKind.INTERNAL.value)

    async def _ramp_up(self) -> None:
        paired = set(self._program.paired_names())
        singles = [c for c in self._program.channels if c.name not in paired]
        for spec in self._program.channels:
            await self._gate.configure(spec.name, 0.0)
        # Pairs first: their own schedule keeps them apart; the singles ramp alongside.
        for pair in self._program.pairs:
            await self._start_pair(pair)
        for spec in singles:
            await self._gate.set_output(spec.name, True)
            self._set_phase(spec.name, "ramping up")
        await asyncio.gather(*(self._ramp(s.name, 0.0, self._gate.target_ma(s.name), s.ramp_up_s)
                               for s in singles))
        for spec in singles:
            self._set_phase(spec.name, "on")

    async def _start_pair(self, pair: PairSpec) -> None:
        a = self._gate.spec(pair.agonist)
        caps = self._gate.capabilities(a.device)
        b = self._gate.spec(pair.antagonist)
        hardware = (caps.hardware_alternation and not self.options.software_alternation
                    and a.device == b.device)
        if hardware:
            # Registered before any command: a start cancelled half-way is still stopped.
            self._hw_pairs.append(pair)
            for spec in (a, b):
                await self._gate.configure(spec.name, self._gate.target_ma(spec.name))
            schedule = await self._gate.program_alternation(pair)
            await self._gate.start_alternation(pair)
            for spec in (a, b):
                self._set_phase(spec.name, "alternating (device)")
            self._log("alternation_started", mode="hardware", agonist=a.name,
                      antagonist=b.name, cycle_s=schedule.cycle_s)
        else:
            alt = SoftwareAlternation(self._gate, pair, self.options.ramp_step_s,
                                      on_phase=self._set_phase)
            self._alternations.append(alt)
            alt.start(self._loop)
            self._log("alternation_started", mode="software", agonist=a.name,
                      antagonist=b.name)

    async def _ramp(self, name: str, from_ma: float, to_ma: float, duration_s: float) -> None:
        for level, delay in ramp_levels(from_ma, to_ma, duration_s, self.options.ramp_step_s):
            await self._gate.set_amplitude(name, level)
            if delay > 0:
                await asyncio.sleep(delay)

    async def _ramp_all_down(self) -> None:
        """Ramp every running output to zero and switch it off; pairs stop after their
        plateau has been ramped down (hardware) or their current phase ends (software)."""
        steps: list[Awaitable[None]] = []
        paired = set(self._program.paired_names())
        for spec in self._program.channels:
            if spec.name in paired:
                continue
            if self._gate.confirmed_on(spec.name) is False and \
                    self._gate.setpoint_ma(spec.name) == 0:
                continue
            steps.append(self._ramp_single_down(spec.name, spec.ramp_down_s))
        for pair in list(self._hw_pairs):
            steps.append(self._stop_hw_pair(pair))
        for alt in list(self._alternations):
            steps.append(alt.stop())
        results = await asyncio.gather(*steps, return_exceptions=True)
        self._hw_pairs.clear()
        self._alternations.clear()
        for res in results:
            if isinstance(res, BaseException):
                raise res
        # Nothing may be left on after a normal stop: make sure at the device.
        if self.state not in LATCHED:
            failed = await self._gate.all_off()
            if failed:
                raise DeviceError(f"could not confirm all off: {failed}")

    async def _ramp_single_down(self, name: str, duration_s: float) -> None:
        self._set_phase(name, "ramping down")
        await self._ramp(name, self._gate.setpoint_ma(name), 0.0, duration_s)
        await self._gate.set_output(name, False)
        self._set_phase(name, "off")

    async def _stop_hw_pair(self, pair: PairSpec) -> None:
        """Zero the plateau (it applies from the device's next phase), let the phase under way
        finish with the device's own ramp down, then stop the alternation: never a cut."""
        names = (pair.agonist, pair.antagonist)
        for n in names:
            self._set_phase(n, "ramping down")
        await asyncio.gather(*(self._gate.set_amplitude(n, 0.0) for n in names))
        device = self._gate.spec(pair.agonist).device
        outputs = [self._gate.spec(n).output for n in names]
        deadline = self._loop.time() + pair.on_s + 1.0
        while self._loop.time() < deadline:
            st = await self._gate.status(device)
            driving = [o for o in outputs
                       if st.channel(o).output_on and st.channel(o).set_amplitude_ma > 0]
            if not driving:
                break
            await asyncio.sleep(min(0.01, self.options.poll_interval_s))
        await self._gate.stop_alternation(pair)
        for n in names:
            self._set_phase(n, "off")

    async def _cancel_runner(self) -> None:
        runner, self._runner = self._runner, None
        if runner is None or runner is asyncio.current_task():
            return
        # Library code can swallow a cancellation (asyncio.wait_for on 3.11 does when its
        # inner future completes in the same iteration); a runner left alive would keep the
        # transition lock's holder waiting and the session timer could not stop the outputs.
        while not runner.done():
            runner.cancel()
            await asyncio.wait({runner}, timeout=0.05)
        if not runner.cancelled():
            runner.exception()

    async def _session_timer(self) -> None:
        assert self._end_at is not None and self._hard_end_at is not None
        # The normal stop starts early enough for the ramp-down to end at the limit.
        stop_at = max(self._loop.time(), self._end_at - self._max_ramp_down_s())
        await asyncio.sleep(stop_at - self._loop.time())
        if self.state in (State.RAMPING_UP, State.STIMULATING, State.PAUSED):
            capped = self._program.session.duration_s > self._profile.max_session_s
            self._log("session_timer", durable=True,
                      reason="profile maximum" if capped else "program duration")
            await self.stop("session time reached")
        await asyncio.sleep(max(0.0, self._hard_end_at - self._loop.time()))
        if self.state in OUTPUT_MAY_BE_ON:
            await self._do_fault(
                f"session still running at the profile's maximum of "
                f"{self._profile.max_session_s:g} s", "session_time")

    def _max_ramp_down_s(self) -> float:
        values = [c.ramp_down_s for c in self._program.channels]
        # A pair may be mid-contraction: its phase ends within on_s.
        values += [max(p.ramp_down_s, p.on_s) for p in self._program.pairs]
        return max(values, default=0.0)

    # ---- electrode probe -------------------------------------------------------------------

    async def _probe_all(self) -> None:
        """A brief low-level pulse on each channel whose device can measure its load, one
        channel at a time, so antagonists are never on together even here."""
        for spec in self._program.channels:
            caps = self._gate.capabilities(spec.device)
            try:
                cap = caps.channel(spec.output)
            except KeyError:
                continue
            if not cap.measures_impedance:
                continue
            level = _probe_level(spec.config.amplitude_ma, cap.amplitude_resolution_ma)
            if level <= 0:
                continue
            try:
                await self._gate.configure(spec.name, level)
                await self._gate.set_output(spec.name, True)
                st = await self._gate.status(spec.device)
                await self._gate.set_output(spec.name, False)
                await self._gate.configure(spec.name, 0.0)
            except (DeviceError, InterlockRefused) as exc:
                await self._do_fault(f"electrode probe on {spec.name!r} failed: {exc}",
                                     FaultKind.LEAD_OFF.value, channel=spec.name)
                return
            # Even a probe respects the pair's dead time before the next channel comes on.
            pair = self._program.pair_of(spec.name)
            await asyncio.sleep(max(pair.dead_time_s if pair else 0.0,
                                    self._profile.min_dead_time_s))
            ch = st.channel(spec.output)
            bad = ch.compliance or (ch.load_ohm is not None and ch.load_ohm > MAX_PROBE_LOAD_OHM)
            self._log("electrode_probe", channel=spec.name, probe_ma=level,
                      load_ohm=ch.load_ohm, compliance=ch.compliance, ok=not bad)
            if bad:
                await self._do_fault(
                    f"poor electrode contact on {spec.name!r} (load "
                    f"{ch.load_ohm if ch.load_ohm is not None else 'open'} ohm); check the "
                    "electrodes and their gel, then reset", FaultKind.LEAD_OFF.value,
                    channel=spec.name)
                return

    # ---- supervision -----------------------------------------------------------------------

    async def _heartbeat_loop(self, device: str) -> None:
        caps = self._gate.capabilities(device)
        period = caps.recommended_heartbeat_s
        if period is None and caps.watchdog_timeout_s is not None:
            period = caps.watchdog_timeout_s / 3
        if period is None:
            return
        # The device's watchdog has been armed since the handshake: beat at once, then on time.
        next_at = self._loop.time()
        while True:
            try:
                await self._gate.heartbeat(device)
            except DeviceError as exc:
                await self._on_comms_error(device, "heartbeat", exc)
                return
            next_at = max(next_at + period, self._loop.time())
            await asyncio.sleep(next_at - self._loop.time())

    async def _status_loop(self, device: str) -> None:
        while True:
            await asyncio.sleep(self.options.poll_interval_s)
            try:
                before = self._gate.command_generation()
                st = await self._gate.status(device)
            except DeviceError as exc:
                await self._on_comms_error(device, "status", exc)
                return
            self._last_status[device] = st
            reason = self._judge_status(device, st, before)
            if reason is not None:
                reason_text, kind, channel = reason
                await self._do_fault(reason_text, kind, device=device, channel=channel)
            self._emit("status", device=device)

    def _judge_status(self, device: str, st: DeviceStatus,
                      generation_before: dict[str, int]) -> tuple[str, str, str | None] | None:
        """The first reason this status is a fault, or None."""
        latched = self.state in LATCHED
        for report in st.faults:
            if not latched:
                return (f"device {device!r} reports {report.kind.value}"
                        f"{f' on output {report.channel}' if report.channel else ''}"
                        f"{f': {report.detail}' if report.detail else ''}",
                        report.kind.value, self._gate.channel_for(device, report.channel or 0))
        if st.fault_latched and not latched:
            return (f"device {device!r} has latched a fault of its own", "device_latched", None)
        tol_rel, tol_ma = self.options.current_tolerance_rel, self.options.current_tolerance_ma
        gen_after = self._gate.command_generation()
        for ch in st.channels:
            name = self._gate.channel_for(device, ch.channel)
            if name is None:
                if ch.output_on:
                    return (f"output {ch.channel} of {device!r} is on but no channel of the "
                            "program uses it", FaultKind.READBACK.value, None)
                continue
            if not ch.output_on:
                continue
            quiet = generation_before.get(name) == gen_after.get(name)
            if latched or self.state not in OUTPUT_MAY_BE_ON or self.state is State.PAUSED:
                if quiet:
                    return (f"{name!r} is on while the session is {self.state.value}",
                            FaultKind.READBACK.value, name)
                continue
            if ch.compliance:
                return (f"{name!r} reached its compliance voltage: poor electrode contact or "
                        "lead-off", FaultKind.LEAD_OFF.value, name)
            setpoint = self._gate.allowed_drive_ma(name)
            # With a command in flight during the read, the device may report the value from
            # before it; the next quiet poll compares again.
            allowed = setpoint * (1 + tol_rel) + tol_ma if quiet else math.inf
            if ch.set_amplitude_ma > allowed:
                return (f"{name!r}: the device is set to {ch.set_amplitude_ma:g} mA, more "
                        f"than the {setpoint:g} mA commanded", FaultKind.READBACK.value, name)
            measured = ch.measured_amplitude_ma
            if measured is not None:
                if measured > ch.set_amplitude_ma * (1 + tol_rel) + tol_ma or \
                        measured > allowed:
                    return (f"{name!r}: measured {measured:g} mA against a setpoint of "
                            f"{ch.set_amplitude_ma:g} mA", FaultKind.OVERCURRENT.value, name)
                if (not self._gate.hw_alternating(name) and quiet
                        and measured < ch.set_amplitude_ma * (1 - tol_rel) - tol_ma):
                    return (f"{name!r}: measured {measured:g} mA, well under the "
                            f"{ch.set_amplitude_ma:g} mA set: check the electrodes",
                            FaultKind.LEAD_OFF.value, name)
        for pair in self._program.pairs:
            on = []
            for n in (pair.agonist, pair.antagonist):
                spec = self._gate.spec(n)
                if spec.device != device:
                    continue
                with contextlib.suppress(KeyError):
                    if st.channel(spec.output).output_on:
                        on.append(n)
            if len(on) == 2:
                return (f"antagonists {pair.agonist!r} and {pair.antagonist!r} are both on",
                        "antagonist_overlap", pair.agonist)
        return None

    async def _on_comms_error(self, device: str, what: str, exc: BaseException) -> None:
        if self.state is State.DISCONNECTED or self._closed:
            return
        await self._do_fault(f"lost contact with {device!r} ({what}: {exc})",
                             FaultKind.COMMS.value, device=device)

    def on_device_fault(self, device: str, report: FaultReport) -> None:
        """The gate forwards every asynchronous device fault here (sync, in the loop)."""
        name = self._gate.channel_for(device, report.channel or 0)
        reason = (f"device {device!r} reports {report.kind.value}"
                  f"{f' on {name!r}' if name else ''}{f': {report.detail}' if report.detail else ''}")
        # Latch before anything else can run: no "on" passes from here.
        self._gate.latch(reason)
        self._loop.create_task(self._do_fault(reason, report.kind.value, device=device,
                                              channel=name))

    # ---- the fault path --------------------------------------------------------------------

    async def _do_fault(self, reason: str, kind: str, *, device: str | None = None,
                        channel: str | None = None) -> None:
        if self.state is State.DISCONNECTED:
            return
        already = self.state in LATCHED
        self._gate.latch(reason)
        failed = await self._gate.all_off()
        record = {"reason": reason, "kind": kind, "device": device, "channel": channel,
                  "state": self.state.value, "failed_devices": [f"{n}: {e}" for n, e in failed]}
        if already:
            self._log("fault_while_latched", durable=True, **record)
            return
        self._fault_reason = reason
        self._faults.append(record)
        try:
            self._machine.fire("fault")
            self._log("fault", durable=True, **record)
            self._emit("fault", **record)
        finally:
            # Whatever the bookkeeping did, the session is latched and its tasks stop.
            self._after_latch()
        self._record_history("fault")

    def _after_latch(self) -> None:
        if self._t0_loop is not None and self._t_end_loop is None:
            self._t_end_loop = self._loop.time()
        runner, self._runner = self._runner, None
        if runner is not None and runner is not asyncio.current_task():
            runner.cancel()
        for alt in self._alternations:
            alt.cancel()
        self._alternations.clear()
        self._hw_pairs.clear()
        for name in self._phase:
            self._phase[name] = "off"
        self._finished.set()

    # ---- bookkeeping -----------------------------------------------------------------------

    def _require(self, trigger: str) -> None:
        if not self._machine.can(trigger):
            self._machine.fire(trigger)  # raises IllegalTransition with the reason

    def _spawn(self, coro: Any, name: str) -> None:
        task = self._loop.create_task(coro, name=name)
        self._bg.append(task)

    def _set_phase(self, name: str, phase: str) -> None:
        if self._phase.get(name) != phase:
            self._phase[name] = phase
            self._emit("phase", channel=name, phase=phase)

    def _on_command(self, what: str, name: str, value: float) -> None:
        # Every confirmed command, so the log alone can replay what was asked of the devices.
        self._log("command", what=what, target=name, value=round(value, 6))

    def _on_transition(self, src: State, dst: State, trigger: str) -> None:
        self._log("state", durable=True, src=src.value, dst=dst.value, trigger=trigger)
        self._emit("state", src=src.value, dst=dst.value, trigger=trigger)

    def _emit(self, event_kind: str, **detail: Any) -> None:
        if not self._observers:
            return
        ev = SessionEvent(event_kind, self.state, self._loop.time(), detail)
        for obs in list(self._observers):
            with contextlib.suppress(Exception):
                obs(ev)

    def _log(self, event: str, durable: bool = False, **fields: Any) -> None:
        # Written and flushed here; the fsync of durable records runs on its own thread so a
        # slow disk cannot hold up the heartbeat (see controller/syncer.py).
        try:
            self._audit.append(event, t_loop_s=round(self._loop.time(), 6), **fields)
        except (AuditLogError, OSError, ValueError, TypeError) as exc:
            # A log that cannot be written must never stop the session from switching off.
            _logger.error("audit log: could not record %s: %s", event, exc)
            return
        if durable:
            self._syncer.request()

    def _record_history(self, outcome: str) -> None:
        started, self._started_wall = self._started_wall, None
        if self._history is None or self._subject is None or started is None:
            return
        try:
            self._history.record(self._subject, self._profile, started, _utcnow(),
                                 outcome=outcome, program=self._program.source,
                                 delivered_s=round(self.elapsed_s, 3))
        except (HistoryError, ValueError) as exc:
            self._log("history_error", durable=True, error=str(exc))


def _probe_level(target_ma: float, resolution_ma: float) -> float:
    """2% of the target, rounded down to the device's resolution (never above 2%)."""
    level = 0.02 * target_ma
    if resolution_ma > 0:
        level = math.floor(level / resolution_ma + 1e-9) * resolution_ma
    return round(max(level, 0.0), 6)


def _kind_of(exc: BaseException) -> str:
    from drivers.errors import ConnectionLost, DeviceTimeout, ReadbackMismatch

    if isinstance(exc, (DeviceTimeout, ConnectionLost)):
        return FaultKind.COMMS.value
    if isinstance(exc, ReadbackMismatch):
        return FaultKind.READBACK.value
    return FaultKind.DEVICE_ERROR.value


def _finding(f: Finding) -> dict[str, Any]:
    return {"channel": f.channel, "quantity": f.quantity, "value": f.value, "limit": f.limit,
            "unit": f.unit, "message": f.message}


def _identity(caps: Any) -> dict[str, Any]:
    ident = caps.identity
    return {"manufacturer": ident.manufacturer, "model": ident.model, "serial": ident.serial,
            "firmware": ident.firmware_version,
            "hardware_alternation": caps.hardware_alternation,
            "watchdog_timeout_s": caps.watchdog_timeout_s}


def _utcnow() -> Any:
    from datetime import datetime, timezone

    return datetime.now(timezone.utc)

