"""The docker sandbox against a real engine: real containers, real limits, real kills.

The engine is the private one of ``scripts/dockerd.sh`` (the ``docker_host`` fixture of
conftest.py starts it when we are root, as on CI). Every test gets its own session id and its
container is removed afterwards. Waiting is done by bounded polling, never by sleeping a
guessed time.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from agentspace.errors import SandboxError, SandboxUnavailableError
from agentspace.sandbox.base import Execution, SandboxPolicy
from agentspace.sandbox.docker.sandbox import DockerSandbox, docker_available

pytest.importorskip("docker", reason="the docker SDK is not installed (pip install docker)")

MakeSandbox = Callable[..., Awaitable[DockerSandbox]]


@pytest.fixture
async def make_sandbox(docker_host: str, tmp_path: Path) -> AsyncIterator[MakeSandbox]:
    made: list[DockerSandbox] = []

    async def make(session_id: str | None = None, **policy: Any) -> DockerSandbox:
        sid = session_id or f"test-{uuid.uuid4().hex[:10]}"
        sandbox = DockerSandbox(sid, tmp_path / sid, SandboxPolicy(**policy))
        await sandbox.start()
        made.append(sandbox)
        return sandbox

    yield make
    for sandbox in made:
        await sandbox.destroy()


async def run(sandbox: DockerSandbox, command: str, **kw: Any) -> tuple[int, str, str]:
    ex = await sandbox.exec(command, **kw)
    return await finish(ex)


async def finish(ex: Execution) -> tuple[int, str, str]:
    out, err = await asyncio.gather(ex.stdout.read(), ex.stderr.read())
    return await ex.wait(), out.decode(), err.decode()


async def until(check: Callable[[], Awaitable[bool]], what: str, tries: int = 200) -> None:
    for _ in range(tries):
        if await check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


async def test_exec_output_exit_codes_and_env(make_sandbox: MakeSandbox) -> None:
    sb = await make_sandbox()
    assert await run(sb, "echo hello; echo oops >&2; exit 3") == (3, "hello\n", "oops\n")
    greeting = await run(sb, "pwd; echo $GREETING", env={"GREETING": "hi"})
    assert greeting == (0, "/workspace\nhi\n", "")
    assert (await run(sb, "kill -9 $$"))[0] == 137
    code, out, _ = await run(sb, "seq 1 200000")  # many frames, more than the reader buffers
    assert code == 0 and out == "".join(f"{i}\n" for i in range(1, 200001))


async def test_workspace_is_shared_both_ways(make_sandbox: MakeSandbox) -> None:
    sb = await make_sandbox()
    (sb.folder / "from_host.txt").write_text("host says hi\n")
    shared = await run(sb, "cat from_host.txt; echo inside > from_box.txt")
    assert shared == (0, "host says hi\n", "")
    assert (sb.folder / "from_box.txt").read_text() == "inside\n"
    # the sandbox's files belong to the server's user, or, when the server is root, to the
    # unprivileged sandbox user (policy uid), whom root's files stay open to (ACLs)
    expected = sb.policy.uid if os.geteuid() == 0 else os.getuid()
    assert (sb.folder / "from_box.txt").stat().st_uid == expected


async def test_network_none_keeps_the_host_out(make_sandbox: MakeSandbox) -> None:
    sb = await make_sandbox()
    server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        code, _, _ = await run(sb, f"echo x | nc -w 2 127.0.0.1 {port}")
        assert code != 0  # the host's loopback is not the container's
        assert (await run(sb, "wget -q -T 2 -O- http://1.1.1.1/"))[0] != 0
    code, out, _ = await run(sb, "cat /proc/net/dev")
    assert re.findall(r"^\s*(\w+):", out, re.M) == ["lo"]


async def test_connect_reaches_a_server_inside(make_sandbox: MakeSandbox) -> None:
    sb = await make_sandbox()
    with pytest.raises(ConnectionRefusedError):
        await sb.connect(8080)
    (sb.folder / "hello.txt").write_text("hello from the box\n")
    server = await sb.exec("httpd -f -p 127.0.0.1:8080 -h /workspace")

    async def serving() -> bool:
        try:
            _, writer = await sb.connect(8080)
        except ConnectionRefusedError:
            return False
        writer.close()
        return True

    await until(serving, "httpd to listen")
    reader, writer = await sb.connect(8080)
    writer.write(b"GET /hello.txt HTTP/1.0\r\nHost: x\r\n\r\n")
    writer.write_eof()  # a half-close: the answer must still come back
    response = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    assert response.startswith(b"HTTP/1.") and response.endswith(b"hello from the box\n")
    server.kill()
    assert (await finish(server))[0] == 137


async def test_kill_takes_the_whole_tree_with_daemons(make_sandbox: MakeSandbox) -> None:
    sb = await make_sandbox()
    daemons = "setsid nohup sleep 1001 >/dev/null 2>&1 & (setsid sleep 1002 &)"
    ex = await sb.exec(f"{daemons}; sleep 1003 & echo up; wait")
    assert await ex.stdout.readline() == b"up\n"

    async def sleepers() -> str:
        return (await run(sb, "ps -o args | grep '^sleep 100' || true"))[1]

    await until(lambda: _count(sleepers, 3), "three sleepers")
    ex.kill()
    assert (await finish(ex))[0] == 137
    await until(lambda: _count(sleepers, 0), "no sleeper left")


async def _count(lines: Callable[[], Awaitable[str]], n: int) -> bool:
    return len((await lines()).splitlines()) == n


async def test_kill_right_after_exec_and_many_at_once(make_sandbox: MakeSandbox) -> None:
    sb = await make_sandbox()
    early = await sb.exec("sleep 1000")
    early.kill()  # the process may not even run yet
    assert (await finish(early))[0] == 137
    late = await sb.exec("sleep 1000")
    with pytest.raises(asyncio.TimeoutError):  # as the runner's time limit does
        await asyncio.wait_for(late.wait(), 0.2)
    late.kill()
    assert (await finish(late))[0] == 137
    held = [await sb.exec(f"echo {i}; sleep 1000") for i in range(20)]  # hijacked connections
    assert [await ex.stdout.readline() for ex in held] == [f"{i}\n".encode() for i in range(20)]
    assert await run(sb, "echo still served") == (0, "still served\n", "")
    for ex in held:
        ex.kill()
    assert await asyncio.gather(*(ex.wait() for ex in held)) == [137] * 20


async def test_output_is_paused_while_nobody_reads(make_sandbox: MakeSandbox) -> None:
    sb = await make_sandbox()
    ex = await sb.exec("yes | head -c 20000000")
    valve = ex._valves[0]  # the reader's flow control closes it past 2 MiB unread

    async def paused() -> bool:
        return not valve.open.is_set()

    await until(paused, "the stream to be paused")
    assert len(ex.stdout._buffer) < 3 << 20  # type: ignore[attr-defined]
    assert len(await ex.stdout.read()) == 20_000_000
    assert await ex.wait() == 0


async def test_terminate_sends_sigterm(make_sandbox: MakeSandbox) -> None:
    sb = await make_sandbox()
    ex = await sb.exec("trap 'echo term; exit 5' TERM; echo ready; while :; do sleep 1; done")
    assert await ex.stdout.readline() == b"ready\n"
    ex.terminate()
    assert (await finish(ex))[:2] == (5, "term\n")  # the trap ran: it was asked, not killed


async def test_container_survives_close_and_is_reattached(make_sandbox: MakeSandbox) -> None:
    first = await make_sandbox()
    code, _, _ = await run(first, "setsid nohup sleep 1000 >/dev/null 2>&1 & echo $! > bg.pid")
    assert code == 0
    await first.close()
    again = DockerSandbox(first.session_id, first.folder, first.policy)
    await again.start()
    assert again.container.id == first.container.id
    assert (await run(again, "kill -0 $(cat bg.pid)"))[0] == 0  # the process still runs
    await again.close()


async def test_a_stopped_container_is_started_again(make_sandbox: MakeSandbox) -> None:
    import docker

    first = await make_sandbox()
    client = docker.from_env()
    client.containers.get(first.name).stop(timeout=1)
    client.close()
    again = DockerSandbox(first.session_id, first.folder, first.policy)
    assert await run(again, "echo back") == (0, "back\n", "")
    await again.close()
    client = docker.from_env()
    client.containers.get(first.name).stop(timeout=1)  # now behind a started sandbox's back
    client.close()
    assert await run(first, "echo back again") == (0, "back again\n", "")


async def test_destroy_removes_the_container(make_sandbox: MakeSandbox) -> None:
    import docker

    sb = await make_sandbox()
    await sb.destroy()
    client = docker.from_env()
    with pytest.raises(docker.errors.NotFound):
        client.containers.get(sb.name)
    client.close()
    await sb.destroy()  # idempotent


async def test_memory_limit_kills_a_hog(make_sandbox: MakeSandbox) -> None:
    sb = await make_sandbox(memory_mb=32)
    before = await sb.counters()
    assert "memory" in before
    code, _, _ = await run(sb, "dd if=/dev/zero of=/dev/null bs=200M count=1")  # one 200 MB buffer
    assert code == 137
    assert await sb.limit_hit(before) == "memory"
    on_host = await sb.counters()
    sb.container.cgroup = {}  # as when the engine runs on another host: read from inside
    assert await sb.counters() == on_host
    assert await run(sb, "echo alive") == (0, "alive\n", "")


async def test_pids_limit_stops_a_fork_bomb(make_sandbox: MakeSandbox) -> None:
    sb = await make_sandbox(pids=16)
    before = await sb.counters()
    bomb = await sb.exec("f() { f | f & }; f; while :; do sleep 1; done")

    async def refused() -> bool:
        return (await sb.counters()).get("pids", 0) > before.get("pids", 0)

    await until(refused, "the pids limit to refuse forks")
    bomb.kill()
    assert (await finish(bomb))[0] in (2, 137)  # its first shell may die of "can't fork" first

    async def bombs() -> str:
        return (await run(sb, "ps -o args | grep '[f]()' || true"))[1]

    await until(lambda: _count(bombs, 0), "every bomb process to die")
    assert await run(sb, "echo alive") == (0, "alive\n", "")
    host = await asyncio.create_subprocess_exec("true")  # the host can still fork
    assert await host.wait() == 0


async def test_no_engine_and_no_image_are_clear_errors(
    docker_host: str, tmp_path: Path, make_sandbox: MakeSandbox
) -> None:
    missing = "unix:///nonexistent/docker.sock"
    assert await docker_available(docker_host) is True
    assert await docker_available(missing) is False
    nowhere = DockerSandbox("x", tmp_path / "x", SandboxPolicy(), docker_host=missing)
    with pytest.raises(SandboxUnavailableError, match=r"dockerd\.sh start"):
        await nowhere.start()
    with pytest.raises(SandboxError, match=r"dockerd\.sh image"):
        await make_sandbox(image="agentspace-no-such-image:latest")


async def test_new_limits_apply_to_the_running_container(make_sandbox: MakeSandbox) -> None:
    import docker

    first = await make_sandbox(memory_mb=256, pids=64)
    code, _, _ = await run(first, "setsid nohup sleep 1000 >/dev/null 2>&1 & echo $! > bg.pid")
    assert code == 0
    await first.close()
    again = DockerSandbox(first.session_id, first.folder, SandboxPolicy(memory_mb=512, pids=128))
    await again.start()
    assert again.container.id == first.container.id  # updated in place
    assert (await run(again, "kill -0 $(cat bg.pid)"))[0] == 0  # its processes kept running
    client = docker.from_env()
    host = client.containers.get(first.name).attrs["HostConfig"]
    client.close()
    assert (host["Memory"], host["PidsLimit"]) == (512 << 20, 128)
    await again.close()


async def test_a_new_network_policy_gets_a_new_container(make_sandbox: MakeSandbox) -> None:
    first = await make_sandbox()
    (first.folder / "kept.txt").write_text("still here")
    await first.close()
    again = DockerSandbox(first.session_id, first.folder, SandboxPolicy(network="host"))
    await again.start()
    assert again.container.id != first.container.id
    assert await run(again, "cat kept.txt") == (0, "still here", "")  # the workspace stays
    await again.destroy()


async def test_a_container_of_the_old_root_policy_is_recreated_unprivileged(
    make_sandbox: MakeSandbox, tmp_path: Path
) -> None:
    """A container made before the privilege drop (root, every default capability, writable
    image) is replaced at the next start; the workspace and its root-owned files stay usable."""
    import docker

    if os.geteuid() != 0:
        pytest.skip("the old policy ran as root only under a root server (CI runs as root)")
    sid = f"test-{uuid.uuid4().hex[:10]}"
    folder = tmp_path / sid  # where make_sandbox puts this session's workspace
    await asyncio.to_thread(folder.mkdir)
    await asyncio.to_thread((folder / "old.txt").write_text, "made by root\n")
    client = docker.from_env()
    try:
        old = client.containers.create(  # what main made: user 0:0, no hardening
            "agentspace-sandbox:latest", ["sleep", "2147483647"], name=f"agentspace-{sid}",
            labels={"agentspace.engine.session": sid}, user="0:0", init=True, network_mode="none",
            volumes={str(folder.resolve()): {"bind": "/workspace", "mode": "rw"}},
        )  # fmt: skip
        old.start()
        sb = await make_sandbox(sid)  # same image, network and folder: only the rights differ
        assert sb.container.id != old.id
        attrs = client.containers.get(sb.name).attrs
        assert attrs["Config"]["User"] == f"{sb.policy.uid}:{sb.policy.uid}"
        assert attrs["HostConfig"]["CapDrop"] == ["ALL"] and attrs["HostConfig"]["ReadonlyRootfs"]
        code, out, _ = await run(sb, "id -u && echo more >> old.txt && cat old.txt")
        assert (code, out) == (0, f"{sb.policy.uid}\nmade by root\nmore\n")
    finally:
        client.close()


async def test_the_suite_removes_containers_of_dead_test_runs_only(
    docker_host: str, remove_test_containers: Callable[..., list[str]]
) -> None:
    """A killed test run leaves its sessions' containers running; the next run's start removes
    those of runs that are gone, never those of a live run (or of a real session)."""
    import docker

    from agentspace.owners import owner_token
    from agentspace.sandbox.docker.sandbox import CREATOR, LABEL

    client = docker.from_env()
    made = {}
    try:
        for who, creator in (("dead", "1:0"), ("live", owner_token()), ("real", "1:0")):
            sid = f"test-{uuid.uuid4().hex[:10]}" if who != "real" else uuid.uuid4().hex
            made[who] = client.containers.create(
                "agentspace-sandbox:latest", ["sleep", "2147483647"], name=f"agentspace-{sid}",
                labels={LABEL: sid, CREATOR: creator}, network_mode="none",
            )  # fmt: skip
        removed = await asyncio.to_thread(remove_test_containers, docker_host, ours=False)
        assert removed == [made["dead"].name]
        names = {c.name for c in client.containers.list(all=True)}
        assert made["live"].name in names and made["real"].name in names
        assert made["dead"].name not in names
    finally:
        for container in made.values():
            with contextlib.suppress(docker.errors.NotFound):
                container.remove(force=True)
        client.close()
