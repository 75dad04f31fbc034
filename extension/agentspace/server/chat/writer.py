"""Chat operations applied to a jupyterlab-chat model: batched, and saved without stalling.

jupyterlab-chat re-renders a whole message on each update, and in its WebSocket mode rewrites
the whole ``.chat`` file after every change. So streamed text is sent at most
``STREAM_INTERVAL`` apart per message (the first piece at once, the end at once), and the model's
saves go through a ``Saver`` (``saver``: coalesced, off the loop).
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import replace
from typing import Any, TypeVar

from jupyterlab_chat.models import (
    BaseChatModel,
    Message,
    NewMessage,
    NotebookAttachment,
    NotebookAttachmentCell,
    User,
)
from jupyterlab_chat.websocket_model import WsChatModel

from . import cards, jupyterai
from .projection import AGENT, KERNEL, Op, Post, Revise, Writing
from .saver import Saver

PostOrRevise = TypeVar("PostOrRevise", Post, Revise)

STREAM_INTERVAL = 0.1  # seconds between two updates of one streaming message (≤ 10 a second)
log = logging.getLogger(__name__)

AGENT_USER = User(
    username=AGENT,
    name="Agent",
    display_name="Agent",
    initials="AI",
    color="var(--jp-brand-color1)",
    avatar_url=(
        "data:image/svg+xml;utf8,<svg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 24 24'>"
        "<rect width='24' height='24' rx='6' fill='%23326fb8'/><path fill='white' d='M7 9h10v7H7z"
        "M10 11v2h1v-2zm3 0v2h1v-2zM11 6h2v3h-2z'/></svg>"
    ),
    bot=True,
)
KERNEL_USER = User(
    username=KERNEL,
    name="Notebook kernel",
    display_name="Notebook kernel",
    initials="K",
    color="var(--jp-warn-color1)",
    bot=False,
)


def key_of(message: dict[str, Any] | Message) -> str | None:
    meta = message.get("metadata") if isinstance(message, dict) else message.metadata
    value = (meta or {}).get("agentspace") if isinstance(meta, dict) else None
    key = value.get("key") if isinstance(value, dict) else None
    return key if isinstance(key, str) else None


def card_metadata(mime: dict[str, Any] | None) -> dict[str, Any]:
    """The message metadata a card's bundle implies (jupyter-ai's ``tool_calls``), else none.

    Derived here from the bundle rather than carried by ``Post``/``Revise``: a replay's
    operations are collapsed to their last body and bundle (``mirror.collapse``), and the
    metadata follows them.
    """
    data = (mime or {}).get("data")
    card = data.get(cards.MIME) if isinstance(data, dict) else None
    return jupyterai.jupyter_ai_metadata(card) if isinstance(card, dict) else {}


class ChatWriter:
    """Applies a projection's operations to one chat model."""

    def __init__(self, model: BaseChatModel, interval: float = STREAM_INTERVAL) -> None:
        self.model = model
        self.interval = interval
        self.index: dict[str, str] = {}  # key -> chat message id
        for message in model.get_messages():
            key = key_of(message)
            if key:
                self.index[key] = message.id
        self.saver = Saver(model) if isinstance(model, WsChatModel) else None
        self._held: dict[str, Revise] = {}
        self._sent: dict[str, float] = {}  # key -> when it was last sent
        self._timer: asyncio.TimerHandle | None = None
        self.updates = 0  # chat updates made (a benchmark counts them)
        users = model.get_users()
        for user in (AGENT_USER, KERNEL_USER):
            if user.username not in users:
                model.set_user(user)

    def apply(self, ops: list[Op]) -> None:
        for op in ops:
            if isinstance(op, Post):
                self._post(self._named(op))
            elif isinstance(op, Revise):
                self._revise(self._named(op))
            elif isinstance(op, Writing):
                self._writing(op)

    def name_of(self, by: str) -> str:
        """Who decided, as the chat shows people: a user's display name, or the kernel."""
        if by == "kernel" or by.startswith("kernel:"):
            return KERNEL_USER.display_name
        user = self.model.get_users().get(by)
        return (user.display_name or user.name or by) if user is not None else by

    def _named(self, op: PostOrRevise) -> PostOrRevise:
        """A card decided by someone shows their name (the decision keeps their identity)."""
        card = ((op.mime or {}).get("data") or {}).get(cards.MIME)
        decision = card.get("decision") if isinstance(card, dict) else None
        by = decision.get("by") if isinstance(decision, dict) else None
        if not isinstance(card, dict) or not isinstance(decision, dict) or not isinstance(by, str):
            return op
        card = {**card, "decision": {**decision, "by_name": self.name_of(by)}}
        return replace(op, body=cards.fallback(card), mime=cards.bundle(card))

    def keyed(self, key: str, message_id: str) -> None:
        """A message of the chat's (typed there) is the one ``key`` names."""
        message = self.model.get_message(message_id)
        if message is None:
            return
        meta = dict(message.metadata or {})
        meta["agentspace"] = {"key": key}
        message.metadata = meta
        self.model.update_message(message)
        self.index[key] = message_id

    def _user(self, name: str) -> None:
        if name not in self.model.get_users():
            self.model.set_user(User(username=name, name=name, display_name=name))

    def _post(self, op: Post) -> None:
        existing = self.index.get(op.key)
        if existing is not None and self.model.get_message(existing) is not None:
            self._update(op.key, Revise(op.key, body=op.body, mime=op.mime))
            return
        if op.sender not in (AGENT, KERNEL):
            self._user(op.sender)
        meta = {**card_metadata(op.mime), "agentspace": {"key": op.key}}

        def stamp(message: Message, chat: Any) -> None:
            message.metadata = meta
            if op.time is not None:
                message.time = op.time

        new = NewMessage(body=op.body, sender=op.sender)
        if op.mime is not None:
            new.mime_model = op.mime  # type: ignore[assignment]  # asdict keeps a dict as is
        self.index[op.key] = self.model.add_message(new, trigger_actions=[stamp])
        self._sent[op.key] = time.monotonic()
        self.updates += 1

    def _revise(self, op: Revise) -> None:
        if op.key not in self.index:
            return
        if op.streaming:
            since = time.monotonic() - self._sent.get(op.key, 0.0)
            if since < self.interval:
                self._held[op.key] = op
                if self._timer is None:
                    loop = asyncio.get_running_loop()
                    self._timer = loop.call_later(self.interval - since, self.release)
                return
        self._held.pop(op.key, None)
        self._update(op.key, op)

    def release(self) -> None:
        """Send what was held back (the interval passed, or the writer stops)."""
        self._timer = None
        held, self._held = self._held, {}
        for key, op in held.items():
            self._update(key, op)

    def _update(self, key: str, op: Revise) -> None:
        message = self.model.get_message(self.index[key])
        if message is None:
            return
        changed = False
        if op.body is not None and message.body != op.body:
            message.body, changed = op.body, True
        if op.mime is not None and message.mime_model != op.mime:
            message.mime_model, changed = op.mime, True  # type: ignore[assignment]
        extra = card_metadata(op.mime)
        if extra and any((message.metadata or {}).get(k) != v for k, v in extra.items()):
            message.metadata, changed = {**(message.metadata or {}), **extra}, True
        if op.attach is not None:
            ids = self._attachments(op.attach)
            if ids and message.attachments != ids:
                message.attachments, changed = ids, True
        if changed:
            self.model.update_message(message)
            self.updates += 1
        self._sent[key] = time.monotonic()

    def _attachments(self, summary: dict[str, Any]) -> list[str]:
        notebook = summary.get("notebook")
        if not isinstance(notebook, str) or not notebook:
            return []
        cell = summary.get("cell")
        cells = [NotebookAttachmentCell(id=cell, input_type="code")] if cell else None
        attachment = NotebookAttachment(value=notebook, cells=cells)
        return [self.model.set_attachment(attachment)]

    def _writing(self, op: Writing) -> None:
        self.model.broadcast_writing_status(AGENT_USER, {} if op.on else None)

    async def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self.release()
        if self.saver is not None:
            await self.saver.flush()
