"""The session state machine, declared as data.

The machine only keeps state and says which moves are legal; it does no I/O. The session
(controller/session.py) performs the device I/O around each trigger, so a fault path is a plain
``await gate.all_off()`` followed by ``machine.fault()``, with no callback chain in between.

Fault and e-stop are latched: the only way out of either is ``reset``, which the session only
fires with a reason that goes into the audit log.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from typing import Any

from transitions import EventData, Machine, MachineError


class State(str, enum.Enum):
    DISCONNECTED = "disconnected"
    IDLE = "idle"
    ARMED = "armed"
    RAMPING_UP = "ramping_up"
    STIMULATING = "stimulating"
    PAUSED = "paused"
    RAMPING_DOWN = "ramping_down"
    DONE = "done"
    FAULT = "fault"
    ESTOP = "estop"


LATCHED = frozenset({State.FAULT, State.ESTOP})
"""States that hold every output off until an explicit reset."""

OUTPUT_MAY_BE_ON = frozenset(
    {State.RAMPING_UP, State.STIMULATING, State.PAUSED, State.RAMPING_DOWN}
)
"""States in which some output may be delivering current (paused ramps to zero, but the
session still owns the outputs and supervises them)."""

_RUNNING = [State.RAMPING_UP.value, State.STIMULATING.value, State.PAUSED.value]
_ANY_UNLATCHED = [s.value for s in State if s not in LATCHED]

TRANSITIONS: list[dict[str, Any]] = [
    {"trigger": "connect", "source": State.DISCONNECTED.value, "dest": State.IDLE.value},
    {"trigger": "arm", "source": [State.IDLE.value, State.DONE.value], "dest": State.ARMED.value},
    {"trigger": "disarm", "source": State.ARMED.value, "dest": State.IDLE.value},
    {"trigger": "start", "source": State.ARMED.value, "dest": State.RAMPING_UP.value},
    {"trigger": "ramped", "source": State.RAMPING_UP.value, "dest": State.STIMULATING.value},
    {"trigger": "pause", "source": [State.RAMPING_UP.value, State.STIMULATING.value],
     "dest": State.PAUSED.value},
    {"trigger": "resume", "source": State.PAUSED.value, "dest": State.RAMPING_UP.value},
    {"trigger": "stop", "source": _RUNNING, "dest": State.RAMPING_DOWN.value},
    {"trigger": "finished", "source": State.RAMPING_DOWN.value, "dest": State.DONE.value},
    # A fault from a latched e-stop stays an e-stop: the stronger latch wins.
    {"trigger": "fault", "source": _ANY_UNLATCHED, "dest": State.FAULT.value},
    {"trigger": "fault", "source": [State.FAULT.value, State.ESTOP.value], "dest": None},
    {"trigger": "estop", "source": [s.value for s in State], "dest": State.ESTOP.value},
    {"trigger": "reset", "source": [State.FAULT.value, State.ESTOP.value],
     "dest": State.IDLE.value},
    {"trigger": "disconnect",
     "source": [State.IDLE.value, State.ARMED.value, State.DONE.value, State.FAULT.value,
                State.ESTOP.value],
     "dest": State.DISCONNECTED.value},
]
"""Every legal move. A trigger from any other state raises `IllegalTransition`."""


class IllegalTransition(RuntimeError):
    """The requested action is not possible in the current state."""


TransitionListener = Callable[[State, State, str], None]


class SessionMachine:
    """Wraps a `transitions.Machine` over this object; `state` is always a `State`."""

    def __init__(self, on_transition: TransitionListener | None = None) -> None:
        self._listener = on_transition
        self.state_name: str = State.DISCONNECTED.value
        self._machine = Machine(
            model=self,
            states=[s.value for s in State],
            transitions=TRANSITIONS,
            initial=State.DISCONNECTED.value,
            model_attribute="state_name",
            auto_transitions=False,
            send_event=True,
            after_state_change="_notify",
        )

    @property
    def state(self) -> State:
        return State(self.state_name)

    @property
    def latched(self) -> bool:
        return self.state in LATCHED

    def can(self, trigger: str) -> bool:
        return bool(self._machine.get_triggers(self.state_name).count(trigger))

    def fire(self, trigger: str) -> State:
        """Fire a trigger; `IllegalTransition` says which state refused which action."""
        if not self.can(trigger):
            allowed = ", ".join(sorted(self._machine.get_triggers(self.state_name)))
            raise IllegalTransition(
                f"cannot {trigger} while {self.state_name}; possible now: {allowed or 'nothing'}"
            )
        try:
            getattr(self, trigger)()
        except MachineError as exc:  # pragma: no cover - guarded by can() above
            raise IllegalTransition(str(exc)) from exc
        return self.state

    def _notify(self, event: EventData) -> None:
        if self._listener is None or event.transition is None:
            return
        src = State(event.transition.source)
        dst = State(self.state_name)
        if src != dst:
            self._listener(src, dst, event.event.name)
