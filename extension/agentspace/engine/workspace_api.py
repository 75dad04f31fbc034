"""A session's workspace as the application API gives it: files, processes, previews.

Every adapter (REST, the embedded client, the CLI, next the chat panel and MCP) calls these
methods of ``Session`` and gets pydantic models back; a failure is an error of the one tree
(``agentspace.errors``), so each adapter answers alike. None of them touches the sandbox's
modules or the engine's registry of workspaces.
"""

from __future__ import annotations

import asyncio
import errno
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Literal

from pydantic import BaseModel

from agentspace.errors import (
    AgentspaceError,
    InputError,
    NotFoundError,
    SandboxError,
    WorkspaceFullError,
)
from agentspace.events import Custom, custom
from agentspace.sandbox import paths
from agentspace.sandbox.disks import full_message
from agentspace.sandbox.processes import ProcessRecord

if TYPE_CHECKING:
    from agentspace.engine.engine import Engine
    from agentspace.sandbox.workspace import Workspace
    from agentspace.store.eventlog import EventLog
    from agentspace.store.records import SessionRecord

__all__ = [
    "FileEntry",
    "FileListing",
    "FileWritten",
    "ProcessOutput",
    "ProcessRecord",
    "WorkspaceApi",
]


class FileEntry(BaseModel):
    path: str
    kind: Literal["file", "dir", "symlink", "other"]
    size: int | None = None
    target: str | None = None


class FileListing(BaseModel):
    path: str
    entries: list[FileEntry]
    truncated: bool


class FileWritten(BaseModel):
    path: str
    size: int


class ProcessOutput(BaseModel):
    name: str
    output: str


def file_error(exc: OSError, path: str) -> AgentspaceError:
    """An OS error on a workspace path, as an error of the tree saying what to do."""
    if isinstance(exc, FileNotFoundError):
        return NotFoundError(f"No file {path!r} in the workspace.")
    if isinstance(exc, IsADirectoryError):
        return InputError(f"{path!r} is a folder: list it with ?path=.", code="is_a_directory")
    if isinstance(exc, NotADirectoryError):
        return InputError(f"A parent of {path!r} is not a folder.", code="not_a_directory")
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):  # its quota filesystem is full
        return WorkspaceFullError(f"{path!r} was not written: {full_message(None)}")
    return InputError(f"{path!r}: {exc.strerror or exc}.", code="file_error")


class WorkspaceApi:
    """The workspace half of ``Session``'s public methods (mixed into it)."""

    engine: Engine
    log: EventLog
    record: SessionRecord

    @property
    def folder(self) -> Path:
        """The workspace's folder (the record keeps its path as ``workspace``)."""
        return Path(self.record.workspace)

    async def _workspace(self) -> Workspace:
        return await self.engine.workspaces.get(self)  # type: ignore[arg-type]

    # -- files ----------------------------------------------------------------
    async def files(self, path: str = ".", *, recursive: bool = False) -> FileListing:
        """The entries of a folder of the workspace (sorted; symlinks shown, not followed)."""
        try:
            listing = paths.list_dir(self.folder, path, recursive=recursive)
        except OSError as exc:
            raise file_error(exc, path) from exc
        entries = [
            FileEntry(path=e.path, kind=e.kind, size=e.size, target=e.target)
            for e in listing.entries
        ]
        return FileListing(path=path, entries=entries, truncated=listing.truncated)

    def open_file(self, path: str) -> BinaryIO:
        """A workspace file opened for reading (confined: no way out through symlinks)."""
        try:
            return paths.open_read(self.folder, path)
        except OSError as exc:
            raise file_error(exc, path) from exc

    async def write_file(self, path: str, data: bytes, *, source: str = "api") -> FileWritten:
        """Write a workspace file atomically, within its quota; its clients hear of it."""
        try:
            (await self._workspace()).check_quota(len(data))
        except SandboxError:
            pass  # no sandbox here: the quota lives with it; the write itself is still confined
        try:
            written = paths.write_bytes(self.folder, path, data)
        except OSError as exc:
            raise file_error(exc, path) from exc
        self.log.append(custom(Custom.FILES, {"paths": [written], "source": source}))
        return FileWritten(path=written, size=len(data))

    # -- processes and previews -------------------------------------------------
    async def processes(self) -> list[ProcessRecord]:
        """The workspace's background processes, running or ended."""
        return (await self._workspace()).processes.listing()

    async def process_output(self, name: str, tail: int = 100) -> ProcessOutput:
        """The last ``tail`` lines a background process printed."""
        output = (await self._workspace()).processes.output(name, tail)
        return ProcessOutput(name=name, output=output)

    async def stop_process(self, name: str) -> ProcessRecord:
        return await (await self._workspace()).processes.stop(name)

    async def restart_process(self, name: str) -> ProcessRecord:
        """Start a process again with its command (stopped first if it runs)."""
        return await (await self._workspace()).processes.restart_one(name)

    async def restart_processes(self, names: list[str] | None = None) -> list[ProcessRecord]:
        """Start stopped processes again with their commands (all of them if ``names`` is None)."""
        return await (await self._workspace()).processes.restart(names)

    async def connect(self, port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """A connection to ``port`` in the sandbox (what a preview forwarder relays)."""
        return await (await self._workspace()).sandbox.connect(port)

    async def preview(self, port: int, *, announce: bool = True) -> str:
        """The URL of the web server listening on ``port`` in the sandbox."""
        return await (await self._workspace()).preview(port, announce=announce)
