"""Run a model's stream on a dedicated event-loop thread, off the server's loop.

litellm spends ~75 µs of pure Python per streamed chunk. With hundreds of runs
at once on the server's event loop, those callbacks queue up and the loop
stalls for 100 ms and more: every other request (kernels, contents, SSE) waits.
On its own thread the same work shares the GIL at the interpreter's switch
interval (5 ms), so the server's loop keeps answering. Parts cross over in
batches (one wake-up of the server's loop per batch, not per chunk).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from typing import Any

from .base import Model, StreamPart

_END = object()
_lock = threading.Lock()
_loop: asyncio.AbstractEventLoop | None = None


def background_loop() -> asyncio.AbstractEventLoop:
    """The shared model thread's loop (started on first use; a daemon thread)."""
    global _loop
    with _lock:
        if _loop is None or _loop.is_closed():
            loop = asyncio.new_event_loop()
            thread = threading.Thread(
                target=loop.run_forever, name="agentspace-models", daemon=True
            )
            thread.start()
            _loop = loop
        return _loop


class _Error:
    __slots__ = ("exc",)

    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


class _Mailbox:
    """Parts from the model thread to the consumer's loop, batched per wake-up."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.queue: asyncio.Queue[Any] = asyncio.Queue()
        self._buffer: list[Any] = []
        self._scheduled = False
        self._lock = threading.Lock()

    def put(self, item: Any) -> None:  # model thread
        with self._lock:
            self._buffer.append(item)
            if self._scheduled:
                return
            self._scheduled = True
        try:
            self.loop.call_soon_threadsafe(self._flush)
        except RuntimeError:  # the consumer's loop is gone
            pass

    def _flush(self) -> None:  # consumer's loop
        with self._lock:
            items, self._buffer = self._buffer, []
            self._scheduled = False
        for item in items:
            self.queue.put_nowait(item)


class OffLoopModel:
    """A ``Model`` that runs ``inner``'s streams on the model thread."""

    def __init__(self, inner: Model) -> None:
        self.inner = inner

    async def stream(
        self,
        messages: list[dict[str, Any]],
        tools: list[dict[str, Any]],
        *,
        model: str,
        params: dict[str, Any],
    ) -> AsyncIterator[StreamPart]:
        box = _Mailbox(asyncio.get_running_loop())

        async def produce() -> None:
            try:
                async for part in self.inner.stream(messages, tools, model=model, params=params):
                    box.put(part)
            except asyncio.CancelledError:
                raise
            except BaseException as exc:  # delivered to the consumer, raised there
                box.put(_Error(exc))
            else:
                box.put(_END)

        future = asyncio.run_coroutine_threadsafe(produce(), background_loop())
        try:
            while True:
                item = await box.queue.get()
                if item is _END:
                    return
                if isinstance(item, _Error):
                    raise item.exc
                yield item
        finally:
            future.cancel()  # stop: the provider call is cancelled in its own thread
