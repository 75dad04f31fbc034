"""``GET api/status``: the store's health (agentspace.store.status), also when it is damaged,
and the models a view may offer (engine.config.model_choices)."""

from __future__ import annotations

from jupyter_server.auth.decorator import authorized
from tornado import web

from .base import AgentspaceHandler


class StatusHandler(AgentspaceHandler):
    auth_resource = "agentspace:status"

    @web.authenticated
    @authorized
    async def get(self) -> None:
        from agentspace.engine.config import model_choices
        from agentspace.store.status import damaged_status

        from ..errors import StoreDamaged

        try:
            engine = await self.state.engine(damaged=True)
        except StoreDamaged as exc:  # it could not even be opened
            config = self.state.app.engine_config()
            status = damaged_status(config.state_dir, exc, f"{config.sandbox} (not started)")
            model = config.model
        else:
            status, model = await engine.health(), engine.config.model
        self.reply({**status, "models": model_choices(model).model_dump()})
