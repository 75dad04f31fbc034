"""pacing.checkpoint: bulk work shares the loop once a slice is spent, and only then.

The clock is pacing's seam: a fake one (conftest ``clock``) that moves only when a test
says the work took time, so what is asserted is the order things ran in, never how long
they took.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from agentspace.fairness import pacing
from agentspace.fairness.pacing import BUDGET, _gate, checkpoint

from .conftest import Clock


async def test_checkpoints_do_not_yield_while_the_slice_has_budget(clock: Clock) -> None:
    ran: list[str] = []
    asyncio.get_running_loop().call_soon(ran.append, "other callback")
    for _ in range(1000):  # no time passes: however many checkpoints, the slice is not spent
        await checkpoint()
    assert ran == []  # the loop never came around
    await asyncio.sleep(0)
    assert ran == ["other callback"]


UNIT = BUDGET * 0.75  # what one unit of work costs (on the fake clock)


async def test_a_timer_runs_while_producers_that_never_wait_are_busy(clock: Clock) -> None:
    done: list[str] = []

    async def producer(name: str) -> None:
        for i in range(20):
            await checkpoint()  # the only await: without the gate nothing else would run
            clock.now += UNIT
            done.append(f"{name}{i}")

    timer_saw: list[int] = []
    asyncio.get_running_loop().call_later(0, lambda: timer_saw.append(len(done)))
    await asyncio.gather(producer("a"), producer("b"))
    assert len(done) == 40
    assert timer_saw and timer_saw[0] <= 2  # it fired once the first slice was spent


async def test_many_runs_waking_together_share_loop_turns(clock: Clock) -> None:
    """200 runs whose chunks arrive in the same loop turn: each turn holds about a slice."""
    loop = asyncio.get_running_loop()
    per_turn: list[float] = []
    finished = False

    def tick(last: float) -> None:  # once a loop turn: how much work the previous turn did
        per_turn.append(clock.now - last)
        if not finished:
            loop.call_soon(tick, clock.now)

    async def run() -> None:
        for _ in range(5):
            await checkpoint()  # a chunk arrived: its work is to be done
            clock.now += UNIT
            await asyncio.sleep(0)  # stands for waiting for the next chunk

    loop.call_soon(tick, clock.now)
    await asyncio.gather(*(run() for _ in range(200)))
    finished = True
    await asyncio.sleep(0)
    assert max(per_turn) <= BUDGET + UNIT  # without the gate: 200 units in one turn
    assert sum(per_turn) == pytest.approx(1000 * UNIT)


async def test_a_turn_holds_a_slice_when_units_turn_dear(clock: Clock) -> None:
    """Cheap units teach the gate a large batch; dear ones after them still share turns.

    (Chunks cost ~0.1 ms, a provider call's set-up ~1 ms: a count learnt on the first
    would let 40 of the second into one turn without the re-queue.)
    """
    loop = asyncio.get_running_loop()
    per_turn: list[float] = []
    finished = False

    def tick(last: float) -> None:
        per_turn.append(clock.now - last)
        if not finished:
            loop.call_soon(tick, clock.now)

    async def run() -> None:
        for cost in (BUDGET / 50, BUDGET / 50, BUDGET / 2, BUDGET / 50):
            await checkpoint()
            clock.now += cost
            await asyncio.sleep(0)

    loop.call_soon(tick, clock.now)
    await asyncio.gather(*(run() for _ in range(200)))
    finished = True
    await asyncio.sleep(0)
    assert max(per_turn) <= BUDGET + BUDGET / 2  # at most one unit past the slice
    assert sum(per_turn) == pytest.approx(200 * (3 * BUDGET / 50 + BUDGET / 2))


async def test_a_lone_queued_caller_gets_in_two_loop_turns_later(clock: Clock) -> None:
    clock.step = 1.0  # every reading is a second later: each slice is spent at once
    loop = asyncio.get_running_loop()
    turns = 0
    stop = False

    def tick() -> None:
        nonlocal turns
        turns += 1
        if not stop:
            loop.call_soon(tick)

    loop.call_soon(tick)
    for _ in range(10):
        before = turns
        await checkpoint()
        assert turns - before <= 2  # the turn that lets it in, and the one it runs in
    stop = True


async def hog(clock: Clock) -> None:
    """Spend this turn's slice (the tasks created after it in the same turn then queue)."""
    await checkpoint()
    clock.now += BUDGET * 1.5  # past it: 1000.0 + BUDGET - 1000.0 may round below BUDGET


async def test_queued_callers_get_in_first_come_first_served(clock: Clock) -> None:
    order: list[int] = []
    queued: list[int] = []

    async def caller(i: int) -> None:
        await checkpoint()
        order.append(i)
        clock.now += BUDGET / 2

    spent = asyncio.create_task(hog(clock))
    first = [asyncio.create_task(caller(i)) for i in range(10)]
    await asyncio.sleep(0)  # the hog ran, then all ten queued behind it
    queued.append(_gate().waiters)
    late = asyncio.create_task(caller(10))
    await asyncio.gather(spent, *first, late)
    assert queued == [10]
    assert order == list(range(11))


async def test_a_cancelled_caller_leaves_the_queue(clock: Clock) -> None:
    spent = asyncio.create_task(hog(clock))
    gone = asyncio.create_task(checkpoint())
    stays = asyncio.create_task(checkpoint())
    await asyncio.sleep(0)
    assert _gate().waiters == 2
    gone.cancel()
    await asyncio.gather(spent, stays)  # not stuck behind the cancelled one
    assert gone.cancelled()


async def test_last_active_is_when_a_slice_last_opened(clock: Clock) -> None:
    await asyncio.sleep(0)  # a slice another test left open is closed by now
    await checkpoint()
    assert pacing.last_active() == clock.now


def lane_caller(clock: Clock, order: list[str], cost: float) -> Callable[..., Awaitable[None]]:
    """A caller in a lane that records when it got in and then works ``cost`` seconds."""

    async def caller(name: str, request: bool) -> None:
        pacing.requests_first(request)
        await checkpoint()
        order.append(name)
        clock.now += cost

    return caller


async def test_a_request_goes_ahead_of_queued_bulk_work(clock: Clock) -> None:
    order: list[str] = []
    caller = lane_caller(clock, order, BUDGET / 4)
    spent = asyncio.create_task(hog(clock))
    bulk = [asyncio.create_task(caller(f"bulk{i}", False)) for i in range(6)]
    await asyncio.sleep(0)  # the hog spent the slice; the bulk callers queued
    request = asyncio.create_task(caller("request", True))
    await asyncio.gather(spent, *bulk, request)
    assert order[0] == "request"
    assert order[1:] == [f"bulk{i}" for i in range(6)]


async def test_bulk_work_gets_in_while_requests_keep_coming(clock: Clock) -> None:
    order: list[str] = []
    caller = lane_caller(clock, order, BUDGET)  # each unit spends a slice: one a turn
    spent = asyncio.create_task(hog(clock))
    bulk = asyncio.create_task(caller("bulk", False))
    requests = [asyncio.create_task(caller(f"r{i}", True)) for i in range(20)]
    await asyncio.gather(spent, bulk, *requests)
    assert order.index("bulk") <= 1  # in the first batch, not after all 20 requests


async def test_a_task_started_by_a_request_can_go_back_to_bulk() -> None:
    pacing.requests_first()

    async def run() -> bool:
        pacing.requests_first(False)
        return pacing._request.get()

    assert await asyncio.create_task(run()) is False
    assert pacing._request.get() is True  # the request's own task keeps its lane
