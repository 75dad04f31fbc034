"""Background processes on docker outlive the server, and so does their output.

A "server" here is a ``Workspace`` over a ``DockerSandbox``, made as the engine makes it;
``server()`` again is the next server on the same folder, state and session after the
previous one was closed (``close`` is what a server shutdown calls: it must leave the
container and its processes running). Real engine, real containers; the container is
removed at the end. Waits are bounded polls on conditions, never guessed sleeps.
"""

from __future__ import annotations

import asyncio
import shutil
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from agentspace.sandbox.base import SandboxPolicy
from agentspace.sandbox.docker.runs import RUN
from agentspace.sandbox.docker.sandbox import DockerSandbox
from agentspace.sandbox.processes import ProcessRecord
from agentspace.sandbox.workspace import Workspace
from agentspace.tools.base import ToolContext

Server = Callable[..., Workspace]
Emitted = list[tuple[str, dict[str, Any]]]
LIMITS: dict[str, Any] = {"memory_mb": 256, "pids": 128, "cpus": 1.0}
COUNTER = "i=0; while :; do i=$((i+1)); echo line $i; sleep 0.01; done"


@pytest.fixture
async def server(docker_host: str, tmp_path: Path, emitted: Emitted) -> AsyncIterator[Server]:
    made: list[Workspace] = []
    session = f"t{uuid.uuid4().hex[:16]}"
    (tmp_path / "workspace").mkdir()

    def make(**policy: Any) -> Workspace:
        sandbox = DockerSandbox(
            session, tmp_path / "workspace", SandboxPolicy(**{**LIMITS, **policy})
        )
        workspace = Workspace(
            sandbox, tmp_path / "state", lambda k, v: emitted.append((k, v)), "/p/{port}/"
        )
        made.append(workspace)
        return workspace

    yield make
    for workspace in made:
        await workspace.close()
    if made:
        await made[-1].sandbox.destroy()


def log_text(ws: Workspace, name: str) -> str:
    """The log as the host sees it, complete lines only (a process may be mid-line)."""
    path = ws.folder / ".agentspace" / "logs" / f"{name}.log"
    text = path.read_text() if path.exists() else ""
    return text[: text.rfind("\n") + 1]


def counted(ws: Workspace, name: str = "counter") -> list[int]:
    """The counter's numbers in its last run's log (a run starts with its ``$ command``)."""
    run = log_text(ws, name).rpartition(f"$ {COUNTER}\n")[2]
    return [int(line.split()[1]) for line in run.splitlines()]


async def in_container(ws: Workspace, command: str) -> str:
    """Run ``command`` in the session's container without attaching a server to it."""
    probe = DockerSandbox(ws.session_id, ws.folder, ws.policy)
    execution = await probe.exec(command)
    out = await execution.stdout.read()
    await execution.wait()
    await probe.close()
    return out.decode()


async def test_the_wrapper_under_the_hosts_sh_and_dd(
    tmp_path: Path, until: Callable[..., Any]
) -> None:
    """The wrapper with the host's sh and dd (dash and coreutils here, as in a Debian-based
    image; the tests below run it with the image's busybox): unbuffered, exact cap."""
    if shutil.which("dd") is None:
        pytest.skip("no dd on this host")
    (tmp_path / "logs").mkdir()
    log = tmp_path / "logs" / "p.log"
    log.write_bytes(b"$ p\n")
    command = "echo first; while [ ! -e go ]; do sleep 0.01; done; seq 1 100000; exit 3"
    argv = ["sh", "-c", RUN, "run", "logs/p.log", "logs/p.exit", "1000", "tok", command]
    run = await asyncio.create_subprocess_exec(*argv, cwd=tmp_path)
    await until(lambda: log.read_bytes() == b"$ p\nfirst\n", "the first line, at once")
    (tmp_path / "go").touch()
    assert await asyncio.wait_for(run.wait(), 30) == 3
    printed = "first\n" + "".join(f"{i}\n" for i in range(1, 100001))
    assert log.read_text() == "$ p\n" + printed[:1000]  # its first 1000 bytes, not one more
    assert (tmp_path / "logs" / "p.exit").read_text() == "tok 3\n"


async def test_output_printed_while_detached_is_in_the_log_in_order(
    server: Server, until: Callable[..., Any]
) -> None:
    first = server()
    await first.processes.start(COUNTER, name="counter")
    await until(lambda: len(counted(first)) >= 20, "20 lines with a server attached")
    await first.close()  # the server stops
    detached = max(counted(first))
    await until(lambda: max(counted(first)) >= detached + 50, "50 lines while detached")

    second = server()  # the next server
    await second.attach()
    assert second.processes.get("counter").status == "running"
    attached = max(counted(second))
    await until(lambda: max(counted(second)) >= attached + 20, "the counter to go on")
    head, command, *lines = second.processes.output("counter", tail=5000).splitlines()
    assert (head, command) == ("[counter: running]", f"$ {COUNTER}")
    numbers = counted(second)
    assert numbers == list(range(1, len(numbers) + 1))  # all of them, in order, once each
    assert lines[: len(numbers) - 1] == [f"line {i}" for i in numbers[: len(numbers) - 1]]

    stopped = await second.processes.stop("counter")
    assert (stopped.status, stopped.exit_code) == ("stopped", 143)
    assert "sleep 0.01" not in await in_container(second, "ps -o args")


async def test_a_chatty_process_keeps_running_while_detached(
    server: Server, until: Callable[..., Any]
) -> None:
    first = server()
    chatty = "while :; do seq 1 5000; i=$((i+1)); echo $i > progress; done"  # 24 kB a round
    await first.processes.start(chatty, name="chatty")
    progress = first.folder / "progress"

    def rounds() -> int:
        text = progress.read_text() if progress.exists() else ""
        return int(text) if text.strip().isdigit() else 0

    await until(lambda: rounds() >= 1, "a first round")
    await first.close()
    log = first.folder / ".agentspace" / "logs" / "chatty.log"
    at_close, size = rounds(), log.stat().st_size
    await until(lambda: rounds() >= at_close + 50, "50 rounds (1.2 MB) with nobody attached")
    # printed while detached, and kept (the log's reader trails the counter by up to the
    # FIFO's buffer: wait for the bytes, not only for the rounds)
    expected = size + 50 * 23_894
    await until(lambda: log.stat().st_size >= expected, "the 50 rounds in the log")

    second = server()
    await second.attach()
    assert second.processes.get("chatty").status == "running"
    again = rounds()
    await until(lambda: rounds() > again, "it to go on after the re-attach")


async def test_the_log_cap_holds_while_detached(server: Server, until: Callable[..., Any]) -> None:
    first = server(log_bytes=10_000)
    line = "0123456789abcdefghi"  # 20 bytes with its newline
    flood = (
        f"while :; do i=$((i+1)); echo {line}; [ $((i % 1000)) = 0 ] && echo $i > progress; done"
    )
    await first.processes.start(flood, name="flood")
    await first.close()
    progress = first.folder / "progress"

    def printed() -> int:
        text = progress.read_text() if progress.exists() else ""
        return 20 * int(text) if text.strip().isdigit() else 0

    await until(lambda: printed() >= 20 * 10_000, "20 times the cap printed while detached")
    log = first.folder / ".agentspace" / "logs" / "flood.log"
    assert log.stat().st_size == 10_000  # the command line, then the head of the output
    header, *lines = log.read_text().splitlines()
    assert header == f"$ {flood}" and set(lines[:-1]) == {line}

    second = server(log_bytes=10_000)
    await second.attach()
    assert second.processes.get("flood").status == "running"  # past the cap, not blocked
    now = printed()
    await until(lambda: printed() > now, "it to keep printing")
    assert log.stat().st_size == 10_000


async def test_an_exit_while_detached_is_reported_after_the_reattach(
    server: Server, until: Callable[..., Any], emitted: Emitted
) -> None:
    first = server()
    wait_for_go = "while [ ! -e go ]; do sleep 0.05; done"
    await first.processes.start(f"{wait_for_go}; echo bye; exit 7", name="leaver")
    await first.processes.start(f"{wait_for_go}; kill -9 $$", name="killed")
    await first.close()
    (first.folder / "go").touch()

    async def all_ended() -> bool:
        return "while [ ! -e go ]" not in await in_container(first, "ps -o args")

    await until(all_ended, "both to end while detached")
    assert [r.status for r in first.processes.listing()] == ["running", "running"]  # as left
    emitted.clear()

    second = server()
    await second.attach()

    def ended() -> list[ProcessRecord]:
        return [r for r in second.processes.listing() if r.status != "running"]

    await until(lambda: len(ended()) == 2, "both to be seen ended")
    states = {r.name: (r.status, r.exit_code) for r in second.processes.listing()}
    assert states == {"leaver": ("exited", 7), "killed": ("exited", 137)}
    assert second.processes.output("leaver").endswith("\nbye")
    assert sorted(v["name"] for k, v in emitted if v["event"] == "exited") == ["killed", "leaver"]
    third = server()  # and the table says so from now on
    await third.attach()
    assert {r.name: (r.status, r.exit_code) for r in third.processes.listing()} == states


async def test_a_container_stopped_while_detached_stops_its_processes(
    server: Server, until: Callable[..., Any]
) -> None:
    import docker

    first = server()
    await first.processes.start(COUNTER, name="counter")
    await until(lambda: counted(first), "a first line")
    await first.close()
    client = docker.from_env()
    client.containers.get(first.sandbox.name).stop(timeout=1)  # e.g. the host rebooted
    client.close()

    second = server()
    await second.attach()  # starts the container again: its processes are gone
    await until(lambda: second.processes.get("counter").status != "running", "the verdict")
    record = second.processes.get("counter")
    assert record.status == "stopped_by_restart"
    (again,) = await second.processes.restart()
    assert again.status == "running"
    before = len(counted(second))
    await until(lambda: len(counted(second)) > before + 1, "the restarted counter to print")


async def test_a_process_an_older_version_started_is_stopped_and_restartable(
    server: Server, until: Callable[..., Any]
) -> None:
    first = server()
    sleeper = f"sleep 1000.{uuid.uuid4().int % 10**6:06d}"
    execution = await first.sandbox.exec(sleeper)  # as the old version did: output piped
    first.processes.records["old"] = ProcessRecord(
        name="old", command=sleeper, status="running", started=0, log=".agentspace/logs/old.log"
    )  # and no handle
    first.processes._save()

    async def sleeping() -> bool:
        return sleeper in await in_container(first, "ps -o args")

    await until(sleeping, "the old process to run")
    second = server()
    await second.attach()
    assert second.processes.get("old").status == "stopped_by_restart"
    assert not await sleeping()  # stopped: nobody could read its output any more
    assert "started by an older version" in second.processes.output("old")
    assert await execution.wait() == 137
    (again,) = await second.processes.restart()
    assert (again.status, again.handle is not None) == ("running", True)
    await until(sleeping, "it to run again, logged by the sandbox")


async def test_through_the_engine_a_restart_loses_no_output(
    docker_host: str,
    state_dir: Path,
    until: Callable[..., Any],
    tool_context: Callable[[Workspace], ToolContext],
) -> None:
    from agentspace.engine.config import EngineConfig
    from agentspace.engine.engine import Engine
    from agentspace.tools.processes import process_output

    config = EngineConfig(state_dir=state_dir, sandbox="docker", docker_host=docker_host)
    async with Engine(config) as engine:
        session = await engine.session("d.ipynb")
        first = await engine.workspaces.get(session)
        await first.processes.start(COUNTER, "counter")
        await until(lambda: len(counted(first)) >= 10, "10 lines")
    detached = max(counted(first))  # the engine is closed, as at a server shutdown
    await until(lambda: max(counted(first)) >= detached + 30, "30 lines while no server runs")
    async with Engine(config) as engine:
        session = await engine.session("d.ipynb")
        second = await engine.workspaces.get(session)
        try:
            assert second.processes.get("counter").status == "running"
            ctx = tool_context(second)
            arguments = process_output.parse_arguments({"name": "counter", "tail": 5000})
            shown = (await process_output.run(ctx, arguments)).text
            numbers = [int(line.split()[1]) for line in shown.splitlines()[2:-1]]
            assert numbers == list(range(1, len(numbers) + 1))
            assert len(numbers) >= detached + 29
        finally:
            await engine.workspaces.forget(session.id, destroy=True)
