"""A server extension for the browser tests only: reach a notebook's port as the engine does.

``POST /agentspace-test/notebook`` with ``{"path", "op", ...}`` (op: read, set_source, insert,
delete, with the port's arguments; a NotebookError comes back as ``{"error", "reason", ...}``
with 200, so a test sees its fields) calls ``ServerNotebooks`` in the server, so a test can
drive reads and edits through a real browser's link. Token-authenticated like every handler;
never loaded outside tests/browser (lab.py puts this folder on the server's path).
"""

from __future__ import annotations

import json
from typing import Any

from jupyter_server.base.handlers import APIHandler
from tornado import web


class ProbeHandler(APIHandler):
    @web.authenticated
    async def post(self) -> None:
        from agentspace.errors import NotebookError
        from agentspace.server.notebooks import ServerNotebooks

        body = json.loads(self.request.body)
        state = self.settings["agentspace"]
        notebooks = ServerNotebooks(state.links, self.contents_manager)
        port = await notebooks(body.pop("path"))
        op = body.pop("op")
        try:
            result = await getattr(port, op)(**body)
        except NotebookError as exc:
            self.finish(json.dumps({"error": exc.code, **exc.data, "message": exc.message}))
            return
        if hasattr(result, "model_dump"):
            result = result.model_dump(mode="json")
        self.finish(json.dumps({"port": type(port).__name__, "result": result}))


def _jupyter_server_extension_points() -> list[dict[str, Any]]:
    return [{"module": "linkprobe"}]


def _load_jupyter_server_extension(serverapp: Any) -> None:
    base = serverapp.web_app.settings["base_url"].rstrip("/")
    serverapp.web_app.add_handlers(".*$", [(f"{base}/agentspace-test/notebook", ProbeHandler)])
