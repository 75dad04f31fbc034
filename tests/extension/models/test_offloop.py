"""OffLoopModel: same parts, same errors, cancellation reaches the model thread."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from agentspace.errors import RateLimitError
from agentspace.models.base import Completion, TextDelta
from agentspace.models.offloop import OffLoopModel


class Inner:
    def __init__(self, n: int, fail: bool = False, hang: bool = False) -> None:
        self.n, self.fail, self.hang = n, fail, hang
        self.threads: set[str] = set()
        self.cancelled = threading.Event()
        self.waiting = threading.Event()

    async def stream(self, messages: Any, tools: Any, **kw: Any) -> Any:
        self.threads.add(threading.current_thread().name)
        try:
            for i in range(self.n):
                yield TextDelta(f"w{i} ")
                await asyncio.sleep(0)
            if self.fail:
                raise RateLimitError("slow down")
            if self.hang:
                self.waiting.set()
                await asyncio.Event().wait()
            yield Completion(text="done")
        except asyncio.CancelledError:
            self.cancelled.set()
            raise


async def parts(model: OffLoopModel) -> list[Any]:
    return [p async for p in model.stream([], [], model="m", params={})]


async def test_parts_arrive_in_order_from_the_model_thread() -> None:
    inner = Inner(5000)
    got = await parts(OffLoopModel(inner))
    assert [p.text for p in got[:-1]] == [f"w{i} " for i in range(5000)]
    assert isinstance(got[-1], Completion)
    assert inner.threads == {"agentspace-models"}


async def test_errors_cross_over() -> None:
    with pytest.raises(RateLimitError, match="slow down"):
        await parts(OffLoopModel(Inner(3, fail=True)))


async def test_cancelling_the_consumer_cancels_the_provider_call() -> None:
    inner = Inner(1, hang=True)
    task = asyncio.create_task(parts(OffLoopModel(inner)))
    assert await asyncio.to_thread(inner.waiting.wait, 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await asyncio.to_thread(inner.cancelled.wait, 2)
