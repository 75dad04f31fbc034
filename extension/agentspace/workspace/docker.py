"""The docker backend: one long-lived container per session, driven through the docker SDK.

One container per session, not per command, because processes must outlive a command and a
server restart: it runs a keep-alive process, each command is a ``docker exec`` in it, ``close``
leaves it running, ``start`` re-attaches by name and only ``destroy`` removes it.

Background processes are not read through an exec stream, which nobody reads while no
server is attached: the container writes their logs itself (``docker_runs.py``).

Each exec carries ``AGENTSPACE_EXEC=<token>``, which its whole process tree inherits,
daemons included: ``kill`` signals every process that holds it (``docker_kill.py``).

The SDK blocks: its calls run in ``asyncio.to_thread``, and a thread per exec reads the
multiplexed output into two StreamReaders, paused by their own flow control when the consumer
falls behind (so read both streams, as with pipes).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import re
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Literal, TypeVar

from ..errors import SandboxError, SandboxUnavailableError
from ..records import owner_token
from . import sandboxuser
from .docker_exec import LIMIT, DockerExecution, frames
from .docker_kill import MARK, signal_tree
from .docker_limits import cgroup_files, outdated, update_limits
from .docker_runs import DockerRun, adopt, spawn
from .namespaces import ENV
from .sandbox import WORKSPACE_MOUNT, Sandbox, SandboxKind

__all__ = ["DockerExecution", "DockerSandbox", "docker_available"]

T = TypeVar("T")
LABEL = "agentspace.session"
CREATOR = "agentspace.creator"  # owner_token() of the process that made the container
KEEPALIVE = ["sleep", "2147483647"]
HOW_TO = "start one (scripts/dockerd.sh start, set DOCKER_HOST) or use the bubblewrap backend"
# The cgroup files of counters(), read from inside when the engine runs on another host.
COUNTERS = """cd /sys/fs/cgroup; echo =memory; cat memory.events memory/memory.oom_control
echo =pids; cat pids.events pids/pids.events; true"""
# Relay only to a listening port (so refusal is an error, not an empty stream) and say so first.
CONNECT = r"""grep -sqE "^ *[0-9]+: [0-9A-F]+:$1 [0-9A-F]+:0000 0A" /proc/net/tcp /proc/net/tcp6 \
  || exit 111; echo >&2; exec nc 127.0.0.1 $2"""
EVENTS = {"memory": "oom_kill", "pids": "max"}  # the counted line in each cgroup file


# Every container: no capabilities (not even in the bounding set), no privilege gained through
# setuid files, a read-only image (writable: the workspace and a private /tmp).
HARDENING: dict[str, Any] = {
    "cap_drop": ["ALL"],
    "security_opt": ["no-new-privileges:true"],
    "read_only": True,
    "tmpfs": {"/tmp": "rw,nosuid,nodev,mode=1777"},
}


def _unhardened(attrs: dict[str, Any], user: str) -> bool:
    """Whether a container was made under an older policy: another user, capabilities kept,
    setuid allowed or a writable image (such containers are replaced, not updated)."""
    host = attrs["HostConfig"]
    return (
        attrs["Config"].get("User") != user
        or "ALL" not in (host.get("CapDrop") or [])
        or "no-new-privileges:true" not in (host.get("SecurityOpt") or [])
        or not host.get("ReadonlyRootfs")
        or "/tmp" not in (host.get("Tmpfs") or {})
    )


def _client(docker_host: str | None, timeout: int = 60) -> Any:
    import docker

    if docker_host:
        return docker.DockerClient(base_url=docker_host, timeout=timeout)
    return docker.from_env(timeout=timeout)


async def docker_available(docker_host: str | None = None) -> bool:
    """Whether a docker engine answers a ping within two seconds (for backend auto-selection)."""

    def ping() -> bool:
        with contextlib.closing(_client(docker_host, timeout=2)) as client:
            return bool(client.ping())

    try:
        return await asyncio.wait_for(asyncio.to_thread(ping), 3)
    except Exception:  # no SDK, no socket, no answer: all mean "not available"
        return False


class DockerSandbox(Sandbox):
    """A session's container ``agentspace-<session_id>``, its workspace at /workspace."""

    kind: SandboxKind = "docker"
    detached = True

    def __init__(self, *args: Any, docker_host: str | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.docker_host, self.name = docker_host, f"agentspace-{self.session_id}"
        self._docker: Any = None
        self._container_id: str | None = None
        self._cgroup: dict[str, Path] = {}
        self._killers: set[threading.Thread] = set()
        self._lock = asyncio.Lock()

    def _client(self) -> Any:
        if self._docker is None:
            self._docker = _client(self.docker_host)
        return self._docker

    def _guard(self, fn: Callable[..., T], *args: Any) -> T:
        """Run one SDK call, translating its errors (once, here) into the agentspace tree."""
        import docker.errors
        import requests.exceptions

        try:
            return fn(*args)
        except docker.errors.ImageNotFound as e:
            image = self.policy.image
            msg = f"docker image {image} is missing: build it with scripts/dockerd.sh image"
            raise SandboxError(msg, image=image) from e
        except docker.errors.APIError as e:
            raise SandboxError(f"docker refused: {e.explanation or e}", sandbox=self.name) from e
        except (docker.errors.DockerException, requests.exceptions.ConnectionError) as e:
            msg = f"no docker engine answers ({e}): {HOW_TO}"
            raise SandboxUnavailableError(msg, backend="docker") from e

    async def _call(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.to_thread(self._guard, fn, *args)

    async def start(self) -> None:
        async with self._lock:
            if self._container_id is None:
                self.workspace.mkdir(parents=True, exist_ok=True)
                await self._call(self._attach_or_create)

    def _attach_or_create(self) -> None:
        """Re-attach to the session's container, bringing it up to the current policy.

        Limits (memory, processes, CPU) are updated in place, so running processes
        keep running; a different image or network needs a new container (the
        workspace is a bind mount and stays; processes in the old container stop).
        """
        import docker.errors

        client, source, p = self._client(), str(self.workspace.resolve()), self.policy
        memory = f"{p.memory_mb}m" if p.memory_mb else None
        limits: dict[str, Any] = {
            "mem_limit": memory,
            "memswap_limit": memory,
            "pids_limit": p.pids,
            "nano_cpus": int(min(p.cpus, client.info()["NCPU"]) * 1e9) if p.cpus else None,
        }
        network = "host" if p.network == "host" else "none"
        user = self.user()
        try:
            found = client.containers.get(self.name)
            if found.labels.get(LABEL) != self.session_id:
                raise SandboxError(f"container {self.name} exists but is not agentspace's")
            mounts = {m.get("Destination"): m.get("Source") for m in found.attrs["Mounts"]}
            moved = mounts.get(WORKSPACE_MOUNT) != source
            host = found.attrs["HostConfig"]
            changed = found.attrs["Config"]["Image"] != p.image or host["NetworkMode"] != network
            weaker = _unhardened(found.attrs, user)
            if moved or changed or weaker:  # start afresh: new place, image, network or rights
                found.remove(force=True)
                found = None
            elif outdated(host, limits):
                update_limits(client, str(found.id), limits)
        except docker.errors.NotFound:
            found = None
        except docker.errors.APIError as exc:
            raise SandboxError(
                f"Could not apply the sandbox policy to {self.name}: {exc.explanation or exc}."
                " Lower limits than the processes inside use are refused: stop them first."
            ) from exc
        if sandboxuser.dropping():
            sandboxuser.grant(self.workspace, p.uid)
        if found is None:
            labels = {LABEL: self.session_id, CREATOR: owner_token()}
            found = client.containers.create(
                p.image, KEEPALIVE, name=self.name, labels=labels, init=True, user=user,
                environment=ENV, working_dir=WORKSPACE_MOUNT,
                volumes={source: {"bind": WORKSPACE_MOUNT, "mode": "rw"}},
                network_mode=network, **HARDENING, **limits,
            )  # fmt: skip
        if found.status != "running":
            found.start()
            found.reload()
        self._container_id = str(found.id)
        self._cgroup = cgroup_files(found.attrs["State"]["Pid"], self._container_id)

    def user(self) -> str:
        """Who commands run as: the policy's sandbox uid when the server is root (root in a
        container is the host's root, whatever the capabilities), else the server's user."""
        if sandboxuser.dropping():
            return f"{self.policy.uid}:{self.policy.uid}"
        return f"{os.getuid()}:{os.getgid()}"

    def _open(
        self, argv: list[str], env: dict[str, str], stdin: bool = False, detach: bool = False
    ) -> tuple[str, Any]:
        """Create and start an exec: its id and its stream's socket (None when ``detach``)."""
        import docker.errors

        api = self._client().api
        for again in (True, False):
            try:
                exec_id = api.exec_create(
                    self._container_id, argv, stdin=stdin, environment=env, workdir=WORKSPACE_MOUNT
                )["Id"]
                break
            except docker.errors.APIError as e:  # 409: stopped behind our back (engine restart)
                if not (again and e.status_code == 409):
                    raise
                self._attach_or_create()
        if detach:
            api.exec_start(exec_id, detach=True)
            return exec_id, None
        sock = api.exec_start(exec_id, socket=True)
        getattr(sock, "_sock", sock).settimeout(None)  # the SDK's 60 s would cut idle commands
        return exec_id, sock

    def _run(self, script: str, *args: str) -> tuple[int, str]:
        """Run a helper script to its end; its exit code and stdout. (Not the SDK's own
        ``exec_start``: it reads the raw socket and can lose what was read with the headers.)"""
        exec_id, sock = self._open(["sh", "-c", script, "sh", *args], {})
        with contextlib.closing(sock):
            output = b"".join(data for stream, data in frames(sock) if stream == 1)
        return self._exit_code(exec_id), output.decode(errors="replace")

    def _exit_code(self, exec_id: str) -> int:
        for _ in range(200):  # the stream may end a moment before the engine records the exit
            info = self._client().api.exec_inspect(exec_id)
            if not info["Running"] and info["ExitCode"] is not None:
                return int(info["ExitCode"])
            time.sleep(0.01)
        raise SandboxError(f"docker exec {exec_id[:12]} did not report an exit code")

    def _exec_state(self, exec_id: str) -> int | Literal["running", "forgotten"]:
        """An exec's exit code once it ended; "forgotten" when the engine no longer knows it."""
        import docker.errors

        try:
            info = self._client().api.exec_inspect(exec_id)
        except docker.errors.NotFound:
            return "forgotten"
        if info["Running"] or info["ExitCode"] is None:
            return "running"
        return int(info["ExitCode"])

    async def spawn(self, command: str, *, log: str, limit: int) -> DockerRun:
        await self.start()
        return await spawn(self, command, log, limit)

    async def adopt(self, command: str, *, log: str, handle: str | None) -> DockerRun | None:
        await self.start()
        return await adopt(self, command, log, handle)

    async def exec(self, command: str, *, env: dict[str, str] | None = None) -> DockerExecution:
        await self.start()
        token = uuid.uuid4().hex[:16]
        environment = {**(env or {}), MARK: token}
        exec_id, sock = await self._call(self._open, ["sh", "-c", command], environment)
        return DockerExecution(self, exec_id, token, sock)

    def _signal(
        self, exec_id: str, token: str, sig: str, ended: threading.Event
    ) -> threading.Thread:
        return signal_tree(self, exec_id, token, sig, ended)

    async def connect(self, port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        await self.start()
        return await asyncio.open_connection(sock=await self._call(self._bridge, port), limit=LIMIT)

    def _bridge(self, port: int) -> socket.socket:
        """``nc`` inside, a socketpair outside, a thread copying each way."""
        argv = ["sh", "-c", CONNECT, "sh", f"{port:04X}", str(port)]
        _, sock = self._open(argv, {MARK: uuid.uuid4().hex[:16]}, stdin=True)
        received, raw = frames(sock), getattr(sock, "_sock", sock)
        if next(received, None) != (2, b"\n"):  # not our "listening" line: refused
            sock.close()
            raise ConnectionRefusedError(f"nothing listens on port {port} in {self.name}")
        ours, theirs = socket.socketpair()
        finished = itertools.count()  # next() is atomic: the second copier to end closes

        def copy(chunks: Iterable[bytes], send: Callable[[bytes], Any], end: socket.socket) -> None:
            with contextlib.suppress(OSError, ValueError):  # a side went away: stop copying
                for data in chunks:
                    send(data)
                end.shutdown(socket.SHUT_WR)  # pass the EOF on as a half-close
            if next(finished):
                sock.close()
                theirs.close()

        down = (data for stream, data in received if stream == 1)
        up = iter(lambda: theirs.recv(1 << 16), b"")
        for args in ((down, theirs.sendall, theirs), (up, raw.sendall, raw)):
            threading.Thread(target=copy, args=args, daemon=True).start()
        return ours

    async def counters(self) -> dict[str, int]:
        """OOM kills and refused forks from the container's cgroup, read on this host when it
        is the engine's (no exec, so it works even when the pids limit is exhausted)."""
        await self.start()
        try:
            texts = {name: file.read_text() for name, file in self._cgroup.items()}
        except OSError:  # the container went away
            return {}
        if not texts:
            try:
                _, output = await self._call(self._run, COUNTERS)
            except SandboxError:
                return {}  # e.g. the pids limit leaves no room for our exec right now
            parts = re.split(r"^=(\w+)\n", output, flags=re.M)
            texts = dict(zip(parts[1::2], parts[2::2], strict=True))
        found = {k: re.search(rf"^{EVENTS[k]} (\d+)$", t, re.M) for k, t in texts.items()}
        return {k: int(m[1]) for k, m in found.items() if m}

    async def close(self) -> None:
        """Keep the container and its processes running; finish pending kills, drop the client."""
        for thread in list(self._killers):
            await asyncio.to_thread(thread.join)
        if self._docker is not None:
            self._docker.close()
            self._docker = None

    async def destroy(self) -> None:
        import docker.errors

        def remove() -> None:
            with contextlib.suppress(docker.errors.NotFound):
                self._client().containers.get(self.name).remove(force=True)

        await self._call(remove)
        self._container_id = None
        await self.close()
