"""One ``docker exec`` as an ``Execution``: its multiplexed output fed to two StreamReaders.

The docker SDK blocks, so a thread per exec reads the frames and feeds the
readers on the loop, one frame at a time and paused by the readers' own flow
control, so an exec whose consumer falls behind stops as a pipe would.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from agentspace.sandbox.base import Execution
from agentspace.sandbox.docker.container import Container, frames

LIMIT = 1 << 20  # a stream may hold 2 MiB unread (asyncio pauses at twice its limit)


class _Valve:
    """A StreamReader "transport": its pause/resume gate the thread that feeds the reader."""

    def __init__(self) -> None:
        self.open = threading.Event()
        self.open.set()

    def pause_reading(self) -> None:
        self.open.clear()

    def resume_reading(self) -> None:
        self.open.set()


class DockerExecution(Execution):
    """One ``docker exec``: output fed from its stream, exit code from ``exec_inspect``."""

    def __init__(self, container: Container, exec_id: str, token: str, sock: Any) -> None:
        self._container, self._id, self._token, self._sock = container, exec_id, token, sock
        self._loop = asyncio.get_running_loop()
        self._ended = threading.Event()
        self._finished = asyncio.Event()  # not a future: a cancelled wait() must not cancel it
        self._code: int | None = None
        self._killers: list[threading.Thread] = []
        self.stdout, self.stderr = asyncio.StreamReader(LIMIT), asyncio.StreamReader(LIMIT)
        self._valves = (_Valve(), _Valve())
        for reader, valve in zip((self.stdout, self.stderr), self._valves, strict=True):
            reader.set_transport(valve)  # type: ignore[arg-type]
        threading.Thread(target=self._pump, name=f"agentspace-exec-{token}", daemon=True).start()

    def _pump(self) -> None:
        try:
            for stream, data in frames(self._sock):
                err = stream == 2
                fed = threading.Event()
                self._loop.call_soon_threadsafe(
                    self._feed, self.stderr if err else self.stdout, data, fed
                )
                self._wait(fed)  # then the reader's flow control has seen it: no reading ahead
                self._wait(self._valves[err].open)  # the consumer is behind: pause, as a pipe
        except (OSError, ValueError):
            pass  # the connection broke: end the streams as a closed pipe would
        finally:
            self._sock.close()
            self._ended.set()
            try:
                self._loop.call_soon_threadsafe(self._end)
            except RuntimeError:
                pass  # the loop is gone; nobody is waiting

    @staticmethod
    def _feed(reader: asyncio.StreamReader, data: bytes, fed: threading.Event) -> None:
        reader.feed_data(data)
        fed.set()

    def _wait(self, event: threading.Event) -> None:
        while not event.wait(1):
            if self._loop.is_closed():
                raise OSError("the event loop is gone")

    def _end(self) -> None:
        self.stdout.feed_eof()
        self.stderr.feed_eof()
        self._finished.set()

    async def wait(self) -> int:
        if self._code is None:
            await self._finished.wait()
            for killer in self._killers:  # report the exit after the kills asked for
                await asyncio.to_thread(killer.join)
            self._code = await self._container.call(self._container.exit_code, self._id)
        return self._code

    def terminate(self) -> None:
        self._killers.append(self._container.kill(self._id, self._token, "TERM", self._ended))

    def kill(self) -> None:
        self._killers.append(self._container.kill(self._id, self._token, "KILL", self._ended))
