"""Approvals as persisted data: a tool call held for a decision, and the decision.

A tool call whose policy is ``ask`` is not an exception thrown through the run: it becomes a
row (pending), an AG-UI Interrupt on RUN_FINISHED, and later a decision that a new run
consumes. Plain data, so it survives restarts; the rules that decide (policies, whether a
decision fits its call) are the engine's (``engine.policies``, ``engine.kerneltools``).
"""

from __future__ import annotations

import json
from functools import cache
from typing import Any, Literal

from ag_ui.core import Interrupt
from pydantic import BaseModel, ConfigDict, Field, model_validator

from agentspace.tools.kernel import RUN_CELL

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
    preview: str | None = Field(
        None,
        description="What the call would change (a unified diff for file edits, bounded), "
        "computed when it was held; null if its tool has no preview.",
    )


class PendingCall(BaseModel):
    """A tool call held for a decision (one row of the approvals table).

    ``executor`` and ``needs_approval`` are stored with the row, not looked up
    again: a kernel call stays a kernel call even if the kernel's tool set
    changes (or the server restarts) before its result comes back. So is
    ``preview`` (what the call would change, as of when it was held): a restart
    shows the same diff the person was first asked about.
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
    preview: str | None = None

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
        """The AG-UI Interrupt a client shows as an approvable card (or a kernel's to-do).

        ``metadata.preview`` (only when there is one): what the call would change.
        """
        metadata: dict[str, Any] = {
            "tool": self.name,
            "arguments": self.parsed_arguments,
            "executor": self.executor,
            "needs_approval": self.needs_approval,
        }
        if self.preview is not None:
            metadata["preview"] = self.preview
        return Interrupt(
            id=self.tool_call_id,
            reason="kernel_tool" if self.executor == "kernel" else "tool_approval",
            message=self._message(),
            tool_call_id=self.tool_call_id,
            response_schema=_decision_schema(),
            metadata=metadata,
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
            preview=self.preview,
        )
