"""One run: model turns, tool calls and approvals, streamed as AG-UI events.

This module owns a run from start to end, each ending a value of ``Outcome``
(``store.states``; the session's status after it is ``engine.lifecycle.AFTER``):
finished, paused for approval, cancelled, failed, and crashed, which the next
load closes for a process that died (``close_crashed``).

A run starts when the session serves a queued message, a resume, or a set of
approval decisions. It first settles the tool calls the transcript still owes
a result (decided approvals, left-overs), then appends the user's message, then
alternates model turns and tool calls until the model stops calling tools, a
call needs approval (RUN_FINISHED with an interrupt outcome), a limit is
crossed or a provider fails (RUN_ERROR), or the run is stopped (RUN_FINISHED,
cancelled). Whatever happens, the transcript stays valid for the next model
call: every assistant tool call gets exactly one result, and partial text is
kept.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import TYPE_CHECKING, Any

from ag_ui.core import (
    RunErrorEvent,
    RunFinishedCancelledOutcome,
    RunFinishedEvent,
    RunFinishedSuccessOutcome,
    RunStartedEvent,
    TextMessageContentEvent,
    TextMessageEndEvent,
    TextMessageStartEvent,
    TokenUsage,
    ToolCallArgsEvent,
    ToolCallEndEvent,
    ToolCallResultEvent,
    ToolCallStartEvent,
)

from agentspace import owners
from agentspace.engine.history import build_prompt
from agentspace.engine.lifecycle import AFTER
from agentspace.engine.toolcalls import ToolCalls
from agentspace.errors import AgentspaceError, LimitExceededError
from agentspace.events import Custom, custom, new_id
from agentspace.fairness.pacing import checkpoint
from agentspace.models.base import Completion, TextDelta, ToolCallArgsDelta, ToolCallBegin, Usage
from agentspace.store import records
from agentspace.store.approvals import PendingCall
from agentspace.store.states import Outcome, Status

if TYPE_CHECKING:
    from agentspace.engine.session import Session

log = logging.getLogger(__name__)
CANCELLED_TEXT = "Cancelled: the run was stopped before this call finished."
FAILED_TEXT = "Error: the run failed before this call ran."
CRASHED_TEXT = (
    "Cut off: the process serving the run stopped while this call was pending or running; "
    "it may or may not have taken effect. Check before repeating it."
)
CUT_TEXT = "Error: the model's answer was cut off before this call was complete; it did not run."
REASONS = {Outcome.CANCELLED: "stopped by the user"}  # the status's reason after such a run


class Run(ToolCalls):
    """Executes one run of ``session``; ``execute`` never raises (except shutdown)."""

    def __init__(
        self,
        session: Session,
        user: records.InboxItem | None = None,
        run_id: str | None = None,
    ) -> None:
        self.s = session
        self.user = user
        chosen = run_id or (user.run_id if user is not None else None)
        self.run_id = chosen or new_id("run")
        self._client_run_id = chosen is not None
        self.usage = Usage()
        self._warned_unpriced = False  # the cost-ceiling warning went out in this run
        self.transcript: list[dict[str, Any]] = []
        self.approvals: dict[str, PendingCall] = {}
        self._text: list[str] = []
        self._message_id: str | None = None  # an open assistant text message
        self._open_calls: list[str] = []  # tool calls streaming in this model turn
        self.consumed = False  # whether the user message left the inbox

    # -- plumbing ------------------------------------------------------------
    def emit(self, event: Any) -> None:
        if self.s.log.append(event).terminal:
            self.s.run_over = True  # from here on, a message sent is one after this run

    def append(self, message: dict[str, Any]) -> None:
        self.s.store.write(
            records.INSERT_MESSAGE,
            (self.s.id, len(self.transcript), json.dumps(message, ensure_ascii=False)),
        )
        self.transcript.append(message)

    # -- the run -------------------------------------------------------------
    async def execute(self) -> Outcome:
        s = self.s
        await s.store.flush()
        self.transcript = await s.store.read(lambda c: records.transcript(c, s.id))
        self.approvals = {
            p.tool_call_id: p for p in await s.store.read(lambda c: records.approvals(c, s.id))
        }
        if self._client_run_id and await s.store.read(
            lambda c: records.run_exists(c, s.id, self.run_id)
        ):
            self.run_id = new_id("run")  # a client reused its runId: runs stay distinct
        await checkpoint()  # many runs start at once after a burst of messages (fairness/pacing.py)
        s.store.write(
            records.INSERT_RUN,
            (s.id, self.run_id, time.time(), owners.owner_token(), s.log.last_seq + 1),
        )
        self.emit(RunStartedEvent(thread_id=s.id, run_id=self.run_id))
        s.set_status(Status.RUNNING)
        outcome: Outcome
        reason: str | None = None
        try:
            outcome = await self.settle()
            if outcome == Outcome.FINISHED:
                if self.user is not None:
                    self._user_message(self.user)
                outcome = await self._loop()
        except asyncio.CancelledError:
            self._close("cancelled")
            self.emit(RunFinishedEvent(**self.ids(), outcome=RunFinishedCancelledOutcome()))
            outcome = Outcome.CANCELLED
        except AgentspaceError as exc:
            self._close("error")
            self.emit(RunErrorEvent(message=exc.message, code=exc.code, usage=self.token_usage()))
            reason = exc.message
            outcome = Outcome.FAILED
        except Exception as exc:
            log.exception("run %s of session %s failed", self.run_id, s.id)
            self._close("error")
            message = (
                f"Internal error ({type(exc).__name__}: {exc}). The transcript is intact; "
                "use resume to try again, and report this as a bug if it repeats."
            )
            self.emit(
                RunErrorEvent(message=message, code="internal_error", usage=self.token_usage())
            )
            reason = message
            outcome = Outcome.FAILED
        s.store.write(
            records.END_RUN,
            (time.time(), outcome.value, json.dumps(self._usage_dict()), s.id, self.run_id),
        )
        s.set_status(AFTER[outcome], REASONS.get(outcome, reason))
        s.save()
        await s.store.flush()
        return outcome

    def ids(self) -> dict[str, str]:
        return {"thread_id": self.s.id, "run_id": self.run_id}

    def _user_message(self, item: records.InboxItem) -> None:
        self.s.store.write(records.DELETE_INBOX, (item.row,))
        self.consumed = True
        message: dict[str, Any] = {"role": "user", "content": item.text, "id": item.message_id}
        attached = json.loads(item.context) if item.context else None
        if attached:  # kept beside the words: views show the words, the model gets both
            message["context"] = attached["text"]
        self.append(message)
        self.emit(TextMessageStartEvent(message_id=item.message_id, role="user", name=item.sender))
        self.emit(TextMessageContentEvent(message_id=item.message_id, delta=item.text))
        self.emit(TextMessageEndEvent(message_id=item.message_id))
        if attached:
            summary = {"message_id": item.message_id, **attached["summary"]}
            self.emit(custom(Custom.CONTEXT, summary))

    async def _loop(self) -> Outcome:
        limits = self.s.engine.config.limits
        for _ in range(limits.max_model_calls):
            self._check_budgets()
            completion = await self._model_turn()
            if not completion.tool_calls:
                self.emit(
                    RunFinishedEvent(
                        **self.ids(), outcome=RunFinishedSuccessOutcome(), usage=self.token_usage()
                    )
                )
                return Outcome.FINISHED
            outcome = await self.settle()
            if outcome != Outcome.FINISHED:
                return outcome
        raise LimitExceededError(
            f"The run stopped after {limits.max_model_calls} model calls (limits.max_model_calls)."
            " Use resume to let the agent continue, or raise the limit.",
            limit="max_model_calls",
        )

    def _check_budgets(self) -> None:
        limits = self.s.engine.config.limits
        used = self.s.record.usage
        if limits.token_budget is not None and used.total_tokens >= limits.token_budget:
            raise LimitExceededError(
                f"This session has used {used.total_tokens} tokens of its {limits.token_budget}"
                "-token budget (limits.token_budget). Raise the budget, then resume.",
                limit="token_budget",
            )
        spent = used.cost or 0.0  # the priced calls; unpriced ones are warned of (_unpriced)
        if limits.cost_ceiling is not None and spent >= limits.cost_ceiling:
            raise LimitExceededError(
                f"This session has spent ${spent:.4f} of its ${limits.cost_ceiling:.4f} "
                "ceiling (limits.cost_ceiling). Raise the ceiling, then resume.",
                limit="cost_ceiling",
            )

    async def _model_turn(self) -> Completion:
        await checkpoint()  # the prompt and the provider call's set-up are bulk work
        s, engine = self.s, self.s.engine
        limits = engine.config.limits
        model = s.effective_model
        window = await engine.history_window(model)
        prompt = build_prompt(
            engine.config.system_prompt,
            self.transcript,
            window=window,
            max_tool_chars=limits.max_tool_result_chars,
        )
        message_id = new_id("msg")
        started = self._open_calls = []
        completion: Completion | None = None
        self._text = []
        params = {**engine.config.model_params, **s.record.model_params}
        tools = s.offer.schemas()
        stream = engine.model.stream(prompt, tools, model=model, params=params)
        async for part in stream:
            await checkpoint()  # a part's events are bulk work: share the loop (fairness/pacing.py)
            if isinstance(part, TextDelta):
                if self._message_id is None:
                    self._message_id = message_id if not self._text else new_id("msg")
                    self.emit(TextMessageStartEvent(message_id=self._message_id, role="assistant"))
                self._text.append(part.text)
                self.emit(TextMessageContentEvent(message_id=self._message_id, delta=part.text))
            elif isinstance(part, ToolCallBegin):
                self._end_text()
                started.append(part.id)
                self.emit(
                    ToolCallStartEvent(
                        tool_call_id=part.id, tool_call_name=part.name, parent_message_id=message_id
                    )
                )
            elif isinstance(part, ToolCallArgsDelta):
                self.emit(ToolCallArgsEvent(tool_call_id=part.id, delta=part.delta))
            else:
                completion = part
            if s.store.backlog > 20_000:
                await s.store.flush()
        assert completion is not None, "a model stream must end with a Completion"
        self._end_text()
        for call_id in started:
            self.emit(ToolCallEndEvent(tool_call_id=call_id))
        self._open_calls = []
        message: dict[str, Any] = {
            "role": "assistant",
            "content": completion.text,
            "id": message_id,
        }
        if completion.tool_calls:
            message["tool_calls"] = [
                {
                    "id": c.id,
                    "type": "function",
                    "function": {"name": c.name, "arguments": c.arguments},
                }
                for c in completion.tool_calls
            ]
        self._text = []
        self.append(message)
        self.usage.add(completion.usage)
        s.add_usage(completion.usage)
        if completion.usage.cost is None:
            self._unpriced(model)
        return completion

    def _unpriced(self, model: str) -> None:
        """Say once per run that the cost ceiling cannot hold for a model without a price."""
        ceiling = self.s.engine.config.limits.cost_ceiling
        if ceiling is None or self._warned_unpriced:
            return
        self._warned_unpriced = True
        budget = self.s.engine.config.limits.token_budget
        holds = (
            f"the token budget ({budget} tokens, limits.token_budget) still holds"
            if budget is not None
            else "set limits.token_budget to cap what this session may use"
        )
        message = (
            f"The cost ceiling (${ceiling:.4f}, limits.cost_ceiling) cannot be enforced for "
            f"{model}: litellm knows no price for it, so its calls are not counted in the "
            f"spend; {holds}."
        )
        log.warning("session %s: %s", self.s.id, message)
        self.emit(
            custom(Custom.WARNING, {"code": "cost_ceiling_unenforceable", "message": message})
        )

    def _end_text(self) -> None:
        if self._message_id is not None:
            self.emit(TextMessageEndEvent(message_id=self._message_id))
            self._message_id = None

    # -- a crash -------------------------------------------------------------
    async def close_crashed(self, first_seq: int, owner: str | None) -> None:
        """Close this run, which a dead process left open (kill -9, OOM, power).

        Its events up to the crash were committed, so the partial assistant text is rebuilt
        from its TEXT_MESSAGE_CONTENT events; tool calls left without a result are answered
        with a note that they may or may not have run. The run ends RUN_ERROR ``crashed``
        and the session waits for ``resume``.
        """
        s = self.s
        await s.store.flush()
        self.transcript = await s.store.read(lambda c: records.transcript(c, s.id))
        open_text: dict[str, list[str]] = {}
        async for stored in s.past_events(first_seq - 1):
            if stored.type.startswith("TEXT_MESSAGE_"):
                data = json.loads(stored.data)
                mid = data["messageId"]
                if stored.type == "TEXT_MESSAGE_START" and data.get("role") == "assistant":
                    open_text[mid] = []
                elif stored.type == "TEXT_MESSAGE_CONTENT" and mid in open_text:
                    open_text[mid].append(data["delta"])
                elif stored.type == "TEXT_MESSAGE_END":
                    open_text.pop(mid, None)
        for mid, parts in open_text.items():
            self.emit(TextMessageEndEvent(message_id=mid))
            self.append({"role": "assistant", "content": "".join(parts), "id": mid})
        for call in self.unresolved():
            self.result(call["id"], CRASHED_TEXT)
        pid = (owner or "?").split(":")[0]
        message = (
            f"The run crashed: the process serving it (pid {pid}) stopped. The text "
            "streamed so far is kept; use resume to continue."
        )
        self.emit(RunErrorEvent(message=message, code="crashed"))
        s.store.write(
            records.END_RUN, (time.time(), Outcome.CRASHED.value, "{}", s.id, self.run_id)
        )
        s.set_status(AFTER[Outcome.CRASHED], message)
        s.store.write("UPDATE sessions SET owner = NULL WHERE id = ?", (s.id,))
        await s.store.flush()

    # -- endings -------------------------------------------------------------
    def _close(self, why: str) -> None:
        """Keep partial text and answer every open tool call, so the transcript stays valid."""
        if self._text:
            self.append({"role": "assistant", "content": "".join(self._text), "id": new_id("msg")})
            self._text = []
        self._end_text()
        self._end_cut_calls(why)
        text = CANCELLED_TEXT if why == "cancelled" else FAILED_TEXT
        for call in self.unresolved():
            self.result(call["id"], text)

    def _end_cut_calls(self, why: str) -> None:
        """Close the tool calls the stream was cut in: TOOL_CALL_END, then a result event.

        They never reached the transcript (the turn did not complete), so nothing is
        owed to the model; a client that showed them starting sees them end.
        """
        text = CANCELLED_TEXT if why == "cancelled" else CUT_TEXT
        for call_id in self._open_calls:
            self.emit(ToolCallEndEvent(tool_call_id=call_id))
            self.emit(
                ToolCallResultEvent(
                    message_id=new_id("msg"), tool_call_id=call_id, content=text, role="tool"
                )
            )
        self._open_calls = []

    def token_usage(self) -> list[TokenUsage]:
        u = self.usage
        return [
            TokenUsage(
                model=self.s.effective_model,
                input_tokens=u.input_tokens,
                output_tokens=u.output_tokens,
                total_tokens=u.total_tokens,
            )
        ]

    def _usage_dict(self) -> dict[str, Any]:
        u = self.usage
        return {
            "input_tokens": u.input_tokens,
            "output_tokens": u.output_tokens,
            "cost": u.total_cost,
            "unpriced_calls": u.unpriced_calls,
        }
