"""Helpers for tests, demos and benchmarks: scripted models and run collection.

Shipped in the package (not only in tests/) so users can test their own tools
and notebooks against the same offline model the project tests itself with.
The scripted model is a real litellm provider (``scripted/<file>``); these
helpers only write its script files and read runs back.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from agentspace.engine.session import Session

from .events import StoredEvent
from .models.base import (
    Completion,
    StreamPart,
    TextDelta,
    ToolCallArgsDelta,
    ToolCallBegin,
    ToolCallRequest,
    Usage,
)
from .models.scripted import plan_turn, split_words


class DirectModel:
    """The scripted model without litellm: the same scripts, straight into the Model port.

    For tests and benchmarks that are about the engine, not the provider path:
    it isolates the engine's own cost (litellm's stream wrapper is costly per chunk:
    bench/RESULTS.md, engine section) and needs no litellm import. Use ``scripted/...``
    model strings.
    """

    async def stream(
        self,
        messages: list[dict[str, Any]],
        tools: list[dict[str, Any]],
        *,
        model: str,
        params: dict[str, Any],
    ) -> AsyncIterator[StreamPart]:
        planned = plan_turn(model.removeprefix("scripted/"), messages)
        for word in split_words(planned.text):
            yield TextDelta(word)
            await asyncio.sleep(planned.delay_ms / 1000)
        calls = []
        for call_id, name, arguments in planned.tool_calls:
            yield ToolCallBegin(call_id, name)
            yield ToolCallArgsDelta(call_id, arguments)
            calls.append(ToolCallRequest(call_id, name, arguments))
        usage = Usage(planned.prompt_tokens, planned.completion_tokens, 0.0)
        yield Completion(planned.text, tuple(calls), planned.finish_reason, usage)


def turn(
    text: str = "", *tool_calls: tuple[str, dict[str, Any]], delay_ms: int = 0
) -> dict[str, Any]:
    """One scripted model turn: text, then tool calls given as ``(name, arguments)``."""
    return {
        "text": text,
        "tool_calls": [{"name": name, "arguments": args} for name, args in tool_calls],
        "delay_ms": delay_ms,
    }


def write_script(path: Path, *turns: dict[str, Any]) -> str:
    """Write a script file and return the model string that plays it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"turns": list(turns)}))
    return f"scripted/{path}"


async def collect_run(session: Session, after: int) -> list[StoredEvent]:
    """Events after ``after`` up to and including the next run's terminal event."""
    events: list[StoredEvent] = []
    async for stored in session.subscribe(after):
        events.append(stored)
        if stored.terminal:
            break
    return events


async def stored(session: Session) -> AsyncIterator[StoredEvent]:
    """Every event committed so far (flushes first), without waiting for more."""
    async for event in session.past_events():
        yield event


def text_of(events: list[StoredEvent], role: str = "assistant") -> str:
    """The concatenated text of ``role``'s streamed messages in ``events``."""
    ids: set[str] = set()
    parts: list[str] = []
    for stored in events:
        data = json.loads(stored.data)
        if stored.type == "TEXT_MESSAGE_START" and data.get("role", "assistant") == role:
            ids.add(data["messageId"])
        elif stored.type == "TEXT_MESSAGE_CONTENT" and data["messageId"] in ids:
            parts.append(data["delta"])
    return "".join(parts)


def types_of(events: list[StoredEvent]) -> list[str]:
    return [e.type for e in events]
