"""Kernel tools: calls the notebook's kernel runs, not the sandbox.

Why they are not ``Tool`` objects: the engine cannot run them. The kernel side
(``agentspace_kernel``) declares them per session (the built-ins ``run_cell`` and
``list_variables``, plus the user's own decorated functions), the model is
offered them next to the built-in tools, and a call to one is held like an
approval: a pending row, an AG-UI Interrupt with reason ``kernel_tool``, and
later a ``result`` decision carrying what the kernel returned. Nothing here runs
code; it describes, checks and formats, so the run loop and the session only ask
it questions.

The specs live in the session record (``kernel_tools``, ``run_cell``,
``list_variables``) and so survive restarts with it. What the built-ins return
reaches the model with what looks like a secret redacted (``result_text``).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field

from agentspace.engine.policies import Resolved, explain_policy
from agentspace.errors import ConflictError, InputError, ToolArgumentsError
from agentspace.notebook.secrets import redacted_text
from agentspace.store.approvals import Decision, Executor, PendingCall
from agentspace.tools.base import Policy
from agentspace.tools.kernel import (
    BUILTIN,
    LIST_VARIABLES,
    LIST_VARIABLES_TOOL,
    RUN_CELL,
    RUN_CELL_TOOL,
    KernelTool,
)

if TYPE_CHECKING:
    from agentspace.engine.session import Session

CUT_MARKER = (
    "\n[... {cut} characters of the kernel's output cut here (limits.max_tool_result_chars) ...]\n"
)


class OfferedTool(BaseModel):
    """One tool the model is offered, with its effective policy and who runs it."""

    name: str
    description: str
    parameters: dict[str, Any]
    policy: Policy
    rule: str = Field("default", description="Where the policy comes from, e.g. 'server: *'.")
    executor: Executor


class ToolListing(BaseModel):
    tools: list[OfferedTool]


# -- what a session offers -----------------------------------------------------
class ToolOffer:
    """The tools a session offers the model: built-ins and its kernel's, with their policies."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def kernel_tools(self) -> list[KernelTool]:
        """The kernel tools offered: the built-ins the kernel enabled, then the user's."""
        record = self.session.record
        builtin = [RUN_CELL_TOOL] if record.run_cell else []
        if record.list_variables:
            builtin.append(LIST_VARIABLES_TOOL)
        return builtin + list(record.kernel_tools)

    def find(self, name: str) -> KernelTool | None:
        """The session's kernel tool called ``name`` (None for built-in or unknown names)."""
        if name in self.session.engine.tools:
            return None  # built-ins win (set_kernel_tools refuses collisions anyway)
        return next((t for t in self.kernel_tools() if t.name == name), None)

    def rule_of(self, name: str) -> Resolved:
        """The tool's policy and its rule (``explain_policy``); run_cell always asks."""
        kernel = self.find(name)
        if kernel is not None and kernel.name == RUN_CELL:
            return Resolved("ask", "run_cell always asks", "ask")
        engine = self.session.engine
        default = kernel.policy if kernel is not None else engine.default_policy(name)
        record = self.session.record
        return explain_policy(
            name,
            default,
            engine.config.policies,
            record.policies,
            record.always_allowed,
        )

    def policy_of(self, name: str) -> Policy:
        """The tool's effective policy in the session (see ``rule_of``)."""
        return self.rule_of(name).policy

    def schemas(self) -> list[dict[str, Any]]:
        """Built-in and kernel tools in the OpenAI format, for the model call."""
        return self.session.engine.tools.schemas() + [
            t.openai_schema() for t in self.kernel_tools()
        ]

    def listing(self) -> ToolListing:
        builtin = [
            OfferedTool(
                name=t.name,
                description=t.description,
                parameters=t.openai_schema()["function"]["parameters"],
                policy=(rule := self.rule_of(t.name)).policy,
                rule=rule.rule,
                executor="sandbox",
            )
            for t in self.session.engine.tools
        ]
        kernel = [
            OfferedTool(
                name=t.name,
                description=t.description,
                parameters=t.parameters,
                policy=(rule := self.rule_of(t.name)).policy,
                rule=rule.rule,
                executor="kernel",
            )
            for t in self.kernel_tools()
        ]
        return ToolListing(tools=builtin + kernel)

    def unknown_tool_text(self, name: str) -> str:
        available = self.session.engine.tools.names + [t.name for t in self.kernel_tools()]
        listed = ", ".join(available) or "(none)"
        return f"Error: Unknown tool {name!r}. Available tools: {listed}."

    def check_tool_set(self, tools: list[KernelTool]) -> None:
        """Refuse a tool set the model could not tell apart from the built-ins (or itself)."""
        seen: set[str] = set()
        for t in tools:
            if t.name in self.session.engine.tools:
                raise InputError(
                    f"The kernel tool {t.name!r} has the name of a built-in workspace tool; "
                    "rename it (built-in tools: "
                    + ", ".join(self.session.engine.tools.names)
                    + ").",
                    tool=t.name,
                )
            if t.name in BUILTIN:
                raise InputError(
                    f'{t.name!r} is built in: send "{t.name}": true instead of defining it.',
                    tool=t.name,
                )
            if t.name in seen:
                raise InputError(f"Two kernel tools are named {t.name!r}; names must be unique.")
            seen.add(t.name)


def check_policies(policies: dict[str, Policy]) -> None:
    if policies.get(RUN_CELL, "ask") != "ask":
        raise InputError(
            "run_cell always asks: the user approves each cell before it runs in their kernel. "
            "Its policy cannot be changed; to stop offering it, set the tools with "
            '"run_cell": false.',
            tool=RUN_CELL,
        )


# Validation context of a record read back from the store: its tools' schemas were checked.
# What checking a schema or arguments imports (slow, once: bench/RESULTS.md, kernel side):
# off the loop before first use.
VALIDATOR = "jsonschema.validators"


def check_arguments(tool: KernelTool, raw: str) -> None:
    """Validate a model's arguments before the kernel sees them, so the model can fix them."""
    try:
        data = json.loads(raw) if raw.strip() else {}
    except ValueError as exc:
        raise ToolArgumentsError(
            f"Arguments for tool {tool.name!r} are not valid JSON ({exc}). The arguments must "
            "be a JSON object matching the tool's parameter schema.",
            tool=tool.name,
        ) from None
    from jsonschema.validators import validator_for

    validator = validator_for(tool.parameters)(tool.parameters)
    problems = [
        f"- {'.'.join(str(p) for p in e.absolute_path) or '(arguments)'}: {e.message}"
        for e in validator.iter_errors(data)
    ]
    if problems:
        raise ToolArgumentsError(
            f"Invalid arguments for tool {tool.name!r}:\n" + "\n".join(problems[:20]),
            tool=tool.name,
        )


def check_decision(call: PendingCall, decision: Decision, limit: int) -> Decision:
    """The decision as it will be stored, or the error that says why it does not fit the call."""
    if call.executor != "kernel":
        if decision.decision == "result":
            raise InputError(
                f"The tool call {call.tool_call_id!r} ({call.name}) runs in the workspace "
                "sandbox: only kernel tools take a 'result'. Approve, edit or reject it."
            )
        return decision
    if decision.decision in ("approve", "edit"):
        raise ConflictError(
            f"The tool call {call.tool_call_id!r} ({call.name}) runs in the notebook's kernel: "
            "run its cell, send a 'result' decision, or reject it."
        )
    if decision.remember and call.name == RUN_CELL:
        raise InputError("run_cell always asks: 'remember' cannot apply to it.")
    output = decision.output
    if output is not None and len(output) > limit:
        return decision.model_copy(update={"output": cut(output, limit)})
    return decision


def cut(text: str, limit: int) -> str:
    """``text`` in at most ``limit`` characters: head and tail, a marker where the middle was."""
    marker = CUT_MARKER.format(cut=len(text))  # an upper bound on the digits needed
    keep = max(limit - len(marker), 0)
    head = keep * 2 // 3
    tail = keep - head
    marker = CUT_MARKER.format(cut=len(text) - keep)
    return text[:head] + marker + (text[len(text) - tail :] if tail else "")


async def run_cell_code(session: Session, raw: str) -> str:
    """``run_cell``'s arguments with ``code`` set: given, or the source of the cell ``cell_id``
    as the notebook has it now (what the user approves is what runs)."""
    from agentspace.notebook import document

    args = json.loads(raw) if raw.strip() else {}
    if isinstance(args.get("code"), str) and args["code"].strip():
        return raw
    cell_id = args.get("cell_id")
    if not cell_id:
        raise ToolArgumentsError(
            "run_cell needs code, or the cell_id of a notebook cell to run.", tool=RUN_CELL
        )
    if session.engine.notebooks is None:
        raise ToolArgumentsError(
            "This session cannot read its notebook, so run_cell cannot run a cell by id: "
            "send the code instead.",
            tool=RUN_CELL,
        )
    doc = await (await session.engine.notebooks(session.notebook)).read()
    cell = doc.cells[document.index_of(doc.cells, str(cell_id))]
    if cell.get("cell_type") != "code":
        raise ToolArgumentsError(
            f"Cell {cell_id!r} is a {cell.get('cell_type')} cell: only code cells run.",
            tool=RUN_CELL,
        )
    return json.dumps({"code": document.source_of(cell), "cell_id": cell_id})


# The built-ins whose results show the user's data: what looks like a secret is redacted
# before the model reads it (a user's own @agent_tool returns what its author chose).
REDACTED = frozenset({RUN_CELL, LIST_VARIABLES})


def result_text(call: PendingCall, decision: Decision) -> str:
    """What the model reads for a kernel call the kernel answered.

    For ``run_cell`` and ``list_variables``, values that look like secrets are replaced
    (``agentspace.notebook.secrets``) and a last line says how many and of which kinds, so
    every view of the transcript shows it.
    """
    output = decision.output or ""
    text = f"Error: {output}" if decision.is_error else output
    if decision.arguments is not None and decision.arguments != call.parsed_arguments:
        edited = json.dumps(decision.arguments)
        text = f"Note: the user edited the arguments of this call to {edited}.\n" + text
    if call.name in REDACTED:
        text, _ = redacted_text(text)
    return text
