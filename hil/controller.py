"""The controller under test, as the scenarios see it.

Scenarios drive the real session controller (controller.api.open_session) through the small
surface below, so a test can hand the harness a different factory: the acceptance tests use a
controller double without the interlock to prove each scenario can fail.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any, Protocol

from controller.limits import Profile
from controller.program import Program
from drivers.base import Stimulator


class ControllerUnderTest(Protocol):
    """The part of `controller.session.Session` the scenarios use."""

    @property
    def state(self) -> Any:
        """A `controller.machine.State` (a str enum): compare with .value."""
        ...

    @property
    def fault_reason(self) -> str | None: ...

    async def arm(self) -> Any: ...

    async def start(self) -> None: ...

    async def wait(self) -> Any: ...

    async def stop(self, reason: str = "operator") -> None: ...

    async def emergency_stop(self, reason: str = "operator") -> None: ...

    async def reset(self, reason: str) -> None: ...


class SessionFactory(Protocol):
    def __call__(
        self,
        program: Program,
        devices: Mapping[str, Stimulator],
        profile: Profile,
        log_path: Path,
        software_alternation: bool = False,
    ) -> contextlib.AbstractAsyncContextManager[ControllerUnderTest]: ...


@contextlib.asynccontextmanager
async def real_session(
    program: Program,
    devices: Mapping[str, Stimulator],
    profile: Profile,
    log_path: Path,
    software_alternation: bool = False,
) -> AsyncIterator[ControllerUnderTest]:
    """The production controller: controller.api.open_session over the rig's drivers. The
    screening is confirmed (a rig has a dummy load, not a subject) and no session history is
    kept, so the rest-period check never blocks a test run. software_alternation forces the
    controller's break-before-make even where the device could alternate by itself."""
    from controller.api import open_session
    from controller.session import SessionOptions

    async with open_session(
        program,
        dict(devices),
        profile=profile,
        log=log_path,
        subject=None,
        confirm=True,
        history=False,
        options=SessionOptions(software_alternation=software_alternation),
    ) as session:
        yield session


def state_name(controller: ControllerUnderTest) -> str:
    state = controller.state
    return str(getattr(state, "value", state))
