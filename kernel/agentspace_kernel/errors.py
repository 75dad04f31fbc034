"""The kernel side's one error: what went wrong, as the server or engine said it.

Both clients raise ``ClientError`` with the same stable ``code`` the REST API
puts in ``{"error": code, "message": text}``, so a magic handles a remote and an
embedded failure the same way: print the message (which says what to do).
"""

from __future__ import annotations

from typing import Any


class ClientError(Exception):
    """A failed call: ``code`` is stable, ``message`` is for people, ``status`` is HTTP's."""

    def __init__(self, message: str, code: str = "error", status: int = 0, **data: Any) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.status = status
        self.data = data

    def __str__(self) -> str:
        return self.message


class UsageError(ClientError):
    """A magic was called wrongly; the message is the usage line."""

    def __init__(self, message: str) -> None:
        super().__init__(message, code="usage")
