"""A session's workspace over REST: files (listing, content), processes (list, output, stop)."""

from __future__ import annotations

import errno
import mimetypes

from jupyter_server.auth.decorator import authorized
from tornado import web

from ..errors import SandboxError
from ..workspace import paths
from .base import AgentspaceHandler, ApiError

CHUNK = 1 << 16


def _fs_error(exc: OSError, path: str) -> ApiError:
    if isinstance(exc, FileNotFoundError):
        return ApiError(404, "not_found", f"No file {path!r} in the workspace.")
    if isinstance(exc, IsADirectoryError):
        return ApiError(400, "is_a_directory", f"{path!r} is a folder: list it with ?path=.")
    if isinstance(exc, NotADirectoryError):
        return ApiError(400, "not_a_directory", f"A parent of {path!r} is not a folder.")
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):  # its quota filesystem is full
        from ..workspace.disks import full_message

        return ApiError(507, "workspace_full", f"{path!r} was not written: {full_message(None)}")
    return ApiError(400, "file_error", f"{path!r}: {exc.strerror or exc}.")


class FilesHandler(AgentspaceHandler):
    auth_resource = "agentspace:files"

    @web.authenticated
    @authorized
    async def get(self, session_id: str, path: str | None = None) -> None:
        session = await self.session(session_id)
        if path is None:  # a listing
            folder = self.get_argument("path", ".")
            recursive = self.flag("recursive")
            try:
                listing = paths.list_dir(session.workspace, folder, recursive=recursive)
            except OSError as exc:
                raise _fs_error(exc, folder) from exc
            entries = [
                {"path": e.path, "kind": e.kind, "size": e.size, "target": e.target}
                for e in listing.entries
            ]
            self.reply({"path": folder, "entries": entries, "truncated": listing.truncated})
            return
        try:
            handle = paths.open_read(session.workspace, path)
        except OSError as exc:
            raise _fs_error(exc, path) from exc
        with handle:
            kind = mimetypes.guess_type(path)[0] or "application/octet-stream"
            self.set_header("Content-Type", kind)
            self.set_header("X-Content-Type-Options", "nosniff")
            self.set_header("Content-Security-Policy", "sandbox")  # never run workspace HTML here
            while data := handle.read(CHUNK):
                self.write(data)
                await self.flush()
        self.finish()

    @web.authenticated
    @authorized
    async def put(self, session_id: str, path: str | None = None) -> None:
        if path is None:
            raise ApiError(
                405, "method_not_allowed", "PUT a file: files/<path>.", headers={"Allow": "GET"}
            )
        session = await self.session(session_id)
        data = self.request.body or b""
        limit = self.state.app.max_request_bytes
        if len(data) > limit:
            raise ApiError(
                413, "payload_too_large", f"The file is over {limit} bytes.", limit=limit
            )
        engine = await self.engine()
        try:
            (await engine.workspaces.get(session)).check_quota(len(data))
        except SandboxError:
            pass  # no sandbox here: the quota lives with it; the write itself is still confined
        try:
            written = paths.write_bytes(session.workspace, path, data)
        except OSError as exc:
            raise _fs_error(exc, path) from exc
        from ..events import Custom, custom

        session.log.append(custom(Custom.FILES, {"paths": [written], "source": "api"}))
        self.reply({"path": written, "size": len(data)})


class ProcessesHandler(AgentspaceHandler):
    auth_resource = "agentspace:processes"

    @web.authenticated
    @authorized
    async def get(self, session_id: str) -> None:
        session = await self.session(session_id)
        runtime = await (await self.engine()).workspaces.get(session)
        records = runtime.processes.listing()
        self.reply({"processes": [r.model_dump(mode="json") for r in records]})


class ProcessOutputHandler(AgentspaceHandler):
    auth_resource = "agentspace:processes"

    @web.authenticated
    @authorized
    async def get(self, session_id: str, name: str) -> None:
        raw = self.get_argument("tail", "100")
        # ASCII digits only: str.isdigit() also says yes to '²', which int() refuses
        tail = int(raw) if raw.isascii() and raw.isdigit() and len(raw) <= 6 else 0
        if not 1 <= tail <= 100_000:
            raise ApiError(400, "bad_tail", "'tail' must be a whole number from 1 to 100000.")
        session = await self.session(session_id)
        runtime = await (await self.engine()).workspaces.get(session)
        self.reply({"name": name, "output": runtime.processes.output(name, tail)})


class ProcessStopHandler(AgentspaceHandler):
    auth_resource = "agentspace:processes"

    @web.authenticated
    @authorized
    async def post(self, session_id: str, name: str) -> None:
        session = await self.session(session_id)
        runtime = await (await self.engine()).workspaces.get(session)
        record = await runtime.processes.stop(name)
        self.reply(record)
