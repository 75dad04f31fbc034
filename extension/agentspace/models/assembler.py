"""Turn OpenAI-shaped stream chunks into the model port's parts, and assemble the turn.

Why a separate, pure class: providers disagree on how they stream tool calls
(id and name up front or late, ids repeated or missing, a whole call in one
chunk, parallel calls interleaved by ``index``). Keeping that bookkeeping free
of I/O and of litellm lets it be tested chunk by chunk, and keeps the adapter
small. Chunks may be litellm ``ModelResponseStream`` objects or plain dicts of
the OpenAI ``chat.completion.chunk`` shape; both are read with the same
attribute-or-key access.

Guarantees: a ``ToolCallArgsDelta`` never precedes its call's ``ToolCallBegin``
(argument fragments that arrive before the name are buffered), ids are stable
for the life of a call, and ``finish()`` returns calls in ``index`` order.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import Any

from agentspace.models.base import (
    Completion,
    StreamPart,
    TextDelta,
    ToolCallArgsDelta,
    ToolCallBegin,
    ToolCallRequest,
    Usage,
)


def _get(obj: Any, key: str) -> Any:
    """Read ``key`` from a dict or an attribute from an object; ``None`` when absent."""
    if obj is None:
        return None
    if isinstance(obj, dict):
        return obj.get(key)
    return getattr(obj, key, None)


def _int(value: Any) -> int:
    """Token counts arrive as ints, floats or None depending on the provider."""
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0


def usage_from(raw: Any) -> Usage | None:
    """Read an OpenAI (``prompt_tokens``) or Anthropic-style (``input_tokens``) usage block."""
    if raw is None:
        return None
    prompt = _get(raw, "prompt_tokens")
    if prompt is None:
        prompt = _get(raw, "input_tokens")
    completion = _get(raw, "completion_tokens")
    if completion is None:
        completion = _get(raw, "output_tokens")
    if prompt is None and completion is None:
        return None
    return Usage(input_tokens=_int(prompt), output_tokens=_int(completion))


@dataclass(slots=True)
class _Call:
    """One tool call being streamed: what is known so far and what was already emitted."""

    index: int
    id: str | None = None
    name: str = ""
    args: list[str] = field(default_factory=list)
    pending: list[str] = field(default_factory=list)
    begun: bool = False


class StreamAssembler:
    """Feed it chunks in order; it returns the parts each chunk adds, then the whole turn.

    One assembler per model call. Only the first choice is read (agentspace never
    asks for ``n > 1``).
    """

    def __init__(self) -> None:
        self._text: list[str] = []
        self._calls: dict[int, _Call] = {}
        self._finish_reason: str | None = None
        self._usage: Usage | None = None

    @property
    def finish_reason(self) -> str | None:
        """The last finish reason seen, or ``None`` while the turn is still open."""
        return self._finish_reason

    @property
    def usage(self) -> Usage | None:
        """The last usage block seen, or ``None`` if the provider sent none yet."""
        return self._usage

    def note_usage(self, raw: Any) -> None:
        """Record usage found outside the chunk body (e.g. litellm's hidden params)."""
        usage = usage_from(raw)
        if usage is not None:
            self._usage = usage

    def feed(self, chunk: Any) -> list[StreamPart]:
        """Take one chunk; return the text and tool-call parts it contributes, in order."""
        parts: list[StreamPart] = []
        self.note_usage(_get(chunk, "usage"))
        choices = _get(chunk, "choices")
        if not choices:
            return parts
        choice = choices[0]
        reason = _get(choice, "finish_reason")
        if reason:
            self._finish_reason = str(reason)
        delta = _get(choice, "delta")
        if delta is None:
            return parts
        content = _get(delta, "content")
        if content:
            self._text.append(content)
            parts.append(TextDelta(content))
        for raw in _get(delta, "tool_calls") or ():
            self._feed_tool_call(raw, parts)
        return parts

    def _call_for(self, raw: Any) -> _Call:
        """Find the call a fragment belongs to: by ``index``, else by id, else the latest."""
        index = _get(raw, "index")
        call_id = _get(raw, "id")
        if index is None:
            if call_id:
                for call in self._calls.values():
                    if call.id == call_id:
                        return call
                index = len(self._calls)
            elif self._calls:
                return self._calls[max(self._calls)]
            else:
                index = 0
        index = int(index)
        found = self._calls.get(index)
        if found is None:
            found = self._calls[index] = _Call(index=index)
        return found

    def _feed_tool_call(self, raw: Any, parts: list[StreamPart]) -> None:
        call = self._call_for(raw)
        call_id = _get(raw, "id")
        if call_id and not call.begun:
            # Providers that repeat the id are harmless; once begun the id is frozen.
            call.id = str(call_id)
        function = _get(raw, "function")
        name = _get(function, "name")
        if name and not call.name:
            call.name = str(name)
        arguments = _get(function, "arguments")
        if arguments:
            if call.begun:
                call.args.append(arguments)
                parts.append(ToolCallArgsDelta(id=call.id or "", delta=arguments))
            else:
                call.pending.append(arguments)
        if call.name and not call.begun:
            self._begin(call, parts)

    def _begin(self, call: _Call, parts: list[StreamPart]) -> None:
        """Emit the call's begin, then whatever arguments were buffered before its name."""
        if not call.id:
            call.id = f"call_{call.index}_{secrets.token_hex(4)}"
        call.begun = True
        parts.append(ToolCallBegin(id=call.id, name=call.name))
        if call.pending:
            buffered = "".join(call.pending)
            call.pending.clear()
            call.args.append(buffered)
            parts.append(ToolCallArgsDelta(id=call.id, delta=buffered))

    def finish(self) -> Completion:
        """The assembled turn. Calls whose name never arrived keep an empty name.

        They are kept rather than dropped so the run loop can tell the model its
        call was unusable (an unknown tool) instead of silently losing it.
        """
        calls: list[ToolCallRequest] = []
        for index in sorted(self._calls):
            call = self._calls[index]
            if not call.id:
                call.id = f"call_{call.index}_{secrets.token_hex(4)}"
            arguments = "".join(call.args) + "".join(call.pending)
            calls.append(ToolCallRequest(id=call.id, name=call.name, arguments=arguments))
        return Completion(
            text="".join(self._text),
            tool_calls=tuple(calls),
            finish_reason=self._finish_reason,
            usage=Usage(self._usage.input_tokens, self._usage.output_tokens)
            if self._usage is not None
            else Usage(),
        )
