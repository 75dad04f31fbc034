"""One scenario through REST (a real Jupyter server) and through the embedded engine.

Both clients are adapters over the one application API of the engine, so what a notebook
sees is the same in either mode: the same replies, the same events, the same errors with the
same codes and messages. Only what cannot match is normalised: ids, times, the state folder,
and who decided (the server's user vs the embedded notebook).
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from agentspace.testing import write_script
from agentspace_kernel.client.base import AgentClient, Settings
from agentspace_kernel.client.discovery import Location, ServerInfo
from agentspace_kernel.client.embedded import EmbeddedClient
from agentspace_kernel.client.remote import RemoteClient
from agentspace_kernel.errors import ClientError

from .harness import Server, jupyter_server

NOTEBOOK = "work/compare.ipynb"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with jupyter_server(tmp_path_factory.mktemp("one-api")) as srv:
        yield srv


def remote(server: Server) -> AgentClient:
    info = ServerInfo(url=server.url, token=server.token, root_dir=str(server.root), pid=0)
    return RemoteClient(Location(server=info, notebook=NOTEBOOK, why="a test server"), info)


def embedded(state: Path) -> AgentClient:
    settings = Settings(mode="embedded", state_dir=str(state), sandbox="bubblewrap")
    return EmbeddedClient(Location(server=None, notebook=NOTEBOOK, why="no server"), settings)


async def until_finished(client: AgentClient, after: int) -> tuple[int, list[dict[str, Any]]]:
    seen: list[dict[str, Any]] = []
    events: AsyncIterator[tuple[int, dict[str, Any]]] = client.events(after)
    async for seq, event in events:
        seen.append(event)
        after = seq
        if event["type"] in ("RUN_FINISHED", "RUN_ERROR"):
            break
    await events.aclose()  # type: ignore[attr-defined]
    return after, seen


async def error_of(work: Any) -> dict[str, Any]:
    try:
        answer = await work
    except ClientError as exc:
        return {"code": exc.code, "message": exc.message}
    return {"no error": answer}


async def scenario(client: AgentClient, script: str) -> dict[str, Any]:
    """Everything a notebook does with its session, and what it got back."""
    got: dict[str, Any] = {}
    try:
        got["open"] = await client.open(model=script)
        got["send"] = await client.send("write the file")
        after, got["first run"] = await until_finished(client, 0)
        got["info while paused"] = await client.info()
        pending = got["info while paused"]["pending_calls"]
        got["decide"] = await client.decide(pending[0]["tool_call_id"], {"decision": "approve"})
        after, got["second run"] = await until_finished(client, after)
        got["decide again"] = await error_of(
            client.decide(pending[0]["tool_call_id"], {"decision": "approve"})
        )
        got["decide unknown"] = await error_of(client.decide("call_nope", {"decision": "approve"}))
        got["decide invalid"] = await error_of(
            client.decide(pending[0]["tool_call_id"], {"decision": "maybe"})
        )
        got["history"] = await client.history(10)
        got["files"] = await client.files(".")
        got["files of a file"] = await error_of(client.files("a.txt"))
        got["files outside"] = await error_of(client.files("../.."))
        got["files missing"] = await error_of(client.files("nope"))
        got["processes"] = await client.processes()
        got["output unknown"] = await error_of(client.output("nope"))
        got["configure"] = await client.configure(policies={"shell": "deny"})
        got["configure invalid"] = await error_of(client.configure(policies={"nope!": "allow"}))
        got["resume when idle"] = await client.resume()
        got["stop"] = await client.stop()
        got["info"] = await client.info()
    finally:
        await client.close()
    return got


WHO = re.compile(r"\b(decided: \w+) by [^.]+")  # the server's user vs the embedded notebook
IDS = re.compile(r"\b(?:[0-9a-f]{32}|(?:msg|run|call|tool)_[0-9A-Za-z_-]+)\b")
TIMES = {"created", "timestamp", "started", "ended", "last_active", "updated"}


def normalised(value: Any, folder: str) -> Any:
    if isinstance(value, dict):
        return {
            k: ("<time>" if k in TIMES and v is not None else normalised(v, folder))
            for k, v in value.items()
            if k not in ("decided_by", "by", "sender", "name") or not isinstance(v, str)
        }
    if isinstance(value, list):
        return [normalised(v, folder) for v in value]
    if isinstance(value, str):
        return WHO.sub(r"\1 by <who>", IDS.sub("<id>", value.replace(folder, "<folder>")))
    return value


async def test_rest_and_embedded_answer_alike(server: Server, tmp_path: Path) -> None:
    script = write_script(
        tmp_path / "writes.json",
        {"text": "Writing.", "tool_calls": [
            {"name": "write_file", "arguments": {"path": "a.txt", "content": "same"}}]},
        {"text": "Done."},
    )  # fmt: skip
    over_rest = await scenario(remote(server), script)
    in_process = await scenario(embedded(tmp_path / "embedded-state"), script)

    rest = normalised(over_rest, str(Path(over_rest["open"]["workspace"]).parent))
    emb = normalised(in_process, str(Path(in_process["open"]["workspace"]).parent))
    assert json.dumps(rest, indent=1, sort_keys=True) == json.dumps(emb, indent=1, sort_keys=True)
    # and the scenario did what it says, so the comparison is not of two empty answers
    assert rest["info while paused"]["status"] == "awaiting_approval"
    assert [e["path"] for e in rest["files"]["entries"]] == ["a.txt"]
    assert rest["decide again"]["code"] == "conflict"
    assert rest["files outside"]["code"] == "path_escape"
    assert rest["second run"][-1]["type"] == "RUN_FINISHED"
