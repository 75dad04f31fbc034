"""Policies through PATCH and a run, against a server whose config denies ``shell``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from agentspace.testing import turn, write_script

from .sse import read_sse

Api = Callable[..., Awaitable[tuple[int, Any]]]
WRITE = ("write_file", {"path": "a.txt", "content": "x"})
SHELL = ("shell", {"command": "echo ran >> count.txt"})


@pytest.fixture
def jp_server_config(jp_server_config: dict[str, Any]) -> dict[str, Any]:
    jp_server_config["AgentspaceApp"]["policies"] = {"shell": "deny"}
    return jp_server_config


@pytest.fixture
def run(
    api: Api, jp_auth_header: dict[str, str], jp_base_url: str, jp_http_port: int
) -> Callable[..., Awaitable[list[dict[str, Any]]]]:
    """Send ``text`` to session ``sid`` and return the events of the run up to its end."""

    async def go(sid: str, text: str = "go") -> list[dict[str, Any]]:
        _, info = await api("GET", f"sessions/{sid}")
        await api("POST", f"sessions/{sid}/messages", body={"text": text})
        url = f"{jp_base_url.rstrip('/')}/agentspace/api/sessions/{sid}/events"
        _, got = await read_sse(jp_http_port, f"{url}?after={info['last_seq']}", jp_auth_header)
        return [e for _, e in got]

    return go


async def session(api: Api, tmp_path: Path, name: str, *turns: dict[str, Any]) -> str:
    model = write_script(tmp_path / f"{name}.json", *turns)
    status, created = await api("POST", "sessions", body={"notebook": name, "model": model})
    assert status == 200
    return str(created["id"])


def results(events: list[dict[str, Any]]) -> list[str]:
    return [e["content"] for e in events if e["type"] == "TOOL_CALL_RESULT"]


def autos(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        e["value"]
        for e in events
        if e["type"] == "CUSTOM" and e["name"] == "agentspace.decision" and e["value"].get("auto")
    ]


async def test_a_session_star_deny_is_applied(api: Api, run: Any, tmp_path: Path) -> None:
    sid = await session(api, tmp_path, "deny.ipynb", turn("", WRITE), turn("ok"))
    status, info = await api("PATCH", f"sessions/{sid}", body={"policies": {"*": "deny"}})
    assert status == 200 and info["policies"] == {"*": "deny"}
    _, listing = await api("GET", f"sessions/{sid}/tools")
    write = next(t for t in listing["tools"] if t["name"] == "write_file")
    assert (write["policy"], write["rule"]) == ("deny", "session: *")
    events = await run(sid)
    assert events[-1]["outcome"]["type"] == "success"  # denied at once, not held
    assert results(events) == [
        "The tool write_file is denied by policy in this session; it did not run."
    ]
    status, _ = await api("GET", f"sessions/{sid}/files/a.txt")
    assert status == 404


async def test_a_server_deny_is_never_lifted_by_a_session(
    api: Api, run: Any, tmp_path: Path
) -> None:
    sid = await session(api, tmp_path, "lift.ipynb", turn("", SHELL, WRITE), turn("ok"))
    status, err = await api("PATCH", f"sessions/{sid}", body={"policies": {"shell": "allow"}})
    assert status == 409 and err["tools"] == ["shell"]
    assert "server's policies deny shell (shell: deny)" in err["message"]
    status, info = await api("PATCH", f"sessions/{sid}", body={"policies": {"*": "allow"}})
    assert status == 200 and info["policies"] == {"*": "allow"}
    _, listing = await api("GET", f"sessions/{sid}/tools")
    rules = {t["name"]: (t["policy"], t["rule"]) for t in listing["tools"]}
    assert rules["shell"] == ("deny", "server: shell")
    assert rules["write_file"] == ("allow", "session: *")
    events = await run(sid)
    assert results(events)[0].startswith("The tool shell is denied by policy")
    status, _ = await api("GET", f"sessions/{sid}/files/count.txt")
    assert status == 404
    # the write went through without asking, and says which rule let it
    (auto,) = autos(events)
    assert auto["rule"] == "session: *" and auto["decision"] == "approve"
    _, history = await api("GET", f"sessions/{sid}/messages")
    tool_messages = [m for m in history["messages"] if m["role"] == "tool"]
    assert [m.get("approval") for m in tool_messages] == [None, "auto-approved (session: *)"]


async def test_always_allow_is_per_tool_and_marks_what_it_lets_through(
    api: Api,
    run: Any,
    tmp_path: Path,
    jp_auth_header: dict[str, str],
    jp_base_url: str,
    jp_http_port: int,
) -> None:
    second = ("write_file", {"path": "b.txt", "content": "y"})
    edit = ("edit_file", {"path": "a.txt", "old_string": "x", "new_string": "z"})
    sid = await session(
        api,
        tmp_path,
        "always.ipynb",
        turn("", WRITE),
        turn("", second),
        turn("", edit),
        turn("ok"),
    )
    events = await run(sid)
    (interrupt,) = events[-1]["outcome"]["interrupts"]
    status, _ = await api(
        "POST",
        f"sessions/{sid}/approvals/{interrupt['toolCallId']}",
        body={"decision": "approve", "remember": True},
    )
    assert status == 200
    url = f"{jp_base_url.rstrip('/')}/agentspace/api/sessions/{sid}/events"
    after = f"?after={len(events)}"
    _, got = await read_sse(jp_http_port, url + after, jp_auth_header)
    resumed = [e for _, e in got]
    # the second write_file ran without asking, marked; edit_file (another tool) still asks
    (auto,) = autos(resumed)
    assert auto["rule"] == "always allow (session)"
    assert resumed[-1]["outcome"]["type"] == "interrupt"
    assert resumed[-1]["outcome"]["interrupts"][0]["metadata"]["tool"] == "edit_file"
    _, listing = await api("GET", f"sessions/{sid}/tools")
    rules = {t["name"]: (t["policy"], t["rule"]) for t in listing["tools"]}
    assert rules["write_file"] == ("allow", "always allow (session)")
    assert rules["edit_file"][0] == "ask"
