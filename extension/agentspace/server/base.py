"""The base handler: auth, JSON bodies validated with pydantic, errors mapped once.

Handlers only parse, call the engine and map errors to status codes. Every
error is JSON ``{"error": code, "message": text}``; bad input is never a 500.
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any, TypeVar

from jupyter_server.base.handlers import APIHandler
from tornado import web

from agentspace.fairness.pacing import checkpoint, requests_first

from ..errors import (
    AgentspaceError,
    ConflictError,
    InputError,
    InvalidError,
    NotFoundError,
    PathEscapeError,
    PayloadTooLargeError,
    QueueFullError,
    SandboxError,
    StoreDamaged,
    ToolError,
    UnknownProcessError,
    WorkspaceFullError,
)

if TYPE_CHECKING:
    from pydantic import BaseModel

    from agentspace.engine.engine import Engine
    from agentspace.engine.session import Session
    from agentspace.server.app import ServerState

M = TypeVar("M", bound="BaseModel")
ANONYMOUS = re.compile(r"^[0-9a-f]{32}$")
TRUE, FALSE = ("true", "1", "yes"), ("false", "0", "no")

STATUS: list[tuple[type[AgentspaceError], int]] = [
    (NotFoundError, 404),
    (InvalidError, 422),
    (ConflictError, 409),
    (QueueFullError, 429),
    (PayloadTooLargeError, 413),
    (PathEscapeError, 403),
    (UnknownProcessError, 404),
    (InputError, 400),
    (ToolError, 400),
    (WorkspaceFullError, 507),
    (SandboxError, 503),
    (StoreDamaged, 503),
]


def status_of(exc: AgentspaceError) -> int:
    for kind, status in STATUS:
        if isinstance(exc, kind):
            return status
    return 500


class ApiError(Exception):
    """An error response decided by a handler (status, code, message, extra fields, headers)."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        headers: dict[str, str] | None = None,
        **data: Any,
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.data = status, code, message, data
        self.headers = headers or {}


class AgentspaceHandler(APIHandler):
    """Base of every agentspace handler; subclasses set ``auth_resource``."""

    auth_resource = "agentspace"

    async def prepare(self) -> None:  # type: ignore[override]
        # A burst of requests takes turns with the runs, ahead of them (see fairness/pacing.py).
        requests_first()
        await checkpoint()
        await self.state.imported()  # the first request imports the engine, off the loop
        await super().prepare()

    @property
    def state(self) -> ServerState:
        state: ServerState = self.settings["agentspace"]
        return state

    async def engine(self) -> Engine:
        return await self.state.engine()

    async def session(self, session_id: str) -> Session:
        return await (await self.engine()).get(session_id)

    @property
    def username(self) -> str:
        user = self.current_user
        return str(getattr(user, "username", None) or user or "anonymous")

    @property
    def actor(self) -> str:
        """Who a message or a decision is stamped as: the user, as ``kernel:<user>`` when a
        notebook's kernel sent it (its client says so with ``X-Agentspace-Client: kernel``, so
        views show the kernel; the header can only make a request look less like a person's)."""
        if self.request.headers.get("X-Agentspace-Client") == "kernel":
            return f"kernel:{self.username}"
        return self.username

    @property
    def rate_key(self) -> str:
        """Who a rate limit counts against: the user, or for anonymous token clients the address.

        jupyter_server gives a token-only client a fresh anonymous username per request,
        which would make a per-user limit count nothing.
        """
        name = self.username
        if ANONYMOUS.match(name):
            return f"address:{self.request.remote_ip}"
        return f"user:{name}"

    def body(self, model: type[M]) -> M:  # pydantic is imported here, on first use
        """The JSON body as ``model``: 413 if too large, 400 if not JSON, 422 if invalid."""
        limit = self.state.app.max_request_bytes
        if len(self.request.body or b"") > limit:
            raise ApiError(
                413, "payload_too_large", f"The request body is over {limit} bytes.", limit=limit
            )
        try:
            data = json.loads(self.request.body or b"{}")
        except ValueError as exc:
            raise ApiError(400, "bad_json", f"The body is not valid JSON: {exc}.") from exc
        except RecursionError as exc:
            raise ApiError(400, "bad_json", "The body is not valid JSON: nested too deep.") from exc
        if not _is_unicode(data):  # a lone surrogate ("\\ud800") cannot be stored or sent on
            raise ApiError(
                422,
                "invalid",
                "The request is invalid: a string is not valid Unicode (a lone UTF-16 surrogate).",
            )
        from agentspace.engine.validation import parse

        return parse(model, data)

    def flag(self, name: str) -> bool:
        """A boolean query parameter: true/false (or 1/0, yes/no); absent is false, else 400."""
        value = self.get_argument(name, None)
        if value is None:
            return False
        raw = value.lower()
        if raw in TRUE:
            return True
        if raw in FALSE:
            return False
        raise ApiError(400, f"bad_{name}", f"'{name}' must be true or false, not {raw[:100]!r}.")

    def reply(self, data: Any, status: int = 200) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        if hasattr(data, "model_dump_json"):
            self.finish(data.model_dump_json())
        else:
            self.finish(json.dumps(data))

    def fail(
        self,
        status: int,
        code: str,
        message: str,
        *,
        headers: dict[str, str] | None = None,
        **data: Any,
    ) -> None:
        self.clear()  # tornado's clear() drops every header set so far: set ours after it
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        if status == 405:
            self.set_header("Allow", ", ".join(self.allowed_methods()))
        for name, value in (headers or {}).items():
            self.set_header(name, value)
        self.finish(json.dumps({"error": code, "message": message, **data}))

    def allowed_methods(self) -> list[str]:
        """The methods this handler answers (for ``Allow`` on a 405): those it overrides."""
        return [
            method
            for method in self.SUPPORTED_METHODS
            if getattr(type(self), method.lower(), None)
            not in (None, getattr(web.RequestHandler, method.lower(), None))
        ]

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc = kwargs.get("exc_info", (None, None, None))[1]
        if isinstance(exc, ApiError):
            self.fail(exc.status, exc.code, exc.message, headers=exc.headers, **exc.data)
        elif isinstance(exc, AgentspaceError):
            self.fail(status_of(exc), exc.code, exc.message, **_extra(exc))
        else:  # tornado's own (405, 403, a body it could not parse, ...) or a bug (500)
            reason = self._reason or "error"
            message = str(getattr(exc, "log_message", None) or reason)
            code = "internal_error" if status_code >= 500 else reason.lower().replace(" ", "_")
            self.fail(status_code, code, message)

    def log_exception(self, typ: Any, value: Any, tb: Any) -> None:
        if isinstance(value, ApiError):
            return  # decided by the handler: the client gets a clear answer, the log stays quiet
        if isinstance(value, AgentspaceError) and status_of(value) < 500:
            return  # the client's mistake (unknown id, bad path, ...), not the server's
        if isinstance(value, StoreDamaged):  # known, and said in the reply: one line, no trace
            self.log.error("%s", value.message)
            return
        super().log_exception(typ, value, tb)


def _is_unicode(data: Any) -> bool:
    """Whether every string in parsed JSON can be encoded as UTF-8 (no lone surrogates)."""
    try:
        json.dumps(data, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return False
    except RecursionError:
        return True  # deep but valid so far: the model's validation decides
    return True


def _extra(exc: AgentspaceError) -> dict[str, Any]:
    """The error's data fields that can go into the JSON reply (never 'error' or 'message')."""
    extra = {}
    for key, value in exc.data.items():
        if key in ("error", "message"):
            continue
        try:
            json.dumps(value)
        except (TypeError, ValueError):
            continue
        extra[key] = value
    return extra
