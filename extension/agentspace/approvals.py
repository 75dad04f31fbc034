"""Approvals as persisted data: the policy for a call, pending calls, and decisions.

A tool call whose policy is ``ask`` is not an exception thrown through the run
loop; it becomes a row (pending), an AG-UI Interrupt on RUN_FINISHED, and later
a decision that a new run consumes. Everything here is plain data so it
survives restarts and is easy to test.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from functools import cache
from typing import Any, Literal, NamedTuple

from ag_ui.core import Interrupt
from pydantic import BaseModel, ConfigDict, Field, model_validator

from .config import Policy
from .errors import ConflictError

RUN_CELL = "run_cell"
"""The built-in kernel tool: code the user's kernel runs after the user approves it."""

DecisionKind = Literal["approve", "reject", "edit", "result"]
Executor = Literal["sandbox", "kernel"]


class Decision(BaseModel):
    """What a person decided about one pending tool call."""

    model_config = ConfigDict(extra="forbid")

    decision: DecisionKind
    arguments: dict[str, Any] | None = Field(
        None,
        description="New arguments (required with 'edit'; validated against the tool). With "
        "'result': the arguments the kernel actually ran, if the user changed them.",
    )
    reason: str | None = Field(None, max_length=4000, description="Shown to the model on reject.")
    remember: bool = Field(False, description="Always allow this tool in this session.")
    output: str | None = Field(
        None,
        description="The tool's result text (required with 'result', kernel tools only); "
        "longer than the engine's tool-result limit, it is cut (head and tail kept).",
    )
    is_error: bool = Field(False, strict=True, description="With 'result': the kernel call failed.")

    @model_validator(mode="after")
    def _fields_fit_the_kind(self) -> Decision:
        if self.decision == "edit" and self.arguments is None:
            raise ValueError("an 'edit' decision needs 'arguments' (the new tool arguments)")
        if self.decision == "result" and self.output is None:
            raise ValueError("a 'result' decision needs 'output' (the tool's result text)")
        if self.decision != "result" and (self.output is not None or self.is_error):
            raise ValueError("only a 'result' decision carries 'output' and 'is_error'")
        return self


@cache
def _decision_schema() -> dict[str, Any]:
    return Decision.model_json_schema()


class PendingInfo(BaseModel):
    """A pending call as a session lists it: what its Interrupt says, flat."""

    tool_call_id: str
    tool: str
    arguments: Any = Field(description="The call's arguments (the raw text if not JSON).")
    reason: Literal["tool_approval", "kernel_tool"]
    message: str
    executor: Executor
    needs_approval: bool


class PendingCall(BaseModel):
    """A tool call held for a decision (one row of the approvals table).

    ``executor`` and ``needs_approval`` are stored with the row, not looked up
    again: a kernel call stays a kernel call even if the kernel's tool set
    changes (or the server restarts) before its result comes back.
    """

    tool_call_id: str
    run_id: str
    name: str
    arguments: str
    status: Literal["pending", "decided"] = "pending"
    decision: Decision | None = None
    executor: Executor = "sandbox"
    needs_approval: bool = True
    decided_by: str | None = None

    @property
    def parsed_arguments(self) -> Any:
        try:
            return json.loads(self.arguments)
        except ValueError:
            return self.arguments

    def _message(self) -> str:
        if self.executor == "sandbox":
            return f"Approve the call to {self.name}?"
        if self.name == RUN_CELL:
            return (
                f"Run the cell `%%agent_run {self.tool_call_id}` to approve and run this code "
                "in your kernel"
            )
        if self.needs_approval:
            return f"Approve the call to {self.name}? It runs in your notebook's kernel"
        return f"Waiting for the notebook's kernel to run {self.name}"

    def interrupt(self) -> Interrupt:
        """The AG-UI Interrupt a client shows as an approvable card (or a kernel's to-do)."""
        return Interrupt(
            id=self.tool_call_id,
            reason="kernel_tool" if self.executor == "kernel" else "tool_approval",
            message=self._message(),
            tool_call_id=self.tool_call_id,
            response_schema=_decision_schema(),
            metadata={
                "tool": self.name,
                "arguments": self.parsed_arguments,
                "executor": self.executor,
                "needs_approval": self.needs_approval,
            },
        )

    def info(self) -> PendingInfo:
        return PendingInfo(
            tool_call_id=self.tool_call_id,
            tool=self.name,
            arguments=self.parsed_arguments,
            reason="kernel_tool" if self.executor == "kernel" else "tool_approval",
            message=self._message(),
            executor=self.executor,
            needs_approval=self.needs_approval,
        )


class Resolved(NamedTuple):
    """A tool's effective policy and the rule it comes from (shown with auto-approved calls)."""

    policy: Policy
    rule: str  # "server: shell", "session: *", "always allow (session)", "default", ...
    default: Policy = "ask"  # the tool's own policy, before any rule

    @property
    def auto(self) -> str | None:
        """The rule that lets a call through that would otherwise ask (or be refused)."""
        return self.rule if self.policy == "allow" and self.default != "allow" else None


ALWAYS = "always allow (session)"


def explain_policy(
    tool: str,
    default: Policy,
    server: dict[str, Policy],
    session: dict[str, Policy],
    remembered: Iterable[str] = (),
) -> Resolved:
    """The one place a tool's policy is decided, for every caller.

    * A tool the server denies (``server[tool]``, else ``server["*"]``) stays denied:
      the server's denials are a ceiling a session cannot lift (``check_session_policies``
      refuses a session rule that tries, so this is never silent).
    * Otherwise the session decides (``session[tool]``, else ``session["*"]``), then the
      server (``server[tool]``, else ``server["*"]``), then the tool's own default:
      tool-specific over ``"*"``, session over server.
    """
    if server_denies(tool, server):
        return Resolved("deny", f"server: {tool if tool in server else '*'}", default)
    if tool in session:
        rule = ALWAYS if tool in remembered and session[tool] == "allow" else f"session: {tool}"
        return Resolved(session[tool], rule, default)
    if "*" in session:
        return Resolved(session["*"], "session: *", default)
    if tool in server:
        return Resolved(server[tool], f"server: {tool}", default)
    if "*" in server:
        return Resolved(server["*"], "server: *", default)
    return Resolved(default, "default", default)


def resolve_policy(
    tool: str,
    default: Policy,
    server: dict[str, Policy],
    session: dict[str, Policy],
) -> Policy:
    """The effective policy (see ``explain_policy``)."""
    return explain_policy(tool, default, server, session).policy


def server_denies(tool: str, server: dict[str, Policy]) -> bool:
    """Whether the server's config denies ``tool`` (its own rule, else its ``"*"``)."""
    return server.get(tool, server.get("*")) == "deny"


def check_session_policies(policies: dict[str, Policy], server: dict[str, Policy]) -> None:
    """Refuse a session rule that would lift a tool the server denies (409, says why).

    A session's ``"*"`` is accepted with any value: it never reaches a tool the
    server denies (the listing of a session's tools shows the effect).
    """
    lifted = sorted(
        t for t, p in policies.items() if t != "*" and p != "deny" and server_denies(t, server)
    )
    if lifted:
        rules = ", ".join(f"{t if t in server else '*'}: deny" for t in lifted)
        raise ConflictError(
            f"The server's policies deny {', '.join(lifted)} ({rules}); a session cannot allow "
            "or ask for a tool the server denies. Leave it out of the session's policies, or "
            "ask the server's admin to change AgentspaceApp.policies.",
            tools=lifted,
        )


_DONE = {
    "approve": "approved",
    "reject": "rejected",
    "edit": "approved with edited arguments",
    "result": "answered with the kernel's result",
}


def decided_text(call: PendingCall) -> str:
    """How a call was decided, for whoever comes second: what, with what, by whom, why."""
    d = call.decision
    if d is None:
        return "decided"
    text = _DONE[d.decision]
    if d.decision == "edit":
        text += f" {json.dumps(d.arguments, ensure_ascii=False)[:500]}"
    if d.decision == "result" and d.is_error:
        text += " (an error)"
    if call.decided_by:
        text += f" by {call.decided_by}"
    if d.reason:
        text += f" (reason: {d.reason[:500]})"
    return text


def rejection_text(name: str, reason: str | None) -> str:
    why = f" Reason: {reason}" if reason else ""
    return f"The user rejected this call to {name}; it did not run.{why}"


DENIED_TEXT = "The tool {name} is denied by policy in this session; it did not run."
