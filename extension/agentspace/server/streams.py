"""Server-sent events: the session's event log, and the AG-UI run endpoint.

Both write each AG-UI event as ``id: <seq>`` + ``data: <json>``, so a client
that reconnects with ``Last-Event-ID`` (or ``?after=``) gets exactly what it
missed. Keep-alive comments go out while nothing happens, so proxies do not
cut an idle stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any

from jupyter_server.auth.decorator import authorized
from tornado import web
from tornado.iostream import StreamClosedError

from agentspace.fairness.pacing import requests_first

from .base import AgentspaceHandler, ApiError

if TYPE_CHECKING:
    from ag_ui.core import RunAgentInput

    from agentspace.store.approvals import Decision

    from ..events import StoredEvent


async def stream(
    handler: AgentspaceHandler,
    events: AsyncIterator[StoredEvent],
    *,
    start: Callable[[StoredEvent], bool] | None = None,
    stop: Callable[[StoredEvent], bool] | None = None,
) -> None:
    """Write ``events`` as SSE (from the first ``start`` match) until ``stop`` or disconnect."""
    # Each event is a small write: without TCP_NODELAY, Nagle's algorithm and the client's
    # delayed ACK hold the first one back on a reused connection (bench/kernel.py; the
    # stall is in bench/RESULTS.md, kernel side).
    stream_ = handler.request.connection.stream  # type: ignore[union-attr]
    if stream_ is not None:
        stream_.set_nodelay(True)
    handler.set_header("Content-Type", "text/event-stream; charset=utf-8")
    handler.set_header("Cache-Control", "no-cache")
    handler.set_header("X-Accel-Buffering", "no")
    handler.write(": agentspace\n\n")
    beat = asyncio.create_task(_heartbeat(handler, handler.state.app.heartbeat_seconds))
    started = start is None
    try:
        await handler.flush()
        requests_first(False)  # the request is answered; delivering events is bulk work
        async for event in events:
            if not started:
                started = start(event) if start is not None else True
                if not started:
                    continue
            handler.write(f"id: {event.seq}\ndata: {event.data}\n\n")
            await handler.flush()
            if stop is not None and stop(event):
                break
    except StreamClosedError:
        pass
    finally:
        beat.cancel()
        with contextlib.suppress(asyncio.CancelledError, StreamClosedError):
            await beat
        aclose = getattr(events, "aclose", None)
        if aclose is not None:
            await aclose()
    with contextlib.suppress(StreamClosedError):
        handler.finish()


async def _heartbeat(handler: AgentspaceHandler, every: float) -> None:
    while True:
        await asyncio.sleep(every)
        handler.write(": keep-alive\n\n")
        await handler.flush()


MAX_SEQ = 2**63 - 1  # sequence numbers are SQLite integers


def _seq(raw: str | None, name: str) -> int | None:
    """A sequence number from the client (None if absent or blank); 400 if not one."""
    if raw is None or not raw.strip():
        return None
    raw = raw.strip()
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 19:
        raise ApiError(400, "bad_after", f"'{name}' must be a sequence number, not {raw[:100]!r}.")
    value = int(raw)
    if value > MAX_SEQ:
        raise ApiError(400, "bad_after", f"'{name}' must be from 0 to {MAX_SEQ}.")
    return value


def _after(handler: AgentspaceHandler) -> int:
    """Where to resume: Last-Event-ID if sent, else ``?after=``, else the start.

    The header wins: an EventSource opened on ``...?after=N`` reconnects to the same URL
    with the id of the last event it got, which is later than N.
    """
    query = _seq(handler.get_argument("after", None), "after")
    header = _seq(handler.request.headers.get("Last-Event-ID"), "Last-Event-ID")
    if header is not None:
        return header
    return query or 0


class EventsHandler(AgentspaceHandler):
    auth_resource = "agentspace:events"

    @web.authenticated
    @authorized
    async def get(self, session_id: str) -> None:
        after = _after(self)
        session = await self.session(session_id)
        await stream(self, session.subscribe(after))


class AguiHandler(AgentspaceHandler):
    """AG-UI's HTTP endpoint: a RunAgentInput in, this run's events out (SSE)."""

    auth_resource = "agentspace:agui"

    @web.authenticated
    @authorized
    async def post(self, session_id: str) -> None:
        from ag_ui.core import RunAgentInput

        run = self.body(RunAgentInput)
        session = await self.session(session_id)
        if run.thread_id != session.id:
            raise ApiError(400, "bad_thread", f"threadId must be this session's id ({session.id}).")
        decisions = [(e.interrupt_id, _decision(e.status, e.payload)) for e in run.resume or []]
        after = await session.begin_run(
            text=None if decisions else _last_user_text(run),
            decisions=decisions,
            run_id=run.run_id,
            by=self.actor,
        )
        events = session.subscribe(after)
        await stream(
            self, events, start=lambda e: e.type == "RUN_STARTED", stop=lambda e: e.terminal
        )


def _decision(status: str, payload: Any) -> Decision:
    from agentspace.store.approvals import Decision

    if status == "cancelled":
        return Decision(decision="reject", reason="cancelled by the client")
    if isinstance(payload, dict):
        try:
            return Decision.model_validate(payload)
        except ValueError as exc:
            raise ApiError(422, "invalid_resume", f"The resume payload is invalid: {exc}") from exc
    if payload in (None, True, "approve"):
        return Decision(decision="approve")
    if payload in (False, "reject"):
        return Decision(decision="reject")
    raise ApiError(422, "invalid_resume", f"Unknown resume payload {json.dumps(payload)[:200]}.")


def _last_user_text(run: RunAgentInput) -> str:
    for message in reversed(run.messages):
        if getattr(message, "role", None) == "user":
            content = message.content
            if isinstance(content, str):
                return content
            texts = [getattr(part, "text", "") for part in content or []]
            return "\n".join(t for t in texts if t)
    raise ApiError(422, "no_user_message", "messages has no user message to answer.")
