"""The safety scenarios. Each is a coroutine taking a `ScenarioContext`: it drives the controller
under test on the rig, provokes what it checks, and measures the outcome at the output (the
simulator's trace or the bench's measurement instrument), never from the controller's belief.
Every figure goes through `ctx.measure` with its unit and limit; the harness fails the scenario
if any is outside.

`SCENARIOS` maps each name to its coroutine and what it needs of a rig (see hil.plugin's
`hil_requires` marker, which skips with the reason when the rig lacks it).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from hil.context import ScenarioContext, ScenarioSkipped
from hil.controller import ControllerUnderTest, state_name
from hil.faults import FaultUnavailable, ManualFaults
from sim.trace import TraceEvent

LATCHED = ("fault", "estop")
MANUAL_REACTION_S = 1.0
"""How long an operator may take to act on a NOW prompt where no monitor can see the act."""
ENDED = ("done", "fault", "estop", "idle", "disconnected")


# ---- building programs and profiles ------------------------------------------------------


def scenario_profile(ctx: ScenarioContext, name: str, **tightened: float) -> Any:
    """The rig's profile, tightened for this scenario (a profile may only be tightened)."""
    from controller.profiles import load_profile, tighten

    if not tightened:
        return load_profile(ctx.settings.profile)
    data: dict[str, Any] = {"base": ctx.settings.profile, "name": f"hil-{name}", **tightened}
    return tighten(data, source=f"{ctx.rig.source} [scenario {name}]")


def scenario_program(
    ctx: ScenarioContext,
    name: str,
    channels: list[str],
    *,
    duration_s: float,
    amplitude_ma: float | None = None,
    pair: bool = False,
) -> Any:
    from controller.program import parse_program

    s = ctx.settings
    data: dict[str, Any] = {
        "session": {"name": f"hil-{name}", "profile": s.profile, "duration_s": duration_s},
        "channel": [
            {
                "name": ch,
                "device": ctx.rig.channel(ch).device,
                "output": ctx.rig.channel(ch).output,
                "electrode": {
                    "kind": ctx.rig.channel(ch).electrode.kind,
                    "area_cm2": ctx.rig.channel(ch).electrode.area_cm2,
                },
                "waveform": "biphasic_symmetric",
                "amplitude_ma": s.amplitude_ma if amplitude_ma is None else amplitude_ma,
                "frequency_hz": s.frequency_hz,
                "pulse_width_us": s.pulse_width_us,
                "ramp_up_s": s.ramp_s,
                "ramp_down_s": s.ramp_s,
            }
            for ch in channels
        ],
    }
    if pair:
        data["pair"] = [
            {
                "agonist": channels[0],
                "antagonist": channels[1],
                "on_s": s.on_s,
                "off_s": s.off_s,
                "dead_time_s": s.dead_time_s,
                "ramp_up_s": s.ramp_s,
                "ramp_down_s": s.ramp_s,
            }
        ]
    return parse_program(data, f"{ctx.rig.source} [scenario {name}]")


# ---- analysis helpers --------------------------------------------------------------------


def intervals(events: list[TraceEvent], end_s: float) -> list[tuple[float, float]]:
    out: list[tuple[float, float]] = []
    start: float | None = None
    for e in events:
        if e.active and start is None:
            start = e.t_s
        elif not e.active and start is not None:
            out.append((start, e.t_s))
            start = None
    if start is not None:
        out.append((start, max(end_s, start)))
    return out


def bursts(events: list[TraceEvent], end_s: float, min_ma: float) -> list[tuple[float, float]]:
    """Intervals during which the channel delivered at least min_ma."""
    strong = [
        TraceEvent(
            e.t_s,
            e.device,
            e.channel,
            e.active and e.amplitude_ma >= min_ma,
            e.amplitude_ma,
            e.waveform,
        )
        for e in events
    ]
    return intervals(strong, end_s)


def handover_gaps(a: list[tuple[float, float]], b: list[tuple[float, float]]) -> list[float]:
    """The gap at each handover from one channel to the other (negative: they overlapped)."""
    marks = sorted([(st, en, "a") for st, en in a] + [(st, en, "b") for st, en in b])
    return [s2 - e1 for (_s1, e1, w1), (s2, _e2, w2) in itertools.pairwise(marks) if w1 != w2]


def peak_ma(events: list[TraceEvent], after_s: float = float("-inf")) -> float:
    return max((e.amplitude_ma for e in events if e.active and e.t_s >= after_s), default=0.0)


def active_time_s(events: list[TraceEvent], start_s: float, end_s: float) -> float:
    """How long the channel delivered current within [start_s, end_s]."""
    total = 0.0
    level_on = False
    t_prev = start_s
    for e in events:
        if e.t_s <= start_s:
            level_on = e.active
            continue
        if e.t_s >= end_s:
            break
        if level_on:
            total += e.t_s - t_prev
        level_on = e.active
        t_prev = e.t_s
    if level_on:
        total += end_s - t_prev
    return total


async def running(ctx: ScenarioContext, sess: ControllerUnderTest, channel: str) -> float:
    """Arm, start, and wait until the channel delivers its plateau. Returns that time."""
    s = ctx.settings
    await sess.arm()
    await sess.start()
    t = await ctx.wait_active(channel, s.ramp_s + 5.0, min_ma=0.9 * s.amplitude_ma)
    if t is None:
        raise AssertionError(
            f"channel {channel!r} never reached 90% of {s.amplitude_ma} mA after start "
            f"(controller state {state_name(sess)}, fault: {sess.fault_reason})"
        )
    ctx.mark("plateau reached", t)
    return t


def bench_action_time(ctx: ScenarioContext, t_prompt: float, channel: str) -> float:
    """On a bench the operator acts some time after the prompt: take the moment the monitor
    first saw the channel stop delivering as the time of the fault."""
    if not isinstance(ctx.faults, ManualFaults):
        return t_prompt
    for e in ctx.monitor.events(channel):
        if e.t_s >= t_prompt and not e.active:
            return e.t_s
    return t_prompt


async def _refused(action: Callable[[], Awaitable[Any]]) -> tuple[bool, str]:
    try:
        await action()
    except Exception as exc:  # noqa: BLE001 - any refusal counts, its text goes in the note
        return True, f"{type(exc).__name__}: {exc}"
    return False, "accepted"


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0][:160] if text.strip() else ""


# ---- the scenarios -----------------------------------------------------------------------


async def over_limit_refusal(ctx: ScenarioContext) -> None:
    """A program above the profile's amplitude limit is refused before anything reaches a
    device: the output stays at 0 mA."""
    s = ctx.settings
    profile = scenario_profile(ctx, "over-limit", max_amplitude_ma=s.amplitude_ma)
    over_ma = round(1.5 * s.amplitude_ma, 2)
    program = scenario_program(
        ctx, "over-limit", [s.agonist], duration_s=10.0, amplitude_ma=over_ma
    )
    t0 = ctx.now()
    async with ctx.session(program, profile) as sess:
        arm_refused, arm_note = await _refused(sess.arm)
        start_refused, start_note = await _refused(sess.start)
        await ctx.sleep(2.0 + s.ramp_s)
    ctx.measure("arm refused", float(arm_refused), "bool", 1.0, "==", _first_line(arm_note))
    ctx.measure("start refused", float(start_refused), "bool", 1.0, "==", _first_line(start_note))
    ctx.measure(
        "peak delivered current",
        max(peak_ma(ctx.monitor.events(ch), t0) for ch in ctx.monitor.channels()),
        "mA",
        0.0,
        "<=",
        f"program asked {over_ma} mA against a limit of {s.amplitude_ma} mA",
    )


async def start_ramp(ctx: ScenarioContext) -> None:
    """Stimulation starts from (nearly) zero: the first output is at most 2% of the target
    (IEC 60601-2-10 201.12.1.101), and it ramps rather than jumps."""
    s = ctx.settings
    program = scenario_program(ctx, "start-ramp", [s.agonist], duration_s=s.ramp_s + 3.0)
    async with ctx.session(program, scenario_profile(ctx, "start-ramp")) as sess:
        await running(ctx, sess, s.agonist)
        await ctx.sleep(0.5)
        await sess.stop("scenario done")
    events = ctx.monitor.events(s.agonist)
    first = next((e for e in events if e.active), None)
    target = s.amplitude_ma
    # Only a monitor that records every change (the simulator's trace) can show the first
    # step; a polled meter lands somewhere on the ramp, so there the figure is informative and
    # the rise time below is what proves the output did not jump.
    exact = ctx.monitor.resolution_s == 0.0
    ctx.measure(
        "first output / target",
        None if first is None else 100.0 * first.amplitude_ma / target,
        "%",
        2.0 if exact else None,
        "<=",
        "" if exact else f"meter sampled every {ctx.monitor.resolution_s:g} s: not judged",
    )
    ctx.measure("peak / target", 100.0 * peak_ma(events) / target, "%", 100.0 + 1e-6, "<=")
    reach = next((e for e in events if e.active and e.amplitude_ma >= 0.99 * target), None)
    ramp_started = next(
        (e for e in events if e.active and e.amplitude_ma > 0.02 * target + 1e-9), None
    )
    rise = None if reach is None or ramp_started is None else reach.t_s - ramp_started.t_s
    ctx.measure(
        "rise time to target",
        rise,
        "s",
        0.5 * s.ramp_s,
        ">=",
        f"programmed ramp {s.ramp_s:g} s; a jump would rise in 0 s",
    )


async def antagonist_non_overlap(ctx: ScenarioContext) -> None:
    """An antagonist pair alternates: never both on (ramps included), with at least the
    programmed dead time at every handover. The controller picks how (the device's own timer
    where it has one)."""
    await _non_overlap(ctx, software=False)


async def antagonist_non_overlap_software(ctx: ScenarioContext) -> None:
    """The same with the controller's software break-before-make forced, as on devices that
    cannot alternate by themselves (two 6221s)."""
    await _non_overlap(ctx, software=True)


async def _non_overlap(ctx: ScenarioContext, software: bool) -> None:
    s = ctx.settings
    if s.antagonist not in ctx.monitor.channels() or s.agonist not in ctx.monitor.channels():
        raise ScenarioSkipped("the monitor must watch both channels of the pair")
    cycle_s = 2 * s.on_s + s.dead_time_s + s.off_s
    duration = 2 * cycle_s + 2 * s.ramp_s
    program = scenario_program(
        ctx, "non-overlap", [s.agonist, s.antagonist], duration_s=duration, pair=True
    )
    profile = scenario_profile(ctx, "non-overlap")
    async with ctx.session(program, profile, software_alternation=software) as sess:
        await sess.arm()
        await sess.start()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(sess.wait(), duration + 10.0)
        end_state = state_name(sess)
        if end_state not in ENDED:
            await sess.stop("scenario done")
    end = ctx.now()
    a = intervals(ctx.monitor.events(s.agonist), end)
    b = intervals(ctx.monitor.events(s.antagonist), end)
    overlap = sum(max(0.0, min(e1, e2) - max(s1, s2)) for s1, e1 in a for s2, e2 in b)
    res = ctx.monitor.resolution_s
    # Every handover counts, an electrode probe at 2% included: the dead time is about when
    # current flows, not about how strong it is. Handovers between bursts that reach half the
    # target are counted on their own, so a run that never really alternated cannot pass.
    half = 0.5 * s.amplitude_ma
    contraction_gaps = handover_gaps(
        bursts(ctx.monitor.events(s.agonist), end, half),
        bursts(ctx.monitor.events(s.antagonist), end, half),
    )
    any_gaps = handover_gaps(a, b)
    ctx.measure("overlap of the pair", overlap, "s", 0.0 + res, "<=")
    ctx.measure(
        "shortest dead time at a handover",
        min(any_gaps) if any_gaps else None,
        "s",
        s.dead_time_s - res - 1e-6,
        ">=",
        f"programmed {s.dead_time_s:g} s; probes included",
    )
    ctx.measure(
        "contraction handovers seen",
        float(len(contraction_gaps)),
        "count",
        2.0,
        ">=",
        "the dead-time check needs real handovers",
    )
    ctx.measure("session end state", None, "", None, note=end_state)


async def session_time_limit(ctx: ScenarioContext) -> None:
    """A program asking for longer than the profile allows is stopped at the profile's maximum."""
    s = ctx.settings
    limit_s = s.session_limit_s
    profile = scenario_profile(ctx, "time-limit", max_session_s=limit_s)
    program = scenario_program(ctx, "time-limit", [s.agonist], duration_s=3 * limit_s)
    async with ctx.session(program, profile) as sess:
        await sess.arm()
        await sess.start()
        t_start = ctx.mark("start")
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(sess.wait(), 3 * limit_s + 10.0)
        end_state = state_name(sess)
    events = ctx.monitor.events(s.agonist)
    first = next((e for e in events if e.active), None)
    t_off = ctx.all_off_since(first.t_s) if first is not None else None
    ctx.measure(
        "stimulation time",
        None if first is None or t_off is None else t_off - t_start,
        "s",
        limit_s + ctx.monitor.resolution_s + 0.05,
        "<=",
        f"profile maximum {limit_s:g} s, program asked {3 * limit_s:g} s",
    )
    ctx.measure("session end state", None, "", None, note=end_state)


async def comms_loss(ctx: ScenarioContext) -> None:
    """The link to the device goes silent mid-session: the device's own watchdog switches every
    output off within its timeout, whatever the controller does."""
    s = ctx.settings
    device = ctx.rig.channel(s.agonist).device
    program = scenario_program(ctx, "comms-loss", [s.agonist], duration_s=60.0)
    async with ctx.session(program, scenario_profile(ctx, "comms-loss")) as sess:
        watchdog_s = ctx.watchdog_timeout_s(device)
        if watchdog_s is None:
            raise ScenarioSkipped(
                f"device {device!r} has no watchdog of its own: a lost link leaves its output "
                "as it was (only the controller's heartbeat notices)"
            )
        await running(ctx, sess, s.agonist)
        await ctx.sleep(0.2)
        t_cut = await ctx.faults.cut_link(device)
        ctx.mark("link cut", t_cut)
        await ctx.sleep(4 * min(watchdog_s, s.comms_loss_limit_s) + 1.0)
        t_off = ctx.all_off_since(t_cut)
        detected = state_name(sess) in LATCHED
    limit_s = min(watchdog_s, s.comms_loss_limit_s) + ctx.monitor.resolution_s + 1e-3
    note = f"device watchdog {watchdog_s * 1e3:g} ms, rig limit {s.comms_loss_limit_s * 1e3:g} ms"
    if isinstance(ctx.faults, ManualFaults):
        # Nothing shows the moment a hand pulls the cable: time runs from the NOW prompt.
        limit_s += MANUAL_REACTION_S
        note += f", plus {MANUAL_REACTION_S:g} s for the operator to pull the cable"
    ctx.measure(
        "link cut to all outputs off",
        None if t_off is None else t_off - t_cut,
        "s",
        limit_s,
        "<=",
        note,
    )
    ctx.measure("controller latched a fault", float(detected), "bool", None)


async def lead_off(ctx: ScenarioContext) -> None:
    """An electrode lead comes off: the controller latches a fault at once, and when the lead
    touches again no current flows until an explicit reset."""
    s = ctx.settings
    program = scenario_program(ctx, "lead-off", [s.agonist], duration_s=60.0)
    async with ctx.session(program, scenario_profile(ctx, "lead-off")) as sess:
        await running(ctx, sess, s.agonist)
        await ctx.sleep(0.2)
        t_inj = await ctx.faults.lead_off(s.agonist)
        t_inj = bench_action_time(ctx, t_inj, s.agonist)
        ctx.mark("lead off", t_inj)
        t_fault = await ctx.wait_state(sess, LATCHED, timeout_s=2.0)
        await ctx.sleep(0.1)
        t_back = await ctx.faults.reconnect(s.agonist)
        ctx.mark("lead back", t_back)
        await ctx.sleep(1.0)
        end_state = state_name(sess)
        note = _first_line(sess.fault_reason or "")
    ctx.measure(
        "lead-off to latched fault",
        None if t_fault is None else t_fault - t_inj,
        "s",
        s.fault_latency_limit_s,
        "<=",
        note,
    )
    ctx.measure(
        "current after the lead is back",
        peak_ma(ctx.monitor.events(s.agonist), t_back),
        "mA",
        0.0,
        "<=",
        f"controller state {end_state}",
    )


async def emergency_stop_latency(ctx: ScenarioContext) -> None:
    """The emergency stop switches every output off at once (no ramp) and latches."""
    s = ctx.settings
    two = s.antagonist in ctx.monitor.channels() and bool(s.antagonist)
    names = [s.agonist] + ([s.antagonist] if two else [])
    program = scenario_program(ctx, "estop", names, duration_s=60.0)
    async with ctx.session(program, scenario_profile(ctx, "estop")) as sess:
        await running(ctx, sess, s.agonist)
        await ctx.sleep(0.2)
        try:
            if ctx.estop is None:
                raise FaultUnavailable("no e-stop input")
            t_press = await ctx.faults.press_estop()
            via = f"e-stop input {ctx.rig.estop.port if ctx.rig.estop else ''}"
        except FaultUnavailable:
            # No button to press (or nobody to press it): the API's stop is what remains.
            t_press = ctx.now()
            await sess.emergency_stop("hil scenario")
            via = "controller API emergency_stop()"
        ctx.mark("e-stop", t_press)
        t_latched = await ctx.wait_state(sess, ("estop",), timeout_s=2.0)
        await ctx.sleep(0.5)
        restart_refused, note = await _refused(sess.start)
        await ctx.sleep(0.5)
        if ctx.estop is not None:
            with contextlib.suppress(FaultUnavailable):
                await ctx.faults.release_estop()
    t_off = ctx.all_off_since(t_press)
    ctx.measure(
        "e-stop to all outputs off",
        None if t_off is None else t_off - t_press,
        "s",
        s.estop_latency_limit_s,
        "<=",
        via,
    )
    ctx.measure("e-stop latched", float(t_latched is not None), "bool", 1.0, "==")
    ctx.measure(
        "start refused while latched", float(restart_refused), "bool", 1.0, "==", _first_line(note)
    )
    ctx.measure(
        "current after the e-stop",
        max(peak_ma(ctx.monitor.events(ch), (t_off or t_press) + 1e-9) for ch in names),
        "mA",
        0.0,
        "<=",
    )


async def fault_latch_and_reset(ctx: ScenarioContext) -> None:
    """A fault latches: nothing restarts the output (not start, not arm) until an explicit
    reset with a reason; after the reset, a new arm and start work again."""
    s = ctx.settings
    program = scenario_program(ctx, "latch", [s.agonist], duration_s=60.0)
    async with ctx.session(program, scenario_profile(ctx, "latch")) as sess:
        await running(ctx, sess, s.agonist)
        await ctx.sleep(0.2)
        try:
            t_inj = await ctx.faults.overcurrent(s.agonist)
            what = "overcurrent"
        except FaultUnavailable:
            t_inj = bench_action_time(ctx, await ctx.faults.lead_off(s.agonist), s.agonist)
            what = "lead-off"
        ctx.mark(what, t_inj)
        t_fault = await ctx.wait_state(sess, LATCHED, timeout_s=2.0)
        with contextlib.suppress(FaultUnavailable):
            await ctx.faults.reconnect(s.agonist)
        t_cleared = ctx.mark("fault cause removed")
        arm_refused, arm_note = await _refused(sess.arm)
        start_refused, start_note = await _refused(sess.start)
        await ctx.sleep(1.0)
        t_reset = ctx.mark("reset")
        await sess.reset(f"hil scenario: injected {what} removed")
        await sess.arm()
        await sess.start()
        t_back = await ctx.wait_active(s.agonist, s.ramp_s + 5.0, min_ma=0.9 * s.amplitude_ma)
        await sess.stop("scenario done")
    events = ctx.monitor.events(s.agonist)
    ctx.measure("fault latched", float(t_fault is not None), "bool", 1.0, "==", what)
    ctx.measure(
        "arm refused while latched", float(arm_refused), "bool", 1.0, "==", _first_line(arm_note)
    )
    ctx.measure(
        "start refused while latched",
        float(start_refused),
        "bool",
        1.0,
        "==",
        _first_line(start_note),
    )
    ctx.measure(
        "current between fault and reset",
        active_time_s(events, t_cleared, t_reset),
        "s",
        0.0,
        "<=",
        "time the output delivered current after the cause was removed, before the reset",
    )
    ctx.measure("output restored after reset", float(t_back is not None), "bool", 1.0, "==")


async def stuck_output(ctx: ScenarioContext) -> None:
    """An output that ignores "off" (a welded relay, a stuck driver stage) is caught by
    readback: the controller latches a fault instead of reporting a clean stop."""
    s = ctx.settings
    program = scenario_program(ctx, "stuck", [s.agonist], duration_s=60.0)
    async with ctx.session(program, scenario_profile(ctx, "stuck")) as sess:
        await running(ctx, sess, s.agonist)
        await ctx.sleep(0.2)
        t_inj = await ctx.faults.stuck(s.agonist)
        ctx.mark("stuck", t_inj)
        await ctx.sleep(0.1)
        t_stop = ctx.mark("stop")
        with contextlib.suppress(Exception):
            await sess.stop("hil scenario: stop with a stuck output")
        t_fault = await ctx.wait_state(sess, LATCHED, timeout_s=s.ramp_s + 2.0)
        last = ctx.monitor.events(s.agonist)[-1:]
        still_on = bool(last) and last[0].on
        note = _first_line(sess.fault_reason or state_name(sess))
    ctx.measure("stuck output detected", float(t_fault is not None), "bool", 1.0, "==", note)
    ctx.measure(
        "stop to detection",
        None if t_fault is None else t_fault - t_stop,
        "s",
        s.ramp_s + 1.0,
        "<=",
        "ramp-down time plus readback",
    )
    ctx.measure(
        "stuck output still switched on after the stop",
        float(still_on),
        "bool",
        None,
        note="as injected: the controller can only report it and latch",
    )


@dataclass(frozen=True)
class ScenarioInfo:
    name: str
    run: Callable[[ScenarioContext], Awaitable[None]]
    requires: tuple[str, ...]


SCENARIOS: dict[str, ScenarioInfo] = {
    info.name: info
    for info in (
        ScenarioInfo("over_limit_refusal", over_limit_refusal, ()),
        ScenarioInfo("start_ramp", start_ramp, ()),
        ScenarioInfo("antagonist_non_overlap", antagonist_non_overlap, ("pair", "monitor_pair")),
        ScenarioInfo(
            "antagonist_non_overlap_software",
            antagonist_non_overlap_software,
            ("pair", "monitor_pair"),
        ),
        ScenarioInfo("session_time_limit", session_time_limit, ()),
        ScenarioInfo("comms_loss", comms_loss, ("watchdog", "link_fault")),
        ScenarioInfo("lead_off", lead_off, ("lead_off_fault",)),
        ScenarioInfo("emergency_stop_latency", emergency_stop_latency, ()),
        ScenarioInfo("fault_latch_and_reset", fault_latch_and_reset, ("lead_off_fault",)),
        ScenarioInfo("stuck_output", stuck_output, ("stuck_fault",)),
    )
}
