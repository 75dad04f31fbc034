"""The bubblewrap backend for real: commands, isolation, network, previews and events.

Every command runs in a real bubblewrap sandbox; servers are real sockets; waiting is
bounded polling.
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from agentspace.errors import ToolError
from agentspace.sandbox.base import SANDBOX_UID
from agentspace.sandbox.workspace import Workspace

from .conftest import serving

MakeWorkspace = Callable[..., Workspace]
Emitted = list[tuple[str, dict[str, Any]]]
HERE = Path(__file__).resolve()
HOST_GREETING = b"hello from the host loopback\n"
PAGE = "served from the sandbox\n"
WEB = "python3 -m http.server 8765 --bind 127.0.0.1"


def connect_script(port: int) -> str:
    """A command that prints what a server on the sandbox's 127.0.0.1:port says, or fails."""
    code = (
        "import socket, sys\n"
        f"s = socket.create_connection(('127.0.0.1', {port}), timeout=3)\n"
        "sys.stdout.write(s.recv(100).decode())\n"
    )
    return f'python3 -c "{code}"'


def fetch_script(port: int, path: str) -> str:
    code = f"import urllib.request as u; print(u.urlopen('http://127.0.0.1:{port}/{path}').read())"
    return f'python3 -c "{code}"'


@pytest.fixture
async def host_server() -> AsyncIterator[int]:
    """A TCP server on the host's 127.0.0.1 (random port) that greets and closes."""

    async def greet(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(HOST_GREETING)
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(greet, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        yield port


async def http_get(workspace: Workspace, port: int, path: str) -> bytes:
    """An HTTP/1.0 GET through ``sandbox.connect`` (the preview path), the whole response."""
    reader, writer = await workspace.sandbox.connect(port)
    try:
        writer.write(f"GET /{path} HTTP/1.0\r\nHost: sandbox\r\n\r\n".encode())
        await writer.drain()
        return await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()


def host_port_free(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


# --- basic shell ----------------------------------------------------------------------


async def test_exit_codes_and_both_streams(make_workspace: MakeWorkspace) -> None:
    ws = make_workspace("bubblewrap")
    ok = await ws.shell("echo out; echo err >&2")
    assert (ok.exit_code, ok.stdout, ok.stderr, ok.limit) == (0, "out\n", "err\n", None)
    failed = await ws.shell("exit 7")
    assert failed.exit_code == 7
    assert "exit code: 7" in failed.render()
    signalled = await ws.shell("kill -TERM $$")
    assert signalled.exit_code == 128 + 15
    missing = await ws.shell("no-such-command-here")
    assert missing.exit_code == 127 and "not found" in missing.stderr


async def test_working_dir_is_the_workspace_shared_both_ways(make_workspace: MakeWorkspace) -> None:
    ws = make_workspace("bubblewrap")
    (ws.folder / "from-host.txt").write_text("written on the host\n")
    result = await ws.shell("pwd; cat from-host.txt; echo written inside > sub.txt; mkdir -p d/e")
    assert result.stdout == "/workspace\nwritten on the host\n"
    assert (ws.folder / "sub.txt").read_text() == "written inside\n"
    assert (ws.folder / "d" / "e").is_dir()
    assert (ws.folder / result.log).is_file()  # the full log is in the workspace too
    # the files the sandbox made belong to the server's user on the host, or, when the
    # server is root, to the unprivileged sandbox user (whom root's files stay open to)
    expected = SANDBOX_UID if os.getuid() == 0 else os.getuid()
    assert (ws.folder / "sub.txt").stat().st_uid == expected
    (ws.folder / "from-host.txt").write_text("rewritten on the host\n")
    appended = await ws.shell("echo appended inside >> from-host.txt && cat from-host.txt")
    assert appended.stdout == "rewritten on the host\nappended inside\n", appended.render()


# --- isolation ------------------------------------------------------------------------


async def test_home_state_and_other_sessions_are_invisible(
    make_workspace: MakeWorkspace, tmp_path: Path
) -> None:
    mine = make_workspace("bubblewrap", name="mine")
    other = make_workspace("bubblewrap", name="other")
    (other.folder / "secret.txt").write_text("the other session's file\n")
    await other.processes.start("sleep 1000", name="others-sleeper")
    (tmp_path / "mine" / "state").mkdir(parents=True, exist_ok=True)
    (tmp_path / "mine" / "state" / "token.txt").write_text("state\n")

    checks = {
        "home": "test -e /root",
        "tmp_path": f"test -e {tmp_path}",
        "state": f"test -e {tmp_path / 'mine' / 'state'}",
        "other workspace": f"cat {other.folder / 'secret.txt'}",
        "this repository": f"test -e {HERE}",
        "shadow": "test -e /etc/shadow",
    }
    for what, command in checks.items():
        result = await mine.shell(command)
        assert result.exit_code != 0, f"{what} is visible in the sandbox: {result.render()}"
    listing = await mine.shell("ls -A /workspace")
    assert listing.stdout.split() == [".agentspace"]  # only its own files (and logs)
    # nor the other session's processes (nor the host's): a pid namespace per command
    procs = await mine.shell("cat /proc/[0-9]*/cmdline | tr '\\0' ' '")
    assert "sleep 1000" not in procs.stdout
    assert str(os.getpid()) not in (await mine.shell("ls /proc")).stdout.split()


async def test_environment_has_no_host_secrets(
    make_workspace: MakeWorkspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    ws = make_workspace("bubblewrap")
    result = await ws.shell("env")
    assert result.exit_code == 0
    assert "sk-test" not in result.stdout and "OPENAI_API_KEY" not in result.stdout
    assert "HOME=/workspace" in result.stdout.splitlines()


# --- network --------------------------------------------------------------------------


async def test_network_none_keeps_the_host_loopback_out(
    make_workspace: MakeWorkspace, host_server: int
) -> None:
    ws = make_workspace("bubblewrap", network="none")
    result = await ws.shell(connect_script(host_server), timeout=10)
    assert result.exit_code != 0
    assert "Connection refused" in result.stderr or "unreachable" in result.stderr
    assert "hello" not in result.stdout
    interfaces = await ws.shell("cat /proc/net/dev")
    assert [line.split(":")[0].strip() for line in interfaces.stdout.splitlines()[2:]] == ["lo"]


async def test_network_host_reaches_the_host_loopback(
    make_workspace: MakeWorkspace, host_server: int
) -> None:
    ws = make_workspace("bubblewrap", network="host")
    result = await ws.shell(connect_script(host_server), timeout=10)
    assert result.exit_code == 0, result.render()
    assert result.stdout == HOST_GREETING.decode()


async def test_a_server_inside_is_reachable_from_commands_and_previews(
    make_workspace: MakeWorkspace, emitted: Emitted, until: Callable[..., Any]
) -> None:
    ws = make_workspace("bubblewrap")
    (ws.folder / "page.txt").write_text(PAGE)
    host_had_nothing = host_port_free(8765)
    record = await ws.processes.start(WEB, name="web")
    assert record.status == "running"
    await until(lambda: serving(ws, 8765), "the http server in the sandbox")

    # a later command reaches it: the session's network namespace outlives each command
    fetched = await ws.shell(fetch_script(8765, "page.txt"), timeout=10)
    assert fetched.exit_code == 0, fetched.render()
    assert repr(PAGE.encode()) in fetched.stdout

    # so does the preview path (the relay in the sandbox's namespace)
    url = await ws.preview(8765)
    assert url == f"http://preview.test/{ws.session_id}/8765/"
    response = await http_get(ws, 8765, "page.txt")
    assert response.startswith(b"HTTP/1.0 200")
    assert response.endswith(PAGE.encode())
    missing = await http_get(ws, 8765, "nope.txt")
    assert missing.startswith(b"HTTP/1.0 404")

    # but the host itself does not: its loopback is another network
    if host_had_nothing:
        assert host_port_free(8765)

    # the events: started, preview; stopping it gives exited
    starts = [v for k, v in emitted if k == "process" and v["event"] == "started"]
    assert [(v["name"], v["status"], v["command"]) for v in starts] == [("web", "running", WEB)]
    assert ("preview", {"port": 8765, "url": url}) in emitted
    stopped = await ws.processes.stop("web")
    assert stopped.status == "stopped"
    exits = [v for k, v in emitted if k == "process" and v["event"] == "exited"]
    assert [(v["name"], v["status"]) for v in exits] == [("web", "stopped")]
    assert exits[0]["exit_code"] == 128 + 15  # it died of the SIGTERM
    assert '"GET /page.txt HTTP/1.1" 200' in ws.processes.output("web")  # its log, on stderr


async def test_preview_of_a_closed_port_is_a_clear_error(
    make_workspace: MakeWorkspace, emitted: Emitted
) -> None:
    ws = make_workspace("bubblewrap")
    with pytest.raises(ToolError, match="Nothing is listening on port 8766"):
        await ws.preview(8766)
    assert not [k for k, _ in emitted if k == "preview"]


async def test_a_process_that_ends_emits_exited_with_its_code(
    make_workspace: MakeWorkspace, emitted: Emitted, until: Callable[..., Any]
) -> None:
    ws = make_workspace("bubblewrap")
    await ws.processes.start("echo bye; exit 3", name="short")
    await until(lambda: ws.processes.get("short").status == "exited", "the process to end")
    events = [(v["event"], v["name"], v["exit_code"]) for k, v in emitted if k == "process"]
    assert events == [("started", "short", None), ("exited", "short", 3)]
    assert "bye" in ws.processes.output("short")


# --- the pool of spare holders --------------------------------------------------------


async def test_draining_the_holder_pool_mid_refill_returns(has_bubblewrap: bool) -> None:
    if not has_bubblewrap:
        pytest.skip("bubblewrap cannot create namespaces here")
    holders = pytest.importorskip("agentspace.sandbox.bubblewrap.holders")
    from agentspace.sandbox.bubblewrap import sandbox as bwrap

    found = bwrap.tools()
    assert found is not None
    for _ in range(10):  # the cancel must land in a window of a few loop turns: try a few
        pool = holders.HolderPool()
        taken = await pool.take(*found)  # what a new session does; it schedules a refill
        pool.refill()  # what its first command's end does
        await asyncio.sleep(0)  # one loop turn: the refill is spawning the next holder
        drain = asyncio.ensure_future(pool.drain())  # what the engine does when it closes
        try:
            # drain() waits at most 10 s for the refill (a spawn under load can take
            # seconds), then cancels it; a hang is anything well past that bound.
            done, _ = await asyncio.wait([drain], timeout=30)
        finally:
            await holders.end(taken.holder, taken.pid)
            taken.limits.remove()
        if not done:
            for task in (drain, pool._filling):
                if task is not None:
                    task.cancel()
            pytest.fail("HolderPool.drain() did not return within 30 s")


async def test_the_next_spare_is_made_after_a_new_sandbox_s_first_command(
    make_workspace: MakeWorkspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Not during it: its two spawns would compete with the command the spare is for."""
    from agentspace.sandbox import sandboxuser
    from agentspace.sandbox.bubblewrap import holders

    spares = holders.pool(SANDBOX_UID if sandboxuser.dropping() else None)
    await make_workspace("bubblewrap", name="before").shell("true")
    await spares.ready()  # the spare that sandbox's take left due
    assert len(spares._ready) == 1
    ws = make_workspace("bubblewrap")
    commands: list[Any] = []
    ended_then: list[bool] = []
    real_prepare, real_exec = holders._prepare, ws.sandbox.exec

    async def prepare(*args: Any, **kwargs: Any) -> holders.Prepared:
        ended_then.append(bool(commands) and commands[0].process.returncode is not None)
        return await real_prepare(*args, **kwargs)

    async def exec_(*args: Any, **kwargs: Any) -> Any:
        commands.append(await real_exec(*args, **kwargs))
        return commands[-1]

    monkeypatch.setattr(holders, "_prepare", prepare)
    monkeypatch.setattr(ws.sandbox, "exec", exec_)
    assert (await ws.shell("echo first")).stdout == "first\n"
    await spares.ready()
    assert ended_then == [True]  # one spare made, once the first command had ended
    assert len(spares._ready) == 1


async def test_a_sandbox_closed_right_after_its_start_returns_and_leaves_no_process(
    make_workspace: MakeWorkspace,
) -> None:
    """Its holder's ``sleep`` had not yet armed ``--die-with-parent``: killing bwrap alone left
    it orphaned, holding the stderr pipe, and ``close()`` waited for the holder forever."""
    from agentspace.sandbox import sandboxuser
    from agentspace.sandbox.bubblewrap import holders

    spares = holders.pool(SANDBOX_UID if sandboxuser.dropping() else None)
    for _ in range(5):
        while spares._ready:  # a spare is long set up: the window needs a fresh holder
            spare = spares._ready.pop()
            await holders.end(spare.holder, spare.pid)
            spare.limits.remove()
        sandbox = make_workspace("bubblewrap").sandbox
        await sandbox.start()
        pid = sandbox._holder_pid
        assert pid is not None
        await asyncio.wait_for(sandbox.close(), timeout=30)
        assert await _exits(pid, timeout=10), f"the holder's sleep (pid {pid}) outlived close()"


async def _exits(pid: int, timeout: float) -> bool:
    """Whether ``pid`` has ended (or ends within ``timeout``): its pidfd becomes readable."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    loop = asyncio.get_running_loop()
    ended = asyncio.Event()
    loop.add_reader(fd, ended.set)
    try:
        await asyncio.wait_for(ended.wait(), timeout)
        return True
    except TimeoutError:
        return False
    finally:
        loop.remove_reader(fd)
        os.close(fd)
