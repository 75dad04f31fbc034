"""One notebook's chat, kept in step with its session both ways.

Session → chat: on start the session's events are replayed from the first through the
projection and the result is compared with the chat file (what is missing is posted, what
differs is revised; so a lost or stale file is rebuilt), then live events follow. Chat →
session: a message typed in the chat is a prompt sent with the notebook context (the cell the
sender is in, or the cells they attached), or a slash command (``commands``); the sender is the
server's identity of the chat socket (``identity``), never a name the client claims.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import TYPE_CHECKING, Any

from jupyterlab_chat.models import BaseChatModel, ChatMessageAction, ChatMessageEvent, Message

from . import commands
from .attachments import Reader, with_attachments
from .projection import AGENT, KERNEL, Answer, ChatProjection, Op, Post, Revise, Writing
from .writer import ChatWriter

if TYPE_CHECKING:
    from agentspace.engine.session import Session
    from agentspace.server.kernelcalls import KernelCalls
    from agentspace.server.links import Links

log = logging.getLogger(__name__)


def collapse(ops: list[Op]) -> list[Op]:
    """The same end state in one or two operations per message (a replay's thousands of deltas)."""
    posts: dict[str, Post] = {}
    revises: dict[str, Revise] = {}
    for op in ops:
        if isinstance(op, Writing | Answer):
            continue
        if isinstance(op, Post):
            first = posts.get(op.key)
            if first is None:
                posts[op.key] = op
            else:
                first.body, first.mime = op.body, op.mime
            continue
        post = posts.get(op.key)
        if post is not None:
            post.body = op.body if op.body is not None else post.body
            post.mime = op.mime if op.mime is not None else post.mime
        if post is None or op.attach is not None:
            seen = revises.setdefault(op.key, Revise(op.key))
            seen.body = op.body if op.body is not None and post is None else seen.body
            seen.mime = op.mime if op.mime is not None and post is None else seen.mime
            seen.attach = op.attach if op.attach is not None else seen.attach
    out: list[Op] = list(posts.values())
    return out + list(revises.values())


class Mirror:
    def __init__(
        self,
        session: Session,
        model: BaseChatModel,
        links: Links | None = None,
        base_url: str = "/",
        kernels: KernelCalls | None = None,
        read: Reader | None = None,
    ) -> None:
        self.session = session
        self.read = read  # an attached file's text, from the server's root
        self.model = model
        self.links = links
        self.kernels = kernels
        self.projection = ChatProjection(session.id, base_url)
        self.writer = ChatWriter(model)
        self.lock = asyncio.Lock()  # a prompt's send and the events it causes, in order
        self._task: asyncio.Task[None] | None = None
        self._observer: Any = None
        self._jobs: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self.model.set_metadata(
            "agentspace", {"session": self.session.id, "notebook": self.session.notebook}
        )
        ops: list[Op] = []
        last = 0
        async for stored in self.session.past_events(0):
            ops += self.projection.apply(stored.seq, json.loads(stored.data))
            last = stored.seq
        self.writer.apply(collapse(ops))
        self._observer = self.model.observe_messages(self._on_message)
        self._task = asyncio.ensure_future(self._follow(last))
        if self.projection.origin != KERNEL:  # calls left waiting (a restart): answer them
            for p in await self.session.pending():
                if p.executor == "kernel" and not p.needs_approval and p.status == "pending":
                    self._answer(p.tool_call_id)

    async def _follow(self, after: int) -> None:
        try:
            async for stored in self.session.subscribe(after):
                ops = self.projection.apply(stored.seq, json.loads(stored.data))
                if ops:
                    async with self.lock:
                        self.writer.apply(ops)
                    for op in ops:
                        if isinstance(op, Answer):
                            self._answer(op.tool_call_id)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("agentspace: the chat of %s stopped following", self.session.notebook)

    async def close(self) -> None:
        if self._observer is not None:
            self.model.unobserve_messages(self._observer)
            self._observer = None
        for task in (self._task, *self._jobs):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        await self.writer.close()

    def _answer(self, tool_call_id: str) -> None:
        """Have the notebook's kernel answer a call no cell answers (the chat's turn)."""
        if self.kernels is None:
            return
        from agentspace.store.approvals import Decision

        async def answer() -> None:
            from agentspace.errors import AgentspaceError

            assert self.kernels is not None
            try:
                await self.kernels.decide(
                    self.session, tool_call_id, Decision(decision="approve"), None
                )
            except AgentspaceError as exc:  # no kernel yet, or a cell answered first: said
                again = " Once it runs, type `/resume` here." if exc.code == "no_kernel" else ""
                note = f"⚠️ {exc.message}{again}"
                self.writer.apply([Post(f"reply:{tool_call_id}", AGENT, note)])

        self._spawn(answer())

    def _spawn(self, work: Any) -> None:
        job = asyncio.ensure_future(work)
        self._jobs.add(job)
        job.add_done_callback(self._jobs.discard)

    # -- chat -> session -------------------------------------------------------
    def _on_message(self, event: ChatMessageEvent) -> None:
        message = event.message
        if event.action != ChatMessageAction.CLIENT_MSG_RECEIVED:
            return
        if message.sender in (AGENT, KERNEL) or not message.body.strip():
            return
        self._spawn(self._received(message))

    async def _received(self, message: Message) -> None:
        from agentspace.errors import AgentspaceError

        try:
            command = commands.parse(message.body)
            if command is None:
                await self._prompt(message)
            else:
                await self._command(command, message)
        except commands.CommandError as exc:
            self._reply(message, f"⚠️ {exc}")
        except AgentspaceError as exc:
            self._reply(message, f"⚠️ {exc.message}")
        except Exception as exc:  # a bug here must not pass silently in the chat
            log.exception("agentspace: a chat message could not be handled")
            self._reply(message, f"⚠️ The agent could not take this message: {exc}")

    async def _prompt(self, message: Message) -> None:
        from agentspace.engine.context import PromptContext

        known = self.model.get_attachments() if message.attachments else {}
        text, cell = await with_attachments(message, known, self.read)
        if cell is None and self.links is not None:
            cell = self.links.active_cell(self.session.notebook, message.sender)
        context = PromptContext(cell_id=cell)
        async with self.lock:
            receipt = await self.session.send(text, sender=message.sender, context=context)
            self.writer.keyed(f"user:{receipt.message_id}", message.id)

    async def _command(self, command: commands.Command, message: Message) -> None:
        from agentspace.store.approvals import Decision

        by = message.sender
        if command.verb == "help":
            self._reply(message, commands.HELP)
            return
        if command.verb == "stop":
            await self.session.stop()
            self._reply(message, f"⏹ Stopped by {by}.")
            return
        if command.verb == "resume":
            waiting = [
                p.tool_call_id
                for p in await self.session.pending()
                if p.status == "pending" and p.executor == "kernel" and not p.needs_approval
            ]
            if waiting:  # calls for the kernel that found none: asked of it again
                for call_id in waiting:
                    self._answer(call_id)
                self._reply(message, f"▶ Asked the notebook's kernel again ({len(waiting)}).")
                return
            status = await self.session.resume()
            self._reply(message, f"▶ Resumed by {by} ({status}).")
            return
        pending = [p.tool_call_id for p in await self.session.pending() if p.status == "pending"]
        call = commands.resolve(command.call, pending)
        if command.verb == "approve":
            decision = Decision(decision="approve", remember=command.remember)
        elif command.verb == "reject":
            decision = Decision(decision="reject", reason=command.reason)
        else:
            decision = Decision(decision="edit", arguments=command.arguments)
        if self.kernels is not None:  # an approved kernel call runs in the notebook's kernel
            await self.kernels.decide(self.session, call, decision, by)
        else:
            await self.session.decide(call, decision, by=by)

    def _reply(self, message: Message, text: str) -> None:
        self.writer.apply([Post(f"reply:{message.id}", AGENT, text)])
