"""Sessions, messages, stop/resume, approvals and the kernel's tools over REST."""

from __future__ import annotations

import time

from jupyter_server.auth.decorator import authorized
from tornado import web

from .base import AgentspaceHandler, ApiError

MAX_LIMIT = 1_000_000


class SessionsHandler(AgentspaceHandler):
    auth_resource = "agentspace:sessions"

    @web.authenticated
    @authorized
    async def get(self) -> None:
        infos = await (await self.engine()).list()
        self.reply({"sessions": [i.model_dump(mode="json") for i in infos]})

    @web.authenticated
    @authorized
    async def post(self) -> None:
        from agentspace.engine.requests import CreateSession

        body = self.body(CreateSession)
        engine = await self.engine()
        session = await engine.open(body.notebook, body.model)
        self.reply(await session.info())


class SessionHandler(AgentspaceHandler):
    auth_resource = "agentspace:sessions"

    @web.authenticated
    @authorized
    async def get(self, session_id: str) -> None:
        self.reply(await (await self.session(session_id)).info())

    @web.authenticated
    @authorized
    async def patch(self, session_id: str) -> None:
        from agentspace.engine.requests import ConfigureSession

        if not (self.request.body or b"").strip():  # {} is a no-op; no body is a mistake
            raise ApiError(
                400, "bad_json", 'Send a JSON body: {"model"?: ..., "policies"?: {...}}.'
            )
        body = self.body(ConfigureSession)
        session = await self.session(session_id)
        self.reply(await session.update(model=body.model, policies=body.policies))

    @web.authenticated
    @authorized
    async def delete(self, session_id: str) -> None:
        purge = self.flag("purge")
        await (await self.engine()).delete(session_id, purge=purge)
        self.set_status(204)
        self.finish()


class MessagesHandler(AgentspaceHandler):
    auth_resource = "agentspace:messages"

    @web.authenticated
    @authorized
    async def get(self, session_id: str) -> None:
        from agentspace.engine.requests import Messages

        raw = self.get_argument("limit", None)
        limit: int | None = None
        if raw is not None:
            # ASCII digits only: str.isdigit() also says yes to '²', which int() refuses
            limit = int(raw) if raw.isascii() and raw.isdigit() and len(raw) <= 7 else 0
            if not 1 <= limit <= MAX_LIMIT:
                raise ApiError(
                    400, "bad_limit", f"'limit' must be a whole number from 1 to {MAX_LIMIT}."
                )
        session = await self.session(session_id)
        self.reply(Messages(messages=await session.transcript(limit)))

    @web.authenticated
    @authorized
    async def post(self, session_id: str) -> None:
        from agentspace.engine.requests import SendMessage

        body = self.body(SendMessage)
        session = await self.session(session_id)
        wait = self.state.allow_message(self.rate_key, time.monotonic())
        if wait is not None:
            seconds = int(wait) + 1
            raise ApiError(
                429,
                "rate_limited",
                f"Too many messages: at most {self.state.app.messages_per_minute} a minute. "
                f"Try again in {seconds} s.",
                headers={"Retry-After": str(seconds)},
                retry_after=seconds,
            )
        receipt = await session.send(body.text, sender=self.actor, context=body.context)
        self.reply(receipt, status=202)


class StopHandler(AgentspaceHandler):
    auth_resource = "agentspace:control"

    @web.authenticated
    @authorized
    async def post(self, session_id: str) -> None:
        session = await self.session(session_id)
        await session.stop()
        self.reply({"status": session.status})


class ResumeHandler(AgentspaceHandler):
    auth_resource = "agentspace:control"

    @web.authenticated
    @authorized
    async def post(self, session_id: str) -> None:
        session = await self.session(session_id)
        status = await session.resume()
        self.reply({"status": status, "running": session.busy})


class ApprovalHandler(AgentspaceHandler):
    auth_resource = "agentspace:approvals"

    @web.authenticated
    @authorized
    async def post(self, session_id: str, tool_call_id: str) -> None:
        from agentspace.store.approvals import Decision

        decision = self.body(Decision)
        session = await self.session(session_id)
        kernels = self.state.kernel_calls()  # an approved kernel call runs in the kernel
        remaining = await kernels.decide(session, tool_call_id, decision, self.actor)
        self.reply({"pending": remaining, "status": session.status})


class ToolsHandler(AgentspaceHandler):
    """The tools a session offers; the kernel side PUTs its own (and its built-ins) here."""

    auth_resource = "agentspace:tools"

    @web.authenticated
    @authorized
    async def get(self, session_id: str) -> None:
        self.reply((await self.session(session_id)).tools())

    @web.authenticated
    @authorized
    async def put(self, session_id: str) -> None:
        from agentspace.engine.kerneltools import VALIDATOR
        from agentspace.engine.requests import SetTools
        from agentspace.fairness.imports import import_off_loop

        await import_off_loop(VALIDATOR)  # checking the tools' schemas imports it: slow
        body = self.body(SetTools)
        session = await self.session(session_id)
        self.reply(await session.offer_kernel_tools(body.tools, body.run_cell, body.list_variables))
