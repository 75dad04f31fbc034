"""The base handler: auth, JSON bodies validated with pydantic, errors mapped once.

Handlers only parse, call the engine and map errors to status codes. Every
error is JSON ``{"error": code, "message": text}``; bad input is never a 500.
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any, TypeVar

from jupyter_server.base.handlers import APIHandler
from pydantic import BaseModel, ValidationError

from ..errors import (
    AgentspaceError,
    ConflictError,
    InputError,
    NotFoundError,
    PathEscapeError,
    PayloadTooLargeError,
    QueueFullError,
    SandboxError,
    ToolError,
)

if TYPE_CHECKING:
    from ..app import ServerState
    from ..engine import Engine
    from ..session import Session

M = TypeVar("M", bound=BaseModel)
ANONYMOUS = re.compile(r"^[0-9a-f]{32}$")

STATUS: list[tuple[type[AgentspaceError], int]] = [
    (NotFoundError, 404),
    (ConflictError, 409),
    (QueueFullError, 429),
    (PayloadTooLargeError, 413),
    (PathEscapeError, 403),
    (InputError, 400),
    (ToolError, 400),
    (SandboxError, 503),
]


def status_of(exc: AgentspaceError) -> int:
    for kind, status in STATUS:
        if isinstance(exc, kind):
            return status
    return 500


class ApiError(Exception):
    """An error response decided by a handler (status, code, message)."""

    def __init__(self, status: int, code: str, message: str, **data: Any) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.data = status, code, message, data


class AgentspaceHandler(APIHandler):
    """Base of every agentspace handler; subclasses set ``auth_resource``."""

    auth_resource = "agentspace"

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
    def rate_key(self) -> str:
        """Who a rate limit counts against: the user, or for anonymous token clients the address.

        jupyter_server gives a token-only client a fresh anonymous username per request,
        which would make a per-user limit count nothing.
        """
        name = self.username
        if ANONYMOUS.match(name):
            return f"address:{self.request.remote_ip}"
        return f"user:{name}"

    def body(self, model: type[M]) -> M:
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
        try:
            return model.model_validate(data)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}" for e in exc.errors()
            )
            raise ApiError(422, "invalid", f"The request is invalid: {problems}.") from exc

    def reply(self, data: Any, status: int = 200) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        if isinstance(data, BaseModel):
            self.finish(data.model_dump_json())
        else:
            self.finish(json.dumps(data))

    def fail(self, status: int, code: str, message: str, **data: Any) -> None:
        self.clear()
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps({"error": code, "message": message, **data}))

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc = kwargs.get("exc_info", (None, None, None))[1]
        if isinstance(exc, ApiError):
            self.fail(exc.status, exc.code, exc.message, **exc.data)
        elif isinstance(exc, AgentspaceError):
            self.fail(status_of(exc), exc.code, exc.message)
        else:
            reason = self._reason or "error"
            message = str(getattr(exc, "log_message", None) or reason)
            code = "internal_error" if status_code >= 500 else reason.lower().replace(" ", "_")
            self.fail(status_code, code, message)

    def log_exception(self, typ: Any, value: Any, tb: Any) -> None:
        if isinstance(value, ApiError | InputError):
            return  # expected: the client gets a clear answer, the log stays quiet
        super().log_exception(typ, value, tb)
