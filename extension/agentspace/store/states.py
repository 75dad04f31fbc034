"""The stored words for a session's status and a run's outcome (``engine.lifecycle`` moves
between them).

Stores written before these names had ``interrupted`` for a crashed session and
``success``, ``interrupt``, ``error``, ``interrupted`` as run outcomes; ``store.database``
migrates them (schema 5) with the maps below, and a record read from an older copy is
mapped the same way.
"""

from __future__ import annotations

from enum import Enum


class Status(str, Enum):
    """Where a session is between runs (stored in its record, shown in every view)."""

    IDLE = "idle"
    RUNNING = "running"
    AWAITING_APPROVAL = "awaiting_approval"  # paused for approval: decide, then it resumes
    STOPPED = "stopped"  # the user stopped the run (Stop, the kernel's interrupt, stop())
    FAILED = "failed"  # the provider failed, a limit was crossed, or an internal error
    CRASHED = "crashed"  # the process serving the run died; resume continues

    def __str__(self) -> str:
        return self.value


class Outcome(str, Enum):
    """How one run ended (stored in the runs table)."""

    FINISHED = "finished"  # the model answered without calling more tools
    PAUSED = "paused"  # tool calls wait for decisions (AG-UI: the interrupt outcome)
    CANCELLED = "cancelled"  # stopped by the user or the kernel's interrupt
    FAILED = "failed"  # RUN_ERROR: a provider, a limit, an internal error
    CRASHED = "crashed"  # closed at the next load: its process died mid-run

    def __str__(self) -> str:
        return self.value


# Stored values from before these names, and what they are now.
OLD_STATUSES = {"interrupted": Status.CRASHED.value}
OLD_OUTCOMES = {
    "success": Outcome.FINISHED.value,
    "interrupt": Outcome.PAUSED.value,
    "error": Outcome.FAILED.value,
    "interrupted": Outcome.CRASHED.value,
}
