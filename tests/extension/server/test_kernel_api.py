"""Kernel tools over REST and AG-UI: set the tools, get the call, send its result, resume."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from agentspace.testing import turn, write_script

from .sse import read_sse

Api = Callable[..., Awaitable[tuple[int, Any]]]
SUMMARY = {
    "name": "summarise",
    "description": "Summarise a DataFrame of the user's namespace.",
    "parameters": {
        "type": "object",
        "properties": {"frame": {"type": "string"}},
        "required": ["frame"],
    },
}


@pytest.fixture
def headers(jp_auth_header: dict[str, str]) -> dict[str, str]:
    return dict(jp_auth_header)


@pytest.fixture
def url(jp_base_url: str) -> Callable[[str, str], str]:
    return lambda sid, tail: f"{jp_base_url.rstrip('/')}/agentspace/api/sessions/{sid}/{tail}"


async def session_with(api: Api, notebook: str, model: str, tools: dict[str, Any]) -> str:
    status, created = await api("POST", "sessions", body={"notebook": notebook, "model": model})
    assert status == 200
    sid: str = created["id"]
    status, listing = await api("PUT", f"sessions/{sid}/tools", body=tools)
    assert status == 200, listing
    return sid


async def test_tools_are_set_listed_and_checked(api: Api) -> None:
    _, created = await api("POST", "sessions", body={"notebook": "tools.ipynb"})
    sid = created["id"]
    status, listing = await api(
        "PUT", f"sessions/{sid}/tools", body={"tools": [SUMMARY], "run_cell": True}
    )
    assert status == 200
    tools = {t["name"]: t for t in listing["tools"]}
    assert tools["run_cell"]["executor"] == "kernel" and tools["run_cell"]["policy"] == "ask"
    assert set(tools["run_cell"]["parameters"]["properties"]) == {"code", "cell_id"}
    assert tools["summarise"] == {
        **SUMMARY,
        "policy": "allow",
        "rule": "default",
        "executor": "kernel",
    }
    assert tools["write_file"]["executor"] == "sandbox" and tools["write_file"]["policy"] == "ask"
    status, again = await api("GET", f"sessions/{sid}/tools")
    assert status == 200 and again == listing
    _, info = await api("GET", f"sessions/{sid}")
    assert info["run_cell"] is True and info["kernel_tools"][0]["name"] == "summarise"

    clash = {**SUMMARY, "name": "shell"}
    status, err = await api("PUT", f"sessions/{sid}/tools", body={"tools": [clash]})
    assert status == 400 and "'shell'" in err["message"] and "built-in" in err["message"]
    bad = {**SUMMARY, "parameters": {"type": "array"}}
    status, err = await api("PUT", f"sessions/{sid}/tools", body={"tools": [bad]})
    assert status == 422 and "object" in err["message"]
    status, err = await api("PUT", f"sessions/{sid}/tools", body={"tools": [{"name": "x y"}]})
    assert status == 422
    _, still = await api("GET", f"sessions/{sid}/tools")
    assert still == listing  # refused sets change nothing
    status, listing = await api("PUT", f"sessions/{sid}/tools", body={"tools": []})
    assert status == 200 and all(t["executor"] == "sandbox" for t in listing["tools"])


async def test_kernel_call_waits_for_its_result(
    api: Api,
    tmp_path: Path,
    jp_http_port: int,
    headers: dict[str, str],
    url: Callable[[str, str], str],
) -> None:
    model = write_script(
        tmp_path / "k.json",
        turn("Let me check.", ("summarise", {"frame": "sales"})),
        turn("Sales are fine."),
    )
    sid = await session_with(api, "k.ipynb", model, {"tools": [SUMMARY]})
    await api("POST", f"sessions/{sid}/messages", body={"text": "how are sales?"})
    _, events = await read_sse(jp_http_port, url(sid, "events"), headers)
    (interrupt,) = events[-1][1]["outcome"]["interrupts"]
    call = interrupt["toolCallId"]
    assert interrupt["reason"] == "kernel_tool"
    assert interrupt["metadata"]["executor"] == "kernel"
    _, info = await api("GET", f"sessions/{sid}")
    assert info["status"] == "awaiting_approval" and info["pending_approvals"] == [call]
    assert info["pending_calls"] == [
        {
            "tool_call_id": call,
            "tool": "summarise",
            "arguments": {"frame": "sales"},
            "reason": "kernel_tool",
            "message": "Waiting for the notebook's kernel to run summarise",
            "executor": "kernel",
            "needs_approval": False,
            "preview": None,
        }
    ]
    assert info["usage"]["total_tokens"] > 0
    assert info["usage"]["total_tokens"] == (
        info["usage"]["input_tokens"] + info["usage"]["output_tokens"]
    )

    decide = f"sessions/{sid}/approvals/{call}"
    status, err = await api("POST", decide, body={"decision": "approve"})
    assert status == 409 and "runs in the notebook's kernel" in err["message"]
    status, err = await api("POST", decide, body={"decision": "result"})
    assert status == 422 and "output" in err["message"]
    status, decided = await api("POST", decide, body={"decision": "result", "output": "rows: 3"})
    assert status == 200 and decided["pending"] == []
    _, resumed = await read_sse(
        jp_http_port, url(sid, "events") + f"?after={events[-1][0]}", headers
    )
    results = [e for _, e in resumed if e["type"] == "TOOL_CALL_RESULT"]
    assert [(r["toolCallId"], r["content"]) for r in results] == [(call, "rows: 3")]
    assert resumed[-1][1]["outcome"]["type"] == "success"
    status, err = await api("POST", decide, body={"decision": "result", "output": "again"})
    assert status == 409 and "already decided" in err["message"]

    status, history = await api("GET", f"sessions/{sid}/messages")
    assert status == 200
    assert [m["role"] for m in history["messages"]] == ["user", "assistant", "tool", "assistant"]
    status, last = await api("GET", f"sessions/{sid}/messages", params={"limit": "2"})
    assert status == 200 and last["messages"] == history["messages"][-2:]
    assert last["messages"][0] == {
        "role": "tool",
        "tool_call_id": call,
        "content": "rows: 3",
        "id": last["messages"][0]["id"],
    }
    for bad in ("0", "x", "", "²"):
        status, err = await api("GET", f"sessions/{sid}/messages", params={"limit": bad})
        assert status == 400 and err["error"] == "bad_limit"


async def test_result_on_a_sandbox_call_is_a_400(
    api: Api,
    tmp_path: Path,
    jp_http_port: int,
    headers: dict[str, str],
    url: Callable[[str, str], str],
) -> None:
    model = write_script(
        tmp_path / "w.json", turn("", ("write_file", {"path": "a", "content": "b"}))
    )
    sid = await session_with(api, "w.ipynb", model, {"tools": [], "run_cell": True})
    await api("POST", f"sessions/{sid}/messages", body={"text": "write"})
    _, events = await read_sse(jp_http_port, url(sid, "events"), headers)
    (interrupt,) = events[-1][1]["outcome"]["interrupts"]
    assert interrupt["reason"] == "tool_approval"
    status, err = await api(
        "POST",
        f"sessions/{sid}/approvals/{interrupt['toolCallId']}",
        body={"decision": "result", "output": "done"},
    )
    assert status == 400 and "only kernel tools take a 'result'" in err["message"]
    _, info = await api("GET", f"sessions/{sid}")
    assert info["pending_approvals"] == [interrupt["toolCallId"]]


async def test_patch_changes_model_and_policies(api: Api, tmp_path: Path) -> None:
    _, created = await api("POST", "sessions", body={"notebook": "p.ipynb"})
    sid = created["id"]
    model = write_script(tmp_path / "p.json", turn("patched"))
    status, info = await api(
        "PATCH", f"sessions/{sid}", body={"model": model, "policies": {"shell": "allow"}}
    )
    assert status == 200
    assert info["model"] == model and info["effective_model"] == model
    assert info["policies"] == {"shell": "allow"}
    _, listing = await api("GET", f"sessions/{sid}/tools")
    assert next(t for t in listing["tools"] if t["name"] == "shell")["policy"] == "allow"
    status, err = await api("PATCH", f"sessions/{sid}", body={"policies": {"run_cell": "allow"}})
    assert status == 400 and "run_cell always asks" in err["message"]
    status, err = await api("PATCH", f"sessions/{sid}", body={"policies": {"shell": "maybe"}})
    assert status == 422
    status, err = await api("PATCH", f"sessions/{sid}", body={"colour": "red"})
    assert status == 422
    _, info = await api("GET", f"sessions/{sid}")
    assert info["policies"] == {"shell": "allow"}  # refused patches change nothing
    status, _ = await api("PATCH", "sessions/nope", body={})
    assert status == 404


async def test_agui_resume_with_a_result_payload(
    api: Api,
    tmp_path: Path,
    jp_http_port: int,
    headers: dict[str, str],
    url: Callable[[str, str], str],
) -> None:
    model = write_script(
        tmp_path / "a.json", turn("", ("run_cell", {"code": "df.shape"})), turn("It has 3 rows.")
    )
    sid = await session_with(api, "agui.ipynb", model, {"tools": [], "run_cell": True})
    run = {
        "threadId": sid,
        "runId": "r1",
        "state": {},
        "tools": [],
        "context": [],
        "forwardedProps": {},
        "messages": [{"id": "u1", "role": "user", "content": "shape?"}],
    }
    body = json.dumps(run).encode()
    code, events = await read_sse(jp_http_port, url(sid, "agui"), headers, method="POST", body=body)
    assert code == 200
    (interrupt,) = events[-1][1]["outcome"]["interrupts"]
    assert interrupt["reason"] == "kernel_tool" and interrupt["metadata"]["needs_approval"]
    assert f"%%agent_run {interrupt['id']}" in interrupt["message"]
    payload = {"decision": "result", "output": "(3, 2)", "arguments": {"code": "df.shape"}}
    resume = {
        **run,
        "runId": "r2",
        "messages": [],
        "resume": [{"interruptId": interrupt["id"], "status": "resolved", "payload": payload}],
    }
    body = json.dumps(resume).encode()
    code, events = await read_sse(jp_http_port, url(sid, "agui"), headers, method="POST", body=body)
    assert code == 200 and events[0][1]["runId"] == "r2"
    (result,) = [e for _, e in events if e["type"] == "TOOL_CALL_RESULT"]
    assert result["toolCallId"] == interrupt["id"] and result["content"] == "(3, 2)"
    assert events[-1][1]["outcome"]["type"] == "success"
    text = "".join(e["delta"] for _, e in events if e["type"] == "TEXT_MESSAGE_CONTENT")
    assert text == "It has 3 rows."
