"""A real in-process Jupyter server with the extension (pytest-jupyter)."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

pytest_plugins = ["pytest_jupyter.jupyter_server"]


def pytest_configure(config: pytest.Config) -> None:
    if config.pluginmanager.has_plugin("asyncio"):
        raise pytest.UsageError(
            "The server tests run in pytest-jupyter's event loop, which pytest-asyncio would "
            "replace: run them with `pytest -p no:asyncio tests/extension/server` (make test does)."
        )


@pytest.fixture
def agentspace_state(tmp_path: Path) -> Path:
    return tmp_path / "agentspace-state"


@pytest.fixture
def jp_server_config(agentspace_state: Path) -> dict[str, Any]:
    return {
        "ServerApp": {"jpserver_extensions": {"agentspace": True}},
        "AgentspaceApp": {
            "state_dir": str(agentspace_state),
            "model": "scripted/echo",
            "sandbox": "bubblewrap",
            "heartbeat_seconds": 0.2,
        },
    }


Fetch = Callable[..., Awaitable[Any]]


@pytest.fixture
def api(jp_fetch: Fetch) -> Callable[..., Awaitable[tuple[int, Any]]]:
    """``await api("POST", "sessions", body={...})`` → (status, parsed JSON or text)."""

    async def call(method: str, path: str, body: Any = None, **kw: Any) -> tuple[int, Any]:
        if body is not None:
            kw["body"] = body if isinstance(body, (str, bytes)) else json.dumps(body)
        elif method in ("POST", "PUT"):
            kw["body"] = b"{}"
        response = await jp_fetch(
            "agentspace", "api", *path.split("/"), method=method, raise_error=False, **kw
        )
        raw = response.body
        kind = response.headers.get("Content-Type", "")
        if "json" in kind and raw:
            return response.code, json.loads(raw)
        return response.code, raw

    return call
