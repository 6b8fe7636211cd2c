"""The scenario context: one rig brought up for one scenario, and torn down after it.

`run_scenario(rig, scenario)` starts the rig's simulators (or reaches its bench devices),
the output monitor, the fault injectors and the e-stop input, hands a `ScenarioContext` to the
scenario coroutine, and always leaves every output off. It picks the clock: a rig made only of
simulated boards runs on virtual time (`sim.virtual_time`, the board and the driver in one loop
over loopback TCP), so a 10-second session takes milliseconds; a rig with SCPI simulators
(served by threads, since pyvisa blocks) or any real device runs in real time.

After the scenario, any measurement whose verdict is "fail" fails it with every figure listed.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hil.controller import ControllerUnderTest, SessionFactory, real_session, state_name
from hil.estop import EstopEvent, EstopMonitor, press_loopback, release_loopback
from hil.faults import FaultInjector, FaultUnavailable, ManualFaults, SimFaults
from hil.link import CuttableLink
from hil.monitor import MeterMonitor, OutputMonitor, TraceMonitor, VisaMeter
from hil.report import Comparison, Measurement, ScenarioRecord, judge
from hil.rig import DeviceSpec, Rig
from sim.trace import OutputTrace, TraceEvent, all_off_at

Scenario = Callable[["ScenarioContext"], Awaitable[None]]


class ScenarioFailed(AssertionError):
    """A scenario measured a figure outside its limit (or could not measure it)."""


class ScenarioSkipped(Exception):
    """The rig cannot run this scenario; the message says why."""


def uses_virtual_time(rig: Rig) -> bool:
    return rig.meter is None and all(d.simulated and d.family == "board" for d in rig.devices)


@dataclass
class _SimDevice:
    spec: DeviceSpec
    url: str
    trace: OutputTrace
    injector: Any
    """Has inject(FaultSpec) and clear_injected()."""
    link: CuttableLink | None = None
    closers: list[Callable[[], Awaitable[None]]] = field(default_factory=list)

    def inject(self, spec: Any) -> None:
        self.injector.inject(spec)

    def clear_injected(self) -> None:
        if hasattr(self.injector, "clear_injected"):
            self.injector.clear_injected()
        else:
            self.injector.clear_faults()

    def cut_link(self) -> float:
        if self.link is None:
            raise FaultUnavailable(
                f"device {self.spec.name!r} is served by a thread; its link cannot be cut"
            )
        return self.link.cut_now()


def _sim_faults(rig: Rig, dev: DeviceSpec, specs: Any) -> tuple[Any, ...]:
    """A rig's `sim.faults` list (CLI spellings, e.g. "stuck:1"): faults present from the start,
    the way to stand up a deliberately broken simulator."""
    from sim.faults import parse_fault

    if not isinstance(specs, list) or not all(isinstance(x, str) for x in specs):
        raise ValueError(
            f"{rig.source}: device {dev.name!r} sim.faults must be a list of fault strings "
            'such as ["stuck:1"]'
        )
    try:
        return tuple(parse_fault(x) for x in specs)
    except ValueError as exc:
        raise ValueError(f"{rig.source}: device {dev.name!r} sim.faults: {exc}") from None


class ScenarioContext:
    """What a scenario works with. Build it with `run_scenario`, never by hand."""

    def __init__(
        self,
        rig: Rig,
        record: ScenarioRecord,
        workdir: Path,
        session_factory: SessionFactory,
    ) -> None:
        self.rig = rig
        self.settings = rig.scenario
        self.record = record
        self.workdir = workdir
        self._session_factory = session_factory
        self._sims: dict[str, _SimDevice] = {}
        self._meter: MeterMonitor | None = None
        self.monitor: OutputMonitor
        self.faults: FaultInjector
        self.estop: EstopMonitor | None = None
        self._sessions: list[ControllerUnderTest] = []
        self.stimulators: dict[str, Any] = {}
        self.identities: dict[str, dict[str, Any]] = {}
        self._loop = asyncio.get_running_loop()
        self.t0 = self._loop.time()
        self.virtual_time = uses_virtual_time(rig)

    # ---- bring-up ----------------------------------------------------------------------

    async def _start(self, interactive: bool) -> None:
        traces: dict[str, OutputTrace] = {}
        for dev in self.rig.devices:
            if dev.simulated:
                sim = await self._start_sim(dev)
                self._sims[dev.name] = sim
                traces[dev.name] = sim.trace
        if self.rig.meter is not None:
            reader = VisaMeter(self.rig.meter)
            self.identities["meter"] = {"idn": reader.identity, "resource": self.rig.meter.resource}
            self._meter = MeterMonitor(self.rig, reader, self.rig.meter)
            self._meter.start()
            self.monitor = self._meter
        elif len(traces) == len(self.rig.devices):
            self.monitor = TraceMonitor(self.rig, traces)
        else:
            raise ScenarioSkipped(
                "the rig has real devices but no [meter]: nothing independent can watch the "
                "outputs (add a DMM or scope across a shunt)"
            )
        press = None
        if self.rig.estop is not None:
            est = self.rig.estop
            self.estop = EstopMonitor.open(
                est.port,
                self._on_estop,
                line=est.line,
                active=est.active,
                poll_interval_s=est.poll_interval_s,
            )
            self.estop.start()
            if est.port.startswith("loop://"):
                mon = self.estop

                def press(down: bool) -> None:
                    (press_loopback if down else release_loopback)(mon.port, est.line, est.active)

        if self._sims and len(self._sims) == len(self.rig.devices):
            self.faults = SimFaults(self.rig, dict(self._sims), press)
        else:
            self.faults = ManualFaults(self.rig, interactive)

    async def _start_sim(self, dev: DeviceSpec) -> _SimDevice:
        if dev.family == "board":
            return await self._start_board(dev)
        return await self._start_scpi_sim(dev)

    def _loads_for(self, dev: DeviceSpec) -> tuple[tuple[int, Any], ...]:
        from sim.load import ElectrodeLoad

        out = []
        for ch in self.rig.channels:
            if ch.device == dev.name and ch.load is not None:
                ld = self.rig.load(ch.load)
                out.append(
                    (ch.output, ElectrodeLoad(ld.series_ohm, ld.parallel_ohm, ld.parallel_uf))
                )
        return tuple(out)

    async def _start_board(self, dev: DeviceSpec) -> _SimDevice:
        from sim.board import BoardConfig, SimulatedBoard, serve_tcp

        options = dict(dev.sim_options)
        faults = _sim_faults(self.rig, dev, options.pop("faults", []))
        options.setdefault("loads", self._loads_for(dev))
        try:
            config = BoardConfig(**options)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{self.rig.source}: device {dev.name!r} sim options: {exc}") from None
        trace = OutputTrace(self._loop.time, device=dev.name)
        board = SimulatedBoard(config, trace, faults=faults)
        server = await serve_tcp(board, host="127.0.0.1", port=0)
        host, _, port = server.url.removeprefix("socket://").rpartition(":")
        link = CuttableLink(host, int(port))
        url = await link.start()
        sim = _SimDevice(dev, url, trace, board, link)

        async def close_board() -> None:
            await link.close()
            await server.close()
            if hasattr(board, "shutdown"):
                board.shutdown()

        sim.closers.append(close_board)
        return sim

    async def _start_scpi_sim(self, dev: DeviceSpec) -> _SimDevice:
        from sim.scpi import ScpiServerThread

        options = dict(dev.sim_options)
        faults = _sim_faults(self.rig, dev, options.pop("faults", []))
        thread = ScpiServerThread(dev.family, faults=faults, **options)
        url = thread.start()
        sim = _SimDevice(dev, url, thread.trace, thread)

        async def close_thread() -> None:
            thread.stop()

        sim.closers.append(close_thread)
        return sim

    def _on_estop(self, event: EstopEvent) -> Awaitable[None] | None:
        self.mark(f"e-stop seen ({event.reason})", event.t_s)
        if not self._sessions:
            return None
        return self._estop_all(event)

    async def _estop_all(self, event: EstopEvent) -> None:
        for s in list(self._sessions):
            await s.emergency_stop(f"e-stop input: {event.reason}")

    async def _final_all_off(self) -> None:
        """Belt and braces for real devices: whatever the controller under test did (or a
        crash left), open each real device afresh and switch every output off."""
        for dev in self.rig.devices:
            if dev.simulated:
                continue
            stim = self._make_stimulator(dev)
            try:
                await asyncio.wait_for(stim.open(), 10.0)
                await asyncio.wait_for(stim.all_outputs_off(), 10.0)
            except Exception as exc:  # noqa: BLE001 - reported; the operator must act
                self.record.message += (
                    f"\nWARNING: final all-off of device {dev.name!r} ({dev.resource}) failed: "
                    f"{exc!r}. Check the bench by hand and switch it off."
                )
            finally:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(stim.close(), 10.0)

    async def _close(self) -> None:
        try:
            await self._final_all_off()
        finally:
            await self._close_parts()

    async def _close_parts(self) -> None:
        if self.estop is not None:
            with contextlib.suppress(Exception):
                await self.estop.aclose()
        if self._meter is not None:
            self._meter.stop()
        for sim in self._sims.values():
            for closer in sim.closers:
                with contextlib.suppress(Exception):
                    await closer()

    # ---- what scenarios use ------------------------------------------------------------

    def now(self) -> float:
        return self._loop.time()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)

    def mark(self, label: str, t_s: float | None = None) -> float:
        t = self.now() if t_s is None else t_s
        self.record.markers.append((t, label))
        return t

    def measure(
        self,
        name: str,
        value: float | None,
        unit: str,
        limit: float | None = None,
        comparison: Comparison = "<=",
        note: str = "",
    ) -> Measurement:
        if value is not None and math.isinf(value):
            value = None
        m = Measurement(name, value, unit, limit, judge(value, limit, comparison), comparison, note)
        self.record.measurements.append(m)
        return m

    def device_of(self, channel: str) -> DeviceSpec:
        return self.rig.device(self.rig.channel(channel).device)

    def watchdog_timeout_s(self, device: str) -> float | None:
        stim = self.stimulators.get(device)
        if stim is None:
            return None
        return stim.capabilities.watchdog_timeout_s  # type: ignore[no-any-return]

    def _make_stimulator(self, dev: DeviceSpec) -> Any:
        sim = self._sims.get(dev.name)
        url = sim.url if sim is not None else dev.resource
        if dev.family == "board":
            from drivers.serial_board import SerialBoard

            return SerialBoard(url)
        # ScpiInstrument identifies the model by *IDN? at open(); the rig supplies what the
        # instrument cannot know: the V->I stage after a generator, the source's compliance.
        from drivers.scpi.front import ScpiInstrument

        kwargs: dict[str, Any] = {}
        stage = dev.stage(1)
        if stage is not None and stage.compliance_v is not None:
            key = "stage_compliance_v" if dev.family == "k33500b" else "compliance_v"
            kwargs[key] = stage.compliance_v
        if dev.family == "k33500b" and stage is not None and stage.transconductance_ma_per_v:
            kwargs["transconductance_ma_per_v"] = stage.transconductance_ma_per_v
        if dev.timeout_s is not None:
            kwargs["timeout_s"] = dev.timeout_s
        return ScpiInstrument(url, **kwargs)

    @contextlib.asynccontextmanager
    async def session(
        self, program: Any, profile: Any, *, software_alternation: bool = False
    ) -> AsyncIterator[ControllerUnderTest]:
        """A connected controller session over fresh drivers to the rig's devices."""
        names = {c.device for c in program.channels}
        stims = {name: self._make_stimulator(self.rig.device(name)) for name in sorted(names)}
        self.stimulators = stims
        log_path = self.workdir / f"audit-{len(self._sessions)}.jsonl"
        async with self._session_factory(
            program, stims, profile, log_path, software_alternation=software_alternation
        ) as s:
            for name, stim in stims.items():
                with contextlib.suppress(Exception):
                    ident = stim.capabilities.identity
                    self.identities[name] = {
                        "manufacturer": ident.manufacturer,
                        "model": ident.model,
                        "serial": ident.serial,
                        "firmware_version": ident.firmware_version,
                        "protocol_version": ident.protocol_version,
                        "resource": self.rig.device(name).resource,
                    }
            self._sessions.append(s)
            try:
                yield s
            finally:
                self._sessions.remove(s)
        self.mark("session closed")

    async def wait_state(
        self,
        session: ControllerUnderTest,
        states: Iterable[str],
        timeout_s: float,
        step_s: float = 0.001,
    ) -> float | None:
        """The loop time at which the session reached one of states, or None on timeout."""
        wanted = set(states)
        deadline = self.now() + timeout_s
        while self.now() <= deadline:
            if state_name(session) in wanted:
                return self.now()
            await asyncio.sleep(step_s)
        return None

    async def wait_active(
        self, channel: str, timeout_s: float, min_ma: float = 0.0
    ) -> float | None:
        """The time the monitor first saw the channel active above min_ma, or None."""
        deadline = self.now() + timeout_s
        while self.now() <= deadline:
            for e in self.monitor.events(channel):
                if e.active and e.amplitude_ma > min_ma:
                    return e.t_s
            await asyncio.sleep(0.005)
        return None

    def all_off_since(self, t_s: float) -> float | None:
        """When every watched output was off for good, at or after t_s (None: still on)."""
        return all_off_at(self.monitor.all_events(), t_s)

    def active_after(self, t_s: float) -> list[TraceEvent]:
        """Monitor events showing current at or after t_s."""
        return [e for e in self.monitor.all_events() if e.t_s >= t_s and e.active]

    def is_active_now(self, channel: str) -> bool:
        ev = self.monitor.events(channel)
        return bool(ev) and ev[-1].active

    def failures(self) -> list[Measurement]:
        return [m for m in self.record.measurements if not m.passed]


def _capture_series(ctx: ScenarioContext) -> None:
    from hil.report import ChannelSeries

    ctx.record.series = [
        ChannelSeries(name, ctx.monitor.events(name)) for name in ctx.monitor.channels()
    ]
    ctx.record.monitor = ctx.monitor.source


@contextlib.asynccontextmanager
async def open_context(
    rig: Rig,
    record: ScenarioRecord,
    workdir: Path,
    session_factory: SessionFactory = real_session,
    interactive: bool = False,
) -> AsyncIterator[ScenarioContext]:
    """Bring the rig up around a block, in the running loop; always tears it down. Does not
    judge the measurements (see `ScenarioContext.failures`)."""
    ctx = ScenarioContext(rig, record, workdir, session_factory)
    try:
        await ctx._start(interactive)
        try:
            yield ctx
        finally:
            if hasattr(ctx, "monitor"):
                _capture_series(ctx)
    finally:
        await ctx._close()


async def _run(
    rig: Rig,
    scenario: Scenario,
    record: ScenarioRecord,
    workdir: Path,
    session_factory: SessionFactory,
    interactive: bool,
    identities: dict[str, dict[str, Any]],
) -> None:
    async with open_context(rig, record, workdir, session_factory, interactive) as ctx:
        try:
            await scenario(ctx)
        finally:
            identities.update(ctx.identities)
    failed = ctx.failures()
    if failed:
        raise ScenarioFailed(
            f"{len(failed)} figure(s) outside their limits:\n"
            + "\n".join(f"  {m.describe()}" for m in record.measurements)
        )


def run_scenario(
    rig: Rig,
    scenario: Scenario,
    *,
    record: ScenarioRecord | None = None,
    workdir: Path | None = None,
    session_factory: SessionFactory = real_session,
    interactive: bool = False,
    identities: dict[str, dict[str, Any]] | None = None,
) -> ScenarioRecord:
    """Run one scenario on the rig, on virtual time where the rig allows. Raises
    ScenarioFailed (an AssertionError) if any figure is outside its limit, ScenarioSkipped or
    FaultUnavailable if the rig cannot do it. `identities` is filled with the devices' identities
    as soon as they are known, even when the scenario then fails."""
    from sim.virtual_time import run_virtual

    rec = record or ScenarioRecord(getattr(scenario, "__name__", "scenario"))
    ids: dict[str, dict[str, Any]] = {} if identities is None else identities
    with contextlib.ExitStack() as stack:
        if workdir is None:
            workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="stimctl-hil-")))
        coro = _run(rig, scenario, rec, workdir, session_factory, interactive, ids)
        if uses_virtual_time(rig):
            run_virtual(coro)
        else:
            asyncio.run(coro)
    return rec
