"""The client interface both modes implement (``connect`` picks the mode)."""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from agentspace_kernel.client.discovery import Location

Event = dict[str, Any]  # an AG-UI event as JSON (camelCase keys, "type" first)


@dataclass(frozen=True)
class Settings:
    """What the user configured on the kernel side (``c.AgentMagics.*`` / ``%config``)."""

    mode: str = "auto"  # auto | remote | embedded
    state_dir: str = ""  # embedded: where the store and workspaces live ("" = Jupyter's)
    sandbox: str = "auto"  # embedded: bubblewrap | docker | local | auto
    model: str = ""  # embedded: the default model ("" = same rule as the server)


class AgentClient(abc.ABC):
    """This notebook's session, wherever it lives. Coroutines run on the agent loop."""

    mode: str  # "remote" | "embedded"

    def __init__(self, location: Location) -> None:
        self.location = location
        self.notebook = location.notebook
        self.session_id = ""

    @property
    def why(self) -> str:
        return self.location.why

    # -- the session ----------------------------------------------------------
    @abc.abstractmethod
    async def open(self, model: str | None = None) -> dict[str, Any]:
        """This notebook's session (created on first use); sets ``session_id``."""

    @abc.abstractmethod
    async def info(self) -> dict[str, Any]: ...

    @abc.abstractmethod
    async def send(self, text: str, context: dict[str, Any] | None = None) -> dict[str, Any]:
        """Queue a message; the receipt has ``message_id``, ``position`` and ``status``.

        ``context`` is a ``PromptContext`` (engine.context): where in the notebook it came from.
        """

    @abc.abstractmethod
    def events(self, after: int = 0) -> AsyncIterator[tuple[int, Event]]:
        """Every event after ``after`` then live ones, as ``(seq, event)``; never ends."""

    @abc.abstractmethod
    async def stop(self) -> dict[str, Any]: ...

    @abc.abstractmethod
    async def resume(self) -> dict[str, Any]: ...

    @abc.abstractmethod
    async def decide(self, tool_call_id: str, decision: dict[str, Any]) -> dict[str, Any]: ...

    @abc.abstractmethod
    async def history(self, limit: int) -> list[dict[str, Any]]: ...

    @abc.abstractmethod
    async def configure(
        self, *, model: str | None = None, policies: dict[str, str] | None = None
    ) -> dict[str, Any]: ...

    @abc.abstractmethod
    async def set_kernel_tools(
        self, tools: list[dict[str, Any]], run_cell: bool, list_variables: bool = False
    ) -> None:
        """Offer the model these kernel-run tools (``@agent_tool`` specs) and the built-ins
        ``run_cell`` and ``list_variables``."""

    @abc.abstractmethod
    async def reset(self) -> dict[str, Any]:
        """Delete this notebook's session (transcript and workspace); a new one starts.

        The new session keeps the old one's model and tool policies: a reset is
        a new conversation, not new settings.
        """

    # -- the workspace --------------------------------------------------------
    @abc.abstractmethod
    async def files(self, path: str = ".") -> dict[str, Any]: ...

    @abc.abstractmethod
    async def processes(self) -> list[dict[str, Any]]: ...

    @abc.abstractmethod
    async def output(self, name: str, tail: int = 100) -> str: ...

    @abc.abstractmethod
    async def preview_url(self, port: int) -> str:
        """Where a browser reaches ``port`` in the sandbox: the server's proxy (remote), or a
        token-checked forwarder on this machine's 127.0.0.1 (embedded)."""

    async def close(self) -> None:  # noqa: B027 - most clients hold nothing to release
        """Release connections (the engine, in embedded mode)."""
