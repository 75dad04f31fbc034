"""``GET api/status``: the store's health (agentspace.store.status), also when it is damaged."""

from __future__ import annotations

from jupyter_server.auth.decorator import authorized
from tornado import web

from .base import AgentspaceHandler


class StatusHandler(AgentspaceHandler):
    auth_resource = "agentspace:status"

    @web.authenticated
    @authorized
    async def get(self) -> None:
        from agentspace.store.status import damaged_status

        from ..errors import StoreDamaged

        try:
            engine = await self.state.engine(damaged=True)
        except StoreDamaged as exc:  # it could not even be opened
            config = self.state.app.engine_config()
            self.reply(damaged_status(config.state_dir, exc, f"{config.sandbox} (not started)"))
            return
        self.reply(await engine.health())
