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
    """Tokens and, where litellm knows the price, cost in USD (``None``: price unknown).

    An unknown price is never counted as free: a total over several calls is the sum
    of the priced ones, ``unpriced_calls`` says how many had no price, and the total's
    cost is ``None`` when calls were made and none of them was priced.
    """

    input_tokens: int = 0
    output_tokens: int = 0
    cost: float | None = None
    unpriced_calls: int = 0

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    def add(self, call: Usage) -> None:
        """Add one model call's usage."""
        self.input_tokens += call.input_tokens
        self.output_tokens += call.output_tokens
        if call.cost is None:
            self.unpriced_calls += 1
        else:
            self.cost = (self.cost or 0.0) + call.cost

    @property
    def total_cost(self) -> float | None:
        """USD of the priced calls; 0 before any call; ``None`` when no call was priced."""
        if self.cost is None and not self.unpriced_calls:
            return 0.0
        return self.cost


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
