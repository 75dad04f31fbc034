"""The docker sandbox: one long-lived container per session, driven through the docker SDK.

Why a container per session (not per command): processes must outlive a command and a server
restart (a dev server the agent started keeps serving), so the container runs a keep-alive
process and every command is a ``docker exec`` in it. ``close`` leaves it running and ``start``
re-attaches by name; only ``destroy`` removes it.

Why environment markers: a ``docker exec`` cannot be put in its own cgroup, and a daemon that
calls ``setsid`` leaves the exec's process group. Every exec therefore carries
``AGENTSPACE_EXEC=<token>`` in its environment, which children inherit across fork, exec and
setsid; ``kill`` signals every process whose ``/proc/PID/environ`` holds the token until none is
left. (A process that deliberately clears its environment escapes the tree kill, not the
container: the container is the security boundary.)

Why threads: the SDK is blocking. Its calls run in ``asyncio.to_thread``; an exec's
multiplexed output is read by one thread per exec that feeds asyncio stream readers, paused
through the readers' own flow control when the consumer falls behind.
"""

from __future__ import annotations

import asyncio
import os
import socket
import struct
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from agentspace.errors import SandboxError, SandboxUnavailableError
from agentspace.workspace.sandbox import WORKSPACE_MOUNT, Execution, Sandbox, SandboxKind

__all__ = ["DockerExecution", "DockerSandbox", "docker_available"]

T = TypeVar("T")
LABEL = "agentspace.session"
MARK = "AGENTSPACE_EXEC"
KEEPALIVE = ["sleep", "2147483647"]
LIMIT = 1 << 20  # a stream buffers up to 2 MiB unread before its exec is paused
HOW_TO_START = (
    "start a docker engine (scripts/dockerd.sh start, then set DOCKER_HOST as it prints) "
    "or choose the bubblewrap backend"
)
# $1 signal, $2 token. Signals every marked process, again and again for KILL (a process may
# fork while we look), until none is left. Exit 0 if something was signalled, 1 if nothing was.
KILLER = r"""m="AGENTSPACE_EXEC=$2"; hit=1
for _ in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16; do
  p=; for f in $(grep -lzxF "$m" /proc/[0-9]*/environ 2>/dev/null); do
    f=${f#/proc/}; p="$p ${f%/environ}"; done
  [ -n "$p" ] || exit $hit
  kill -s "$1" $p 2>/dev/null; hit=0; [ "$1" = KILL ] || exit 0
done"""
COUNTERS = r"""for f in /sys/fs/cgroup/memory.events /sys/fs/cgroup/memory/memory.oom_control; do
  [ -r $f ] && sed -n 's/^oom_kill /memory /p' $f; done
for f in /sys/fs/cgroup/pids.events /sys/fs/cgroup/pids/pids.events; do
  [ -r $f ] && sed -n 's/^max /pids /p' $f; done; true"""
# Connect only to a listening port (so a refusal is an error, not an empty stream), then say so.
CONNECT = r"""grep -sqE "^ *[0-9]+: [0-9A-F]+:$1 [0-9A-F]+:0000 0A" /proc/net/tcp /proc/net/tcp6 \
  || exit 111; echo >&2; exec nc 127.0.0.1 $2"""


def _client(docker_host: str | None, timeout: int = 60) -> Any:
    import docker

    if docker_host:
        return docker.DockerClient(base_url=docker_host, timeout=timeout)
    return docker.from_env(timeout=timeout)


async def docker_available(docker_host: str | None = None) -> bool:
    """Whether a docker engine answers a ping within two seconds (for backend auto-selection)."""

    def ping() -> bool:
        client = _client(docker_host, timeout=2)
        try:
            return bool(client.ping())
        finally:
            client.close()

    try:
        return await asyncio.wait_for(asyncio.to_thread(ping), 3)
    except Exception:  # no SDK, no socket, no answer: all mean "not available"
        return False


def _frames(fp: Any) -> Iterator[tuple[int, bytes]]:
    """Docker's multiplexed stream: 8-byte headers (stream id, size), then the payload."""
    while len(header := fp.read(8)) == 8:
        stream, size = struct.unpack(">BxxxL", header)
        yield stream, fp.read(size)


def _reader_of(sock: Any) -> Any:
    """The buffered reader the SDK read the HTTP headers through: it may hold the first frames."""
    response: Any = getattr(sock, "_response", None)
    try:
        return response.raw._fp.fp
    except AttributeError:
        return sock


class _Valve:
    """A StreamReader "transport" whose pause/resume gates the thread that feeds the reader."""

    def __init__(self) -> None:
        self.open = threading.Event()
        self.open.set()

    def pause_reading(self) -> None:
        self.open.clear()

    def resume_reading(self) -> None:
        self.open.set()


class DockerExecution(Execution):
    """One ``docker exec``: output fed from its stream, exit code from ``exec_inspect``."""

    def __init__(self, sandbox: DockerSandbox, exec_id: str, token: str, sock: Any) -> None:
        self._sandbox, self._id, self._token, self._sock = sandbox, exec_id, token, sock
        self._loop = asyncio.get_running_loop()
        self._ended = threading.Event()
        self._finished: asyncio.Future[None] = self._loop.create_future()
        self._killers: list[threading.Thread] = []
        self._code: int | None = None
        self.stdout, self.stderr = asyncio.StreamReader(LIMIT), asyncio.StreamReader(LIMIT)
        self._valves = (_Valve(), _Valve())
        for reader, valve in zip((self.stdout, self.stderr), self._valves, strict=True):
            reader.set_transport(valve)  # type: ignore[arg-type]
        threading.Thread(target=self._pump, name=f"agentspace-exec-{token}", daemon=True).start()

    def _pump(self) -> None:
        try:
            for stream, data in _frames(_reader_of(self._sock)):
                err = stream == 2
                out = self.stderr if err else self.stdout
                self._loop.call_soon_threadsafe(out.feed_data, data)
                self._valves[err].open.wait()  # the consumer is behind: stop reading, like a pipe
        except (OSError, ValueError):
            pass  # the connection broke: end the streams like a closed pipe
        finally:
            self._sock.close()
            self._ended.set()
            try:
                self._loop.call_soon_threadsafe(self._end)
            except RuntimeError:
                pass  # the loop is gone; nobody is waiting

    def _end(self) -> None:
        self.stdout.feed_eof()
        self.stderr.feed_eof()
        if not self._finished.done():
            self._finished.set_result(None)

    async def wait(self) -> int:
        if self._code is None:
            await self._finished
            for killer in self._killers:
                await asyncio.to_thread(killer.join)
            self._code = await self._sandbox._call(self._sandbox._exit_code, self._id)
        return self._code

    def terminate(self) -> None:
        self._signal("TERM")

    def kill(self) -> None:
        self._signal("KILL")

    def _signal(self, sig: str) -> None:
        # kill() is synchronous in the port and may be called from any thread: do it in one.
        run = self._sandbox._kill_tree
        thread = threading.Thread(target=run, args=(self._token, sig, self._ended), daemon=True)
        thread.start()
        self._killers.append(thread)


class DockerSandbox(Sandbox):
    """A session's container: ``agentspace-<session_id>``, the workspace at /workspace."""

    kind: SandboxKind = "docker"

    def __init__(self, *args: Any, docker_host: str | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.docker_host = docker_host
        self.name = f"agentspace-{self.session_id}"
        self._docker: Any = None
        self._container_id: str | None = None
        self._lock = asyncio.Lock()

    # -- SDK plumbing -------------------------------------------------------------------
    def _client(self) -> Any:
        if self._docker is None:
            self._docker = _client(self.docker_host)
        return self._docker

    def _api(self) -> Any:
        return self._client().api

    def _guard(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run one SDK call, translating its errors (once, here) into the agentspace tree."""
        import docker.errors
        import requests.exceptions

        try:
            return fn(*args, **kwargs)
        except docker.errors.ImageNotFound as e:
            image = self.policy.image
            raise SandboxError(
                f"docker image {image} is missing: build it with scripts/dockerd.sh image",
                image=image,
            ) from e
        except docker.errors.APIError as e:
            raise SandboxError(f"docker refused: {e.explanation or e}", sandbox=self.name) from e
        except (docker.errors.DockerException, requests.exceptions.ConnectionError) as e:
            raise SandboxUnavailableError(
                f"no docker engine answers ({e}): {HOW_TO_START}", backend="docker"
            ) from e

    async def _call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        return await asyncio.to_thread(self._guard, fn, *args, **kwargs)

    # -- the container ------------------------------------------------------------------
    async def start(self) -> None:
        async with self._lock:
            if self._container_id is None:
                self.workspace.mkdir(parents=True, exist_ok=True)
                self._container_id = await self._call(self._attach_or_create)

    def _attach_or_create(self) -> str:
        import docker.errors

        client = self._client()
        containers = client.containers
        source = str(self.workspace.resolve())
        try:
            found = containers.get(self.name)
        except docker.errors.NotFound:
            found = None
        if found is not None:
            if found.labels.get(LABEL) != self.session_id:
                raise SandboxError(f"container {self.name} exists but is not agentspace's")
            mounts = {m.get("Destination"): m.get("Source") for m in found.attrs.get("Mounts", [])}
            if mounts.get(WORKSPACE_MOUNT) == source:
                if found.status != "running":
                    found.start()
                return str(found.id)
            found.remove(force=True)  # the workspace moved: a stale container serves nobody
        p = self.policy
        memory = f"{p.memory_mb}m" if p.memory_mb else None
        uid, gid = os.getuid(), os.getgid()
        container = containers.create(
            p.image, KEEPALIVE, name=self.name, labels={LABEL: self.session_id}, init=True,
            detach=True, working_dir=WORKSPACE_MOUNT, user=f"{uid}:{gid}",
            environment={"HOME": "/tmp"} if uid else None,
            volumes={source: {"bind": WORKSPACE_MOUNT, "mode": "rw"}},
            network_mode="host" if p.network == "host" else "none",
            mem_limit=memory, memswap_limit=memory, pids_limit=p.pids,
            nano_cpus=int(min(p.cpus, client.info()["NCPU"]) * 1e9) if p.cpus else None,
        )  # fmt: skip
        container.start()
        return str(container.id)

    def _open(self, argv: list[str], env: dict[str, str], stdin: bool = False) -> tuple[str, Any]:
        api = self._api()
        exec_id = api.exec_create(
            self._container_id, argv, stdin=stdin, environment=env, workdir=WORKSPACE_MOUNT
        )["Id"]
        sock = api.exec_start(exec_id, socket=True)
        getattr(sock, "_sock", sock).settimeout(None)  # the SDK's 60 s would cut idle commands
        return exec_id, sock

    def _run(self, script: str, *args: str) -> tuple[int, str]:
        api = self._api()
        exec_id = api.exec_create(self._container_id, ["sh", "-c", script, "sh", *args])["Id"]
        output = api.exec_start(exec_id)
        return self._exit_code(exec_id), output.decode(errors="replace")

    def _exit_code(self, exec_id: str) -> int:
        for _ in range(200):  # the stream can end a moment before the engine records the exit
            info = self._api().exec_inspect(exec_id)
            if not info["Running"] and info["ExitCode"] is not None:
                return int(info["ExitCode"])
            time.sleep(0.01)
        raise SandboxError(f"docker exec {exec_id[:12]} did not report an exit code")

    # -- the port -----------------------------------------------------------------------
    async def exec(self, command: str, *, env: dict[str, str] | None = None) -> DockerExecution:
        await self.start()
        token = uuid.uuid4().hex[:16]
        environment = {**(env or {}), MARK: token}
        exec_id, sock = await self._call(self._open, ["sh", "-c", command], environment)
        return DockerExecution(self, exec_id, token, sock)

    def _kill_tree(self, token: str, sig: str, ended: threading.Event) -> None:
        """Signal the exec's processes; for KILL, repeat until its stream has ended."""
        import docker.errors

        for _ in range(100):  # at most ~5 s of retries (a fork bomb can starve our exec)
            try:
                hit = self._run(KILLER, sig, token)[0] == 0
            except docker.errors.NotFound:
                return  # the container is gone, and its processes with it
            except Exception:
                hit = False  # e.g. no pid left for our own exec: try again
            if ended.is_set() or (hit and sig != "KILL"):
                return
            ended.wait(0.05)

    async def connect(self, port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        await self.start()
        inside = await self._call(self._bridge, port)
        return await asyncio.open_connection(sock=inside)

    def _bridge(self, port: int) -> socket.socket:
        """``nc`` inside, a socketpair outside, two threads pumping between them."""
        env = {MARK: uuid.uuid4().hex[:16]}
        _, sock = self._open(["sh", "-c", CONNECT, "sh", f"{port:04X}", str(port)], env, True)
        fp, raw = _reader_of(sock), getattr(sock, "_sock", sock)
        frames = _frames(fp)
        if next(frames, None) != (2, b"\n"):  # not our "listening" line on stderr: refused
            sock.close()
            raise ConnectionRefusedError(f"nothing listens on port {port} in {self.name}")
        inside, outside = socket.socketpair()
        left = [2]
        lock = threading.Lock()

        def done() -> None:
            with lock:
                left[0] -= 1
                if left[0] == 0:
                    sock.close()
                    outside.close()

        def down() -> None:  # container -> caller
            try:
                for stream, data in frames:
                    if stream == 1:
                        outside.sendall(data)
                outside.shutdown(socket.SHUT_WR)
            except (OSError, ValueError):
                pass
            finally:
                done()

        def up() -> None:  # caller -> container; EOF becomes a half-close nc passes on
            try:
                while data := outside.recv(65536):
                    raw.sendall(data)
                raw.shutdown(socket.SHUT_WR)
            except (OSError, ValueError):
                pass
            finally:
                done()

        for pump in (down, up):
            threading.Thread(target=pump, name=f"agentspace-connect-{port}", daemon=True).start()
        return inside

    async def counters(self) -> dict[str, int]:
        """OOM kills and refused forks, read from the container's own cgroup files."""
        await self.start()
        try:
            _, output = await self._call(self._run, COUNTERS)
        except SandboxError:
            return {}  # e.g. the pids limit leaves no room for our exec right now
        return {k: int(v) for k, v in (line.split() for line in output.splitlines() if line)}

    async def close(self) -> None:
        """Keep the container (and its processes) running; release the client."""
        if self._docker is not None:
            self._docker.close()
            self._docker = None

    async def destroy(self) -> None:
        import docker.errors

        def remove() -> None:
            try:
                self._client().containers.get(self.name).remove(force=True)
            except docker.errors.NotFound:
                pass

        await self._call(remove)
        self._container_id = None
        await self.close()
