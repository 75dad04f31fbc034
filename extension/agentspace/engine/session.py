"""A session: one notebook's agent, an actor over a durable queue.

Messages go to the inbox table first (durable before the sender hears back);
one serving task per active session takes them in order and runs them one at a
time, so at most one model call is in flight per session with no lock. An idle
session holds no task. ``stop`` cancels the run in flight; ``resume`` and
approval decisions start a continuation run. A session being served by another
process (the server while the CLI looks on) is claimed in the store, so two
processes never write one session's log at once. A decision is taken in the
store too (``engine/decisions.py``): of racing decisions one wins, and exactly one
process starts the continuation.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from ag_ui.core import MessagesSnapshotEvent
from pydantic import BaseModel

from agentspace import owners
from agentspace.engine import decisions, kerneltools
from agentspace.engine.context import PromptContext, attach
from agentspace.engine.inbox import check_decision, check_message
from agentspace.engine.kerneltools import ToolListing
from agentspace.engine.lifecycle import RESUMABLE, check
from agentspace.engine.policies import check_session_policies
from agentspace.engine.run import Run
from agentspace.engine.workspace_api import WorkspaceApi
from agentspace.errors import (
    ConflictError,
    InterruptPendingError,
    NotFoundError,
    RunInProgressError,
)
from agentspace.events import Custom, StoredEvent, custom, encode, messages_snapshot, new_id, now_ms
from agentspace.fairness.pacing import requests_first
from agentspace.models.base import Usage
from agentspace.store import records
from agentspace.store.approvals import Decision, PendingCall
from agentspace.store.eventlog import EventLog
from agentspace.store.records import SessionInfo, SessionRecord
from agentspace.store.states import Outcome, Status
from agentspace.tools.base import Policy
from agentspace.tools.kernel import STORED, KernelTool

if TYPE_CHECKING:
    from agentspace.engine.engine import Engine

log = logging.getLogger(__name__)


class Receipt(BaseModel):
    """What a sender hears back: the message id and how many are ahead of it."""

    message_id: str
    position: int
    status: Status


class Session(WorkspaceApi):
    """One notebook's agent. Get one from ``Engine.session``; never construct directly."""

    def __init__(self, engine: Engine, record: SessionRecord, last_seq: int, queued: int) -> None:
        self.engine = engine
        self.offer = kerneltools.ToolOffer(self)  # the tools the model is offered, with policies
        self.store = engine.store
        self.record = record
        self.log = EventLog(engine.store, record.id, last_seq)
        self.queued = queued
        self._serving: asyncio.Task[None] | None = None
        # The run in flight has logged its terminal event: a client may act on it at once
        # (send again), while the serving task is still winding down.
        self.run_over = False
        # A message came after the last run's terminal event: it must be served even if
        # that run failed, or it would be stranded while the serving task let go.
        self._late = False
        self._run_began: asyncio.Future[None] | None = None  # for ``settle``: a run started
        self._resume_run_id: str | None = None  # asked for by a decision while the run finished
        self._run_task: asyncio.Task[Outcome] | None = None
        self._stop = False
        # Decisions and the end of serving take turns: a decision that comes while the
        # run is finishing is either seen by it (it goes on) or finds it gone (starts one).
        self._turn = asyncio.Lock()
        self._writes = 0  # bumped by every change made here (see ``refresh``)
        self.scratch: dict[str, Any] = {}  # tools' memory (what the agent read of the notebook)

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
    def effective_model(self) -> str:
        return self.record.model or self.engine.config.model

    @property
    def busy(self) -> bool:
        return self._serving is not None

    async def refresh(self) -> None:
        """Take the store's word for the session when nothing is served here.

        Another process on the state directory (the ``agentspace`` CLI next to the
        server) may have decided a call and run the continuation: its status, usage,
        events and queue are in the store, not in this object.
        """
        if self.busy:
            return
        writes = self._writes
        await self.store.flush()
        found = await self.store.read(lambda c: records.load_session(c, key=self.id, by="id"))
        if found is not None:
            data, _owner, last_seq, queued = found
            record = SessionRecord.model_validate_json(data, context={STORED: True})
            self._adopt(writes, record, last_seq, queued)

    def _adopt(self, writes: int, record: SessionRecord, last_seq: int, queued: int) -> None:
        """The store's record, read when ``_writes`` was ``writes``: taken unless this object
        is the newer one (serving here, or changed here meanwhile)."""
        if self.busy or writes != self._writes:
            return
        self.record = record
        self.log.last_seq = max(self.log.last_seq, last_seq)
        self.queued = queued

    async def info(self) -> SessionInfo:
        """The session as listed, every stored fact from one commit of the store.

        Status, usage, queue, the held calls and ``last_seq`` are read in one transaction,
        after what this process queued is committed: they agree with each other and with
        the events up to ``last_seq`` (a pause's calls are stored with its events), so a
        view that follows the events after ``last_seq`` misses nothing and sees nothing
        twice. Reading them one by one let a pause fall in between: an info said
        ``awaiting_approval`` with no calls while its ``last_seq`` had the pause's events.
        """
        writes = self._writes
        await self.store.flush()
        state = await self.store.snapshot(lambda c: records.session_state(c, self.id))
        if state is None:
            raise NotFoundError(f"No session with id {self.id!r}; it was deleted.")
        # Previews live in this process, not the store: taken after the read, they include
        # every one whose event is up to last_seq (at worst one more, whose event comes
        # after it: a view keeps one per port).
        previews = self.engine.workspaces.previews(self.id)
        record = SessionRecord.model_validate_json(state.data, context={STORED: True})
        fields = record.model_dump()  # before this object may take the record as its own
        self._adopt(writes, record, state.last_seq, state.queued)
        waiting = [p for p in state.calls if p.status == "pending"]
        model = record.model or self.engine.config.model
        return SessionInfo(
            **fields,
            queued=state.queued,
            pending_approvals=[p.tool_call_id for p in waiting],
            pending_calls=[p.info() for p in waiting],
            last_seq=state.last_seq,
            effective_model=model,
            sandbox_backend=self.engine.workspaces.describe(self.id),
            limits=await self.engine.limits_for(model),
            previews=previews,
        )

    async def pending(self) -> list[PendingCall]:
        return await self.store.read(lambda c: records.approvals(c, self.id))

    async def transcript(self, limit: int | None = None) -> list[dict[str, Any]]:
        """The stored messages (OpenAI-style dicts); with ``limit``, the last ``limit``.

        Images a tool attached are listed without their data (the model got them; a view
        needs their names, not megabytes of base64).
        """
        await self.store.flush()
        messages = await self.store.read(lambda c: records.transcript(c, self.id, limit))
        for message in messages:
            if message.get("images"):
                message["images"] = [
                    {k: v for k, v in image.items() if k != "data"} for image in message["images"]
                ]
        return messages

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
            check_session_policies(policies, self.engine.config.policies)
            self.record.policies.update(policies)
            # an explicit rule replaces what 'always allow' remembered
            kept = [t for t in self.record.always_allowed if t not in policies]
            self.record.always_allowed = kept
        if sandbox is not None:
            from agentspace.sandbox.base import SandboxPolicy

            merged = {**self.engine.config.sandbox_policy.model_dump(), **sandbox}
            SandboxPolicy.model_validate(merged)  # refuse bad values now, with field names
            self.record.sandbox.update(sandbox)
        self.save()

    def set_kernel_tools(
        self, tools: list[KernelTool], run_cell: bool, list_variables: bool = False
    ) -> None:
        """Replace the tools the notebook's kernel runs (and which built-ins it offers)."""
        self.offer.check_tool_set(tools)
        self.record.kernel_tools = list(tools)
        self.record.run_cell = run_cell
        self.record.list_variables = list_variables
        self.save()

    def kernel_tools(self) -> list[KernelTool]:
        """The kernel tools the model is offered: the built-ins it enabled, then the user's."""
        return self.offer.kernel_tools()

    def tools(self) -> ToolListing:
        """Every tool the model is offered, with its effective policy and executor."""
        return self.offer.listing()

    async def update(
        self, *, model: str | None = None, policies: dict[str, Policy] | None = None
    ) -> SessionInfo:
        """Change the model and tool policies, durably (committed when this returns)."""
        self.configure(model=model, policies=policies)
        await self.store.flush()
        return await self.info()

    async def offer_kernel_tools(
        self, tools: list[KernelTool], run_cell: bool, list_variables: bool = False
    ) -> ToolListing:
        """Set the kernel's tools, durably: the kernel relies on them once it hears back."""
        self.set_kernel_tools(tools, run_cell, list_variables)
        await self.store.flush()
        return self.tools()

    @property
    def last_seq(self) -> int:
        """The sequence number of the newest event (follow from here to see what comes)."""
        return self.log.last_seq

    async def past_events(self, after: int = 0) -> AsyncIterator[StoredEvent]:
        """Every event committed after ``after``, without waiting for more."""
        await self.store.flush()
        async for event in self.log.stored(after):
            yield event

    async def begin_run(
        self,
        *,
        text: str | None = None,
        decisions: list[tuple[str, Decision]] | None = None,
        run_id: str | None = None,
        by: str | None = None,
    ) -> int:
        """Start one run that a client follows to its end (AG-UI's run endpoint).

        With ``decisions`` it resumes the paused run, else it sends ``text``. Refused while
        another run goes (``RunInProgressError``) or while calls wait for decisions that were
        not all given (``InterruptPendingError``). Returns the sequence number after which
        this run's events come.
        """
        await self.settle()  # the client saw the last run end: so must this check
        if self.busy:
            raise RunInProgressError("A run is already going in this session; wait or stop it.")
        after = self.last_seq
        if decisions:
            remaining: list[str] = []
            for tool_call_id, decision in decisions:
                remaining = await self.decide(tool_call_id, decision, run_id=run_id, by=by)
            if remaining:
                raise InterruptPendingError(
                    f"Still waiting for a decision on {', '.join(remaining)}: resume them too.",
                    pending=remaining,
                )
            return after
        if self.status == Status.AWAITING_APPROVAL:
            raise InterruptPendingError(
                "Tool calls are waiting for approval: answer them with 'resume' entries."
            )
        await self.send(text or "", sender=by, run_id=run_id)
        return after

    def subscribe(self, after: int = 0) -> AsyncIterator[StoredEvent]:
        """Every committed event after ``after``, then live ones (see ``EventLog``)."""
        return self.log.subscribe(after)

    # -- state (called by runs) ---------------------------------------------
    def set_status(self, status: Status, reason: str | None = None) -> None:
        """The one place a status changes, along ``engine.lifecycle.TRANSITIONS``."""
        if status == self.record.status and reason == self.record.reason:
            return
        check(Status(self.record.status), status)
        self.record.status, self.record.reason = status, reason
        self.save()
        value: dict[str, Any] = {"status": status}
        if reason:
            value["reason"] = reason
        self.log.append(custom(Custom.STATUS, value))

    def save(self) -> None:
        self._writes += 1
        self.store.write(records.UPDATE_SESSION, (self.record.model_dump_json(), self.id))

    def add_usage(self, usage: Usage) -> None:
        self.record.usage.add(usage.input_tokens, usage.output_tokens, usage.cost)
        self.save()

    # -- commands ------------------------------------------------------------
    async def send(
        self,
        text: str,
        *,
        sender: str | None = None,
        run_id: str | None = None,
        context: PromptContext | None = None,
    ) -> Receipt:
        """Queue a user message; it runs after everything queued before it.

        ``context`` says where in the notebook it was sent from: the notebook context is
        read now (``engine.context``) and stored with the message.
        """
        await self.refresh()
        check_message(text, self.engine.config.limits, self.queued)
        attached = await attach(self, context)
        message_id = new_id("msg")
        waiting = self.busy or self.status == Status.AWAITING_APPROVAL
        if not waiting:
            await self._claim()  # before storing: a refused message must not linger
        ahead_run = self._run_task is not None or self.status == Status.AWAITING_APPROVAL
        position = self.queued + (1 if ahead_run else 0)
        self.store.write(
            records.INSERT_INBOX,
            (
                self.id,
                message_id,
                text,
                sender,
                run_id,
                time.time(),
                attached.dumps() if attached is not None else None,
            ),
        )
        self.queued += 1
        self._writes += 1
        if self._serving is not None and (self._run_task is None or self.run_over):
            self._late = True
        if waiting:
            self.log.append(custom(Custom.QUEUED, {"message_id": message_id, "position": position}))
        await self.store.flush()
        if self.status != Status.AWAITING_APPROVAL:
            await self._start(continuation=False, claimed=not waiting)
        return Receipt(message_id=message_id, position=position, status=self.status)

    async def stop(self) -> None:
        """Cancel the run in flight (partial text kept) and pause the queue."""
        self._stop = True
        await self.refresh()
        if self._serving is not None:
            if self._run_task is not None:
                self._run_task.cancel()
            await asyncio.wait([self._serving])
            return
        if self.status == Status.AWAITING_APPROVAL:
            async with self._turn:
                for p in await self.pending():
                    if p.status == "pending":
                        with contextlib.suppress(ConflictError):  # decided just now: fine
                            await self._take(
                                p,
                                Decision(decision="reject", reason="stopped"),
                                by="stop",
                                may_resume=False,
                            )
                self.set_status(Status.STOPPED, "stopped by the user")
            await self.store.flush()
            return
        owner = await self.store.read(
            lambda c: c.execute("SELECT owner FROM sessions WHERE id = ?", (self.id,)).fetchone()
        )
        if owner and owner[0] and owners.owner_alive(owner[0]):
            self.store.write("UPDATE sessions SET stop_requested = 1 WHERE id = ?", (self.id,))
            await self.store.flush()

    async def resume(self) -> Status:
        """Continue from the transcript (after stop, failure or a crash), then the queue."""
        await self.settle()
        await self.refresh()
        if self.busy:
            raise ConflictError("The session is already running; stop it first.")
        if self.status == Status.AWAITING_APPROVAL:
            ids = [p.tool_call_id for p in await self.pending() if p.status == "pending"]
            raise ConflictError(
                f"The session is waiting for approval of {', '.join(ids)}; decide those first.",
                pending=ids,
            )
        continuation = self.status in RESUMABLE
        if continuation or self.queued:
            await self._start(continuation=continuation)
        return self.status

    async def decide(
        self,
        tool_call_id: str,
        decision: Decision,
        *,
        run_id: str | None = None,
        by: str | None = None,
    ) -> list[str]:
        """Record a decision on a pending call; the last one resumes the session.

        The store takes it atomically (``decisions.take``): of decisions that race,
        from this process or another, exactly one wins; the others get a
        ``ConflictError`` naming the decision that won. ``by`` says who decided
        (a user name, the CLI), for whoever comes second.
        """
        calls = {p.tool_call_id: p for p in await self.pending()}
        call, decision = check_decision(self.engine, calls, tool_call_id, decision)
        async with self._turn:
            taken = await self._take(call, decision, by=by)
            if taken.resume and not self.busy:
                await self._start(continuation=True, claimed=True, run_id=run_id)
            elif taken.resume:  # the pausing run is still finishing: it goes on as run_id
                self._resume_run_id = run_id
        return taken.remaining

    async def _take(
        self, call: PendingCall, decision: Decision, *, by: str | None, may_resume: bool = True
    ) -> decisions.Taken:
        """Take the decision in the store (raise ConflictError if another won), then log it."""
        token = owners.owner_token()
        value: dict[str, Any] = {"tool_call_id": call.tool_call_id}
        value.update(decision.model_dump(exclude_none=True))
        if by:
            value["by"] = by
        event = custom(Custom.DECISION, value)
        event.timestamp = now_ms()
        here = self.busy  # serving here: our own log is ahead of the store, we log it
        writes = self._writes
        reserved = 0
        if not here:  # logged in the transaction, at a number no append here takes
            self.log.last_seq += 1
            reserved = self.log.last_seq
        taken = await self.store.transaction(
            lambda c: decisions.take(
                c,
                self.id,
                call.tool_call_id,
                decision,
                by=by,
                token=token,
                may_resume=may_resume,
                event=None if here else (reserved, event.type.value, encode(event)),
            )
        )
        if reserved and taken.seq != reserved and self.log.last_seq == reserved:
            self.log.last_seq -= 1  # not used, and nothing was logged after it: no gap
        if not taken.won:
            raise decisions.conflict(call.tool_call_id, taken.call)
        call.status, call.decision, call.decided_by = "decided", decision, by
        if not here and taken.data is not None and writes == self._writes:
            # Not serving here: the store is the truth (another process may have run).
            self.record = SessionRecord.model_validate_json(taken.data, context={STORED: True})
        elif decision.remember and decision.decision != "reject":
            self._remember(call.name)
        self.log.last_seq = max(self.log.last_seq, taken.last_seq)
        if taken.seq is not None:
            self.log.committed(StoredEvent(taken.seq, event.type.value, encode(event)))
        elif here:
            self.log.append(event)
        return taken

    def _remember(self, tool: str) -> None:
        """'Always allow' in this object (the store has it already: ``decisions.take``)."""
        self.record.policies[tool] = "allow"
        if tool not in self.record.always_allowed:
            self.record.always_allowed.append(tool)

    def _announce(self, tool_call_id: str, decision: Decision, by: str | None) -> None:
        value: dict[str, Any] = {"tool_call_id": tool_call_id}
        value.update(decision.model_dump(exclude_none=True))
        if by:
            value["by"] = by
        self.log.append(custom(Custom.DECISION, value))

    async def settle(self) -> None:
        """Wait out the wind-down of a run whose terminal event is out.

        A client acts on that event at once (resumes, posts the next AG-UI run); for a
        moment longer the serving task records the run's end and lets go, and the
        session would answer "already running". This waits until the task is gone
        or has begun another run (then the session is busy for real).
        """
        while self._serving is not None and self.run_over:
            if self._run_began is None or self._run_began.done():
                self._run_began = asyncio.get_running_loop().create_future()
            either = [self._serving, self._run_began]
            await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)

    async def wait(self) -> None:
        """Wait until the session has nothing to serve (for tools and tests)."""
        while self._serving is not None:
            await asyncio.wait([self._serving])

    # -- serving -------------------------------------------------------------
    async def _claim(self) -> None:
        """Take the session for this process, or say which process has it."""
        other = await self.store.transaction(
            lambda c: records.claim(c, self.id, owners.owner_token())
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
        token = owners.owner_token()
        done = False
        try:
            while True:
                outcome = await self._serve_queue(continuation, run_id)
                async with self._turn:
                    paused = outcome == Outcome.PAUSED and not self._stop
                    again = await self.store.transaction(
                        functools.partial(
                            decisions.finish_serving, session_id=self.id, token=token, paused=paused
                        )
                    )
                    if not again and self._late and outcome != Outcome.PAUSED:
                        # A message came after the run ended: serve it, as if it had
                        # come a moment later, when this task had let go.
                        again = await self._reclaim()
                        if again:
                            continuation, run_id = False, None
                            continue
                    if not again:
                        self._serving, done = None, True
                        break
                # Every call it held was decided while the run finished: go on here.
                await self._decided_meanwhile()
                continuation, run_id = True, self._resume_run_id
                self._resume_run_id = None
        finally:
            if not done:  # failed or cancelled in between: let go all the same
                self._serving = None
                with contextlib.suppress(Exception):
                    await self.store.transaction(lambda c: records.release(c, self.id, token))
            self.engine.serving_changed()

    async def _reclaim(self) -> bool:
        """Take the session back for a late message; False if another process has it."""
        self._late, self._stop = False, False
        try:
            await self._claim()
        except ConflictError:
            return False
        return True

    async def _decided_meanwhile(self) -> None:
        """Log (and apply 'always allow' of) decisions another process took while we served."""
        for p in await self.store.transaction(lambda c: decisions.unannounced(c, self.id)):
            if p.decision is None:
                continue
            if p.decision.remember and p.decision.decision != "reject":
                self._remember(p.name)
            self._announce(p.tool_call_id, p.decision, p.decided_by)

    async def _serve_queue(self, continuation: bool, run_id: str | None) -> Outcome:
        """A continuation (if asked), then the queue, until empty or a run does not succeed."""
        if continuation:
            outcome = await self._run_one(Run(self, run_id=run_id))
            if outcome != Outcome.FINISHED:
                return outcome
        while self.queued > 0 and not self._stop:
            # a message sent as the last run ended may still be on its way to the
            # database: read the inbox only after it is committed, or it is stranded
            await self.store.flush()
            item = await self.store.read(lambda c: records.next_inbox(c, self.id))
            if item is None:
                self.queued = 0
                break
            self.queued -= 1  # in flight now; counted as "ahead" by ``send``
            run = Run(self, item)
            outcome = await self._run_one(run)
            if not run.consumed:
                self.queued += 1  # the run ended before taking the message
            if outcome != Outcome.FINISHED:
                return outcome
        return Outcome.FINISHED

    async def _run_one(self, run: Run) -> Outcome:
        self.run_over = self._late = False
        if self._run_began is not None and not self._run_began.done():
            self._run_began.set_result(None)
        self._run_task = asyncio.create_task(run.execute(), name=f"run-{self.id}")
        try:
            return await self._run_task
        finally:
            self._run_task = None

    async def recover(self, owner: str | None) -> None:
        """Close runs a dead process left open: partial text kept, status ``crashed``."""
        token = owners.owner_token()
        runs = await self.store.read(lambda c: records.open_runs(c, self.id))
        for run_id, owner, first_seq in runs:
            if owner == token or owners.owner_alive(owner):
                continue
            await Run(self, run_id=run_id).close_crashed(first_seq, owner)
        if self.status == Status.RUNNING and not self.busy and not owners.owner_alive(owner):
            # The serving process died between runs: nothing is in flight, but the
            # queue waits for someone to pick it up.
            self.set_status(Status.CRASHED, "the serving process stopped between messages")
            await self.store.flush()
