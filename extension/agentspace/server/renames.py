"""Follow notebooks that are renamed or moved, so they keep their sessions (and chats).

The contents service emits an event for every rename (a notebook, or a folder
of notebooks); the session keys move with it. Works without the file ID
service; a rename done outside Jupyter (``mv`` in a terminal) is not seen.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from agentspace.server.app import ServerState

CONTENTS_SCHEMA = "https://events.jupyter.org/jupyter_server/contents_service/v1"
log = logging.getLogger(__name__)


def on_contents_event(state: ServerState) -> Callable[[Any, str, dict[str, Any]], Awaitable[None]]:
    async def listener(logger: Any, schema_id: str, data: dict[str, Any]) -> None:
        if data.get("action") != "rename" or not data.get("source_path"):
            return
        chat_dir = state.app.chat_dir.strip("/")
        if data["source_path"] == chat_dir or data["source_path"].startswith(chat_dir + "/"):
            return  # a chat moved (by us, following its notebook)
        try:
            engine = await state.engine()
            moved = await engine.rename_notebooks(data["source_path"], data["path"])
            if moved:
                log.info("agentspace: %d session(s) follow %s", moved, data["path"])
            contents = getattr(state.app.serverapp, "contents_manager", None)
            if contents is not None and state.app.chat_dir:
                from agentspace.server.chat.bridge import renamed

                await renamed(contents, chat_dir, data["source_path"], data["path"])
        except Exception:
            log.exception("agentspace: could not follow the rename of %s", data["source_path"])

    return listener
