"""A session's status and a run's outcome as values, and the transitions between statuses.

Three things must not read alike, so each has its own word:

* **paused for approval**: a run ended because calls wait for decisions. Its outcome is
  ``Outcome.PAUSED``, the session is ``Status.AWAITING_APPROVAL``. (On the wire it stays
  AG-UI's ``RUN_FINISHED`` with an ``interrupt`` outcome: that is the protocol's word.)
* **crashed**: the process serving a run died (kill -9, OOM, power); the next load closes
  the run as ``Outcome.CRASHED`` and the session is ``Status.CRASHED`` until resumed.
* **the kernel's interrupt button**: the kernel side stops the run it follows, which is
  then ``Outcome.CANCELLED`` like the Stop button (``agentspace_kernel``: "kernel interrupt").

``Session.set_status`` is the one place a status changes, and only along ``TRANSITIONS``.
The values themselves are stored data (``store.states``), migrated from the older names.
"""

from __future__ import annotations

from agentspace.store.states import Outcome, Status

TRANSITIONS: dict[Status, frozenset[Status]] = {
    Status.IDLE: frozenset({Status.RUNNING}),
    Status.RUNNING: frozenset(
        {Status.IDLE, Status.AWAITING_APPROVAL, Status.STOPPED, Status.FAILED, Status.CRASHED}
    ),
    Status.AWAITING_APPROVAL: frozenset({Status.RUNNING, Status.STOPPED}),
    Status.STOPPED: frozenset({Status.RUNNING}),
    Status.FAILED: frozenset({Status.RUNNING}),
    Status.CRASHED: frozenset({Status.RUNNING}),
}
"""Which status may follow which; staying in a status (a new reason) is always allowed."""

AFTER: dict[Outcome, Status] = {
    Outcome.FINISHED: Status.IDLE,
    Outcome.PAUSED: Status.AWAITING_APPROVAL,
    Outcome.CANCELLED: Status.STOPPED,
    Outcome.FAILED: Status.FAILED,
    Outcome.CRASHED: Status.CRASHED,
}
"""The session's status once a run ended so."""

RESUMABLE = frozenset({Status.STOPPED, Status.FAILED, Status.CRASHED})
"""Statuses ``resume`` continues from (the transcript, then the queue)."""


class TransitionError(RuntimeError):
    """A status change the table does not allow: a bug in the engine, never bad input."""


def check(current: Status, new: Status) -> None:
    """Refuse a change that ``TRANSITIONS`` does not allow."""
    if new != current and new not in TRANSITIONS[current]:
        raise TransitionError(f"a session cannot go from {current} to {new}")
