"""Approvals as persisted data: the policy for a call, pending calls, and decisions.

A tool call whose policy is ``ask`` is not an exception thrown through the run
loop; it becomes a row (pending), an AG-UI Interrupt on RUN_FINISHED, and later
a decision that a new run consumes. Everything here is plain data so it
survives restarts and is easy to test.
"""

from __future__ import annotations

import json
from functools import cache
from typing import Any, Literal

from ag_ui.core import Interrupt
from pydantic import BaseModel, ConfigDict, Field, model_validator

from .config import Policy

DecisionKind = Literal["approve", "reject", "edit"]


class Decision(BaseModel):
    """What a person decided about one pending tool call."""

    model_config = ConfigDict(extra="forbid")

    decision: DecisionKind
    arguments: dict[str, Any] | None = Field(
        None, description="New arguments (required with 'edit'); validated against the tool."
    )
    reason: str | None = Field(None, max_length=4000, description="Shown to the model on reject.")
    remember: bool = Field(False, description="Always allow this tool in this session.")

    @model_validator(mode="after")
    def _edit_needs_arguments(self) -> Decision:
        if self.decision == "edit" and self.arguments is None:
            raise ValueError("an 'edit' decision needs 'arguments' (the new tool arguments)")
        return self


@cache
def _decision_schema() -> dict[str, Any]:
    return Decision.model_json_schema()


class PendingCall(BaseModel):
    """A tool call held for approval (one row of the approvals table)."""

    tool_call_id: str
    run_id: str
    name: str
    arguments: str
    status: Literal["pending", "decided"] = "pending"
    decision: Decision | None = None

    def interrupt(self) -> Interrupt:
        """The AG-UI Interrupt a client shows as an approvable card."""
        try:
            args: Any = json.loads(self.arguments)
        except ValueError:
            args = self.arguments
        return Interrupt(
            id=self.tool_call_id,
            reason="tool_approval",
            message=f"Approve the call to {self.name}?",
            tool_call_id=self.tool_call_id,
            response_schema=_decision_schema(),
            metadata={"tool": self.name, "arguments": args},
        )


def resolve_policy(
    tool: str,
    default: Policy,
    server: dict[str, Policy],
    session: dict[str, Policy],
) -> Policy:
    """Session overrides beat server settings, which beat the tool's own default."""
    if tool in session:
        return session[tool]
    if tool in server:
        return server[tool]
    if "*" in server:
        return server["*"]
    return default


def rejection_text(name: str, reason: str | None) -> str:
    why = f" Reason: {reason}" if reason else ""
    return f"The user rejected this call to {name}; it did not run.{why}"


DENIED_TEXT = "The tool {name} is denied by policy in this session; it did not run."
