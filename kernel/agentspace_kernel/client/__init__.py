"""One client interface, two modes: over HTTP to the server extension, or the engine in-process.

Every method is a coroutine meant for the agent loop (``agentspace_kernel.loop``)
and returns plain JSON-shaped data, the same in both modes, so the magics and
views never ask which mode they are in. It may import the kernel side's shared modules and,
in embedded mode, the engine's application API (``agentspace.engine``), never the magics or
the view.
"""

from __future__ import annotations

from agentspace_kernel.client.base import AgentClient
from agentspace_kernel.client.connect import connect

__all__ = ["AgentClient", "connect"]
