"""The OpenAPI document is true: schemathesis fuzzes a live server with it.

A real ``jupyter server`` runs as a subprocess (the way CI and users run it), with the
extension on the offline ``scripted/echo`` model. schemathesis loads the served document
and, for every operation, sends generated requests (valid ones, and invalid ones: odd
characters in path parameters, garbage queries and headers, bodies of the wrong type or
content type, undeclared methods) and checks every answer: no 5xx, a documented status,
the documented content type and headers, a body matching its schema, and schema-violating
input refused with a 4xx. The server's log must show no uncaught exception either.

Most requests name a real session (a schemathesis dictionary bound to ``session_id`` and,
for AG-UI, to the body's ``threadId``), so the handlers get past the 404 and into their
logic; DELETE draws from sessions made to be deleted, so the others live on.

The SSE endpoints stream until the client leaves: schemathesis reads an event stream
until it has a few events or the operation's (short) request timeout passes, and checks
what arrived; a 200 with ``text/event-stream`` is what the document promises.

Generation is seeded and derandomized, and blind to agentspace's source (Hypothesis would
mix in its literals), so a run sends the same requests every time.
``SCHEMA_DEBUG=1`` prints the time and the statuses seen per operation.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis
from schemathesis.engine import Status
from schemathesis.engine.events import EngineFinished, FatalError, NonFatalError, ScenarioFinished

CHECKS = [
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
    "response_headers_conformance",
    "unsupported_method",
    "negative_data_rejection",
]
SEED = 20240601
REFUSALS = "400 401 403 404 405 406 409 413 415 422 428 429 5xx".split()
MAX_EXAMPLES = 50
MAX_REQUEST_BYTES = 1_000_000
STARTUP_SECONDS = 60.0
# Operations the fuzzer must get a success from (with the real session), or it tested nothing
# but 404s. Approvals and processes need a pending tool call or a process: not with echo.
MUST_SUCCEED = {
    "GET /sessions",
    "POST /sessions",
    "GET /sessions/{session_id}",
    "DELETE /sessions/{session_id}",
    "POST /sessions/{session_id}/messages",
    "GET /sessions/{session_id}/events",
    "POST /sessions/{session_id}/stop",
    "POST /sessions/{session_id}/resume",
    "POST /sessions/{session_id}/agui",
    "GET /sessions/{session_id}/files",
    "GET /sessions/{session_id}/files/{path}",
    "PUT /sessions/{session_id}/files/{path}",
    "GET /sessions/{session_id}/processes",
    "PATCH /sessions/{session_id}",
    "GET /sessions/{session_id}/messages",
    "GET /sessions/{session_id}/tools",
    "PUT /sessions/{session_id}/tools",
    "POST /chats",
}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Server:
    """A jupyter server subprocess: its URL, token and log."""

    def __init__(self, url: str, token: str, process: subprocess.Popen[bytes], log: Path) -> None:
        self.url, self.token, self.process, self.log = url, token, process, log
        self.http = requests.Session()
        self.http.headers["Authorization"] = f"token {token}"

    @property
    def api(self) -> str:
        return f"{self.url}agentspace/api"

    def call(self, method: str, path: str, **kw: Any) -> requests.Response:
        return self.http.request(method, f"{self.api}/{path}", timeout=30, **kw)

    def session(self, notebook: str) -> str:
        response = self.call("POST", "sessions", json={"notebook": notebook})
        assert response.status_code == 200, response.text
        sid: str = response.json()["id"]
        return sid

    def tail(self, lines: int = 60) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def assert_no_crash(self) -> None:
        """Expected client errors are not logged as exceptions; anything else is a bug."""
        crashes = [
            line
            for line in self.log.read_text(errors="replace").splitlines()
            if "Uncaught exception" in line or "Cannot send error response" in line
        ]
        assert not crashes, "\n".join(crashes[:20])


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    base = tmp_path_factory.mktemp("schema")
    root, jupyter = base / "root", base / "jupyter"
    root.mkdir()
    config = base / "jupyter_server_config.json"
    config.write_text(
        json.dumps(
            {
                "ServerApp": {"jpserver_extensions": {"agentspace": True, "jupyterlab_chat": True}},
                "AgentspaceApp": {
                    "state_dir": str(base / "state"),
                    "model": "scripted/echo",
                    "sandbox": "bubblewrap",
                    "messages_per_minute": 0,  # the fuzzer sends many (429: test_api)
                    "max_request_bytes": MAX_REQUEST_BYTES,
                    "heartbeat_seconds": 0.5,
                },
            }
        )
    )
    token, port = secrets.token_hex(16), _free_port()
    command = [
        sys.executable,
        "-m",
        "jupyter_server",
        f"--port={port}",
        "--ip=127.0.0.1",
        "--no-browser",
        f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={root}",
        f"--config={config}",
    ]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        command.append("--allow-root")
    env = {
        **os.environ,
        "JUPYTER_CONFIG_DIR": str(jupyter / "config"),
        "JUPYTER_DATA_DIR": str(jupyter / "data"),
        "JUPYTER_RUNTIME_DIR": str(jupyter / "runtime"),
    }
    log = base / "server.log"
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)
    server = Server(f"http://127.0.0.1:{port}/", token, process, log)
    try:
        deadline = time.monotonic() + STARTUP_SECONDS
        while True:
            if process.poll() is not None:
                pytest.fail(f"jupyter server exited with {process.returncode}:\n{server.tail()}")
            try:
                if server.http.get(f"{server.url}api/status", timeout=2).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(
                    f"no answer from jupyter server in {STARTUP_SECONDS} s:\n{server.tail()}"
                )
            time.sleep(0.2)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        server.http.close()


@pytest.fixture(scope="module", autouse=True)
def _same_inputs_whatever_the_source_says() -> Iterator[None]:
    """Keep the generated requests independent of agentspace's own source code.

    Hypothesis mixes literals from every local module imported so far (constants it reads
    from their source) into what it generates. agentspace is local here, so adding a module
    or a constant anywhere in it, or importing a few more modules before this test (the
    other server tests do), changed the requests sent: once, none of the AG-UI requests
    reached a run. Without them a seed gives the same requests every time.
    """
    from hypothesis.internal.conjecture import providers
    from hypothesis.internal.constants_ast import Constants

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(providers, "_get_local_constants", Constants)
        providers.CONSTANTS_CACHE.cache.clear()
        yield
    providers.CONSTANTS_CACHE.cache.clear()


@pytest.fixture(scope="module")
def api_schema(server: Server) -> Any:
    sid = server.session("fuzz.ipynb")
    victims = [server.session(f"victim-{i}.ipynb") for i in range(3)]
    # PATCH sets any model string: on a session of its own, so the others keep echo.
    patched = server.session("patched.ipynb")
    # Something to find: a file, and a finished run in the event log.
    assert server.call("PUT", f"sessions/{sid}/files/notes/a.txt", data=b"hello").ok
    assert server.call("POST", f"sessions/{sid}/messages", json={"text": "hi"}).status_code == 202
    config = schemathesis.Config.from_dict(
        {
            "dictionaries": {
                "session": {"values": [sid]},
                "victims": {"values": victims},
                "patched": {"values": [patched]},
            },
            "seed": SEED,
            "suppress-health-check": ["all"],
            "generation": {"deterministic": True, "max-examples": MAX_EXAMPLES},
            "phases": {
                "examples": {"enabled": False},
                "stateful": {"enabled": False},
                # Values taken from earlier responses depend on timing and on which tests ran
                # before in this process; without them a run sends the same requests each time.
                "fuzzing": {"extra-data-sources": {"responses": False}},
            },
            "checks": {
                "enabled": False,
                **{name: {"enabled": True} for name in CHECKS},
                # schemathesis' list of refusals, plus 413: a body over the limit is refused
                # before it is read (a generated invalid body can be that big).
                "negative_data_rejection": {"enabled": True, "expected-statuses": REFUSALS},
            },
            "workers": 1,
            "request-timeout": 5,
            "max-stream-events": 100,
            "parameters": {"path.session_id": {"dictionary": "session", "probability": 0.8}},
            "operations": [
                {
                    "include-method": "DELETE",
                    "include-path": "/sessions/{session_id}",
                    "parameters": {
                        "path.session_id": {"dictionary": "victims", "probability": 0.5}
                    },
                },
                {
                    "include-method": "PATCH",
                    "include-path": "/sessions/{session_id}",
                    "parameters": {
                        "path.session_id": {"dictionary": "patched", "probability": 0.8}
                    },
                },
                {  # the stream stays open for live events: read a few, or for half a second
                    "include-path": "/sessions/{session_id}/events",
                    "request-timeout": 0.5,
                    "max-stream-events": 5,
                },
                {  # a run's stream ends with it (echo answers at once)
                    "include-path": "/sessions/{session_id}/agui",
                    "request-timeout": 3,
                    "parameters": {
                        "path.session_id": {"dictionary": "session", "probability": 0.9},
                        "body.threadId": {"dictionary": "session", "probability": 0.8},
                    },
                },
            ],
        }
    )
    schema = schemathesis.openapi.from_url(
        f"{server.api}/openapi.json",
        config=config,
        headers={"Authorization": f"token {server.token}"},
        timeout=30,
    )
    schema.config.headers = {"Authorization": f"token {server.token}"}
    return schema


def _failures(event: ScenarioFinished) -> list[str]:
    found = []
    for checks in event.recorder.checks.values():
        for check in checks:
            if check.failure_info is not None:
                failure = check.failure_info.failure
                found.append(
                    f"{event.label} [{event.phase.value}] {check.name}: {failure.title}\n"
                    f"{failure.message}\n{check.failure_info.code_sample}"
                )
    return found


def test_api_matches_its_openapi_document(api_schema: Any, server: Server) -> None:
    problems: list[str] = []
    tested: set[str] = set()
    skipped: dict[str, list[str]] = {}
    statuses: dict[str, Counter[int]] = {}
    for event in schemathesis.engine.from_schema(api_schema).execute():
        if isinstance(event, ScenarioFinished) and event.label:
            if event.status is Status.SKIP:
                skipped.setdefault(event.label, []).append(f"{event.phase}: {event.skip_reason}")
            else:
                tested.add(event.label)
            counts = statuses.setdefault(event.label, Counter())
            for interaction in event.recorder.interactions.values():
                method = event.label.split()[0]  # not OPTIONS, nor an undeclared method's 405
                if interaction.response is not None and interaction.request.method == method:
                    counts[interaction.response.status_code] += 1
            problems.extend(_failures(event))
            if os.environ.get("SCHEMA_DEBUG"):
                print(f"{event.elapsed_time:6.2f}s {event.phase.value:10} {event.label}")
        elif isinstance(event, NonFatalError):
            problems.append(f"{event.label}: {event.info.title}\n{event.info}")
        elif isinstance(event, FatalError):
            raise event.exception
        elif isinstance(event, EngineFinished):
            break
    if os.environ.get("SCHEMA_DEBUG"):
        for label, counts in sorted(statuses.items()):
            print(label, dict(sorted(counts.items())))
    assert not problems, "\n\n".join(sorted(set(problems)))
    server.assert_no_crash()
    # Every operation was exercised (schemathesis leaves out the one that served the document),
    # and the real session got the requests into the handlers' logic.
    paths = api_schema.raw_schema["paths"]
    operations = {f"{m.upper()} {p}" for p, item in paths.items() for m in item}
    assert tested == operations - {"GET /openapi.json"}, skipped
    succeeded = {label for label, counts in statuses.items() if any(200 <= s < 300 for s in counts)}
    assert MUST_SUCCEED <= succeeded, {label: statuses.get(label) for label in MUST_SUCCEED}


# Inputs that once got a 500 (or a non-JSON error, or a 405 without Allow), and their kin.
DEEP = "[" * 5000 + "]" * 5000
RUN = {"threadId": "S", "runId": "r"}
USER = {"id": "1", "role": "user"}
EDGES: list[tuple[str, str, dict[str, str], Any, int, str]] = [
    ("GET", "S/processes/x/output?tail=%C2%B2", {}, None, 400, "bad_tail"),
    ("GET", "S/messages?limit=%C2%B2", {}, None, 400, "bad_limit"),
    ("GET", "S/messages?limit=" + "9" * 5000, {}, None, 400, "bad_limit"),
    (
        "PUT",
        "S/tools",
        {},
        b'{"tools": [{"name": "f", "description": "d",'
        b' "parameters": {"type": "object", "properties": 3}}]}',
        422,
        "invalid",
    ),
    ("PATCH", "S/", {}, b'{"policies": {"run_cell": "deny"}}', 400, "bad_request"),
    ("GET", "S/processes/x/output?tail=" + "9" * 5000, {}, None, 400, "bad_tail"),
    ("POST", "S/processes/x/restart", {}, None, 404, "not_found"),
    ("GET", "S/events", {"Last-Event-ID": "99999999999999999999"}, None, 400, "bad_after"),
    ("GET", "S/events", {"Last-Event-ID": "²"}, None, 400, "bad_after"),
    ("GET", "S/events?after=9223372036854775808", {}, None, 400, "bad_after"),
    ("GET", "S/events?after=1e3", {}, None, 400, "bad_after"),
    ("DELETE", "sessions/nope?purge=maybe", {}, None, 400, "bad_purge"),
    ("GET", "S/files?recursive=%C3%A9", {}, None, 400, "bad_recursive"),
    ("GET", "S/files?recursive=", {}, None, 400, "bad_recursive"),  # not "false"
    ("GET", "S/files?recursive=%0A", {}, None, 400, "bad_recursive"),
    ("GET", "S/files/%00", {}, None, 403, "path_escape"),
    ("GET", "S/files?path=..", {}, None, 403, "path_escape"),
    ("GET", "sessions/%FF", {}, None, 400, "bad_request"),
    ("GET", "sessions/" + "a" * 10_000, {}, None, 404, "not_found"),
    ("GET", "sessions/a%2Fb/files", {}, None, 404, "not_found"),
    ("POST", "sessions", {}, b"[]", 422, "invalid"),
    ("POST", "sessions", {}, b"\xff\xfe", 400, "bad_json"),
    ("POST", "sessions", {}, DEEP, 400, "bad_json"),
    ("POST", "S/messages", {}, '{"text": "\\ud800"}', 422, "invalid"),
    ("POST", "S/messages", {}, '{"text": "\xed\xa0\x80"}'.encode("latin-1"), 422, "invalid"),
    ("POST", "S/messages", {"Content-Type": "text/plain"}, b"hi", 400, "bad_json"),
    ("POST", "S/messages", {}, b"x" * (MAX_REQUEST_BYTES + 1), 413, "payload_too_large"),
    ("PUT", "S/files/big", {}, b"x" * (MAX_REQUEST_BYTES + 1), 413, "payload_too_large"),
    ("POST", "S/agui", {}, RUN | {"messages": [USER | {"content": "\ud800"}]}, 422, "invalid"),
    ("POST", "S/agui", {}, RUN | {"messages": [{"id": "1", "content": "no role"}]}, 422, "invalid"),
    ("PATCH", "sessions", {}, b"{}", 405, "method_not_allowed"),
    ("DELETE", "openapi.json", {}, None, 405, "method_not_allowed"),
    ("PUT", "S/files", {}, b"x", 405, "method_not_allowed"),
]


@pytest.mark.parametrize(
    ("method", "path", "headers", "body", "status", "code"),
    EDGES,
    ids=[f"{m} {p[:40]} {c}" for m, p, _h, _b, _s, c in EDGES],
)
def test_bad_input_gets_a_documented_json_error(
    server: Server,
    method: str,
    path: str,
    headers: dict[str, str],
    body: Any,
    status: int,
    code: str,
) -> None:
    sid = server.session("edges.ipynb")
    path = path.replace("S/", f"sessions/{sid}/")
    if isinstance(body, dict):  # json.dumps keeps a lone surrogate as its \\u escape
        body = json.dumps(body).replace('"S"', json.dumps(sid))
    response = server.call(method, path, headers=headers, data=body)
    assert response.status_code == status, response.text[:500]
    assert response.headers["Content-Type"].startswith("application/json")
    error = response.json()
    assert error["error"] == code and error["message"], error
    if status == 405:
        allowed = {m.strip() for m in response.headers["Allow"].split(",")}
        assert method not in allowed and "GET" in allowed
    if status == 413:
        assert error["limit"] == MAX_REQUEST_BYTES
    server.assert_no_crash()


async def test_rate_limit_says_when_to_retry(api: Any, jp_fetch: Any, jp_serverapp: Any) -> None:
    jp_serverapp.web_app.settings["agentspace"].app.messages_per_minute = 1
    _, session = await api("POST", "sessions", body={"notebook": "retry.ipynb"})
    path = ("agentspace", "api", "sessions", session["id"], "messages")
    body = json.dumps({"text": "hi"})
    first = await jp_fetch(*path, method="POST", body=body, raise_error=False)
    assert first.code == 202
    second = await jp_fetch(*path, method="POST", body=body, raise_error=False)
    assert second.code == 429
    error = json.loads(second.body)
    assert error["error"] == "rate_limited"
    assert second.headers["Retry-After"] == str(error["retry_after"])
    assert 1 <= error["retry_after"] <= 60
