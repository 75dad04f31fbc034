"""Fair turns on a busy event loop: bulk work queues so timers and I/O are served.

Why: asyncio runs every callback that was ready when a loop iteration began
before it polls sockets or fires timers again. One step of a streaming run is
short (a fraction of a millisecond), but when 200 runs wake in the same
iteration their steps run back to back, and every other request of the Jupyter
server, every timer and every socket waits for all of them: 100+ ms.

``checkpoint()`` is a cooperative time slice shared by everything that calls it
on one loop. The first checkpoint in a loop turn opens a slice; callers go on
at once while it has budget left (``BUDGET``) and nobody is queued. Otherwise
they queue (FIFO, one future each: a queued caller costs nothing until its turn)
and the gate lets them in a batch per loop turn, first in line first, as many
as fit the budget at the unit cost it measured on earlier batches. A batch runs
at the start of a turn, ahead of that turn's I/O and timers, so queued work is
not starved by new arrivals, and the turn after it polls I/O and fires timers.
Units differ in cost (a model chunk ~0.1 ms, a provider call's set-up ~1 ms), so
the count is only an estimate: a caller let in after the slice is spent goes
back to the front of the queue, in order, and the turn still ends on time.

Call it where a task starts a unit of bulk work after waking up (a model chunk
arrived, an event is to be written), not after the work: only work that has not
run yet can be moved to a later turn.

When the loop is not busy a checkpoint costs a clock read and never waits; a
queued caller waits only behind those queued before it.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from weakref import WeakKeyDictionary

BUDGET = 0.002  # seconds of checkpointed work per loop turn
MAX_BATCH = 64  # queued callers let in per turn at most (the cost estimate can be low)

_clock = time.perf_counter
_last_opened = float("-inf")  # when any loop last opened a slice (collector.py reads it)


class _Gate:
    """One loop's slice and queue. ``opened`` is None until a checkpoint opens a slice."""

    __slots__ = ("batch", "cost", "loop", "opened", "returning", "scheduled", "units", "waiters")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.opened: float | None = None
        self.units = 0  # units let in since the slice opened
        self.batch = False  # a batch of queued callers is running (between _start and _turn)
        self.cost = BUDGET  # what one unit costs (seconds), learnt from batches
        self.scheduled = False  # _turn is pending
        self.waiters: deque[asyncio.Future[None]] = deque()
        self.returning: list[asyncio.Future[None]] = []  # let in too late: first next time

    def admit(self) -> bool:
        """Whether the caller may go on now (counted); if not, it is to queue."""
        now = opened = _clock()
        if self.opened is None:
            self._open(now, 0)
            self.schedule()
        else:
            opened = self.opened
        if (self.waiters and not self.batch) or now - opened >= BUDGET:
            return False
        self.units += 1
        return True

    def resume(self) -> bool:
        """A queued caller was let in: go on unless this batch's slice is spent (the first goes)."""
        if self.units and self.opened is not None and _clock() - self.opened >= BUDGET:
            return False
        self.units += 1
        return True

    def requeue(self) -> asyncio.Future[None]:
        """A place at the front of the queue for a caller let in too late, kept in order."""
        waiter = self.loop.create_future()
        self.returning.append(waiter)
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
        if self.returning:
            self.waiters.extendleft(reversed(self.returning))
            self.returning.clear()
        size = max(1, min(MAX_BATCH, int(BUDGET / max(self.cost, 1e-6))))
        chosen: list[asyncio.Future[None]] = []
        while self.waiters and len(chosen) < size:
            waiter = self.waiters.popleft()
            if not waiter.done():  # a cancelled caller has left the queue
                chosen.append(waiter)
        if chosen:
            # In the next turn, in this order: _start, the chosen callers, _turn again.
            self.loop.call_soon(self._start)
            for waiter in chosen:
                waiter.set_result(None)
            self.schedule()

    def _start(self) -> None:
        self._open(_clock(), 0)
        self.batch = True


_gates: WeakKeyDictionary[asyncio.AbstractEventLoop, _Gate] = WeakKeyDictionary()


def _gate() -> _Gate:
    loop = asyncio.get_running_loop()
    gate = _gates.get(loop)
    if gate is None:
        gate = _gates[loop] = _Gate(loop)
    return gate


def last_active() -> float:
    """When bulk work last checked in (``time.perf_counter``); -inf if never."""
    return _last_opened


async def checkpoint() -> None:
    """Return at once while this turn's slice has budget left, else in a later turn."""
    gate = _gate()
    if gate.admit():
        return
    waiter = gate.loop.create_future()
    gate.waiters.append(waiter)
    gate.schedule()
    await waiter
    while not gate.resume():
        await gate.requeue()
