"""The Python API: an async session context, and a blocking facade for plain scripts.

    async with open_session("examples/face.toml", subject="S01", confirm=True) as s:
        await s.arm()
        await s.start()
        await s.wait()

    with stimctl_session("examples/face.toml", subject="S01", confirm=True) as s:
        s.arm(); s.start(); s.wait()

Both leave every output off on the way out, whatever happens inside: a normal exit, an
exception, a cancellation or Ctrl-C (KeyboardInterrupt) ramps a running session down; if that
ramp-down itself fails or is interrupted again, everything is switched off at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import threading
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from concurrent.futures import Future
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from controller.audit import AuditLog
from controller.devices import DeviceArg, open_devices
from controller.gate import Gate
from controller.history import SessionHistory
from controller.interlock import CheckReport
from controller.limits import Profile
from controller.machine import OUTPUT_MAY_BE_ON, State
from controller.profiles import load_profile
from controller.program import Program, load_program
from controller.session import ConfirmFn, Observer, Session, SessionOptions
from drivers.base import FaultReport

T = TypeVar("T")

__all__ = [
    "BlockingSession",
    "Session",
    "SessionOptions",
    "State",
    "default_log_path",
    "open_session",
    "stimctl_session",
]


def state_dir() -> Path:
    env = os.environ.get("STIMCTL_STATE_DIR")
    if env:
        return Path(env)
    return Path.home() / ".local" / "state" / "stimctl"


def default_log_path(program: Program) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "-", program.session.name).strip("-") or "session"
    return state_dir() / "logs" / f"{stamp}-{safe}.jsonl"


def _resolve_program(program: Program | str | Path) -> Program:
    return program if isinstance(program, Program) else load_program(program)


def _resolve_profile(profile: Profile | str | Path | None, program: Program) -> Profile:
    if isinstance(profile, Profile):
        return profile
    return load_profile(profile if profile is not None else program.session.profile)


@contextlib.asynccontextmanager
async def open_session(
    program: Program | str | Path,
    device: DeviceArg = None,
    *,
    profile: Profile | str | Path | None = None,
    log: str | Path | None = None,
    subject: str | None = None,
    confirm: ConfirmFn | bool | None = None,
    history: SessionHistory | None | bool = True,
    options: SessionOptions = SessionOptions(),
    trace: str | Path | None = None,
) -> AsyncIterator[Session]:
    """Load, open the devices (the built-in simulator if device is None), and yield a
    connected `Session`. `trace` is where the built-in simulator writes its output trace.
    `history=True` uses the default session history; pass False to skip it, or your own."""
    prog = _resolve_program(program)
    prof = _resolve_profile(profile, prog)
    log_path = Path(log) if log is not None else default_log_path(prog)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    audit = AuditLog(log_path)
    hist: SessionHistory | None
    if history is True:
        hist = SessionHistory()
    elif history is False or history is None:
        hist = None
    else:
        hist = history
    opened = await open_devices(device, prog, trace)
    holder: list[Session] = []
    early: list[tuple[str, FaultReport]] = []

    def forward(dev: str, report: FaultReport) -> None:
        if holder:
            holder[0].on_device_fault(dev, report)
        else:
            early.append((dev, report))

    try:
        gate = Gate(opened.devices, prog, prof, on_device_fault=forward)
        session = Session(gate, audit, history=hist, subject=subject, confirm=confirm,
                          options=options)
        session.log_path = log_path
        session.device_urls = dict(opened.urls)
        holder.append(session)
        for dev, report in early:
            session.on_device_fault(dev, report)
        try:
            yield session
        except BaseException as exc:
            await _leave_safely(session, exc)
            raise
        finally:
            await session.close()
    finally:
        try:
            if not holder:
                for stim in opened.devices.values():
                    with contextlib.suppress(Exception):
                        await stim.close()
        finally:
            opened.stop_simulators()
            with contextlib.suppress(Exception):
                audit.close()


async def _leave_safely(session: Session, exc: BaseException) -> None:
    """On the way out of an exception: ramp down if running; if even that fails or is
    interrupted, switch everything off at once."""
    if session.state not in OUTPUT_MAY_BE_ON:
        return
    reason = "interrupted" if isinstance(exc, (KeyboardInterrupt, asyncio.CancelledError)) \
        else f"exception: {exc!r}"
    try:
        await session.stop(reason)
    except BaseException as second:
        await session.abort(f"{reason}, then {second!r} during ramp-down")
        if not isinstance(second, Exception):
            raise


EXIT_TIMEOUT_S = 30.0
"""How long leaving a BlockingSession may take (a ramp-down) before it falls back to all-off."""


# ---- the blocking facade -----------------------------------------------------------------


class BlockingSession:
    """A session for scripts without asyncio. The session's loop runs in a thread of its own,
    so the heartbeat and supervision keep running between your calls. Use as a context
    manager; Ctrl-C while a call waits ramps the session down."""

    def __init__(self, program: Program | str | Path, device: DeviceArg = None,
                 **kwargs: Any) -> None:
        self._args = (program, device)
        self._kwargs = kwargs
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="stimctl-session",
                                        daemon=True)
        self._cm: contextlib.AbstractAsyncContextManager[Session] | None = None
        self._session: Session | None = None

    def _call(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        fut: Future[T] = asyncio.run_coroutine_threadsafe(coro, self._loop)
        try:
            return fut.result(timeout)
        except KeyboardInterrupt:
            fut.cancel()
            self._interrupted()
            raise

    def _interrupted(self) -> None:
        session = self._session
        if session is None or session.state not in OUTPUT_MAY_BE_ON:
            return
        fut = asyncio.run_coroutine_threadsafe(session.stop("interrupted (Ctrl-C)"), self._loop)
        try:
            fut.result()
        except BaseException:
            asyncio.run_coroutine_threadsafe(
                session.abort("second interrupt during ramp-down"), self._loop).result(10)

    def __enter__(self) -> BlockingSession:
        self._thread.start()
        program, device = self._args
        self._cm = open_session(program, device, **self._kwargs)
        try:
            self._session = self._call(self._cm.__aenter__())
        except BaseException:
            self._stop_loop()
            raise
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None,
                 tb: TracebackType | None) -> None:
        try:
            if self._cm is not None:
                fut = asyncio.run_coroutine_threadsafe(self._cm.__aexit__(et, ev, tb),
                                                       self._loop)
                try:
                    fut.result(EXIT_TIMEOUT_S)
                except TimeoutError:
                    # The orderly exit is stuck: everything off at once, then leave. The
                    # device's own watchdog covers whatever this cannot reach.
                    fut.cancel()
                    session = self._session
                    if session is not None:
                        asyncio.run_coroutine_threadsafe(
                            session.abort("blocking session exit timed out"),
                            self._loop).result(10)
        finally:
            self._stop_loop()

    def _stop_loop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        if not self._thread.is_alive():
            self._loop.close()

    @property
    def session(self) -> Session:
        if self._session is None:
            raise RuntimeError("use BlockingSession as a context manager (with ... as s:)")
        return self._session

    @property
    def state(self) -> State:
        return self.session.state

    def arm(self) -> CheckReport:
        return self._call(self.session.arm())

    def start(self) -> None:
        self._call(self.session.start())

    def wait(self, timeout: float | None = None) -> State:
        return self._call(self.session.wait(), timeout)

    def stop(self) -> None:
        self._call(self.session.stop("operator"))

    def pause(self) -> None:
        self._call(self.session.pause())

    def resume(self) -> None:
        self._call(self.session.resume())

    def emergency_stop(self, reason: str = "operator") -> None:
        self._call(self.session.emergency_stop(reason))

    def reset(self, reason: str) -> None:
        self._call(self.session.reset(reason))

    def subscribe(self, observer: Observer) -> Callable[[], None]:
        """The observer is called in the session's thread."""
        return self.session.subscribe(observer)


def stimctl_session(program: Program | str | Path, device: DeviceArg = None,
                    **kwargs: Any) -> BlockingSession:
    """`with stimctl_session(program, ...) as s:` - the blocking form of `open_session`."""
    return BlockingSession(program, device, **kwargs)
