"""Fixtures for the workspace tests: real sandboxes (bubblewrap or local) in ``tmp_path``.

``make_workspace(kind, name="ws", **policy)`` builds a ``Workspace`` whose folder is
``tmp_path/<name>/workspace`` and state ``tmp_path/<name>/state``; calling it again with the
same name gives a new workspace on the same folder, state and session id (a server restart).
Every workspace made is closed at teardown. ``emitted`` collects the ``emit(kind, value)``
calls of all of them.

``docker_host`` is a docker engine with the sandbox image (the private one of
``scripts/dockerd.sh``, started here when we are root, as on CI); without one the test skips.

The helpers (``until``, ``pids_with``, ``marker``, ``tool_context``) are handed out as
fixtures because test modules cannot import this file under ``--import-mode=importlib``.
``until`` waits by bounded polling, never by sleeping a guessed time.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any, Protocol

import pytest

from agentspace.sandbox import cgroups
from agentspace.sandbox.base import SandboxPolicy
from agentspace.sandbox.workspace import Workspace, make_sandbox
from agentspace.tools.base import ToolContext

SCRIPT = Path(__file__).resolve().parents[3] / "scripts" / "dockerd.sh"
PREVIEW_URL = "http://preview.test/{session_id}/{port}/"
# Small limits so a hostile command is stopped fast; a test overrides what it needs.
DEFAULTS: dict[str, Any] = {"memory_mb": 256, "pids": 128, "cpus": 1.0, "timeout": 30.0}

Emitted = list[tuple[str, dict[str, Any]]]


class MakeWorkspace(Protocol):
    def __call__(self, kind: str, *, name: str = "ws", **policy: Any) -> Workspace: ...


def cgroups_writable() -> bool:
    return cgroups.layout() != "none"


def bubblewrap_usable() -> bool:
    if shutil.which("bwrap") is None or shutil.which("nsenter") is None:
        return False
    from agentspace.sandbox.bubblewrap.sandbox import usable

    return asyncio.run(usable())


@pytest.fixture(scope="session")
def has_bubblewrap() -> bool:
    return bubblewrap_usable()


def _script(*args: str, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(
        [str(SCRIPT), *args], capture_output=True, text=True, timeout=300, env=env, check=False
    )
    if done.returncode:
        pytest.fail(f"scripts/dockerd.sh {' '.join(args)} failed:\n{done.stderr}")
    found = re.search(r"DOCKER_HOST=(\S+)", done.stdout)
    assert found, done.stdout
    return found.group(1)


@pytest.fixture(scope="session")
def docker_host() -> Iterator[str]:
    """A docker engine with the sandbox image; DOCKER_HOST points at it for the session."""
    pytest.importorskip("docker", reason="the docker SDK is not installed (pip install docker)")
    from agentspace.sandbox.docker.sandbox import docker_available

    if os.geteuid() == 0:
        env = {k: v for k, v in os.environ.items() if k != "DOCKER_HOST"}
        _script("start", env=env)
        host = _script("image", env=env)
    elif asyncio.run(docker_available()):
        host = _script("image")  # someone else's engine: DOCKER_HOST or the default socket
    else:
        pytest.skip("not root and no docker engine answers: run scripts/dockerd.sh start as root")
    remove_test_containers(host, ours=False)  # what killed earlier runs left
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DOCKER_HOST", host)
        yield host
    remove_test_containers(host, ours=True)  # what a failed test of this run left


TEST_SESSION = re.compile(r"(t[0-9a-f]{32}|test-[0-9a-f]{10})")


def remove_test_containers(host: str, *, ours: bool) -> list[str]:
    """Remove the sandbox containers of test sessions made by this process (``ours``) or by
    test processes that are gone; never another live run's, never a real session's."""
    import docker

    from agentspace.owners import owner_alive, owner_token
    from agentspace.sandbox.docker import sandbox as backend

    label, creator_label = backend.LABEL, getattr(backend, "CREATOR", "agentspace.creator")

    removed = []
    with contextlib.closing(docker.DockerClient(base_url=host)) as client:
        for found in client.containers.list(all=True, filters={"label": label}):
            session, creator = found.labels.get(label, ""), found.labels.get(creator_label)
            if not TEST_SESSION.fullmatch(session):
                continue
            if creator == owner_token() if ours else not owner_alive(creator):
                found.remove(force=True)
                removed.append(found.name)
    return removed


@pytest.fixture
def emitted() -> Emitted:
    return []


@pytest.fixture
async def make_workspace(
    tmp_path: Path, emitted: Emitted, has_bubblewrap: bool
) -> AsyncIterator[MakeWorkspace]:
    made: list[Workspace] = []
    sessions: dict[str, str] = {}

    def make(kind: str, *, name: str = "ws", **policy: Any) -> Workspace:
        if kind == "bubblewrap" and not has_bubblewrap:
            pytest.skip("bubblewrap cannot create namespaces here")
        folder = tmp_path / name / "workspace"
        folder.mkdir(parents=True, exist_ok=True)
        session_id = sessions.setdefault(name, f"t{uuid.uuid4().hex}")
        sandbox = make_sandbox(kind, session_id, folder, SandboxPolicy(**{**DEFAULTS, **policy}))
        workspace = Workspace(
            sandbox, tmp_path / name / "state", lambda k, v: emitted.append((k, v)), PREVIEW_URL
        )
        made.append(workspace)
        return workspace

    yield make
    for workspace in reversed(made):
        await workspace.close()
        if workspace.sandbox.kind == "docker":  # a container outlives close(): remove it
            await workspace.sandbox.destroy()
    if any(w.sandbox.kind == "bubblewrap" for w in made):
        await drain_holder_pool()


async def drain_holder_pool() -> None:
    """Kill this loop's spare bubblewrap holders (each test has its own event loop).

    A spare still being made is waited for first: draining in the middle of one leaks its
    cgroups (see test_bwrap.py::test_draining_the_holder_pool_mid_refill_leaks_nothing).
    """
    from agentspace.sandbox.bubblewrap import holders

    for pool in holders.pools():
        filling = pool._filling
        if filling is not None:
            await asyncio.wait([filling], timeout=10)
        await pool.drain()


def tool_context(workspace: Workspace) -> ToolContext:
    return ToolContext(
        folder=workspace.folder,
        session_id=workspace.session_id,
        notebook="nb.ipynb",
        workspace=workspace,
    )


async def until(check: Callable[[], Any], what: str, timeout: float = 10.0) -> Any:
    """Poll ``check`` (sync or async) until it returns something truthy; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.02)


def marker() -> str:
    """A ``sleep`` duration no other process on this machine uses, to find ours in /proc."""
    return f"1000.{uuid.uuid4().int % 10**8:08d}"


def pids_with(command: str) -> list[int]:
    """Live (not zombie) host processes whose whole command line is ``command``.

    Exact, so the shells and sandbox wrappers whose argv merely contains it do not count.
    """
    wanted = command.split()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
        except OSError:
            continue
        if cmdline.decode(errors="replace").split("\0")[:-1] == wanted:
            found.append(int(entry))
    return found


@pytest.fixture(name="until")
def _until() -> Callable[..., Any]:
    return until


@pytest.fixture(name="pids_with")
def _pids_with() -> Callable[[str], list[int]]:
    return pids_with


@pytest.fixture(name="marker")
def _marker() -> Callable[[], str]:
    return marker


@pytest.fixture(name="tool_context")
def _tool_context() -> Callable[[Workspace], ToolContext]:
    return tool_context


async def serving(workspace: Workspace, port: int) -> bool:
    """Whether something in the workspace's sandbox accepts connections on ``port``."""
    try:
        _, writer = await workspace.sandbox.connect(port)
    except OSError:
        return False
    writer.close()
    return True


@pytest.fixture(name="remove_test_containers")
def _remove_test_containers() -> Callable[..., list[str]]:
    return remove_test_containers
