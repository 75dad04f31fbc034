"""Long-running processes in a session's sandbox: named, logged, listed, stopped, restarted.

The table is persisted next to the session's state so a restart can say what
happened: on bubblewrap and local, processes stop with the server and show as
``stopped_by_restart`` (``restart`` starts them again with the same command).
Output goes to a capped log file in the workspace (``.agentspace/logs/<name>.log``),
which the agent can read.

On a ``detached`` backend (docker) they keep running without a server: ``close``
lets go of them, ``attach`` follows them again after a restart (each record keeps
the backend's ``handle``), and the sandbox itself writes their logs, capped, so
what they print while no server runs is kept too. The server writes only the
``$ command`` line; the log file is the output, there is nothing to copy or replay.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, TypeAdapter

from agentspace.errors import ToolError, UnknownProcessError
from agentspace.sandbox import paths
from agentspace.sandbox.base import Execution, Sandbox, Vanished
from agentspace.sandbox.runner import LogWriter, drain, finish_draining, open_log

Status = Literal["running", "exited", "stopped", "stopped_by_restart"]
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
STOP_GRACE = 3.0


class ProcessRecord(BaseModel):
    name: str
    command: str
    status: Status
    exit_code: int | None = None
    started: float
    ended: float | None = None
    log: str
    handle: str | None = None  # a detached backend's, to follow the process after a restart


UNLOGGED = (
    "\n[agentspace: started by an older version whose server relayed its output: what it"
    " printed since that server stopped is lost, and it was stopped when the server"
    " re-attached. restart_processes starts it again, its output logged by the sandbox.]\n"
)


_TABLE = TypeAdapter(dict[str, ProcessRecord])


class ProcessManager:
    """One session's background processes."""

    def __init__(
        self,
        sandbox: Sandbox,
        folder: Path,
        table: Path,
        emit: Callable[[dict[str, Any]], None],
    ) -> None:
        self.sandbox = sandbox
        self.folder = folder
        self.table_path = table
        self.emit = emit
        self.records: dict[str, ProcessRecord] = {}
        self._live: dict[str, tuple[Execution, asyncio.Task[None]]] = {}
        self._attached = not sandbox.detached  # nothing to follow again where none survives
        self._attaching = asyncio.Lock()
        self._restarting = asyncio.Lock()
        if table.exists():
            with contextlib.suppress(ValueError, OSError):
                self.records = _TABLE.validate_json(table.read_bytes())
        for record in self.records.values():
            if record.status == "running" and not sandbox.detached:
                record.status, record.ended = "stopped_by_restart", record.ended or time.time()

    def _save(self) -> None:
        self.table_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.table_path.with_suffix(".tmp")
        tmp.write_bytes(_TABLE.dump_json(self.records))
        tmp.replace(self.table_path)

    def _event(self, record: ProcessRecord, event: str) -> None:
        self.emit({"event": event, **record.model_dump()})

    async def attach(self) -> None:
        """Follow again what an earlier server left running (a detached backend); once."""
        async with self._attaching:
            if self._attached:
                return
            for record in self.records.values():
                if record.status != "running" or record.name in self._live:
                    continue
                execution = await self.sandbox.adopt(
                    record.command, log=record.log, handle=record.handle
                )
                if execution is None:  # started by an older version: stopped, say why
                    with contextlib.suppress(ToolError):
                        log = open_log(self.folder, self.folder / record.log, len(UNLOGGED))
                        log.write(UNLOGGED.encode())
                        log.close()
                    record.status, record.ended = "stopped_by_restart", time.time()
                    continue
                task = asyncio.create_task(
                    self._follow(record, execution, None), name=f"process-{record.name}"
                )
                self._live[record.name] = (execution, task)
            self._attached = True
            if self.records:
                self._save()

    async def start(self, command: str, name: str | None = None) -> ProcessRecord:
        await self.attach()
        name = name or _default_name(command, self.records)
        if not NAME.match(name):
            raise ToolError(
                f"Invalid process name {name!r}: use letters, digits, '.', '_' or '-' (max 64)."
            )
        if name in self._live:
            raise ToolError(f"A process named {name!r} is already running; stop it first.")
        log_name = f".agentspace/logs/{name}.log"
        log = open_log(self.folder, self.folder / log_name, self.sandbox.policy.log_bytes)
        relay: LogWriter | None = None  # the server copies the output into the log
        try:
            if self.sandbox.detached:  # the sandbox appends the output after this line
                log.write(f"$ {command}\n".encode())
                log.close()
                room = max(0, log.limit - log.written)
                execution = await self.sandbox.spawn(command, log=log_name, limit=room)
            else:
                execution, relay = await self.sandbox.exec(command), log
        except BaseException:
            log.close()
            raise
        record = ProcessRecord(
            name=name, command=command, status="running", started=time.time(), log=log_name,
            handle=execution.handle,
        )  # fmt: skip
        self.records[name] = record
        task = asyncio.create_task(self._follow(record, execution, relay), name=f"process-{name}")
        self._live[name] = (execution, task)
        self._save()
        self._event(record, "started")
        return record

    async def _follow(
        self, record: ProcessRecord, execution: Execution, log: LogWriter | None
    ) -> None:
        """Wait for the end; ``log`` None: the sandbox writes the log (a detached backend)."""
        code: int | None
        if log is None:
            try:
                code = await execution.wait()  # cancelled: the server lets go of it
            except Vanished as gone:  # its sandbox was restarted under it
                code, record.status = gone.code, "stopped_by_restart"
        else:
            code = await self._drain(record, execution, log)
        self._live.pop(record.name, None)
        if record.status == "running":
            record.status = "exited"
        record.exit_code, record.ended = code, time.time()
        self._save()
        self._event(record, "exited")

    @staticmethod
    async def _drain(record: ProcessRecord, execution: Execution, log: LogWriter) -> int:
        log.write(f"$ {record.command}\n".encode())
        drains = [
            asyncio.create_task(drain(execution.stdout, None, log)),
            asyncio.create_task(drain(execution.stderr, None, log)),
        ]
        try:
            code = await execution.wait()
            await finish_draining(drains)
        except asyncio.CancelledError:
            execution.kill()
            for task in drains:
                task.cancel()
            raise
        finally:
            log.close()
        return code

    def listing(self) -> list[ProcessRecord]:
        return sorted(self.records.values(), key=lambda r: r.started)

    def get(self, name: str) -> ProcessRecord:
        record = self.records.get(name)
        if record is None:
            known = ", ".join(self.records) or "none"
            raise UnknownProcessError(f"No process named {name!r} (known: {known}).")
        return record

    def output(self, name: str, tail: int = 100) -> str:
        record = self.get(name)
        try:  # never through a link the sandbox planted out of the workspace
            with paths.open_read(self.folder, record.log) as f:
                f.seek(0, 2)
                size = f.tell()
                f.seek(max(0, size - 256 * 1024))
                lines = f.read().decode("utf-8", "replace").splitlines()
        except FileNotFoundError:
            lines = []
        except OSError as exc:
            raise ToolError(f"Cannot read the log {record.log}: {exc.strerror or exc}.") from exc
        shown = lines[-tail:] if tail > 0 else lines
        head = f"[{record.name}: {record.status}"
        head += f", exit code {record.exit_code}]" if record.exit_code is not None else "]"
        return "\n".join([head, *shown])

    async def stop(self, name: str) -> ProcessRecord:
        await self.attach()
        record = self.get(name)
        live = self._live.get(name)
        if live is None:
            return record
        execution, task = live
        record.status = "stopped"
        execution.terminate()
        done, _ = await asyncio.wait([task], timeout=STOP_GRACE)
        if not done:  # ignored SIGTERM
            execution.kill()
            await asyncio.wait([task], timeout=STOP_GRACE)
        return record

    async def restart(self, names: list[str] | None = None) -> list[ProcessRecord]:
        """Start again the processes a restart stopped (or the named ones)."""
        chosen = names or [
            r.name for r in self.records.values() if r.status == "stopped_by_restart"
        ]
        started = []
        for name in chosen:
            record = self.get(name)
            if name in self._live:
                continue
            started.append(await self.start(record.command, name))
        return started

    async def restart_one(self, name: str) -> ProcessRecord:
        """Start ``name`` again with its command, stopped first if it runs (a person's
        Restart: two at once give one process, restarted twice)."""
        async with self._restarting:
            await self.attach()
            record = self.get(name)
            if name in self._live:
                await self.stop(name)
            return await self.start(record.command, name)

    async def close(self, *, detach: bool | None = None) -> None:
        """The server stops: stop everything and remember what ran; on a detached backend
        (unless ``detach`` is False: the sandbox is destroyed) let go of it, still running."""
        if self.sandbox.detached if detach is None else detach:
            for _, task in self._live.values():
                task.cancel()
            for _, task in self._live.values():
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            self._live.clear()
            self._attached = False  # the next server (or user of this one) follows them again
            return
        for name, (execution, task) in list(self._live.items()):
            self.records[name].status = "stopped_by_restart"
            execution.kill()
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            self.records[name].ended = time.time()
        self._live.clear()
        if self.records:
            self._save()


def _default_name(command: str, taken: dict[str, ProcessRecord]) -> str:
    word = re.sub(r"[^A-Za-z0-9_.-]", "", (command.split() or ["process"])[0].split("/")[-1])
    base = word[:40] or "process"
    name, i = base, 2
    while name in taken:
        name, i = f"{base}-{i}", i + 1
    return name
