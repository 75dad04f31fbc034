"""The tool calls of a run: settle what the transcript owes, run, refuse or hold each call.

The tool-call half of ``Run`` (mixed into it: a run settles its own calls), kept
apart from the model turns: the rules for one call (a decision already made,
an unknown tool, a kernel tool held for the notebook, a policy of ask or deny)
live here in one place.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from ag_ui.core import RunFinishedEvent, RunFinishedInterruptOutcome, ToolCallResultEvent

from agentspace.engine import kerneltools
from agentspace.engine.history import arguments_object
from agentspace.engine.policies import DENIED_TEXT, rejection_text
from agentspace.errors import SandboxError, ToolError
from agentspace.events import Custom, custom, new_id
from agentspace.fairness.imports import import_off_loop
from agentspace.store import records
from agentspace.store.approvals import PendingCall
from agentspace.store.states import Outcome
from agentspace.tools.base import ToolContext
from agentspace.tools.kernel import RUN_CELL

if TYPE_CHECKING:
    from ag_ui.core import TokenUsage

    from agentspace.engine.session import Session


MALFORMED_SHOWN = 200  # characters of malformed arguments quoted back to the model


def malformed_text(name: str, arguments: str) -> str:
    """The tool result for a call whose arguments are not a JSON object: what was wrong."""
    try:
        json.loads(arguments)
        why = "they are not a JSON object"
    except ValueError as exc:
        why = f"they are not valid JSON ({exc})"
    shown = arguments if len(arguments) <= MALFORMED_SHOWN else arguments[:MALFORMED_SHOWN] + "…"
    return (
        f"Error: the call to {name!r} did not run: {why}. The arguments received were: "
        f"{shown}\nCall the tool again with its arguments as one JSON object matching its "
        "parameter schema."
    )


def auto_text(rule: str) -> str:
    """How an auto-approved call is labelled (stored with its result; the views say the same)."""
    return f"auto-approved ({rule})"


class ToolCalls:
    """What a run does with the tool calls its transcript owes (``Run`` mixes it in)."""

    s: Session
    run_id: str
    transcript: list[dict[str, Any]]
    approvals: dict[str, PendingCall]

    def emit(self, event: Any) -> None:
        raise NotImplementedError  # Run's

    def append(self, message: dict[str, Any]) -> None:
        raise NotImplementedError  # Run's

    def ids(self) -> dict[str, str]:
        raise NotImplementedError  # Run's

    def token_usage(self) -> list[TokenUsage]:
        raise NotImplementedError  # Run's

    def unresolved(self) -> list[dict[str, Any]]:
        """Tool calls of the last assistant message that have no result yet."""
        for i in range(len(self.transcript) - 1, -1, -1):
            message = self.transcript[i]
            if message.get("role") == "assistant":
                answered = {m.get("tool_call_id") for m in self.transcript[i + 1 :]}
                return [c for c in message.get("tool_calls") or [] if c["id"] not in answered]
            if message.get("role") == "user":
                return []
        return []

    async def settle(self) -> Outcome:
        """Run, refuse or hold each unanswered tool call, in order."""
        s = self.s
        held: list[PendingCall] = []
        for call in self.unresolved():
            call_id, name = call["id"], call["function"]["name"]
            arguments = call["function"]["arguments"]
            approval = self.approvals.get(call_id)
            if approval is not None and approval.decision is not None:
                d = approval.decision
                if d.decision == "reject":
                    self.result(call_id, rejection_text(name, d.reason))
                elif d.decision == "result":  # a kernel tool: the kernel ran it already
                    self.result(call_id, kerneltools.result_text(approval, d))
                elif d.decision == "edit":
                    edited = json.dumps(d.arguments)
                    note = f"Note: the user edited the arguments of this call to {edited}.\n"
                    await self.run_tool(call_id, name, edited, note)
                else:
                    await self.run_tool(call_id, name, arguments)
                continue
            kernel = s.offer.find(name)
            if approval is None and kernel is None and name not in s.engine.tools:
                # an unknown tool: nothing to approve, tell the model
                self.result(call_id, s.offer.unknown_tool_text(name))
                continue
            if approval is None and arguments_object(arguments) is None:
                # arguments that are no JSON object: the model can fix them, the user need not see
                self.result(call_id, malformed_text(name, arguments))
                continue
            if kernel is not None and approval is None:
                await import_off_loop(kerneltools.VALIDATOR)
                try:  # the model can fix its arguments without bothering the kernel
                    kerneltools.check_arguments(kernel, arguments)
                    if kernel.name == RUN_CELL:  # a cell by id: the user approves its code
                        arguments = await kerneltools.run_cell_code(s, arguments)
                except ToolError as exc:
                    self.result(call_id, f"Error: {exc.message}")
                    continue
            resolved = s.offer.rule_of(name)
            policy = resolved.policy
            # A kernel tool is always held (the kernel runs it); "ask" also needs the user.
            if approval is not None or policy == "ask" or (kernel is not None and policy != "deny"):
                if approval is None:
                    approval = PendingCall(
                        tool_call_id=call_id,
                        run_id=self.run_id,
                        name=name,
                        arguments=arguments,
                        executor="sandbox" if kernel is None else "kernel",
                        needs_approval=policy == "ask",
                    )
                    if kernel is None and approval.needs_approval:  # run_cell shows its code
                        approval.preview = await self.call_preview(name, arguments)
                held.append(approval)
            elif held:
                continue  # waits behind an earlier call that needs approval
            elif policy == "deny":
                self.result(call_id, DENIED_TEXT.format(name=name))
            elif resolved.auto is None:
                await self.run_tool(call_id, name, arguments)
            else:  # let through by a rule someone set, not by the tool's own: every view says so
                self.approved(call_id, resolved.auto)
                await self.run_tool(call_id, name, arguments, auto=resolved.auto)
        if not held:
            return Outcome.FINISHED
        for p in held:
            if (
                p.tool_call_id in self.approvals
            ):  # held again: never undo a decision taken meanwhile
                s.store.write(records.REHOLD_APPROVAL, (self.run_id, s.id, p.tool_call_id))
            else:
                s.store.write(records.INSERT_APPROVAL, records.approval_row(s.id, self.run_id, p))
        interrupts = [p.interrupt() for p in held]
        self.emit(
            RunFinishedEvent(
                **self.ids(),
                outcome=RunFinishedInterruptOutcome(interrupts=interrupts),
                usage=self.token_usage(),
            )
        )
        return Outcome.PAUSED

    def approved(self, call_id: str, rule: str) -> None:
        """Log that a call runs without asking because of ``rule`` (an 'always allow', a policy)."""
        value = {"tool_call_id": call_id, "decision": "approve", "auto": True, "rule": rule}
        self.emit(custom(Custom.DECISION, value))

    def tool_context(self) -> ToolContext:
        """What a tool of this session may know (its workspace runtime not yet attached)."""
        s = self.s
        return ToolContext(
            folder=s.folder,
            session_id=s.id,
            notebook=s.notebook,
            notebooks=s.engine.notebooks,
            scratch=s.scratch,
        )

    async def call_preview(self, name: str, arguments: str) -> str | None:
        """What a sandbox call held for approval would change (its tool's preview), or None.

        Computed once, when the call is first held, and stored with it. The workspace's
        runtime is not started for it (the files are in the session's folder): a call
        the user rejects never started a sandbox. A preview never stops the hold.
        """
        try:
            tool = self.s.engine.tools.get(name)
            args = tool.parse_arguments(arguments)
        except ToolError:  # the run will say what is wrong with the call
            return None
        ctx = self.tool_context()
        ctx.workspace_error = "a preview does not start the workspace's runtime"
        return await tool.preview_text(ctx, args)

    async def run_tool(
        self, call_id: str, name: str, arguments: str, note: str = "", auto: str | None = None
    ) -> None:
        s = self.s
        changed: list[str] = []
        images: list[dict[str, str]] = []
        try:
            tool = s.engine.tools.get(name)
            args = tool.parse_arguments(arguments)
            ctx = self.tool_context()
            ctx.images = await s.engine.takes_images(s.effective_model)
            try:
                ctx.workspace = await s.engine.workspaces.get(s)
            except SandboxError as exc:  # file tools still work; sandbox tools say why not
                ctx.workspace_error = exc.message
            output = await tool.run(ctx, args)
            text, changed, images = output.text, output.changed_paths, output.images
        except ToolError as exc:
            text = f"Error: {exc.message}"
        self.result(call_id, note + text, auto=auto, images=images)
        if changed:
            self.emit(custom(Custom.FILES, {"paths": changed, "tool_call_id": call_id}))

    def result(
        self,
        call_id: str,
        text: str,
        auto: str | None = None,
        images: list[dict[str, str]] | None = None,
    ) -> None:
        message_id = new_id("msg")
        self.emit(
            ToolCallResultEvent(
                message_id=message_id, tool_call_id=call_id, content=text, role="tool"
            )
        )
        message: dict[str, Any] = {
            "role": "tool",
            "tool_call_id": call_id,
            "content": text,
            "id": message_id,
        }
        if auto is not None:  # not sent to the model (history.to_wire keeps known keys only)
            message["approval"] = auto_text(auto)
        if images:  # sent after the turn's tool results, as a user message (history.wire_messages)
            message["images"] = images
        self.append(message)
