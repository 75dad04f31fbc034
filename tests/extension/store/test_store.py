"""The store and the event log: group commit, ordering, replay seams, lagging subscribers."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest
from ag_ui.core import TextMessageContentEvent

from agentspace.store import eventlog
from agentspace.store.database import Store
from agentspace.store.eventlog import EventLog


def delta(i: int) -> TextMessageContentEvent:
    return TextMessageContentEvent(message_id="m", delta=f"d{i}")


async def test_appends_are_durable_before_published(tmp_path: Path) -> None:
    store = await Store.open(tmp_path / "db.sqlite")
    log = EventLog(store, "s1", 0)
    seen: list[int] = []

    async def watch() -> None:
        async for e in log.subscribe(0):
            # when a subscriber sees an event, another connection can read it
            with sqlite3.connect(tmp_path / "db.sqlite") as conn:
                (count,) = conn.execute(
                    "SELECT COUNT(*) FROM events WHERE seq = ?", (e.seq,)
                ).fetchone()
            assert count == 1
            seen.append(e.seq)
            if e.seq == 50:
                return

    task = asyncio.create_task(watch())
    for i in range(50):
        log.append(delta(i))
        if i % 7 == 0:
            await asyncio.sleep(0)
    await task
    assert seen == list(range(1, 51))
    await store.close()


async def test_sessions_write_concurrently_without_mixing(tmp_path: Path) -> None:
    store = await Store.open(tmp_path / "db.sqlite")
    logs = [EventLog(store, f"s{i}", 0) for i in range(20)]

    async def produce(log: EventLog) -> None:
        for i in range(200):
            log.append(delta(i))
            if i % 10 == 0:
                await asyncio.sleep(0)

    await asyncio.gather(*(produce(log) for log in logs))
    await store.flush()
    for log in logs:
        events = await log.read(0, limit=1000)
        assert [e.seq for e in events] == list(range(1, 201))
        assert [e.event.delta for e in events] == [f"d{i}" for i in range(200)]  # type: ignore[attr-defined]
    await store.close()
    # reopening sees everything: nothing was lost at close
    store = await Store.open(tmp_path / "db.sqlite")
    rows = await store.query("SELECT COUNT(*) FROM events")
    assert rows == [(4000,)]
    await store.close()


@pytest.mark.parametrize("after", [0, 10, 99, 150])
async def test_replay_then_live_has_no_gap_or_duplicate(tmp_path: Path, after: int) -> None:
    store = await Store.open(tmp_path / "db.sqlite")
    log = EventLog(store, "s", 0)
    for i in range(100):
        log.append(delta(i))
    # subscribe while the first 100 are still being committed, then keep appending
    got: list[int] = []

    async def watch() -> None:
        async for e in log.subscribe(after):
            got.append(e.seq)
            if e.seq == 200:
                return

    task = asyncio.create_task(watch())
    for i in range(100, 200):
        log.append(delta(i))
        await asyncio.sleep(0)
    await task
    assert got == list(range(after + 1, 201))
    await store.close()


async def test_a_lagging_subscriber_catches_up_from_the_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(eventlog, "MAX_BUFFER", 10)
    store = await Store.open(tmp_path / "db.sqlite")
    log = EventLog(store, "s", 0)
    stream = log.subscribe(0)
    log.append(delta(0))
    first = await anext(stream)
    assert first.seq == 1
    for i in range(1, 500):  # far more than the buffer while the subscriber is not reading
        log.append(delta(i))
    await store.flush()
    rest = [(await anext(stream)).seq for _ in range(499)]
    assert rest == list(range(2, 501))
    await stream.aclose()
    assert log.subscriber_count == 0
    await store.close()


async def test_a_failed_commit_is_reported_to_flush(tmp_path: Path) -> None:
    store = await Store.open(tmp_path / "db.sqlite")
    store.write("INSERT INTO no_such_table VALUES (1)")
    from agentspace.errors import StoreError

    with pytest.raises(StoreError, match="no_such_table"):
        await store.flush()
    store.write("INSERT INTO inbox (session_id, message_id, text, created) VALUES ('s','m','t',0)")
    await store.flush()  # the store keeps working after a failed batch
    await store.close()
