"""Who wrote a chat message: the server's identity of the socket, never the client's claim.

jupyterlab-chat 0.25's WebSocket handler takes a new message's sender from the ``sender`` the
client sends, and lets any client edit any message (a card's data included). Our handler (put
in place of theirs in the server's routes at start, ``install``) ignores the claim, so each
message is stamped with the user the IdentityProvider gives; and it refuses edits of messages
the editor did not write, nor a card or the key that names one (only the server writes
those). Under real-time collaboration (jupyter-collaboration installed) clients write the
shared document directly and this could not be enforced: the bridge does not serve that mode.
"""

from __future__ import annotations

import logging
from typing import Any

from jupyterlab_chat.websocket_handler import WSChatHandler
from jupyterlab_chat.websocket_model import WsChatModel
from jupyterlab_chat.ws_messages import ClientEditMessage, ClientSendMessage

from .cards import MIME

log = logging.getLogger(__name__)


class StampedChatHandler(WSChatHandler):
    def _handle_new_message(self, msg: ClientSendMessage, model: WsChatModel) -> None:
        msg.sender = None  # the handler then stamps self.current_user
        _ours_removed(msg)
        super()._handle_new_message(msg, model)

    def _handle_update_message(self, msg: ClientEditMessage, model: WsChatModel) -> None:
        stored = model.get_message(msg.id)
        if stored is not None and stored.sender != self.current_user.username:
            log.warning(
                "agentspace: %s tried to edit a chat message of %s; refused",
                self.current_user.username,
                stored.sender,
            )
            return
        _ours_removed(msg)
        super()._handle_update_message(msg, model)


def _ours_removed(msg: ClientSendMessage | ClientEditMessage) -> None:
    """A client may not write what only the server writes: a card, or the key naming one."""
    if isinstance(msg.metadata, dict):
        msg.metadata.pop("agentspace", None)
    if isinstance(msg.mime_model, dict) and MIME in (msg.mime_model.get("data") or {}):
        msg.mime_model = None


def install(web_app: Any) -> bool:
    """Swap jupyterlab-chat's handler for ours in the server's routes (True if found)."""
    return _swap(web_app.default_router)


def _swap(router: Any) -> bool:
    found = False
    for rule in getattr(router, "rules", []):
        target = rule.target
        if target is WSChatHandler:
            rule.target = StampedChatHandler
            found = True
        elif hasattr(target, "rules"):
            found = _swap(target) or found
    return found
