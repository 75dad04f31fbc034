"""The REST API, SSE and AG-UI endpoints against a real in-process Jupyter server."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from agentspace.testing import write_script

from .sse import read_sse

Api = Callable[..., Awaitable[tuple[int, Any]]]


@pytest.fixture
def headers(jp_auth_header: dict[str, str]) -> dict[str, str]:
    return dict(jp_auth_header)


@pytest.fixture
def events_path(jp_base_url: str) -> Callable[[str], str]:
    return lambda sid: f"{jp_base_url.rstrip('/')}/agentspace/api/sessions/{sid}/events"


async def test_sessions_are_idempotent_per_notebook(api: Api) -> None:
    status, created = await api("POST", "sessions", body={"notebook": "dir/./a.ipynb"})
    assert status == 200 and created["notebook"] == "dir/a.ipynb"
    status, again = await api("POST", "sessions", body={"notebook": "dir/a.ipynb"})
    assert again["id"] == created["id"]
    status, listing = await api("GET", "sessions")
    assert [s["id"] for s in listing["sessions"]] == [created["id"]]
    status, one = await api("GET", f"sessions/{created['id']}")
    assert status == 200 and one["status"] == "idle"
    assert one["limits"] == {  # the server's defaults; the history's window for echo
        "token_budget": None,
        "cost_ceiling": None,
        "max_model_calls": 20,
        "context_window": 128_000,
    }
    status, _gone = await api("DELETE", f"sessions/{created['id']}")
    assert status == 204
    status, err = await api("GET", f"sessions/{created['id']}")
    assert status == 404 and err["error"] == "not_found" and "message" in err


async def test_message_streams_over_sse_with_replay(
    api: Api, jp_http_port: int, headers: dict[str, str], events_path: Callable[[str], str]
) -> None:
    _, session = await api("POST", "sessions", body={"notebook": "chat.ipynb"})
    sid = session["id"]
    status, receipt = await api("POST", f"sessions/{sid}/messages", body={"text": "hello"})
    assert status == 202 and receipt["position"] == 0
    code, events = await read_sse(jp_http_port, events_path(sid), headers)
    assert code == 200
    ids = [i for i, _ in events]
    assert ids == list(range(1, len(ids) + 1))
    kinds = [e["type"] for _, e in events]
    assert kinds[0] == "RUN_STARTED" and kinds[-1] == "RUN_FINISHED"
    user_start = next(e for _, e in events if e.get("role") == "user")
    assert user_start["name"]  # stamped with the server's identity, not the client's word
    text = "".join(e["delta"] for _, e in events if e["type"] == "TEXT_MESSAGE_CONTENT")
    assert text == "helloYou said: hello"
    # reconnect with Last-Event-ID: exactly what was missed
    code, tail = await read_sse(
        jp_http_port, events_path(sid), {**headers, "Last-Event-ID": "5"}, until="RUN_FINISHED"
    )
    assert next(i for i, _ in tail) == 6
    code, tail = await read_sse(jp_http_port, events_path(sid) + "?after=x", headers)
    assert code == 400


async def test_approval_over_the_api(
    api: Api,
    tmp_path: Path,
    jp_http_port: int,
    headers: dict[str, str],
    events_path: Callable[[str], str],
) -> None:
    model = write_script(
        tmp_path / "s.json",
        {
            "text": "writing",
            "tool_calls": [{"name": "write_file", "arguments": {"path": "a.txt", "content": "x"}}],
        },
        {"text": "done"},
    )
    _, session = await api("POST", "sessions", body={"notebook": "ap.ipynb", "model": model})
    sid = session["id"]
    await api("POST", f"sessions/{sid}/messages", body={"text": "go"})
    _, events = await read_sse(jp_http_port, events_path(sid), headers)
    (interrupt,) = events[-1][1]["outcome"]["interrupts"]
    call = interrupt["toolCallId"]
    status, err = await api("POST", f"sessions/{sid}/approvals/{call}", body={"decision": "edit"})
    assert status == 422 and "arguments" in err["message"]
    status, err = await api("POST", f"sessions/{sid}/approvals/nope", body={"decision": "approve"})
    assert status == 404
    status, decided = await api(
        "POST", f"sessions/{sid}/approvals/{call}", body={"decision": "approve"}
    )
    assert status == 200 and decided["pending"] == []
    last = events[-1][0]
    _, resumed = await read_sse(jp_http_port, events_path(sid) + f"?after={last}", headers)
    assert any(e["type"] == "TOOL_CALL_RESULT" for _, e in resumed)
    status, content = await api("GET", f"sessions/{sid}/files/a.txt")
    assert status == 200 and content == b"x"


async def test_agui_endpoint_runs_and_resumes(
    api: Api, tmp_path: Path, jp_http_port: int, headers: dict[str, str], jp_base_url: str
) -> None:
    model = write_script(
        tmp_path / "s.json",
        {
            "text": "",
            "tool_calls": [{"name": "write_file", "arguments": {"path": "b.txt", "content": "y"}}],
        },
        {"text": "all done"},
    )
    _, session = await api("POST", "sessions", body={"notebook": "agui.ipynb", "model": model})
    sid = session["id"]
    url = f"{jp_base_url.rstrip('/')}/agentspace/api/sessions/{sid}/agui"
    run = {
        "threadId": sid,
        "runId": "r1",
        "state": {},
        "tools": [],
        "context": [],
        "forwardedProps": {},
        "messages": [{"id": "u1", "role": "user", "content": "go"}],
    }
    code, events = await read_sse(
        jp_http_port, url, headers, method="POST", body=json.dumps(run).encode()
    )
    assert code == 200
    assert events[0][1]["type"] == "RUN_STARTED" and events[0][1]["runId"] == "r1"
    finished = events[-1][1]
    assert finished["type"] == "RUN_FINISHED" and finished["outcome"]["type"] == "interrupt"
    call = finished["outcome"]["interrupts"][0]["id"]
    again = {**run, "runId": "r2", "messages": []}
    code, _ = await read_sse(
        jp_http_port,
        url,
        headers,
        method="POST",
        body=json.dumps(again | {"messages": run["messages"]}).encode(),
    )
    assert code == 409  # interrupts pending: answer them with resume
    resume = {
        **again,
        "resume": [{"interruptId": call, "status": "resolved", "payload": {"decision": "approve"}}],
    }
    code, events = await read_sse(
        jp_http_port, url, headers, method="POST", body=json.dumps(resume).encode()
    )
    assert code == 200 and events[-1][1]["outcome"]["type"] == "success"
    text = "".join(e["delta"] for _, e in events if e["type"] == "TEXT_MESSAGE_CONTENT")
    assert text == "all done"
    bad = {**run, "threadId": "other"}
    code, _ = await read_sse(
        jp_http_port, url, headers, method="POST", body=json.dumps(bad).encode()
    )
    assert code == 400


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ("{not json", 400, "bad_json"),
        ({"notebook": 3}, 422, "invalid"),
        ({"notebook": "x.ipynb", "extra": 1}, 422, "invalid"),
        ({"notebook": "../escape.ipynb"}, 400, "bad_request"),
        ({"notebook": "/abs.ipynb"}, 400, "bad_request"),
    ],
)
async def test_bad_input_is_a_clear_4xx(api: Api, body: Any, status: int, code: str) -> None:
    got, err = await api("POST", "sessions", body=body)
    assert got == status and err["error"] == code and err["message"]


async def test_limits_rate_size_and_queue(api: Api, jp_serverapp: Any) -> None:
    state = jp_serverapp.web_app.settings["agentspace"]
    state.app.messages_per_minute = 2
    _, session = await api("POST", "sessions", body={"notebook": "rl.ipynb"})
    sid = session["id"]
    for _ in range(2):
        status, _ = await api("POST", f"sessions/{sid}/messages", body={"text": "hi"})
        assert status == 202
    status, err = await api("POST", f"sessions/{sid}/messages", body={"text": "hi"})
    assert status == 429 and err["error"] == "rate_limited"
    state.app.messages_per_minute = 0
    state.app.max_request_bytes = 1000
    status, err = await api("POST", f"sessions/{sid}/messages", body={"text": "x" * 2000})
    assert status == 413


async def test_files_and_processes(api: Api) -> None:
    _, session = await api("POST", "sessions", body={"notebook": "f.ipynb"})
    sid = session["id"]
    status, put = await api("PUT", f"sessions/{sid}/files/sub/n.txt", body=b"hello")
    assert status == 200 and put == {"path": "sub/n.txt", "size": 5}
    status, listing = await api("GET", f"sessions/{sid}/files", params={"path": "sub"})
    assert status == 200 and [e["path"] for e in listing["entries"]] == ["n.txt"]
    status, body = await api("GET", f"sessions/{sid}/files/sub/n.txt")
    assert body == b"hello"
    status, err = await api("GET", f"sessions/{sid}/files/missing.txt")
    assert status == 404
    status, err = await api("GET", f"sessions/{sid}/files/..%2F..%2Fetc%2Fpasswd")
    assert status in (403, 404) and "error" in err
    status, procs = await api("GET", f"sessions/{sid}/processes")
    assert status == 200 and procs == {"processes": []}
    status, err = await api("GET", f"sessions/{sid}/processes/nope/output")
    assert status == 404 and "No process" in err["message"]


async def test_a_process_restarts_over_rest(api: Api, jp_serverapp: Any) -> None:
    _, session = await api("POST", "sessions", body={"notebook": "restart.ipynb"})
    sid = session["id"]
    engine = await jp_serverapp.web_app.settings["agentspace"].engine()
    runtime = await engine.workspaces.get(await engine.get(sid))  # a real bubblewrap sandbox
    await runtime.processes.start("echo up; sleep 1000", name="sleeper")
    status, stopped = await api("POST", f"sessions/{sid}/processes/sleeper/stop")
    assert status == 200 and stopped["status"] == "stopped"

    status, again = await api("POST", f"sessions/{sid}/processes/sleeper/restart")
    assert status == 200, again
    assert again["status"] == "running" and again["command"] == "echo up; sleep 1000"
    assert again["started"] > stopped["started"] and again["exit_code"] is None
    _, listing = await api("GET", f"sessions/{sid}/processes")
    assert listing["processes"] == [again]  # the record, as the other endpoints give it

    # Running, it is stopped first: one process, started anew.
    status, twice = await api("POST", f"sessions/{sid}/processes/sleeper/restart")
    assert status == 200 and twice["status"] == "running" and twice["started"] > again["started"]
    _, listing = await api("GET", f"sessions/{sid}/processes")
    assert [p["status"] for p in listing["processes"]] == ["running"]
    alive = [r for r in runtime.processes.listing() if r.name in runtime.processes._live]
    assert [r.name for r in alive] == ["sleeper"]
    deadline = asyncio.get_running_loop().time() + 60  # a loaded machine is slow to spawn
    while True:  # each run's output goes on in the one log, as it comes (polled, bounded)
        _, output = await api("GET", f"sessions/{sid}/processes/sleeper/output")
        done = output["output"].splitlines().count("up") == 3  # the last line has no newline
        if done or asyncio.get_running_loop().time() > deadline:
            break
        await asyncio.sleep(0.025)
    assert output["output"].splitlines()[1:] == ["$ echo up; sleep 1000", "up"] * 3

    status, err = await api("POST", f"sessions/{sid}/processes/nope/restart")
    assert status == 404 and err["error"] == "not_found"
    assert err["message"] == "No process named 'nope' (known: sleeper)."
    status, err = await api("POST", "sessions/nosuch/processes/sleeper/restart")
    assert status == 404 and err["error"] == "not_found"
    await api("POST", f"sessions/{sid}/processes/sleeper/stop")


async def test_renaming_a_notebook_keeps_its_session(api: Api, jp_fetch: Any) -> None:
    await jp_fetch(
        "api",
        "contents",
        "old.ipynb",
        method="PUT",
        body=json.dumps(
            {
                "type": "notebook",
                "content": {"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5},
            }
        ),
    )
    _, session = await api("POST", "sessions", body={"notebook": "old.ipynb"})
    await jp_fetch("api", "contents", "moved", method="PUT", body=json.dumps({"type": "directory"}))
    await jp_fetch(
        "api",
        "contents",
        "old.ipynb",
        method="PATCH",
        body=json.dumps({"path": "moved/new.ipynb"}),
        raise_error=False,
    )
    for _ in range(100):  # the rename event is delivered asynchronously
        _, again = await api("GET", f"sessions/{session['id']}")
        if again["notebook"] == "moved/new.ipynb":
            break
        await asyncio.sleep(0.02)
    assert again["notebook"] == "moved/new.ipynb"
    _, same = await api("POST", "sessions", body={"notebook": "moved/new.ipynb"})
    assert same["id"] == session["id"]


ENDPOINTS = [
    ("GET", "sessions"),
    ("POST", "sessions"),
    ("GET", "sessions/S"),
    ("DELETE", "sessions/S"),
    ("PATCH", "sessions/S"),
    ("POST", "sessions/S/messages"),
    ("GET", "sessions/S/messages"),
    ("GET", "sessions/S/tools"),
    ("PUT", "sessions/S/tools"),
    ("GET", "sessions/S/events"),
    ("POST", "sessions/S/stop"),
    ("POST", "sessions/S/resume"),
    ("POST", "sessions/S/approvals/c"),
    ("POST", "sessions/S/agui"),
    ("GET", "sessions/S/files"),
    ("GET", "sessions/S/files/x"),
    ("PUT", "sessions/S/files/x"),
    ("GET", "sessions/S/processes"),
    ("GET", "sessions/S/processes/p/output"),
    ("POST", "sessions/S/processes/p/stop"),
    ("POST", "sessions/S/processes/p/restart"),
    ("GET", "openapi.json"),
]


async def test_every_endpoint_refuses_without_the_token(api: Api, jp_fetch: Any) -> None:
    _, session = await api("POST", "sessions", body={"notebook": "auth.ipynb"})
    for method, path in ENDPOINTS:
        parts = path.replace("S", session["id"]).split("/")
        response = await jp_fetch(
            "agentspace",
            "api",
            *parts,
            method=method,
            raise_error=False,
            headers={"Authorization": "token wrong"},
            **({"body": b"{}"} if method in ("POST", "PUT", "PATCH") else {}),
        )
        assert response.code == 403, (method, path, response.code)
    response = await jp_fetch(
        "agentspace",
        "preview",
        session["id"],
        "8000",
        "",
        raise_error=False,
        headers={"Authorization": "token wrong"},
    )
    assert response.code == 403


async def test_openapi_document_is_served(api: Api) -> None:
    status, doc = await api("GET", "openapi.json")
    assert status == 200 and doc["openapi"].startswith("3.")
    assert "/sessions/{session_id}/messages" in doc["paths"]
    assert "SessionInfo" in doc["components"]["schemas"]
