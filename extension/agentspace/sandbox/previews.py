"""How a workspace hands out preview URLs: a server's template, or loopback forwarders.

Under Jupyter the server proxies previews behind its own login, so a URL is a
template filled in (``/agentspace/preview/{session_id}/{port}/``). Embedded in a
kernel there is no server: each previewed port gets a token-checked listener on
127.0.0.1 (forward.py), made on the first preview of that port, reused after,
closed with the workspace. ``EngineConfig.preview_url = None`` picks the latter.
"""

from __future__ import annotations

import asyncio
from typing import Protocol

from agentspace.errors import ToolError
from agentspace.sandbox.base import Sandbox
from agentspace.sandbox.forward import Forwarder


class Previews(Protocol):
    async def url(self, port: int) -> str:
        """Where a browser reaches ``port`` in the sandbox."""

    async def close(self) -> None:
        """Release what serves the previews (a workspace closes)."""


class TemplatePreviews:
    """URLs from a template; the server serves them (nothing to start or close here)."""

    def __init__(self, template: str, session_id: str) -> None:
        self.template = template
        self.session_id = session_id

    async def url(self, port: int) -> str:
        return self.template.format(session_id=self.session_id, port=port)

    async def close(self) -> None:
        pass


class LoopbackPreviews:
    """One ``Forwarder`` per sandbox port, on 127.0.0.1, made on first use."""

    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox
        self.forwarders: dict[int, Forwarder] = {}
        self._lock = asyncio.Lock()
        self._closed = False

    async def url(self, port: int) -> str:
        async with self._lock:
            if self._closed:
                raise ToolError("The workspace is closed: no new previews.")
            forwarder = self.forwarders.get(port)
            if forwarder is None:
                forwarder = await Forwarder(lambda: self.sandbox.connect(port)).start()
                self.forwarders[port] = forwarder
            return forwarder.url

    async def close(self) -> None:
        async with self._lock:
            self._closed = True
            forwarders, self.forwarders = list(self.forwarders.values()), {}
        for forwarder in forwarders:
            await forwarder.close()


def make_previews(template: str | None, sandbox: Sandbox) -> Previews:
    """``template`` (with ``{session_id}`` and ``{port}``), or loopback forwarders for None."""
    if template is None:
        return LoopbackPreviews(sandbox)
    return TemplatePreviews(template, sandbox.session_id)
