"""The agent loop: one background thread with its own asyncio loop, made on first use.

Why a thread of its own, and not the kernel's loop: line magics (``%agent ps``)
are synchronous and must block for an answer, which would deadlock on the
kernel's own loop; a long synchronous cell (a pandas job) must not freeze an
embedded engine's runs and sandboxes; and the same client code then serves
both the blocking magics and the async ``%%agent`` cells. The kernel's loop
only ever waits on futures from here (``bridge``, ``relay``), so widget updates
still happen on the kernel's main thread, inside the right cell.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

_lock = threading.Lock()
_loop: asyncio.AbstractEventLoop | None = None
_closers: list[Callable[[], Awaitable[None]]] = []


def agent_loop() -> asyncio.AbstractEventLoop:
    """The agent thread's loop, started the first time it is asked for."""
    global _loop
    with _lock:
        if _loop is None:
            ready = threading.Event()
            loop = asyncio.new_event_loop()

            def main() -> None:
                asyncio.set_event_loop(loop)
                loop.call_soon(ready.set)
                loop.run_forever()

            threading.Thread(target=main, name="agentspace-loop", daemon=True).start()
            ready.wait()
            _loop = loop
            atexit.register(shutdown)
        return _loop


def on_shutdown(closer: Callable[[], Awaitable[None]]) -> None:
    """Run ``closer`` on the agent loop when the kernel exits (engine close, HTTP close)."""
    _closers.append(closer)


def submit(coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
    return asyncio.run_coroutine_threadsafe(coro, agent_loop())


def call(coro: Coroutine[Any, Any, T], timeout: float | None = 60.0) -> T:
    """Run ``coro`` on the agent loop and wait for it (for synchronous magics)."""
    return submit(coro).result(timeout)


async def bridge(coro: Coroutine[Any, Any, T]) -> T:
    """Await ``coro`` from another loop (the kernel's), running it on the agent loop."""
    future = submit(coro)
    try:
        return await asyncio.wrap_future(future)
    except asyncio.CancelledError:
        future.cancel()
        raise


async def relay(source: AsyncIterator[T], buffer: int = 0) -> AsyncIterator[list[T]]:
    """Iterate ``source`` on the agent loop; yield what has arrived, in batches, here.

    Batches, because a consumer that renders (a widget) should draw once for
    everything that came while it was drawing, not once per token.
    """
    here = asyncio.get_running_loop()
    items: list[T] = []
    wake = asyncio.Event()
    done: list[BaseException | None] = []

    def put(item: T) -> None:
        items.append(item)
        wake.set()

    def finish(error: BaseException | None) -> None:
        done.append(error)
        wake.set()

    async def pump() -> None:
        try:
            async for item in source:
                here.call_soon_threadsafe(put, item)
        except BaseException as exc:  # forwarded to the consumer, who decides
            here.call_soon_threadsafe(finish, exc)
            if not isinstance(exc, Exception):
                raise
        else:
            here.call_soon_threadsafe(finish, None)

    future = submit(pump())
    try:
        while True:
            await wake.wait()
            wake.clear()
            if items:
                batch, items = items, []
                yield batch
            if done and not items:
                if done[0] is not None and not isinstance(done[0], asyncio.CancelledError):
                    raise done[0]
                return
    finally:
        future.cancel()


def shutdown() -> None:
    """Close what registered with ``on_shutdown`` (bounded), then stop the thread."""
    global _loop
    loop = _loop
    if loop is None or not loop.is_running():
        return

    async def close_all() -> None:
        for closer in reversed(_closers):
            try:
                await asyncio.wait_for(closer(), 10)
            except Exception:
                pass

    try:
        asyncio.run_coroutine_threadsafe(close_all(), loop).result(15)
    except Exception:
        pass
    loop.call_soon_threadsafe(loop.stop)
    _loop = None
