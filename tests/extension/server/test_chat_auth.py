"""Opening a notebook's chat writes a file under the root: refused without contents write."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from jupyter_server.auth.authorizer import Authorizer


class NoContentsWrite(Authorizer):
    """Everything but writing files (contents)."""

    def is_authorized(self, handler: Any, user: Any, action: str, resource: str) -> bool:
        return not (action == "write" and resource == "contents")


@pytest.fixture
def jp_server_config(agentspace_state: Path) -> dict[str, Any]:
    return {
        "ServerApp": {
            "jpserver_extensions": {"agentspace": True, "jupyterlab_chat": True},
            "authorizer_class": NoContentsWrite,
        },
        "AgentspaceApp": {"state_dir": str(agentspace_state), "model": "scripted/echo"},
    }


async def test_a_user_who_may_not_write_files_cannot_open_a_chat(
    api: Any, jp_root_dir: Path
) -> None:
    status, body = await api("POST", "chats", body={"notebook": "n.ipynb"})
    assert status == 403, body
    assert "contents" in json.dumps(body)
    assert not (jp_root_dir / "agent-chats").exists()
