"""Chat operations applied to a jupyterlab-chat model: batched, and saved without stalling.

jupyterlab-chat re-renders a whole message on each update and, in its WebSocket mode, rewrites
the whole ``.chat`` file on the event loop after every change (``json.dump`` with an indent:
~9 ms for 1,000 messages here, more with long ones). So streamed text is sent at most
``STREAM_INTERVAL`` apart per message (the first piece at once), and the file is written by a
``Saver``: at most once a ``SAVE_INTERVAL``, encoded without an indent (~2 ms per 1,000
messages) and written to disk off the loop, atomically. The store is the truth: a save lost in
a crash is rebuilt from the session's events when the chat opens again.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
from dataclasses import replace
from pathlib import Path
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

PostOrRevise = TypeVar("PostOrRevise", Post, Revise)

STREAM_INTERVAL = 0.1  # seconds between two updates of one streaming message (≤ 10 a second)
SAVE_INTERVAL = 1.0  # seconds between two writes of a chat file
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


class Saver:
    """Stands in for a WebSocket chat model's ``save``: coalesced, off the loop, atomic."""

    def __init__(self, model: WsChatModel, interval: float = SAVE_INTERVAL) -> None:
        self.model = model
        self.interval = interval
        self._timer: asyncio.TimerHandle | None = None
        self._writing: asyncio.Task[None] | None = None
        self._again = False
        self.writes = 0
        model.save = self.request  # type: ignore[method-assign]

    def request(self) -> None:
        if self._writing is not None:
            self._again = True
        elif self._timer is None:
            loop = asyncio.get_running_loop()
            self._timer = loop.call_later(self.interval, self._start)

    def _start(self) -> None:
        self._timer = None
        text = json.dumps(self.model.to_dict(), ensure_ascii=False)
        path = Path(self.model.root_dir) / self.model.get_path()
        self._writing = asyncio.ensure_future(asyncio.to_thread(_write, path, text))
        self._writing.add_done_callback(self._written)

    def _written(self, task: asyncio.Task[None]) -> None:
        self._writing = None
        self.writes += 1
        if not task.cancelled() and task.exception() is not None:
            log.error(
                "agentspace: could not save the chat %s: %s", self.model.path, task.exception()
            )
        if self._again:
            self._again = False
            self.request()

    async def flush(self) -> None:
        """Write what is pending now (a chat going away, the server stopping)."""
        if self._writing is not None:
            with contextlib.suppress(Exception):
                await self._writing
        if self._timer is not None:
            self._timer.cancel()
            self._start()
        if self._writing is not None:
            with contextlib.suppress(Exception):
                await self._writing


def _write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


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
