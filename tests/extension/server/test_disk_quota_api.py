"""The quota filesystem through the REST API: PUT past it is refused, the status says what
holds. Needs root and loop devices (CI); the fallback's status is in the workspace tests."""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from agentspace.sandbox import disks

pytestmark = pytest.mark.skipif(
    disks.probe() is not None, reason=f"no quota filesystems here: {disks.probe()} (CI is root)"
)
Api = Callable[..., Awaitable[tuple[int, Any]]]


@pytest.fixture
def jp_server_config(jp_server_config: dict[str, Any]) -> dict[str, Any]:
    jp_server_config["AgentspaceApp"]["quota_mb"] = 20
    return jp_server_config


async def test_put_past_the_quota_filesystem_is_refused_and_the_status_says_so(
    api: Api, agentspace_state: Path
) -> None:
    _, session = await api("POST", "sessions", body={"notebook": "q.ipynb"})
    sid = session["id"]
    folder = agentspace_state / "workspaces" / sid
    assert folder.is_mount()
    (folder / "fill.bin").write_bytes(os.urandom(20 << 20))  # by another writer (a kernel)
    status, err = await api("PUT", f"sessions/{sid}/files/more.bin", body=os.urandom(2 << 20))
    assert status == 400, err
    assert "the workspace is full: its quota is 20 MB (sandbox_policy.quota_mb)" in err["message"]
    assert len((folder / "fill.bin").read_bytes()) == 20 << 20
    assert not (folder / "more.bin").exists()
    (folder / "fill.bin").unlink()
    status, _ = await api("PUT", f"sessions/{sid}/files/more.bin", body=os.urandom(2 << 20))
    assert status == 200
    _, info = await api("GET", f"sessions/{sid}")
    assert "disk: 20 MB quota enforced by its own filesystem" in info["sandbox_backend"]
