"""The model port: what the run loop needs from any model, as a stream of parts.

The run loop never sees provider chunks. An adapter turns them into these
small immutable parts (through the pure ``StreamAssembler``) and ends every
stream with exactly one ``Completion`` that holds the assembled turn.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True, slots=True)
class TextDelta:
    """A fragment of assistant text, in arrival order."""

    text: str


@dataclass(frozen=True, slots=True)
class ToolCallBegin:
    """A tool call's id and name are known; its arguments follow as deltas."""

    id: str
    name: str


@dataclass(frozen=True, slots=True)
class ToolCallArgsDelta:
    """A fragment of a tool call's JSON arguments."""

    id: str
    delta: str


@dataclass(frozen=True, slots=True)
class ToolCallRequest:
    """A complete tool call as the model asked for it (arguments as raw JSON text)."""

    id: str
    name: str
    arguments: str


@dataclass(slots=True)
class Usage:
    """Tokens and, where litellm knows the price, cost in USD."""

    input_tokens: int = 0
    output_tokens: int = 0
    cost: float | None = None

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    def add(self, other: Usage) -> None:
        self.input_tokens += other.input_tokens
        self.output_tokens += other.output_tokens
        if other.cost is not None:
            self.cost = (self.cost or 0.0) + other.cost


@dataclass(frozen=True, slots=True)
class Completion:
    """The last part of every stream: the whole assistant turn."""

    text: str
    tool_calls: tuple[ToolCallRequest, ...] = ()
    finish_reason: str | None = None
    usage: Usage = field(default_factory=Usage)


StreamPart = TextDelta | ToolCallBegin | ToolCallArgsDelta | Completion


class Model(Protocol):
    """Anything that can stream one assistant turn for a conversation."""

    def stream(
        self,
        messages: list[dict[str, Any]],
        tools: list[dict[str, Any]],
        *,
        model: str,
        params: dict[str, Any],
    ) -> AsyncIterator[StreamPart]:
        """Yield text and tool-call parts, then one ``Completion``; raise ``ModelError``."""
        ...
