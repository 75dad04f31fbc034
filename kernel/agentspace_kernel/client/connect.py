"""``connect``: the client for this kernel, remote when a server is there, else embedded.

Apart from the interface (``base``) so that neither mode's module and the interface import
each other; the embedded mode's engine is imported only when that mode starts.
"""

from __future__ import annotations

from agentspace_kernel.client.base import AgentClient, Settings
from agentspace_kernel.client.discovery import Location
from agentspace_kernel.client.embedded import EmbeddedClient
from agentspace_kernel.client.remote import RemoteClient
from agentspace_kernel.errors import ClientError


def connect(location: Location, settings: Settings) -> AgentClient:
    """The client for this kernel: remote when a server is there, else embedded."""
    if settings.mode != "embedded" and location.server is not None:
        return RemoteClient(location, location.server)
    if settings.mode == "remote":
        raise ClientError(
            "Remote mode was asked for (AgentMagics.mode = 'remote') but " + location.why + ".",
            code="no_server",
        )
    return EmbeddedClient(location, settings)
