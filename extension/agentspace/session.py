"""A session: one notebook's agent, an actor over a durable queue.

Messages go to the inbox table first (durable before the sender hears back);
one serving task per active session takes them in order and runs them one at a
time, so at most one model call is in flight per session with no lock. An idle
session holds no task. ``stop`` cancels the run in flight; ``resume`` and
approval decisions start a continuation run. A session being served by another
process (the server while the CLI looks on) is claimed in the store, so two
processes never write one session's log at once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ag_ui.core import MessagesSnapshotEvent
from pydantic import BaseModel

from . import kerneltools, records
from .approvals import Decision, PendingCall
from .config import Policy
from .errors import (
    ConflictError,
)
from .eventlog import EventLog
from .events import Custom, StoredEvent, custom, messages_snapshot, new_id
from .inbox import check_decision, check_message
from .kerneltools import KernelTool, ToolListing
from .models.base import Usage
from .pacing import requests_first
from .records import SessionInfo, SessionRecord, Status
from .recovery import close_dead_run
from .runloop import Outcome, Run

if TYPE_CHECKING:
    from .engine import Engine

log = logging.getLogger(__name__)


class Receipt(BaseModel):
    """What a sender hears back: the message id and how many are ahead of it."""

    message_id: str
    position: int
    status: Status


class Session:
    """One notebook's agent. Get one from ``Engine.session``; never construct directly."""

    def __init__(self, engine: Engine, record: SessionRecord, last_seq: int, queued: int) -> None:
        self.engine = engine
        self.store = engine.store
        self.record = record
        self.log = EventLog(engine.store, record.id, last_seq)
        self.queued = queued
        self._serving: asyncio.Task[None] | None = None
        self._run_task: asyncio.Task[Outcome] | None = None
        self._stop = False

    # -- facts ---------------------------------------------------------------
    @property
    def id(self) -> str:
        return self.record.id

    @property
    def notebook(self) -> str:
        return self.record.notebook

    @property
    def status(self) -> Status:
        return self.record.status

    @property
    def workspace(self) -> Path:
        return Path(self.record.workspace)

    @property
    def effective_model(self) -> str:
        return self.record.model or self.engine.config.model

    @property
    def busy(self) -> bool:
        return self._serving is not None

    async def info(self, pending: list[PendingCall] | None = None) -> SessionInfo:
        """The session as listed; ``pending`` saves a read when the caller has it already."""
        if pending is None:
            pending = await self.pending()
        waiting = [p for p in pending if p.status == "pending"]
        return SessionInfo(
            **self.record.model_dump(),
            queued=self.queued,
            pending_approvals=[p.tool_call_id for p in waiting],
            pending_calls=[p.info() for p in waiting],
            last_seq=self.log.last_seq,
            effective_model=self.effective_model,
            sandbox_backend=self.engine.workspaces.describe(self.id),
        )

    async def pending(self) -> list[PendingCall]:
        return await self.store.read(lambda c: records.approvals(c, self.id))

    async def transcript(self, limit: int | None = None) -> list[dict[str, Any]]:
        """The stored messages (OpenAI-style dicts); with ``limit``, the last ``limit``."""
        await self.store.flush()
        return await self.store.read(lambda c: records.transcript(c, self.id, limit))

    async def snapshot(self) -> MessagesSnapshotEvent:
        """A MESSAGES_SNAPSHOT of the transcript (not stored: it is derived)."""
        return messages_snapshot(await self.transcript())

    def configure(
        self,
        *,
        model: str | None = None,
        params: dict[str, Any] | None = None,
        policies: dict[str, Policy] | None = None,
        sandbox: dict[str, Any] | None = None,
    ) -> None:
        """Per-session model, litellm parameters, tool policies and sandbox policy overrides."""
        if model is not None:
            self.record.model = model
        if params is not None:
            self.record.model_params = dict(params)
        if policies is not None:
            kerneltools.check_policies(policies)
            self.record.policies.update(policies)
        if sandbox is not None:
            from .workspace.sandbox import SandboxPolicy

            merged = {**self.engine.config.sandbox_policy.model_dump(), **sandbox}
            SandboxPolicy.model_validate(merged)  # refuse bad values now, with field names
            self.record.sandbox.update(sandbox)
        self.save()

    def set_kernel_tools(self, tools: list[KernelTool], run_cell: bool) -> None:
        """Replace the tools the notebook's kernel runs (and whether run_cell is offered)."""
        kerneltools.check_tool_set(self, tools)
        self.record.kernel_tools = list(tools)
        self.record.run_cell = run_cell
        self.save()

    def kernel_tools(self) -> list[KernelTool]:
        """The kernel tools the model is offered: run_cell first (if enabled), then the user's."""
        return kerneltools.kernel_tools(self)

    def tools(self) -> ToolListing:
        """Every tool the model is offered, with its effective policy and executor."""
        return kerneltools.listing(self)

    def subscribe(self, after: int = 0) -> AsyncIterator[StoredEvent]:
        """Every committed event after ``after``, then live ones (see ``EventLog``)."""
        return self.log.subscribe(after)

    # -- state (called by runs) ---------------------------------------------
    def set_status(self, status: Status, reason: str | None = None) -> None:
        if status == self.record.status and reason == self.record.reason:
            return
        self.record.status, self.record.reason = status, reason
        self.save()
        value: dict[str, Any] = {"status": status}
        if reason:
            value["reason"] = reason
        self.log.append(custom(Custom.STATUS, value))

    def save(self) -> None:
        self.store.write(records.UPDATE_SESSION, (self.record.model_dump_json(), self.id))

    def add_usage(self, usage: Usage) -> None:
        self.record.usage.add(usage.input_tokens, usage.output_tokens, usage.cost)
        self.save()

    # -- commands ------------------------------------------------------------
    async def send(
        self, text: str, *, sender: str | None = None, run_id: str | None = None
    ) -> Receipt:
        """Queue a user message; it runs after everything queued before it."""
        check_message(text, self.engine.config.limits, self.queued)
        message_id = new_id("msg")
        waiting = self.busy or self.status == "awaiting_approval"
        if not waiting:
            await self._claim()  # before storing: a refused message must not linger
        ahead_run = self._run_task is not None or self.status == "awaiting_approval"
        position = self.queued + (1 if ahead_run else 0)
        self.store.write(
            records.INSERT_INBOX, (self.id, message_id, text, sender, run_id, time.time())
        )
        self.queued += 1
        if waiting:
            self.log.append(custom(Custom.QUEUED, {"message_id": message_id, "position": position}))
        await self.store.flush()
        if self.status != "awaiting_approval":
            await self._start(continuation=False, claimed=not waiting)
        return Receipt(message_id=message_id, position=position, status=self.status)

    async def stop(self) -> None:
        """Cancel the run in flight (partial text kept) and pause the queue."""
        self._stop = True
        if self._serving is not None:
            if self._run_task is not None:
                self._run_task.cancel()
            await asyncio.wait([self._serving])
            return
        if self.status == "awaiting_approval":
            for p in await self.pending():
                if p.status == "pending":
                    self._record_decision(p, Decision(decision="reject", reason="stopped"))
            self.set_status("stopped", "stopped by the user")
            await self.store.flush()
            return
        owner = await self.store.read(
            lambda c: c.execute("SELECT owner FROM sessions WHERE id = ?", (self.id,)).fetchone()
        )
        if owner and owner[0] and records.owner_alive(owner[0]):
            self.store.write("UPDATE sessions SET stop_requested = 1 WHERE id = ?", (self.id,))
            await self.store.flush()

    async def resume(self) -> Status:
        """Continue from the transcript (after stop, failure or a crash), then the queue."""
        if self.busy:
            raise ConflictError("The session is already running; stop it first.")
        if self.status == "awaiting_approval":
            ids = [p.tool_call_id for p in await self.pending() if p.status == "pending"]
            raise ConflictError(
                f"The session is waiting for approval of {', '.join(ids)}; decide those first.",
                pending=ids,
            )
        continuation = self.status in ("stopped", "failed", "interrupted")
        if continuation or self.queued:
            await self._start(continuation=continuation)
        return self.status

    async def decide(
        self, tool_call_id: str, decision: Decision, *, run_id: str | None = None
    ) -> list[str]:
        """Record a decision on a pending call; the last one resumes the session."""
        calls = {p.tool_call_id: p for p in await self.pending()}
        call, decision = check_decision(self.engine, calls, tool_call_id, decision)
        self._record_decision(call, decision)
        remaining = [i for i, p in calls.items() if p.status == "pending" and i != tool_call_id]
        await self.store.flush()
        if not remaining and self.status == "awaiting_approval" and not self.busy:
            await self._start(continuation=True, run_id=run_id)
        return remaining

    def _record_decision(self, call: PendingCall, decision: Decision) -> None:
        self.store.write(
            records.DECIDE_APPROVAL, (decision.model_dump_json(), self.id, call.tool_call_id)
        )
        call.status, call.decision = "decided", decision
        if decision.remember and decision.decision != "reject":
            self.record.policies[call.name] = "allow"
            self.save()
        self.log.append(
            custom(
                Custom.DECISION,
                {"tool_call_id": call.tool_call_id, **decision.model_dump(exclude_none=True)},
            )
        )

    async def wait(self) -> None:
        """Wait until the session has nothing to serve (for tools and tests)."""
        while self._serving is not None:
            await asyncio.wait([self._serving])

    # -- serving -------------------------------------------------------------
    async def _claim(self) -> None:
        """Take the session for this process, or say which process has it."""
        other = await self.store.transaction(
            lambda c: records.claim(c, self.id, records.owner_token())
        )
        if other is not None:
            raise ConflictError(
                f"Another process (pid {other.split(':')[0]}) is serving this session. "
                "Stop it there (agentspace stop), or wait until it is idle.",
                owner=other,
            )

    async def _start(
        self, *, continuation: bool, claimed: bool = False, run_id: str | None = None
    ) -> None:
        if self._serving is not None:
            return
        if not claimed:
            await self._claim()
        self._stop = False
        self._serving = asyncio.create_task(
            self._serve(continuation, run_id), name=f"session-{self.id}"
        )
        self.engine.serving_changed()

    async def _serve(self, continuation: bool, run_id: str | None = None) -> None:
        requests_first(False)  # started by a request handler; what it runs is bulk work
        try:
            if continuation and await self._run_one(Run(self, run_id=run_id)) != "success":
                return
            while self.queued > 0 and not self._stop:
                item = await self.store.read(lambda c: records.next_inbox(c, self.id))
                if item is None:
                    self.queued = 0
                    break
                self.queued -= 1  # in flight now; counted as "ahead" by ``send``
                run = Run(self, item)
                outcome = await self._run_one(run)
                if not run.consumed:
                    self.queued += 1  # the run ended before taking the message
                if outcome != "success":
                    return
        finally:
            self._serving = None
            self.engine.serving_changed()
            token = records.owner_token()
            await self.store.transaction(lambda c: records.release(c, self.id, token))

    async def _run_one(self, run: Run) -> Outcome:
        self._run_task = asyncio.create_task(run.execute(), name=f"run-{self.id}")
        try:
            return await self._run_task
        finally:
            self._run_task = None

    async def recover(self, owner: str | None) -> None:
        """Close runs a dead process left open: partial text kept, status ``interrupted``."""
        token = records.owner_token()
        runs = await self.store.read(lambda c: records.open_runs(c, self.id))
        for run_id, owner, first_seq in runs:
            if owner == token or records.owner_alive(owner):
                continue
            await close_dead_run(self, run_id, first_seq, owner)
        if self.status == "running" and not self.busy and not records.owner_alive(owner):
            # The serving process died between runs: nothing is in flight, but the
            # queue waits for someone to pick it up.
            self.set_status("interrupted", "the serving process stopped between messages")
            await self.store.flush()
