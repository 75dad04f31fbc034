"""What a session is on disk: its record, transcript rows, inbox, approvals and runs.

The SQL for the engine's tables lives here, next to the pydantic shapes it
stores, so the store stays generic and the actor stays free of SQL strings.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import time
from typing import Any, NamedTuple

from pydantic import BaseModel, Field, computed_field, field_validator

from agentspace.owners import owner_alive
from agentspace.store.approvals import Decision, PendingCall, PendingInfo
from agentspace.store.states import OLD_STATUSES, Status
from agentspace.tools.base import Policy
from agentspace.tools.kernel import STORED, KernelTool

log = logging.getLogger(__name__)


class UsageTotals(BaseModel):
    """A session's usage so far. An unknown price is never counted as free (``cost`` null)."""

    input_tokens: int = 0
    output_tokens: int = 0
    cost: float | None = Field(
        0.0,
        description="USD of the calls whose price litellm knows; null when calls were made "
        "and none of them had a known price.",
    )
    model_calls: int = 0
    unpriced_calls: int = Field(0, description="Model calls whose price is unknown.")

    def add(self, input_tokens: int, output_tokens: int, cost: float | None) -> None:
        """Count one model call."""
        priced_before = self.model_calls - self.unpriced_calls
        self.input_tokens += input_tokens
        self.output_tokens += output_tokens
        self.model_calls += 1
        if cost is not None:
            self.cost = (self.cost or 0.0) + cost
        else:
            self.unpriced_calls += 1
            if priced_before == 0:
                self.cost = None

    @computed_field  # type: ignore[prop-decorator]
    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens


class SessionRecord(BaseModel):
    """The durable part of a session (the ``data`` column), plus its keys."""

    id: str
    notebook: str
    created: float = Field(default_factory=time.time)
    model: str | None = None
    model_params: dict[str, Any] = Field(default_factory=dict)
    policies: dict[str, Policy] = Field(default_factory=dict)
    always_allowed: list[str] = Field(
        default_factory=list,
        description="Tools allowed by an 'always allow' decision (their policy is 'allow').",
    )
    status: Status = Status.IDLE
    reason: str | None = None
    usage: UsageTotals = Field(default_factory=UsageTotals)
    workspace: str = ""
    sandbox: dict[str, Any] = Field(
        default_factory=dict, description="Overrides of the server's sandbox policy."
    )
    kernel_tools: list[KernelTool] = Field(
        default_factory=list, description="Tools the notebook's kernel runs (set by the kernel)."
    )
    run_cell: bool = Field(False, description="Whether the model is offered run_cell.")
    list_variables: bool = Field(
        False,
        description="Whether the model is offered list_variables (a kernel that answers it "
        "said so; a record stored before it existed has none).",
    )

    @field_validator("status", mode="before")
    @classmethod
    def _today_s_name(cls, value: Any) -> Any:
        # A record an older version wrote after this store was migrated (two versions on one
        # state dir): read its words as today's.
        return OLD_STATUSES.get(value, value) if isinstance(value, str) else value


class SessionLimits(BaseModel):
    """The bounds that apply to a session, for views to show usage against (null: none)."""

    token_budget: int | None = Field(
        None, description="Total tokens (input + output) the session may use; null: no cap."
    )
    cost_ceiling: float | None = Field(
        None, description="Total USD the session may spend; null: no cap."
    )
    max_model_calls: int = Field(description="Model calls in one run.")
    context_window: int | None = Field(
        None,
        description="Tokens the history is trimmed to for the session's model: the server's "
        "override, else the model's window from litellm's map, else a default of 128000 "
        "for a model it does not know; null while the server has not loaded litellm yet.",
    )


class PreviewInfo(BaseModel):
    """A preview the session opened: where a browser reaches a port of its sandbox."""

    port: int
    url: str


class SessionInfo(SessionRecord):
    """A session as listed: its record plus live facts, all as of event ``last_seq``."""

    queued: int = 0
    pending_approvals: list[str] = Field(default_factory=list)
    pending_calls: list[PendingInfo] = Field(
        default_factory=list, description="The calls waiting for a decision, as interrupts say."
    )
    last_seq: int = Field(
        0,
        description="The newest event the other facts include: follow the events after it "
        "to miss nothing and see nothing twice.",
    )
    effective_model: str = ""
    sandbox_backend: str = ""
    limits: SessionLimits | None = Field(None, description="The bounds that apply to it.")
    previews: list[PreviewInfo] | None = Field(
        None,
        description="The previews opened while this server has the session's workspace "
        "(by port); null when it has not had it since it started: then only the events "
        "(agentspace.preview) tell what earlier servers opened.",
    )


class SessionState(NamedTuple):
    """A session's row and what goes with it, read in one transaction (``Store.snapshot``)."""

    data: str
    owner: str | None
    last_seq: int
    queued: int
    calls: list[PendingCall]


class InboxItem(BaseModel):
    row: int
    message_id: str
    text: str
    sender: str | None = None
    run_id: str | None = None  # an AG-UI client's runId for the run that serves it
    context: str | None = None  # the notebook context attached at send time (JSON)


# -- statements (constants so the store can batch identical ones) ------------
INSERT_SESSION = "INSERT INTO sessions (id, notebook, created, data) VALUES (?, ?, ?, ?)"
UPDATE_SESSION = "UPDATE sessions SET data = ? WHERE id = ?"
INSERT_MESSAGE = "INSERT INTO messages (session_id, idx, data) VALUES (?, ?, ?)"
INSERT_INBOX = (
    "INSERT INTO inbox (session_id, message_id, text, sender, run_id, created, context)"
    " VALUES (?, ?, ?, ?, ?, ?, ?)"
)
DELETE_INBOX = "DELETE FROM inbox WHERE id = ?"
INSERT_APPROVAL = (
    "INSERT OR REPLACE INTO approvals (session_id, tool_call_id, run_id, name, arguments, status,"
    " decision, created, executor, needs_approval, preview)"
    " VALUES (?, ?, ?, ?, ?, 'pending', NULL, ?, ?, ?, ?)"
)


def approval_row(session_id: str, run_id: str, p: PendingCall) -> tuple[Any, ...]:
    """The parameters of ``INSERT_APPROVAL`` for a call held in run ``run_id``."""
    return (
        session_id,
        p.tool_call_id,
        run_id,
        p.name,
        p.arguments,
        time.time(),
        p.executor,
        int(p.needs_approval),
        p.preview,
    )


REHOLD_APPROVAL = "UPDATE approvals SET run_id = ? WHERE session_id = ? AND tool_call_id = ? AND status = 'pending'"  # noqa: E501
INSERT_RUN = (
    "INSERT INTO runs (session_id, run_id, started, owner, first_seq) VALUES (?, ?, ?, ?, ?)"
)
END_RUN = "UPDATE runs SET ended = ?, outcome = ?, usage = ? WHERE session_id = ? AND run_id = ?"


def load_session(conn: sqlite3.Connection, *, key: str, by: str) -> tuple[Any, ...] | None:
    """``(data, owner, last_seq, queued)`` of the session whose ``by`` column is ``key``."""
    row = conn.execute(f"SELECT id, data, owner FROM sessions WHERE {by} = ?", (key,)).fetchone()
    if row is None:
        return None
    sid, data, owner = row
    last = conn.execute("SELECT MAX(seq) FROM events WHERE session_id = ?", (sid,)).fetchone()[0]
    queued = conn.execute("SELECT COUNT(*) FROM inbox WHERE session_id = ?", (sid,)).fetchone()[0]
    return data, owner, last or 0, queued


def session_state(conn: sqlite3.Connection, session_id: str) -> SessionState | None:
    """The session's record, newest event, queue and held calls (None: no such session)."""
    found = load_session(conn, key=session_id, by="id")
    if found is None:
        return None
    data, owner, last_seq, queued = found
    return SessionState(data, owner, last_seq, queued, approvals(conn, session_id))


def transcript(
    conn: sqlite3.Connection, session_id: str, limit: int | None = None
) -> list[dict[str, Any]]:
    """The session's messages in order; with ``limit``, only the last ``limit`` of them."""
    if limit is None:
        rows = conn.execute(
            "SELECT data FROM messages WHERE session_id = ? ORDER BY idx", (session_id,)
        ).fetchall()
    else:
        rows = conn.execute(
            "SELECT data FROM messages WHERE session_id = ? ORDER BY idx DESC LIMIT ?",
            (session_id, limit),
        ).fetchall()[::-1]
    return [json.loads(data) for (data,) in rows]


def next_inbox(conn: sqlite3.Connection, session_id: str) -> InboxItem | None:
    row = conn.execute(
        "SELECT id, message_id, text, sender, run_id, context FROM inbox WHERE session_id = ?"
        " ORDER BY id LIMIT 1",
        (session_id,),
    ).fetchone()
    if row is None:
        return None
    return InboxItem(
        row=row[0], message_id=row[1], text=row[2], sender=row[3], run_id=row[4], context=row[5]
    )


_APPROVAL_COLUMNS = (
    "tool_call_id, run_id, name, arguments, status, decision, executor, needs_approval,"
    " decided_by, preview"
)


def _pending_call(r: tuple[Any, ...]) -> PendingCall:
    return PendingCall(
        tool_call_id=r[0],
        run_id=r[1],
        name=r[2],
        arguments=r[3],
        status=r[4],
        decision=Decision.model_validate_json(r[5]) if r[5] else None,
        executor=r[6],
        needs_approval=bool(r[7]),
        decided_by=r[8],
        preview=r[9],
    )


def approvals(conn: sqlite3.Connection, session_id: str) -> list[PendingCall]:
    rows = conn.execute(
        f"SELECT {_APPROVAL_COLUMNS} FROM approvals WHERE session_id = ? ORDER BY created",
        (session_id,),
    ).fetchall()
    return [_pending_call(r) for r in rows]


def open_runs(conn: sqlite3.Connection, session_id: str) -> list[tuple[str, str | None, int]]:
    """Runs with no end: ``(run_id, owner, first_seq)``."""
    return conn.execute(
        "SELECT run_id, owner, first_seq FROM runs WHERE session_id = ? AND ended IS NULL",
        (session_id,),
    ).fetchall()


def run_exists(conn: sqlite3.Connection, session_id: str, run_id: str) -> bool:
    row = conn.execute(
        "SELECT 1 FROM runs WHERE session_id = ? AND run_id = ?", (session_id, run_id)
    ).fetchone()
    return row is not None


def claim(conn: sqlite3.Connection, session_id: str, token: str) -> str | None:
    """Take the session for this process; return the live other owner if there is one."""
    (owner,) = conn.execute("SELECT owner FROM sessions WHERE id = ?", (session_id,)).fetchone()
    if owner and owner != token and owner_alive(owner):
        return str(owner)
    conn.execute(
        "UPDATE sessions SET owner = ?, stop_requested = 0 WHERE id = ?", (token, session_id)
    )
    return None


def release(conn: sqlite3.Connection, session_id: str, token: str) -> None:
    conn.execute("UPDATE sessions SET owner = NULL WHERE id = ? AND owner = ?", (session_id, token))


# The key of a kernel's session when the kernel cannot name its notebook (nbclient, papermill,
# consoles): ``kernels/<kernel id>.ipynb`` (agentspace_kernel.client.discovery makes it).
ANONYMOUS = "kernels/"


def idle_anonymous(conn: sqlite3.Connection, before: float) -> list[tuple[str, str, float]]:
    """(id, notebook, last activity) of anonymous kernels' sessions idle since before ``before``
    (last activity: made, or a message or run started, whichever is latest)."""
    rows = conn.execute(
        "SELECT s.id, s.notebook, MAX(s.created,"
        " COALESCE((SELECT MAX(created) FROM inbox i WHERE i.session_id = s.id), 0),"
        " COALESCE((SELECT MAX(started) FROM runs r WHERE r.session_id = s.id), 0)) AS last"
        " FROM sessions s WHERE s.notebook LIKE ? ORDER BY last",
        (ANONYMOUS + "%",),
    ).fetchall()
    return [(sid, notebook, last) for sid, notebook, last in rows if last < before]


def delete_session(conn: sqlite3.Connection, session_id: str) -> None:
    for table in ("events", "messages", "inbox", "approvals", "runs", "sessions"):
        key = "id" if table == "sessions" else "session_id"
        conn.execute(f"DELETE FROM {table} WHERE {key} = ?", (session_id,))


def rename_notebooks(conn: sqlite3.Connection, old: str, new: str) -> list[tuple[str, str]]:
    """Re-key sessions of notebook ``old`` (or of notebooks under folder ``old``)."""
    rows = conn.execute(
        "SELECT id, notebook, data FROM sessions WHERE notebook = ? OR notebook LIKE ? ESCAPE '\\'",
        (old, old.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "/%"),
    ).fetchall()
    moved = []
    for sid, notebook, data in rows:
        renamed = new + notebook[len(old) :]
        taken = conn.execute("SELECT id FROM sessions WHERE notebook = ?", (renamed,)).fetchone()
        if taken is not None and taken[0] != sid:  # the new path got a session first (a race)
            log.warning(
                "agentspace: %s has a session of its own already; the session of %s keeps "
                "its old key (agentspace sessions lists both)",
                renamed,
                notebook,
            )
            continue
        record = SessionRecord.model_validate_json(data, context={STORED: True})
        record.notebook = renamed
        conn.execute(
            "UPDATE sessions SET notebook = ?, data = ? WHERE id = ?",
            (renamed, record.model_dump_json(), sid),
        )
        moved.append((sid, renamed))
    return moved
