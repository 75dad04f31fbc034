"""A session's docker container, as one object: the only code that talks to the engine.

The sandbox (``sandbox.py``), a command (``exec.py``), a background run
(``runs.py``) and the tree kill (``kill.py``) all hold the same ``Container``
and use its public methods only. So the engine client, the container's current id, the
retry when the engine stopped it behind our back and the kill threads ``close`` waits for
each live in one place, not in a sandbox whose private members other modules drive.

The docker SDK is imported at first use, not when agentspace loads (``test_lazy.py``). It
blocks: blocking methods run in a thread through ``call``, which also translates the SDK's
errors into agentspace's (once, in ``guard``).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import socket
import struct
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, Literal, TypeVar

from agentspace.errors import SandboxError, SandboxUnavailableError
from agentspace.owners import owner_token
from agentspace.sandbox import sandboxuser
from agentspace.sandbox.base import WORKSPACE_MOUNT, SandboxPolicy
from agentspace.sandbox.docker.kill import MARK, kill_tree
from agentspace.sandbox.docker.limits import cgroup_files, outdated, update_limits
from agentspace.sandbox.namespaces import ENV

T = TypeVar("T")
LABEL = "agentspace.engine.session"
CREATOR = "agentspace.creator"  # owner_token() of the process that made the container
KEEPALIVE = ["sleep", "2147483647"]
HOW_TO = "start one (scripts/dockerd.sh start, set DOCKER_HOST) or use the bubblewrap backend"
# Relay only to a listening port (so refusal is an error, not an empty stream) and say so first.
CONNECT = r"""grep -sqE "^ *[0-9]+: [0-9A-F]+:$1 [0-9A-F]+:0000 0A" /proc/net/tcp /proc/net/tcp6 \
  || exit 111; echo >&2; exec nc 127.0.0.1 $2"""

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


def engine_client(docker_host: str | None, timeout: int = 60) -> Any:
    """A docker SDK client for ``docker_host`` (default: the environment's DOCKER_HOST)."""
    import docker

    if docker_host:
        return docker.DockerClient(base_url=docker_host, timeout=timeout)
    return docker.from_env(timeout=timeout)


def frames(sock: Any) -> Iterator[tuple[int, bytes]]:
    """Docker's multiplexed stream (8-byte header: stream id, size; then the payload), read
    through the buffer the SDK parsed the HTTP headers with: it may already hold a frame."""
    response: Any = getattr(sock, "_response", None)
    fp = getattr(getattr(getattr(response, "raw", None), "_fp", None), "fp", None) or sock
    while len(header := fp.read(8)) == 8:
        stream, size = struct.unpack(">BxxxL", header)
        yield stream, fp.read(size)


def _raw(sock: Any) -> Any:
    """The plain socket under the SDK's exec socket (a ``SocketIO`` on unix sockets)."""
    return getattr(sock, "_sock", sock)


def sandbox_user(policy: SandboxPolicy) -> str:
    """Who commands run as: the policy's sandbox uid when the server is root (root in a
    container is the host's root, whatever the capabilities), else the server's user."""
    if sandboxuser.dropping():
        return f"{policy.uid}:{policy.uid}"
    return f"{os.getuid()}:{os.getgid()}"


class Container:
    """The container ``agentspace-<session_id>``, ``workspace`` bound at /workspace.

    ``id`` is the engine's id for it: None until ``attach`` (and again after ``remove``),
    another one when ``attach`` replaced an outdated container. ``cgroup`` holds its cgroup
    event files when the engine runs on this host (empty otherwise).
    """

    def __init__(
        self,
        session_id: str,
        folder: Path,
        policy: SandboxPolicy,
        docker_host: str | None = None,
    ) -> None:
        self.session_id, self.folder, self.policy = session_id, folder, policy
        self.docker_host, self.name = docker_host, f"agentspace-{session_id}"
        self.id: str | None = None
        self.cgroup: dict[str, Path] = {}
        self._docker: Any = None
        self._killers: set[threading.Thread] = set()

    def _client(self) -> Any:
        if self._docker is None:
            self._docker = engine_client(self.docker_host)
        return self._docker

    def guard(self, fn: Callable[..., T], *args: Any) -> T:
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

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        """``guard(fn, *args)`` in a thread: the SDK blocks."""
        return await asyncio.to_thread(self.guard, fn, *args)

    def attach(self) -> None:
        """Re-attach to the session's container, bringing it up to the current policy.

        Limits (memory, processes, CPU) are updated in place, so running processes
        keep running; a different image or network needs a new container (the
        workspace is a bind mount and stays; processes in the old container stop).
        """
        import docker.errors

        client, source, p = self._client(), str(self.folder.resolve()), self.policy
        memory = f"{p.memory_mb}m" if p.memory_mb else None
        limits: dict[str, Any] = {
            "mem_limit": memory,
            "memswap_limit": memory,
            "pids_limit": p.pids,
            "nano_cpus": int(min(p.cpus, client.info()["NCPU"]) * 1e9) if p.cpus else None,
        }
        network = "host" if p.network == "host" else "none"
        user = sandbox_user(p)
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
            sandboxuser.grant(self.folder, p.uid)
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
        self.id = str(found.id)
        self.cgroup = cgroup_files(found.attrs["State"]["Pid"], self.id)

    def open_exec(
        self, argv: list[str], env: dict[str, str], stdin: bool = False, detach: bool = False
    ) -> tuple[str, Any]:
        """Create and start an exec: its id and its stream's socket (None when ``detach``)."""
        import docker.errors

        api = self._client().api
        for again in (True, False):
            try:
                exec_id = api.exec_create(
                    self.id, argv, stdin=stdin, environment=env, workdir=WORKSPACE_MOUNT
                )["Id"]
                break
            except docker.errors.APIError as e:  # 409: stopped behind our back (engine restart)
                if not (again and e.status_code == 409):
                    raise
                self.attach()
        if detach:
            api.exec_start(exec_id, detach=True)
            return exec_id, None
        sock = api.exec_start(exec_id, socket=True)
        _raw(sock).settimeout(None)  # the SDK's 60 s would cut idle commands
        return exec_id, sock

    def run(self, script: str, *args: str) -> tuple[int, str]:
        """Run a helper script to its end; its exit code and stdout. (Not the SDK's own
        ``exec_start``: it reads the raw socket and can lose what was read with the headers.)"""
        exec_id, sock = self.open_exec(["sh", "-c", script, "sh", *args], {})
        with contextlib.closing(sock):
            output = b"".join(data for stream, data in frames(sock) if stream == 1)
        return self.exit_code(exec_id), output.decode(errors="replace")

    def exec_info(self, exec_id: str) -> dict[str, Any] | None:
        """The engine's ``exec_inspect`` of an exec; None when it no longer knows it."""
        import docker.errors

        try:
            info: dict[str, Any] = self._client().api.exec_inspect(exec_id)
        except docker.errors.NotFound:
            return None
        return info

    def exec_ids(self) -> list[str]:
        """The ids of the execs the engine knows in this container (running or ended)."""
        return list(self._client().api.inspect_container(self.id)["ExecIDs"] or [])

    def exit_code(self, exec_id: str) -> int:
        """An ended exec's exit code, once the engine recorded it."""
        for _ in range(200):  # the stream may end a moment before the engine records the exit
            info = self._client().api.exec_inspect(exec_id)
            if not info["Running"] and info["ExitCode"] is not None:
                return int(info["ExitCode"])
            time.sleep(0.01)
        raise SandboxError(f"docker exec {exec_id[:12]} did not report an exit code")

    def exec_state(self, exec_id: str) -> int | Literal["running", "forgotten"]:
        """An exec's exit code once it ended; "forgotten" when the engine no longer knows it."""
        info = self.exec_info(exec_id)
        if info is None:
            return "forgotten"
        if info["Running"] or info["ExitCode"] is None:
            return "running"
        return int(info["ExitCode"])

    def kill(self, exec_id: str, token: str, sig: str, ended: threading.Event) -> threading.Thread:
        """Signal the tree of the exec marked ``token`` (``kill.kill_tree``) from a
        thread: ``kill()`` is synchronous and may come from anywhere, and ``close`` waits
        for the thread."""
        thread = threading.Thread(target=self._kill, args=(exec_id, token, sig, ended))
        self._killers.add(thread)
        thread.start()
        return thread

    def _kill(self, exec_id: str, token: str, sig: str, ended: threading.Event) -> None:
        try:
            kill_tree(self, exec_id, token, sig, ended)
        finally:
            self._killers.discard(threading.current_thread())

    def bridge(self, port: int) -> socket.socket:
        """A socket to ``127.0.0.1:port`` inside: ``nc`` inside, a socketpair outside, a
        thread copying each way."""
        argv = ["sh", "-c", CONNECT, "sh", f"{port:04X}", str(port)]
        _, sock = self.open_exec(argv, {MARK: uuid.uuid4().hex[:16]}, stdin=True)
        received, raw = frames(sock), _raw(sock)
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

    def remove(self) -> None:
        """Remove the container and its processes for good (none: nothing to do)."""
        import docker.errors

        with contextlib.suppress(docker.errors.NotFound):
            self._client().containers.get(self.name).remove(force=True)
        self.id = None

    async def close(self) -> None:
        """Finish pending kills and drop the client; the container keeps running."""
        for thread in list(self._killers):
            await asyncio.to_thread(thread.join)
        if self._docker is not None:
            self._docker.close()
            self._docker = None
