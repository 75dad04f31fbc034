"""A session's workspace over REST: files (listing, content), processes (list, output, stop,
restart).

Thin: each handler parses the request and calls the session's workspace API
(``engine.workspace_api``), whose errors the base handler turns into responses.
"""

from __future__ import annotations

import mimetypes

from jupyter_server.auth.decorator import authorized
from tornado import web

from agentspace.server.base import AgentspaceHandler, ApiError

CHUNK = 1 << 16


class FilesHandler(AgentspaceHandler):
    auth_resource = "agentspace:files"

    @web.authenticated
    @authorized
    async def get(self, session_id: str, path: str | None = None) -> None:
        session = await self.session(session_id)
        if path is None:  # a listing
            folder = self.get_argument("path", ".")
            self.reply(await session.files(folder, recursive=self.flag("recursive")))
            return
        with session.open_file(path) as handle:
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
        self.reply(await session.write_file(path, data))


class ProcessesHandler(AgentspaceHandler):
    auth_resource = "agentspace:processes"

    @web.authenticated
    @authorized
    async def get(self, session_id: str) -> None:
        records = await (await self.session(session_id)).processes()
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
        self.reply(await session.process_output(name, tail))


class ProcessStopHandler(AgentspaceHandler):
    auth_resource = "agentspace:processes"

    @web.authenticated
    @authorized
    async def post(self, session_id: str, name: str) -> None:
        session = await self.session(session_id)
        self.reply(await session.stop_process(name))


class ProcessRestartHandler(AgentspaceHandler):
    auth_resource = "agentspace:processes"

    @web.authenticated
    @authorized
    async def post(self, session_id: str, name: str) -> None:
        session = await self.session(session_id)
        self.reply(await session.restart_process(name))
