"""End to end: a real `jupyter server` subprocess driven over HTTP, then shut down cleanly."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import signal
import socket
import sqlite3
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from tornado.httpclient import AsyncHTTPClient, HTTPResponse

from agentspace.testing import write_script

from .sse import read_sse


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    def __init__(self, port: int, token: str, proc: asyncio.subprocess.Process, state: Path):
        self.port, self.token, self.proc, self.state = port, token, proc, state
        self.base = f"http://127.0.0.1:{port}"
        self.auth = {"Authorization": f"token {token}"}

    async def call(
        self, method: str, path: str, body: Any = None, *, token: bool = True, raw: bool = False
    ) -> tuple[int, Any]:
        data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body))
        if data is None and method in ("POST", "PUT"):
            data = b"{}"
        response: HTTPResponse = await AsyncHTTPClient().fetch(
            self.base + path, method=method, body=data, raise_error=False,
            headers=self.auth if token else {"Authorization": "token wrong"},
            request_timeout=30, follow_redirects=False,
        )  # fmt: skip
        if raw or "json" not in response.headers.get("Content-Type", ""):
            return response.code, response.body
        return response.code, json.loads(response.body or b"null")


@contextlib.asynccontextmanager
async def start_server(tmp_path: Path) -> AsyncIterator[Server]:
    """A jupyter server subprocess (an async context, as pytest-jupyter has no async fixtures)."""
    port, token = free_port(), secrets.token_hex(16)
    state, root = tmp_path / "state", tmp_path / "root"
    root.mkdir()
    config = tmp_path / "jupyter_server_config.json"
    config.write_text(json.dumps({
        "ServerApp": {"jpserver_extensions": {"agentspace": True}},
        "AgentspaceApp": {"state_dir": str(state), "sandbox": "bubblewrap",
                          "model": "scripted/echo", "heartbeat_seconds": 1},
    }))  # fmt: skip
    argv = [sys.executable, "-m", "jupyter_server", f"--port={port}", "--ip=127.0.0.1",
            f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}",
            "--ServerApp.open_browser=False", f"--config={config}"]  # fmt: skip
    if os.geteuid() == 0:
        argv.append("--allow-root")
    env = {**os.environ, "JUPYTER_CONFIG_DIR": str(tmp_path / "cfg"),
           "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime")}  # fmt: skip
    proc = await asyncio.create_subprocess_exec(
        *argv, env=env, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE
    )
    srv = Server(port, token, proc, state)
    try:
        for _ in range(300):  # bounded: the server takes ~2 s to answer
            try:
                code, _ = await srv.call("GET", "/api/status")
                if code == 200:
                    break
            except OSError:
                pass
            await asyncio.sleep(0.05)
        else:
            raise AssertionError("the jupyter server did not start")
        yield srv
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_full_flow_then_clean_shutdown(tmp_path: Path) -> None:
    async with start_server(tmp_path) as server:
        await _flow(server, tmp_path)


async def _flow(server: Server, tmp_path: Path) -> None:
    page = "<h1>served from the sandbox</h1>"
    model = write_script(
        tmp_path / "script.json",
        {"text": "Writing the page.", "tool_calls": [
            {"name": "write_file", "arguments": {"path": "index.html", "content": page}}]},
        {"text": "Starting a server.", "tool_calls": [
            {"name": "start_process",
             "arguments": {"command": "python3 -m http.server 8000 --bind 127.0.0.1",
                           "name": "web"}}]},
        {"text": "The page is up."},
    )  # fmt: skip
    code, session = await server.call("POST", "/agentspace/api/sessions",
                                      {"notebook": "e2e.ipynb", "model": model})  # fmt: skip
    assert code == 200
    sid = session["id"]
    api = f"/agentspace/api/sessions/{sid}"
    code, _ = await server.call("POST", f"{api}/messages", {"text": "make me a page"})
    assert code == 202
    after = 0
    for _ in range(2):  # two calls need approval, one run each
        _, events = await read_sse(server.port, f"{api}/events?after={after}", server.auth)
        finished = events[-1][1]
        assert finished["type"] == "RUN_FINISHED" and finished["outcome"]["type"] == "interrupt"
        call = finished["outcome"]["interrupts"][0]["toolCallId"]
        code, _ = await server.call("POST", f"{api}/approvals/{call}", {"decision": "approve"})
        assert code == 200
        after = events[-1][0] or 0
    _, events = await read_sse(server.port, f"{api}/events?after={after}", server.auth)
    assert events[-1][1]["outcome"]["type"] == "success"
    text = "".join(e["delta"] for _, e in events if e["type"] == "TEXT_MESSAGE_CONTENT")
    assert text.endswith("The page is up.")
    preview = f"/agentspace/preview/{sid}/8000/index.html"
    for _ in range(200):  # the http.server in the sandbox may still be starting
        code, body = await server.call("GET", preview, raw=True)
        if code == 200:
            break
        await asyncio.sleep(0.05)
    assert code == 200 and body.decode() == page
    code, _ = await server.call("GET", preview, token=False, raw=True)
    assert code == 403
    for method, path in [("GET", ""), ("POST", ""), ("GET", f"/{sid}"), ("DELETE", f"/{sid}"),
                         ("POST", f"/{sid}/messages"), ("GET", f"/{sid}/events"),
                         ("POST", f"/{sid}/stop"), ("POST", f"/{sid}/resume"),
                         ("POST", f"/{sid}/approvals/x"), ("POST", f"/{sid}/agui"),
                         ("GET", f"/{sid}/files"), ("GET", f"/{sid}/files/index.html"),
                         ("PUT", f"/{sid}/files/x"), ("GET", f"/{sid}/processes"),
                         ("GET", f"/{sid}/processes/web/output"),
                         ("POST", f"/{sid}/processes/web/stop")]:  # fmt: skip
        code, _ = await server.call(method, f"/agentspace/api/sessions{path}", token=False)
        assert code == 403, (method, path, code)

    # A long run is going when the server is asked to stop.
    slow = write_script(tmp_path / "slow.json", {"text": "word " * 5000, "delay_ms": 5})
    _, other = await server.call("POST", "/agentspace/api/sessions",
                                 {"notebook": "slow.ipynb", "model": slow})  # fmt: skip
    await server.call("POST", f"/agentspace/api/sessions/{other['id']}/messages", {"text": "go"})
    _, started = await read_sse(server.port, f"/agentspace/api/sessions/{other['id']}/events",
                                server.auth, until="TEXT_MESSAGE_CONTENT")  # fmt: skip
    assert started
    server.proc.send_signal(signal.SIGTERM)
    assert await asyncio.wait_for(server.proc.wait(), 30) is not None
    with sqlite3.connect(server.state / "agentspace.db") as db:
        (outcome,) = db.execute(
            "SELECT data FROM events WHERE session_id = ? ORDER BY seq DESC LIMIT 1",
            (other["id"],),
        ).fetchone()
        assert json.loads(outcome)["type"] in ("RUN_FINISHED", "CUSTOM")
        rows = db.execute(
            "SELECT data FROM events WHERE session_id = ? ORDER BY seq", (other["id"],)
        ).fetchall()
        types = [json.loads(d)["type"] for (d,) in rows]
        assert "RUN_FINISHED" in types  # the run was stopped and its end committed
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:  # no orphan: nothing from the sandboxes survives
        left = [p for p in _processes() if str(server.state) in p or "http.server 8000" in p]
        if not left:
            break
        await asyncio.sleep(0.05)
    assert not left, left


def _processes() -> list[str]:
    out = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                out.append(Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode())
            except OSError:
                pass
    return out
