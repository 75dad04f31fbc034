"""Full garbage collections at quiet moments, not in the middle of a burst of runs.

Why: a full (generation 2) collection walks every tracked object that is not
frozen in one call that holds the GIL. With 200 sessions streaming that is a
long pause (bench/RESULTS.md, server section: full GC pauses inside the burst)
during which the event loop, the whole Jupyter server, stands still; and the
runs' own allocations are what make CPython start one, so it lands in the
busiest moment. Young collections (generations 0 and 1)
stay short and are left alone.

How: ``QuietCollector`` raises CPython's threshold for full collections so they
never start on their own, and looks once a ``TICK``: when one is due (CPython's
own count, ``gc.get_count()[2]``, past the old threshold) and no pacing
checkpoint ran for ``QUIET`` seconds (no run is streaming), it collects; if the
loop stays busy it still collects once ``MAX_DEFER`` seconds have passed, so
memory held by reference cycles stays bounded. For servers: a process that does
one thing at a time gains nothing from it.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import time

from agentspace.fairness import pacing

TICK = 0.25
QUIET = 0.5
MAX_DEFER = 30.0
_NEVER = 1_000_000  # a generation-2 threshold that the count never reaches


class QuietCollector:
    """Defers full collections to quiet moments while ``start`` ed; ``stop`` restores."""

    def __init__(self) -> None:
        self._threshold: tuple[int, int, int] | None = None
        self._task: asyncio.Task[None] | None = None
        self.since = 0.0  # when the last full collection ran (or the collector started)
        self.collections = 0

    def start(self) -> None:
        if self._threshold is not None:
            return
        self._threshold = gc.get_threshold()
        first, second, _ = self._threshold
        gc.set_threshold(first, second, _NEVER)
        self.since = time.perf_counter()
        self._task = asyncio.create_task(self._watch(), name="agentspace-quiet-collector")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._threshold is not None:
            gc.set_threshold(*self._threshold)
            self._threshold = None

    def due(self, now: float) -> bool:
        """Whether to collect now: CPython would have, and the loop is quiet or waited enough."""
        if self._threshold is None or gc.get_count()[2] < self._threshold[2]:
            return False
        quiet = now - pacing.last_active() >= QUIET
        return quiet or now - self.since >= MAX_DEFER

    def collect(self, now: float) -> None:
        gc.collect()
        self.since = now
        self.collections += 1

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(TICK)
            now = time.perf_counter()
            if self.due(now):
                self.collect(now)
