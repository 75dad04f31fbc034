"""What a message and a decision must be before a session accepts them.

Plain checks with the errors a client sees (each says what to do), kept out of
the session's state machine so the rules read in one place.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from agentspace.engine import kerneltools
from agentspace.engine.decisions import conflict
from agentspace.errors import (
    InputError,
    NotFoundError,
    PayloadTooLargeError,
    QueueFullError,
    ToolError,
)

if TYPE_CHECKING:
    from agentspace.engine.config import Limits
    from agentspace.engine.engine import Engine
    from agentspace.store.approvals import Decision, PendingCall


def check_message(text: str, limits: Limits, queued: int) -> None:
    """Refuse a message that is too big, empty, not Unicode, or over the queue bound."""
    size = len(text.encode("utf-8", "surrogatepass"))  # a bad text is refused below
    if size > limits.max_message_bytes:
        raise PayloadTooLargeError(
            f"The message is {size} bytes; the limit is {limits.max_message_bytes} "
            "(limits.max_message_bytes). Send a shorter message or put the text in a file.",
            limit=limits.max_message_bytes,
        )
    if not text.strip():
        raise InputError("The message is empty; send some text.")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InputError(
            "The message is not valid Unicode (a lone surrogate); send UTF-8 text."
        ) from exc
    if queued >= limits.max_queue:
        raise QueueFullError(
            f"{queued} messages are already waiting in this session (limits.max_queue)."
            " Wait for them to be served, or stop the session and resume later.",
            queued=queued,
        )


def check_decision(
    engine: Engine, calls: dict[str, PendingCall], tool_call_id: str, decision: Decision
) -> tuple[PendingCall, Decision]:
    """The pending call a decision is about, and the decision as it will be recorded."""
    call = calls.get(tool_call_id)
    if call is None:
        waiting = [i for i, p in calls.items() if p.status == "pending"]
        raise NotFoundError(
            f"No tool call {tool_call_id!r} is waiting for approval in this session"
            f" (pending: {', '.join(waiting) or 'none'}).",
            pending=waiting,
        )
    if call.status != "pending":
        raise conflict(tool_call_id, call)
    limit = engine.config.limits.max_tool_result_chars
    decision = kerneltools.check_decision(call, decision, limit)
    if decision.decision == "edit":
        try:
            engine.tools.get(call.name).parse_arguments(decision.arguments)
        except ToolError as exc:
            raise InputError(f"The edited arguments are invalid: {exc.message}") from exc
    return call, decision
