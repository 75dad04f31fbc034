"""agentspace: durable per-notebook agent sessions that stream AG-UI events.

The public surface is small and lazy: importing ``agentspace`` loads nothing
heavy (no litellm, no engine) so the Jupyter server and ``%load_ext`` stay fast;
each name is imported on first access.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "Engine": ".engine",
    "EngineConfig": ".config",
    "Limits": ".config",
    "Session": ".session",
    "Decision": ".approvals",
    "StoredEvent": ".events",
    "Tool": ".tools.base",
    "ToolContext": ".tools.base",
    "ToolOutput": ".tools.base",
    "tool": ".tools.base",
    "AgentspaceError": ".errors",
}

__all__ = [
    "AgentspaceError",
    "Decision",
    "Engine",
    "EngineConfig",
    "Limits",
    "Session",
    "StoredEvent",
    "Tool",
    "ToolContext",
    "ToolOutput",
    "__version__",
    "load_ipython_extension",
    "tool",
    "unload_ipython_extension",
]

if TYPE_CHECKING:
    from agentspace.engine.config import EngineConfig, Limits
    from agentspace.engine.engine import Engine
    from agentspace.engine.session import Session
    from agentspace.store.approvals import Decision

    from .errors import AgentspaceError
    from .events import StoredEvent
    from .tools.base import Tool, ToolContext, ToolOutput, tool


def _jupyter_server_extension_points() -> list[dict[str, Any]]:
    """How jupyter_server finds the extension (imported only by the server)."""
    from agentspace.server.app import AgentspaceApp

    return [{"module": "agentspace.server.app", "app": AgentspaceApp}]


def load_ipython_extension(ip: Any) -> None:
    """``%load_ext agentspace``: the kernel side (magics), without importing the engine."""
    from agentspace_kernel import load_ipython_extension as load

    load(ip)


def unload_ipython_extension(ip: Any) -> None:
    from agentspace_kernel import unload_ipython_extension as unload

    unload(ip)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'agentspace' has no attribute {name!r}")
    value = getattr(import_module(module, __name__), name)
    globals()[name] = value
    return value
