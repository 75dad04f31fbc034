"""QuietCollector: full collections wait for a quiet loop (or MAX_DEFER), young ones do not.

Whether one is due is decided from CPython's own count and pacing's last activity, both
replaced here, so nothing depends on how much garbage the test process happens to make.
"""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator

import pytest

from agentspace.fairness import pacing
from agentspace.server import collector
from agentspace.server.collector import MAX_DEFER, QUIET, QuietCollector


@pytest.fixture
async def quiet() -> AsyncIterator[QuietCollector]:
    before = gc.get_threshold()
    started = QuietCollector()
    started.start()
    try:
        yield started
    finally:
        await started.stop()
        assert gc.get_threshold() == before


def pending(monkeypatch: pytest.MonkeyPatch, count: int) -> None:
    """CPython's count of young collections since the last full one (gc.get_count()[2])."""
    monkeypatch.setattr(collector.gc, "get_count", lambda: (0, 0, count))


async def test_only_full_collections_are_held(quiet: QuietCollector) -> None:
    first, second, third = gc.get_threshold()
    assert third > 100_000  # CPython never starts a full collection by itself
    await quiet.stop()
    assert gc.get_threshold()[:2] == (first, second)  # young ones stay automatic
    assert gc.get_threshold()[2] < 100_000


async def test_nothing_is_due_before_cpython_would_collect(
    quiet: QuietCollector, monkeypatch: pytest.MonkeyPatch
) -> None:
    pending(monkeypatch, 0)
    monkeypatch.setattr(pacing, "last_active", lambda: float("-inf"))
    assert not quiet.due(quiet.since + MAX_DEFER * 10)


async def test_a_due_collection_waits_for_a_quiet_loop(
    quiet: QuietCollector, monkeypatch: pytest.MonkeyPatch
) -> None:
    pending(monkeypatch, 10_000)
    now = quiet.since + 1.0
    monkeypatch.setattr(pacing, "last_active", lambda: now - QUIET / 2)  # a run is streaming
    assert not quiet.due(now)
    monkeypatch.setattr(pacing, "last_active", lambda: now - QUIET)  # nothing for QUIET s
    assert quiet.due(now)


async def test_a_busy_loop_still_collects_after_max_defer(
    quiet: QuietCollector, monkeypatch: pytest.MonkeyPatch
) -> None:
    pending(monkeypatch, 10_000)
    now = quiet.since + MAX_DEFER
    monkeypatch.setattr(pacing, "last_active", lambda: now)  # busy right now
    assert quiet.due(now)
    quiet.collect(now)
    assert quiet.collections == 1 and quiet.since == now
    monkeypatch.setattr(pacing, "last_active", lambda: now + 1.0)  # still busy
    assert not quiet.due(now + 1.0)  # MAX_DEFER counts from the last collection


async def test_stopped_collector_never_collects(monkeypatch: pytest.MonkeyPatch) -> None:
    pending(monkeypatch, 10_000)
    idle = QuietCollector()
    assert not idle.due(MAX_DEFER * 10)
    await idle.stop()  # stopping one that never started is harmless
