"""Bound what litellm's stream wrapper keeps per chunk.

Why: litellm's ``CustomStreamWrapper`` appends every chunk it yields (a pydantic
``ModelResponseStream``) to ``wrapper.chunks``, so that at the end of the stream
``stream_chunk_builder`` can rebuild the whole response for its logging callbacks
and its final usage chunk. A long answer kept memory in proportion to its length
alive until the call ended (bench/RESULTS.md, issue 10, models; bench/engine.py),
and what was freed after it depended on the allocator. We assemble the answer
ourselves (``assembler.py``); litellm needs only the first chunk (id, role), the
last few (its repetition check, the served tier), and the ones that carry usage,
a finish reason or no choices (usage-only chunks: the provider's numbers that its
final usage is built from).

``TailChunks`` is a ``list`` that keeps those and drops older content chunks in
batches, so every use litellm makes of the list (append, ``[-1]``, ``reversed``,
iteration) still works. What litellm then rebuilds at the end (its logging's
copy of the text) covers the kept chunks only; its usage comes from the kept
usage chunks. A provider that reports no usage gets litellm's estimate over the
kept chunks only; every provider we support reports usage when asked.
"""

from __future__ import annotations

from typing import Any

KEEP_TAIL = 256  # content chunks kept at the end of the list
_SLACK = 1024  # content chunks dropped at once (amortised O(1) per append)


def _vital(chunk: Any) -> bool:
    """A chunk litellm's end-of-stream usage or finish handling needs."""
    if getattr(chunk, "usage", None) is not None:
        return True
    choices = getattr(chunk, "choices", None)
    if not choices:
        return True
    return any(getattr(choice, "finish_reason", None) is not None for choice in choices)


class TailChunks(list[Any]):
    """The wrapper's chunk list, holding the vital chunks and the newest ``KEEP_TAIL``."""

    __slots__ = ("dropped",)

    def __init__(self, chunks: list[Any] | None = None) -> None:
        super().__init__(chunks or ())
        self.dropped = 0  # content chunks let go (tests, benchmarks)

    def append(self, chunk: Any) -> None:
        super().append(chunk)
        if len(self) > KEEP_TAIL + _SLACK + 1:
            self._trim()

    def _trim(self) -> None:
        cut = len(self) - KEEP_TAIL
        kept = [self[0]] + [c for c in self[1:cut] if _vital(c)]
        self.dropped += cut - len(kept)
        self[:cut] = kept


def bound_chunks(response: Any) -> None:
    """Swap litellm's per-stream chunk list for a ``TailChunks`` (before it streams)."""
    chunks = getattr(response, "chunks", None)
    if type(chunks) is list:
        response.chunks = TailChunks(chunks)
