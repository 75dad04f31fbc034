"""Kernel side of agentspace: ``%load_ext agentspace`` gives this notebook its agent.

Importing this package (and ``%load_ext``) loads only IPython's magic
machinery: the client, httpx, the widgets and (in embedded mode) the engine
and litellm are imported at the first ``%%agent`` cell, so loading stays fast.

The kernel side: ``magics`` on top, over ``view`` and ``client``, over the shared ``loop``,
``tools`` and ``errors``. It reaches the engine only through the embedded client, never the
server's code.
"""

from __future__ import annotations

from typing import Any

__all__ = ["agent_tool", "load_ipython_extension", "unload_ipython_extension"]

from .tools import agent_tool


def load_ipython_extension(ip: Any) -> None:
    """``%load_ext agentspace`` (or ``agentspace_kernel``): register the magics."""
    from agentspace_kernel.magics.magics import register

    register(ip)


def unload_ipython_extension(ip: Any) -> None:
    from agentspace_kernel.magics.transform import uninstall

    uninstall(ip)
