"""The sandbox through the engine: tools in runs, events, restart, preview from another process."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Callable
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from agentspace.engine.config import EngineConfig
from agentspace.engine.engine import Engine
from agentspace.store.approvals import Decision
from agentspace.testing import collect_run, stored, turn


def config(state_dir: Path, **kw: object) -> EngineConfig:
    return EngineConfig(state_dir=state_dir, sandbox="bubblewrap", **kw)  # type: ignore[arg-type]


async def test_shell_in_a_run_is_approved_then_runs_in_the_sandbox(
    state_dir: Path, script: Callable[..., str]
) -> None:
    model = script(
        turn("", ("shell", {"command": "echo made > out.txt; cat /etc/hostname; id -u"})),
        turn("done"),
    )
    async with Engine(config(state_dir)) as engine:
        session = await engine.session("sh.ipynb", model=model)
        await session.send("run it")
        events = await collect_run(session, 0)
        (interrupt,) = json.loads(events[-1].data)["outcome"]["interrupts"]
        assert interrupt["metadata"]["tool"] == "shell"
        after = events[-1].seq
        await session.decide(interrupt["toolCallId"], Decision(decision="approve"))
        resumed = await collect_run(session, after)
        result = next(json.loads(e.data) for e in resumed if e.type == "TOOL_CALL_RESULT")
        assert result["content"].startswith("exit code: 0")
        assert (session.folder / "out.txt").read_text() == "made\n"
        files = [json.loads(e.data) for e in resumed if e.type == "CUSTOM"]
        changed = [f["value"] for f in files if f["name"] == "agentspace.files"]
        assert changed and "out.txt" in changed[0]["paths"]
        info = await session.info()
        assert info.sandbox_backend.startswith("bubblewrap")


async def test_processes_emit_events_and_stop_with_the_server(
    state_dir: Path, script: Callable[..., str]
) -> None:
    start = ("start_process", {"command": "sleep 1000", "name": "sleeper"})
    async with Engine(config(state_dir, policies={"*": "allow"})) as engine:
        session = await engine.session("p.ipynb", model=script(turn("", start), turn("ok")))
        await session.send("start it")
        await session.wait()
        runtime = await engine.workspaces.get(session)
        assert [r.status for r in runtime.processes.listing()] == ["running"]
        events = [json.loads(e.data) async for e in stored(session)]
        started = [e for e in events if e.get("name") == "agentspace.process"]
        assert started[0]["value"]["event"] == "started"
        assert started[0]["value"]["name"] == "sleeper"
    async with Engine(config(state_dir)) as engine:
        session = await engine.session("p.ipynb")
        runtime = await engine.workspaces.get(session)
        (record,) = runtime.processes.listing()
        assert record.status == "stopped_by_restart"
        (again,) = await runtime.processes.restart()
        assert again.status == "running"


async def test_preview_command_reaches_a_server_in_another_process_sandbox(
    state_dir: Path,
) -> None:
    async with Engine(config(state_dir)) as engine:
        session = await engine.session("web.ipynb")
        (session.folder / "index.html").write_text("<h1>from the sandbox</h1>")
        runtime = await engine.workspaces.get(session)
        await runtime.processes.start("python3 -m http.server 8765 --bind 127.0.0.1", "web")
        url = await _poll(lambda: runtime.preview(8765))
        assert url == f"/agentspace/preview/{session.id}/8765/"
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "agentspace", "preview", "web.ipynb", "8765",
            "--state-dir", str(state_dir), stdout=asyncio.subprocess.PIPE,
        )  # fmt: skip
        assert proc.stdout is not None
        try:
            line = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode()
            url = urlsplit(line.split()[0])  # http://127.0.0.1:PORT/?agentspace_token=...
            assert url.hostname == "127.0.0.1" and url.port
            token = parse_qs(url.query)["agentspace_token"][0]
            host = f"Host: 127.0.0.1:{url.port}"
            cookie = f"Cookie: agentspace_preview_{url.port}={token}"

            async def get(*head: str) -> bytes:
                reader, writer = await asyncio.open_connection("127.0.0.1", url.port)
                writer.write("\r\n".join(head).encode() + b"\r\n\r\n")
                answer = await reader.read()
                writer.close()
                return answer

            no_token = await get("GET /index.html HTTP/1.0", host)
            assert no_token.startswith(b"HTTP/1.1 403")  # never reaches the app
            link = await get(f"GET /index.html?agentspace_token={token} HTTP/1.0", host)
            assert link.startswith(b"HTTP/1.1 302")  # sets the cookie, drops the token
            page = await get("GET /index.html HTTP/1.0", host, cookie)
            assert b"200 OK" in page and b"from the sandbox" in page
        finally:
            proc.terminate()
            await proc.wait()


async def _poll(make: Callable[[], object], tries: int = 200) -> str:
    from agentspace.errors import ToolError

    for _ in range(tries):
        try:
            return await make()  # type: ignore[misc, no-any-return]
        except ToolError:
            await asyncio.sleep(0.025)  # the server is still starting: poll, bounded
    raise AssertionError("the server never answered")


async def test_auto_never_falls_back_to_local(monkeypatch: object) -> None:
    import pytest

    from agentspace.errors import SandboxUnavailableError
    from agentspace.sandbox import namespaces
    from agentspace.sandbox.docker import sandbox as docker
    from agentspace.sandbox.workspace import resolve_backend

    async def no(*args: object) -> bool:
        return False

    mp: pytest.MonkeyPatch = monkeypatch  # type: ignore[assignment]
    mp.setattr(namespaces, "usable", no)  # a machine with neither backend
    mp.setattr(docker, "docker_available", no)
    with pytest.raises(SandboxUnavailableError) as err:
        await resolve_backend("auto")
    message = err.value.message
    assert "bubblewrap" in message and "docker" in message and "sandbox='local'" in message
    assert await resolve_backend("local") == "local"  # only when chosen
