"""A WebSocket chat model's saves, coalesced and off the loop: the chat file written at most
once a ``SAVE_INTERVAL``, encoded without an indent, by a thread, atomically.

jupyterlab-chat's ``WsChatModel.save`` rewrites the whole ``.chat`` file on the event loop after
every change (``json.dump`` with an indent: ~9 ms for 1,000 messages here, 27 ms measured with
longer ones), which a streamed reply would do ten times a second. The store is the truth: a save
lost in a crash is rebuilt from the session's events when the chat opens again.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
from pathlib import Path

from jupyterlab_chat.websocket_model import WsChatModel

SAVE_INTERVAL = 1.0  # seconds between two writes of a chat file
log = logging.getLogger(__name__)


class Saver:
    """Stands in for a WebSocket chat model's ``save``: coalesced, off the loop, atomic."""

    def __init__(self, model: WsChatModel, interval: float = SAVE_INTERVAL) -> None:
        self.model = model
        self.interval = interval
        self._timer: asyncio.TimerHandle | None = None
        self._writing: asyncio.Task[None] | None = None
        self._again = False
        self.writes = 0
        model.save = self.request  # type: ignore[method-assign]

    def request(self) -> None:
        if self._writing is not None:
            self._again = True
        elif self._timer is None:
            loop = asyncio.get_running_loop()
            self._timer = loop.call_later(self.interval, self._start)

    def _start(self) -> None:
        self._timer = None
        text = json.dumps(self.model.to_dict(), ensure_ascii=False)
        path = Path(self.model.root_dir) / self.model.get_path()
        self._writing = asyncio.ensure_future(asyncio.to_thread(_write, path, text))
        self._writing.add_done_callback(self._written)

    def _written(self, task: asyncio.Task[None]) -> None:
        self._writing = None
        self.writes += 1
        if not task.cancelled() and task.exception() is not None:
            log.error(
                "agentspace: could not save the chat %s: %s", self.model.path, task.exception()
            )
        if self._again:
            self._again = False
            self.request()

    async def flush(self) -> None:
        """Write what is pending now (a chat going away, the server stopping)."""
        if self._writing is not None:
            with contextlib.suppress(Exception):
                await self._writing
        if self._timer is not None:
            self._timer.cancel()
            self._start()
        if self._writing is not None:
            with contextlib.suppress(Exception):
                await self._writing


def _write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
