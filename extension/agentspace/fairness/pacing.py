"""Fair turns on a busy event loop: bulk work queues so timers and I/O are served.

Why: asyncio runs every callback that was ready when a loop iteration began
before it polls sockets or fires timers again. One step of a streaming run is
short, but when 200 runs wake in the same iteration their steps run back to
back, and every other request of the Jupyter server, every timer and every socket
waits for all of them: a long stall (bench/RESULTS.md, server section: the burst).

``checkpoint()`` is a cooperative time slice shared by everything that calls it
on one loop. The first checkpoint in a loop turn opens a slice; callers go on
at once while it has budget left (``BUDGET``) and nobody is queued. Otherwise
they queue (FIFO, one future each: a queued caller costs nothing until its turn)
and the gate lets them in a batch per loop turn, first in line first, as many
as fit the budget at the unit cost it measured on earlier batches. A batch runs
at the start of a turn, ahead of that turn's I/O and timers, so queued work is
not starved by new arrivals, and the turn after it polls I/O and fires timers.
Units differ in cost (a provider call's set-up costs many model chunks), so
the count is only an estimate: a caller let in after the slice is spent goes
back to the front of the queue, in order, and the turn still ends on time.

Call it where a task starts a unit of bulk work after waking up (a model chunk
arrived, an event is to be written), not after the work: only work that has not
run yet can be moved to a later turn.

Two lanes: a request (an HTTP handler answering someone, marked with
``requests_first()`` in its task) is let in before queued bulk work, so a POST
into a server that is streaming runs is not queued behind their chunks; each
batch still lets in at least one bulk caller, so a flood of requests cannot
starve the runs. Both lanes share one budget per turn.

When the loop is not busy a checkpoint costs a clock read and never waits; a
queued caller waits only behind those queued before it in its lane.
"""

from __future__ import annotations

import asyncio
import contextvars
import time
from collections import deque
from weakref import WeakKeyDictionary

BUDGET = 0.002  # seconds of checkpointed work per loop turn
MAX_BATCH = 64  # queued callers let in per turn at most (the cost estimate can be low)

_clock = time.perf_counter
_last_opened = float("-inf")  # when any loop last opened a slice (server/collector.py reads it)
# Whether this task's checkpoints are a request's (first lane) or bulk work's.
_request: contextvars.ContextVar[bool] = contextvars.ContextVar("agentspace_request", default=False)

Waiter = asyncio.Future[None]


class _Gate:
    """One loop's slice and queues. ``opened`` is None until a checkpoint opens a slice."""

    __slots__ = (
        "batch",
        "bulk",
        "cost",
        "loop",
        "opened",
        "requests",
        "returning",
        "scheduled",
        "units",
    )

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.opened: float | None = None
        self.units = 0  # units let in since the slice opened
        self.batch = False  # a batch of queued callers is running (between _start and _turn)
        self.cost = BUDGET  # what one unit costs (seconds), learnt from batches
        self.scheduled = False  # _turn is pending
        self.requests: deque[Waiter] = deque()  # the first lane
        self.bulk: deque[Waiter] = deque()
        self.returning: list[tuple[bool, Waiter]] = []  # let in too late: first next time

    @property
    def waiters(self) -> int:
        return len(self.requests) + len(self.bulk)

    def admit(self, request: bool) -> bool:
        """Whether the caller may go on now (counted); if not, it is to queue."""
        now = opened = _clock()
        if self.opened is None:
            self._open(now, 0)
            self.schedule()
        else:
            opened = self.opened
        ahead = self.requests if request else (self.requests or self.bulk)
        if (ahead and not self.batch) or now - opened >= BUDGET:
            return False
        self.units += 1
        return True

    def queue(self, request: bool) -> Waiter:
        waiter = self.loop.create_future()
        (self.requests if request else self.bulk).append(waiter)
        self.schedule()
        return waiter

    def resume(self) -> bool:
        """A queued caller was let in: go on unless this batch's slice is spent (the first goes)."""
        if self.units and self.opened is not None and _clock() - self.opened >= BUDGET:
            return False
        self.units += 1
        return True

    def requeue(self, request: bool) -> Waiter:
        """A place at the front of its lane for a caller let in too late, kept in order."""
        waiter = self.loop.create_future()
        self.returning.append((request, waiter))
        return waiter

    def _open(self, now: float, units: int) -> None:
        global _last_opened
        self.opened = _last_opened = now
        self.units = units

    def schedule(self) -> None:
        if not self.scheduled:
            self.scheduled = True
            self.loop.call_soon(self._turn)

    def _turn(self) -> None:
        """The loop came around: close the slice, learn from the batch, let the next one in."""
        self.scheduled = False
        now = _clock()
        if self.batch and self.opened is not None and self.units:
            self.cost = (self.cost + (now - self.opened) / self.units) / 2
        self.batch = False
        self.opened = None
        for request, waiter in reversed(self.returning):
            (self.requests if request else self.bulk).appendleft(waiter)
        self.returning.clear()
        size = max(1, min(MAX_BATCH, int(BUDGET / max(self.cost, 1e-6))))
        chosen = _take(self.requests, size - 1 if self.bulk else size)
        chosen += _take(self.bulk, size - len(chosen))
        if chosen:
            # In the next turn, in this order: _start, the chosen callers, _turn again.
            self.loop.call_soon(self._start)
            for waiter in chosen:
                waiter.set_result(None)
            self.schedule()

    def _start(self) -> None:
        self._open(_clock(), 0)
        self.batch = True


def _take(lane: deque[Waiter], count: int) -> list[Waiter]:
    """Up to ``count`` live waiters from the front of a lane (a cancelled caller has left)."""
    chosen: list[Waiter] = []
    while lane and len(chosen) < count:
        waiter = lane.popleft()
        if not waiter.done():
            chosen.append(waiter)
    return chosen


_gates: WeakKeyDictionary[asyncio.AbstractEventLoop, _Gate] = WeakKeyDictionary()
_last: _Gate | None = None  # the gate looked up last: nearly always the one asked for again


def _gate() -> _Gate:
    global _last
    loop = asyncio.get_running_loop()
    gate = _last
    if gate is not None and gate.loop is loop:
        return gate
    gate = _gates.get(loop)
    if gate is None:
        gate = _gates[loop] = _Gate(loop)
    _last = gate
    return gate


def last_active() -> float:
    """When bulk work last checked in (``time.perf_counter``); -inf if never."""
    return _last_opened


def requests_first(first: bool = True) -> None:
    """Mark the current task as answering a request: its checkpoints take the first lane.

    Tasks it creates inherit the mark (contextvars): one that goes on to do bulk work
    (a run, an event stream) calls ``requests_first(False)``.
    """
    _request.set(first)


async def checkpoint() -> None:
    """Return at once while this turn's slice has budget left, else in a later turn."""
    gate = _gate()
    request = _request.get()
    if gate.admit(request):
        return
    await gate.queue(request)
    while not gate.resume():
        await gate.requeue(request)
