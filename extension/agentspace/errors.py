"""Every error agentspace raises, in one tree.

Errors carry data (a stable ``code`` and the fields a caller needs) and say in
their message what to do about them. Lower libraries' errors (litellm, sqlite)
are translated once, at the adapter, into this tree::

    AgentspaceError
    ├── InputError                  bad input from a client; nothing was changed
    │   ├── NotFoundError           unknown session, notebook or tool call id
    │   ├── InvalidError            a request that does not fit its shape (names each
    │   │                           problem; REST answers 422)
    │   ├── ConflictError           the session is in the wrong state for this
    │   │   ├── RunInProgressError  a run is going; wait for it or stop it
    │   │   └── InterruptPendingError  tool calls wait for decisions (``pending``)
    │   ├── QueueFullError          the session's queue is at its bound
    │   ├── PayloadTooLargeError    a message over the size bound
    │   └── ConfigError             an invalid setting or script file
    ├── ModelError                  the model provider failed (``retryable`` says if
    │   │                           a retry with backoff may help)
    │   ├── ModelAuthError          missing or invalid API key
    │   ├── ModelNotFoundError      unknown model or provider
    │   ├── RateLimitError          provider rate limit (retryable)
    │   ├── ModelUnavailableError   provider down, timeout, connection (retryable)
    │   └── ContextWindowError      prompt too long even after trimming
    ├── LimitExceededError          a configured budget was crossed (tokens, cost,
    │   │                           model calls per run); raise it and resume
    │   └── WorkspaceFullError      a write would take the workspace over its quota
    ├── ToolError                   a tool call failed; its message goes back to the
    │   ├── ToolArgumentsError      model, which can correct itself
    │   ├── PathEscapeError         a path outside the workspace was refused
    │   ├── UnknownProcessError     no background process has that name
    │   └── NotebookError           the notebook cannot be read or edited (says why)
    │       └── NotebookConflict    the cell changed since the agent read it (or is
    │                               gone): nothing was changed; read it again
    ├── StoreError                  the state database failed (disk full, locked)
    │   └── StoreDamaged            the database file is corrupt: says to run
    │                               ``agentspace doctor --repair`` (a backup is kept)
    └── SandboxError                a sandbox could not start or died; says what to do
        └── SandboxUnavailableError no usable backend (names the ways out)

Control signals (stop, approval interrupts) are not errors and are not here.
"""

from __future__ import annotations

from typing import Any


class AgentspaceError(Exception):
    """Base of every agentspace error. ``code`` is stable; ``message`` is for people."""

    code: str = "agentspace_error"

    def __init__(self, message: str, *, code: str | None = None, **data: Any) -> None:
        super().__init__(message)
        self.message = message
        self.data = data
        if code is not None:  # a finer code than the class's, for clients to tell apart
            self.code = code

    def to_dict(self) -> dict[str, Any]:
        return {"error": self.code, "message": self.message, **self.data}


class InputError(AgentspaceError):
    code = "bad_request"


class NotFoundError(InputError):
    code = "not_found"


class InvalidError(InputError):
    code = "invalid"


class ConflictError(InputError):
    code = "conflict"


class RunInProgressError(ConflictError):
    code = "run_in_progress"


class InterruptPendingError(ConflictError):
    code = "interrupt_pending"


class QueueFullError(InputError):
    code = "queue_full"


class PayloadTooLargeError(InputError):
    code = "payload_too_large"


class ConfigError(InputError):
    code = "invalid_config"


class ModelError(AgentspaceError):
    code = "model_error"
    retryable = False


class ModelAuthError(ModelError):
    code = "model_auth"


class ModelNotFoundError(ModelError):
    code = "model_not_found"


class RateLimitError(ModelError):
    code = "rate_limited"
    retryable = True


class ModelUnavailableError(ModelError):
    code = "model_unavailable"
    retryable = True


class ContextWindowError(ModelError):
    code = "context_window"


class LimitExceededError(AgentspaceError):
    code = "limit_exceeded"


class WorkspaceFullError(LimitExceededError):
    code = "workspace_full"


class ToolError(AgentspaceError):
    code = "tool_error"


class ToolArgumentsError(ToolError):
    code = "tool_arguments"


class PathEscapeError(ToolError):
    code = "path_escape"


class UnknownProcessError(ToolError):
    code = "not_found"


class NotebookError(ToolError):
    code = "notebook_error"


class NotebookConflict(NotebookError):
    code = "notebook_conflict"


class StoreError(AgentspaceError):
    code = "store_error"


class StoreDamaged(StoreError):
    """SQLite reported the file corrupt (or not a database): nothing more is written to it."""

    code = "store_damaged"


class SandboxError(AgentspaceError):
    code = "sandbox_error"


class SandboxUnavailableError(SandboxError):
    code = "sandbox_unavailable"
