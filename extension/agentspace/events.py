"""The event vocabulary: AG-UI, plus the sequence number every stored event gets.

We do not invent a parallel schema. Every event is an ``ag_ui.core`` model;
what AG-UI has no word for travels as CUSTOM with a name from ``Custom``.
Events are serialised once, when they are stored, and kept as JSON text:
replaying ten thousand events to a late client should not parse and
re-serialise ten thousand pydantic models, so ``StoredEvent.event`` parses
lazily and only for the callers that want objects.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any

from ag_ui.core import (
    AssistantMessage,
    BaseEvent,
    CustomEvent,
    Event,
    FunctionCall,
    MessagesSnapshotEvent,
    ToolCall,
    ToolMessage,
    UserMessage,
)
from pydantic import TypeAdapter

_EVENT_ADAPTER: TypeAdapter[Any] = TypeAdapter(Event)

TERMINAL_TYPES = frozenset({"RUN_FINISHED", "RUN_ERROR"})


class Custom:
    """Names of the CUSTOM events agentspace emits (value shapes in the docstrings)."""

    QUEUED = "agentspace.queued"
    """A message was queued behind a run: ``{"message_id", "position"}``."""
    FILES = "agentspace.files"
    """Workspace paths a tool changed: ``{"paths": [...], "tool_call_id"}``."""
    USAGE = "agentspace.usage"
    """Usage after a model call: ``{"run": {...}, "session": {...}}``."""
    STATUS = "agentspace.status"
    """The session's status changed: ``{"status", "reason"?}``."""
    PROCESS = "agentspace.process"
    """A background process started or exited: its record (name, command, status...)."""
    PREVIEW = "agentspace.preview"
    """A preview was opened: ``{"port", "url"}``."""
    DECISION = "agentspace.decision"
    """An approval was decided: ``{"tool_call_id", "decision", "reason"?, "arguments"?,
    "by"?}``; a call let through without asking: ``{…, "auto": true, "rule"}``."""
    CONTEXT = "agentspace.context"
    """Notebook context was attached to a user message: ``{"message_id", "notebook",
    "cell"?, "cells", "error", "chars", "origin"?, "redacted"?}``."""
    WARNING = "agentspace.warning"
    """Something the user should know that does not stop the run: ``{"code", "message"}``."""


def new_id(prefix: str) -> str:
    """A message, run or call id: ``prefix_`` and 16 random hex digits."""
    return f"{prefix}_{uuid.uuid4().hex[:16]}"


def now_ms() -> int:
    return int(time.time() * 1000)


def encode(event: BaseEvent) -> str:
    """Serialise an AG-UI event as AG-UI does on the wire (camelCase, no nulls)."""
    return event.model_dump_json(by_alias=True)


def parse(data: str) -> BaseEvent:
    """Parse one stored/wire event back into its AG-UI model."""
    event: BaseEvent = _EVENT_ADAPTER.validate_json(data)
    return event


def messages_snapshot(transcript: list[dict[str, Any]]) -> MessagesSnapshotEvent:
    """The transcript as AG-UI messages, for a client that joins late or lost its state."""
    messages: list[Any] = []
    for i, m in enumerate(transcript):
        mid = m.get("id") or f"m{i}"
        role = m.get("role")
        if role == "user":
            messages.append(UserMessage(id=mid, content=m.get("content") or ""))
        elif role == "assistant":
            calls = [
                ToolCall(id=c["id"], function=FunctionCall(**c["function"]))
                for c in m.get("tool_calls") or []
            ]
            messages.append(
                AssistantMessage(id=mid, content=m.get("content"), tool_calls=calls or None)
            )
        elif role == "tool":
            messages.append(
                ToolMessage(id=mid, content=m.get("content") or "", tool_call_id=m["tool_call_id"])
            )
    return MessagesSnapshotEvent(messages=messages, timestamp=now_ms())


def custom(name: str, value: Any) -> CustomEvent:
    return CustomEvent(name=name, value=value, timestamp=now_ms())


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """An event as committed: its per-session sequence number, type and JSON text."""

    seq: int
    type: str
    data: str

    @property
    def event(self) -> BaseEvent:
        """The AG-UI model (parsed on each access: most consumers only need ``data``)."""
        return parse(self.data)

    @property
    def terminal(self) -> bool:
        """Whether this event ends a run (RUN_FINISHED or RUN_ERROR)."""
        return self.type in TERMINAL_TYPES

    def to_json_line(self) -> str:
        """``{"seq": N, "event": {...}}`` without re-serialising the event."""
        return f'{{"seq": {self.seq}, "event": {self.data}}}'
