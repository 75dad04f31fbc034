"""One session's event log: sequence numbers, durable appends, replay-then-live fan-out.

The contract (AG-UI clients reconnect with ``after=<seq>``): ``subscribe(after=N)``
yields every committed event after N, then live ones, with no gap and no
duplicate at the seam, for any number of subscribers. How:

* ``append`` assigns the next sequence number and queues the row; the event is
  published to subscribers only from the store's after-commit callback, so
  nobody ever sees an event a crash could lose.
* A subscriber registers its buffer *before* it reads the backlog from the
  store. Anything committed after registration reaches the buffer; anything
  before is in the read. The overlap is dropped by sequence number.
* A subscriber that falls more than ``MAX_BUFFER`` events behind is marked
  lagged and catches up from the store instead of holding memory without bound.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections import deque
from collections.abc import AsyncIterator
from functools import partial

from ag_ui.core import BaseEvent

from agentspace.events import StoredEvent, encode, now_ms
from agentspace.fairness.pacing import checkpoint
from agentspace.store.database import Store

PAGE = 2000
MAX_BUFFER = 10_000
INSERT = "INSERT INTO events (session_id, seq, type, data) VALUES (?, ?, ?, ?)"


class _Subscriber:
    __slots__ = ("buffer", "lagged", "waiter")

    def __init__(self) -> None:
        self.buffer: deque[StoredEvent] = deque()
        self.lagged = False
        self.waiter: asyncio.Future[None] | None = None

    def push(self, event: StoredEvent) -> None:
        if len(self.buffer) >= MAX_BUFFER:
            self.buffer.clear()
            self.lagged = True
        else:
            self.buffer.append(event)
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)


def _read_after(
    session_id: str, after: int, limit: int, conn: sqlite3.Connection
) -> list[StoredEvent]:
    rows = conn.execute(
        "SELECT seq, type, data FROM events WHERE session_id = ? AND seq > ? ORDER BY seq LIMIT ?",
        (session_id, after, limit),
    ).fetchall()
    return [StoredEvent(seq, type_, data) for seq, type_, data in rows]


class EventLog:
    """Appends and subscriptions for one session. ``last_seq`` is the newest assigned."""

    __slots__ = ("_subscribers", "last_seq", "session_id", "store")

    def __init__(self, store: Store, session_id: str, last_seq: int) -> None:
        self.store = store
        self.session_id = session_id
        self.last_seq = last_seq
        self._subscribers: set[_Subscriber] = set()

    def append(self, event: BaseEvent) -> StoredEvent:
        """Give ``event`` the next sequence number and queue it; it is published on commit."""
        if event.timestamp is None:
            event.timestamp = now_ms()
        self.last_seq += 1
        stored = StoredEvent(self.last_seq, event.type.value, encode(event))
        self.store.write(INSERT, (self.session_id, stored.seq, stored.type, stored.data))
        self.store.after_commit(partial(self._publish, stored))
        return stored

    def committed(self, event: StoredEvent) -> None:
        """An event another writer committed (a decision taken in a transaction): publish it."""
        self.last_seq = max(self.last_seq, event.seq)
        self._publish(event)

    def _publish(self, event: StoredEvent) -> None:
        for subscriber in self._subscribers:
            subscriber.push(event)

    @property
    def subscriber_count(self) -> int:
        return len(self._subscribers)

    async def read(self, after: int = 0, limit: int = PAGE) -> list[StoredEvent]:
        """Committed events after ``after`` (one page)."""
        return await self.store.read(partial(_read_after, self.session_id, after, limit))

    async def stored(self, after: int = 0) -> AsyncIterator[StoredEvent]:
        """Every committed event after ``after``, page by page, then stop (no live part)."""
        while page := await self.read(after):
            for event in page:
                yield event
            after = page[-1].seq

    async def subscribe(self, after: int = 0) -> AsyncIterator[StoredEvent]:
        """Every committed event after ``after``, then live ones; runs until closed."""
        subscriber = _Subscriber()
        self._subscribers.add(subscriber)
        last = after
        try:
            while True:
                # Catch up from the store (first time, after lagging, or on a gap).
                while True:
                    page = await self.read(last)
                    for event in page:
                        yield event
                        last = event.seq
                    if len(page) < PAGE:
                        break
                subscriber.lagged = False
                while not subscriber.lagged:
                    buffer = subscriber.buffer
                    while buffer and not subscriber.lagged:
                        event = buffer.popleft()
                        if event.seq <= last:
                            continue
                        if event.seq != last + 1:
                            subscriber.lagged = True  # a gap: re-read from the store
                            break
                        yield event
                        last = event.seq
                    if subscriber.lagged:
                        break
                    subscriber.waiter = asyncio.get_running_loop().create_future()
                    try:
                        await subscriber.waiter
                    finally:
                        subscriber.waiter = None
                    await (
                        checkpoint()
                    )  # delivering is bulk work: share the loop (fairness/pacing.py)
                subscriber.buffer.clear()
        finally:
            self._subscribers.discard(subscriber)
