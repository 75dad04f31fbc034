"""One decision per call, taken in the store: the SQL that makes it atomic.

Several people (two browser tabs, the CLI and a notebook, a double click) may
decide one pending call at once, from threads of one server or from several
processes on one state directory. Checking in Python and then writing lets
more than one through, so the tool would run more than once. Instead a
decision is a conditional ``UPDATE … WHERE status = 'pending'`` inside an
immediate transaction: SQLite serialises those across processes, and the row
count says who won. Everyone else is told what won.

The same transaction settles who resumes the session once its last pending
call is decided, so two processes never both start the continuation:

* nobody (or a dead process) holds the session: the winner claims it and resumes;
* the process that holds it is still finishing the run that paused: it resumes
  when it lets go (``finish_serving`` sees no pending call left and keeps it).

Functions here take a ``sqlite3.Connection`` inside a transaction (see
``Store.transaction``); nothing here knows about the event loop.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, field

from agentspace.engine.policies import decided_text
from agentspace.errors import ConflictError
from agentspace.owners import owner_alive
from agentspace.store.approvals import Decision, PendingCall
from agentspace.store.eventlog import INSERT as INSERT_EVENT
from agentspace.store.records import _APPROVAL_COLUMNS, _pending_call

_DECIDE = (
    "UPDATE approvals SET status = 'decided', decision = ?, decided_by = ?, announced = ?"
    " WHERE session_id = ? AND tool_call_id = ? AND status = 'pending'"
)


@dataclass
class Taken:
    """What deciding one call came to, as the store saw it in one transaction."""

    won: bool
    call: PendingCall | None = None  # the row after the transaction (the winner's decision)
    remaining: list[str] = field(default_factory=list)  # still pending in the session
    resume: bool = False  # this process claimed the session: it starts the continuation
    owner: str | None = None  # who holds the session (if someone else resumes it)
    data: str | None = None  # the session record as stored after the transaction
    last_seq: int = 0  # the newest event of the session in the store
    seq: int | None = None  # where the decision's event went, if written here


def _owner(conn: sqlite3.Connection, session_id: str) -> str | None:
    row = conn.execute("SELECT owner FROM sessions WHERE id = ?", (session_id,)).fetchone()
    return row[0] if row else None


def _row(conn: sqlite3.Connection, session_id: str, tool_call_id: str) -> PendingCall | None:
    r = conn.execute(
        f"SELECT {_APPROVAL_COLUMNS} FROM approvals WHERE session_id = ? AND tool_call_id = ?",
        (session_id, tool_call_id),
    ).fetchone()
    return _pending_call(r) if r else None


def _remember(conn: sqlite3.Connection, session_id: str, tool: str) -> None:
    """Always allow ``tool`` in the session: one key of the stored record, written in place."""
    (data,) = conn.execute("SELECT data FROM sessions WHERE id = ?", (session_id,)).fetchone()
    record = json.loads(data)
    record.setdefault("policies", {})[tool] = "allow"
    remembered = record.setdefault("always_allowed", [])
    if tool not in remembered:
        remembered.append(tool)
    conn.execute("UPDATE sessions SET data = ? WHERE id = ?", (json.dumps(record), session_id))


def take(
    conn: sqlite3.Connection,
    session_id: str,
    tool_call_id: str,
    decision: Decision,
    *,
    by: str | None,
    token: str,
    may_resume: bool = True,
    event: tuple[int, str, str] | None = None,
) -> Taken:
    """Decide ``tool_call_id`` if nobody has yet; say who resumes if it was the last one.

    ``event`` (seq, type, data) is the decision's event, logged in the same transaction
    at ``seq`` (the caller's next number) or after the store's last, whichever is later,
    when no live process serves the session (the caller logs it itself when it
    does, and a process serving elsewhere logs it when it goes on).
    """
    owner = _owner(conn, session_id)
    elsewhere = bool(owner) and owner != token and owner_alive(owner)
    cursor = conn.execute(
        _DECIDE,
        (decision.model_dump_json(), by, 0 if elsewhere else 1, session_id, tool_call_id),
    )
    if cursor.rowcount != 1:
        return Taken(won=False, call=_row(conn, session_id, tool_call_id))
    call = _row(conn, session_id, tool_call_id)
    if decision.remember and decision.decision != "reject" and call is not None:
        _remember(conn, session_id, call.name)
    remaining = [
        tid
        for (tid,) in conn.execute(
            "SELECT tool_call_id FROM approvals WHERE session_id = ? AND status = 'pending'"
            " ORDER BY created",
            (session_id,),
        )
    ]
    resume = False
    if not remaining and may_resume and not elsewhere:
        conn.execute(
            "UPDATE sessions SET owner = ?, stop_requested = 0 WHERE id = ?", (token, session_id)
        )
        resume = True
    (data,) = conn.execute("SELECT data FROM sessions WHERE id = ?", (session_id,)).fetchone()
    last = (
        conn.execute("SELECT MAX(seq) FROM events WHERE session_id = ?", (session_id,)).fetchone()[
            0
        ]
        or 0
    )
    seq = None
    if event is not None and not elsewhere:
        reserved, kind, body = event
        seq = last = max(reserved, last + 1)
        conn.execute(INSERT_EVENT, (session_id, seq, kind, body))
    return Taken(
        won=True,
        call=call,
        remaining=remaining,
        resume=resume,
        owner=owner if elsewhere else token,
        data=data,
        last_seq=last,
        seq=seq,
    )


def finish_serving(conn: sqlite3.Connection, session_id: str, token: str, paused: bool) -> bool:
    """Let go of the session, unless its run paused and every held call is decided already.

    True means: keep serving (the decisions came while the run was finishing, and
    whoever took the last one left the continuation to us).
    """
    if paused:
        (pending,) = conn.execute(
            "SELECT COUNT(*) FROM approvals WHERE session_id = ? AND status = 'pending'",
            (session_id,),
        ).fetchone()
        if pending == 0 and _owner(conn, session_id) == token:
            return True
    conn.execute("UPDATE sessions SET owner = NULL WHERE id = ? AND owner = ?", (session_id, token))
    return False


def unannounced(conn: sqlite3.Connection, session_id: str) -> list[PendingCall]:
    """Calls decided by another process while this one served: their events are ours to log."""
    rows = conn.execute(
        f"SELECT {_APPROVAL_COLUMNS} FROM approvals WHERE session_id = ? AND status = 'decided'"
        " AND announced = 0 ORDER BY created",
        (session_id,),
    ).fetchall()
    conn.execute(
        "UPDATE approvals SET announced = 1 WHERE session_id = ? AND announced = 0", (session_id,)
    )
    return [_pending_call(r) for r in rows]


def conflict(tool_call_id: str, winner: PendingCall | None) -> ConflictError:
    """The 409 a losing decision gets: what won, with what, by whom."""
    decision = winner.decision if winner is not None else None
    text = decided_text(winner) if winner is not None else "decided"
    return ConflictError(
        f"The tool call {tool_call_id!r} was already decided: {text}.",
        tool_call_id=tool_call_id,
        decision=decision.model_dump(exclude_defaults=True) if decision is not None else None,
        decided_by=winner.decided_by if winner is not None else None,
    )
