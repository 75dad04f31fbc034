"""``POST agentspace/api/chats {"notebook"}``: the notebook's chat (made, mirrored) and session."""

from __future__ import annotations

from jupyter_server.auth.decorator import authorized
from jupyter_server.utils import ensure_async
from tornado import web

from ..base import AgentspaceHandler, ApiError


class ChatsHandler(AgentspaceHandler):
    auth_resource = "agentspace:sessions"

    @web.authenticated
    @authorized
    async def post(self) -> None:
        from agentspace.engine.requests import OpenChat

        body = self.body(OpenChat)
        # it may write the chat's file under the root: as the contents API would let it
        if not await ensure_async(
            self.authorizer.is_authorized(self, self.current_user, "write", "contents")
        ):
            raise ApiError(403, "forbidden", "Writing files (contents) is not allowed for you.")
        bridge = await self.state.chats()
        if bridge is None:
            raise ApiError(
                501,
                "no_chat",
                "jupyterlab-chat is not installed or not enabled on this server: "
                "pip install jupyterlab-chat, then restart the server.",
            )
        if bridge.real_time:
            raise ApiError(
                501,
                "chat_rtc",
                "The agent chat needs jupyterlab-chat's WebSocket mode; with "
                "jupyter-collaboration installed (real-time mode) it is not supported yet. Use "
                "%%agent cells, or run the server without jupyter-collaboration.",
            )
        try:
            path, session = await bridge.open(body.notebook)
        except OSError as exc:  # a name the filesystem refuses (too long, say)
            raise ApiError(
                400, "bad_notebook", f"Cannot make the notebook's chat file: {exc.strerror}."
            ) from exc
        self.reply({"path": path, "session": session})
