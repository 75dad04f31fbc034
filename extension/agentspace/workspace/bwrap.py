"""The bubblewrap backend: a fresh, isolated process tree per command, one network per session.

Layout of one session's sandbox:

* a *holder*: ``bwrap --unshare-user --unshare-net ... sleep infinity``. It owns
  the session's network namespace (loopback only), so a server started by one
  command is reachable from the next, and from the preview relay, but from
  nothing on the host. It dies with the server (``--die-with-parent``).
* each command: ``nsenter`` into the holder's user and network namespaces, then
  ``bwrap`` with its own pid, ipc, uts and mount namespaces: system folders
  read-only, a small ``/etc`` (no shadow, no host secrets), a private ``/tmp``,
  the workspace at ``/workspace``, an empty environment. Killing the command's
  bwrap kills its pid namespace, so a process that daemonizes dies too.
* limits: the session's cgroups (joined before exec) or rlimits.

With ``network = host`` there is no holder and commands share the host network.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import sys
import tempfile
import uuid
import weakref
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from ..errors import SandboxError
from ..records import owner_alive, owner_token
from .cgroups import Limits
from .hostproc import HostExecution, signal_all, spawn
from .relay import open_via_relay
from .sandbox import WORKSPACE_MOUNT, Execution, Sandbox, SandboxPolicy

ETC = (
    "passwd", "group", "hosts", "resolv.conf", "nsswitch.conf", "host.conf", "ld.so.cache",
    "ld.so.conf", "ld.so.conf.d", "ssl", "ca-certificates", "ca-certificates.conf",
    "alternatives", "localtime", "timezone", "mime.types", "protocols", "services",
    "os-release", "debian_version", "profile", "bash.bashrc", "inputrc", "terminfo",
    "python3", "python3.11", "fonts", "gai.conf", "magic", "magic.mime", "xdg",
)  # fmt: skip
SYSTEM = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
ENV = {
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "HOME": WORKSPACE_MOUNT,
    "LANG": "C.UTF-8",
    "TERM": "dumb",
    "PYTHONUNBUFFERED": "1",
    "MPLBACKEND": "Agg",
}


@cache
def tools() -> tuple[str, str] | None:
    """Paths of ``bwrap`` and ``nsenter``, or None when either is missing."""
    bwrap, nsenter = shutil.which("bwrap"), shutil.which("nsenter")
    return (bwrap, nsenter) if bwrap and nsenter else None


@cache
def system_mounts() -> tuple[str, ...]:
    """Read-only system folders, merged-/usr symlinks kept as symlinks, a minimal /etc.

    The /etc is a copy of a few harmless entries (no shadow, no host keys),
    made once per process and mounted in one go: thirty separate bind mounts
    would cost more than the rest of the sandbox's start.
    """
    args: list[str] = []
    for path in SYSTEM:
        if os.path.islink(path):
            args += ["--symlink", os.readlink(path), path]
        elif os.path.isdir(path):
            args += ["--ro-bind", path, path]
    return (*args, "--ro-bind", str(_minimal_etc()), "/etc")


def _minimal_etc() -> Path:
    target = runtime_dir() / f"etc-{os.getpid()}"
    if target.exists():
        return target
    staging = Path(tempfile.mkdtemp(dir=runtime_dir(), prefix="etc-"))
    for name in ETC:
        source = Path("/etc") / name
        with contextlib.suppress(OSError):
            if source.is_dir() and not source.is_symlink():
                shutil.copytree(source, staging / name, symlinks=True)
            elif source.is_symlink():
                os.symlink(os.readlink(source), staging / name)
            elif source.is_file():
                shutil.copy2(source, staging / name)
    try:
        staging.rename(target)
    except OSError:  # another thread made it first
        shutil.rmtree(staging, ignore_errors=True)
    return target


def runtime_dir() -> Path:
    """A private folder for relay sockets: short path (sockets), mode 0700."""
    base = os.environ.get("XDG_RUNTIME_DIR") or "/tmp"
    path = Path(base) / f"agentspace-{os.getuid()}"
    path.mkdir(mode=0o700, exist_ok=True)
    if path.stat().st_uid != os.getuid():
        raise SandboxError(f"{path} belongs to another user; set XDG_RUNTIME_DIR to a private dir.")
    return path


async def usable() -> bool:
    """Whether bubblewrap can make namespaces here (tried once with ``true``)."""
    found = tools()
    if found is None:
        return False
    proc = await asyncio.create_subprocess_exec(
        found[0], "--unshare-all", "--die-with-parent", *system_mounts(), "--", "true",
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    return await proc.wait() == 0


class HolderPool:
    """Spare namespace holders, so a new session's first command does not wait for one.

    A holder is workspace-independent (it only owns a user and a network
    namespace), so one can be made ahead of time; taking it schedules the next.
    Spares die with the server like every holder (``--die-with-parent``).
    """

    def __init__(self, spares: int = 1) -> None:
        self.spares = spares
        self._ready: list[Prepared] = []
        self._filling: asyncio.Task[None] | None = None

    async def take(self, bwrap: str, nsenter: str) -> Prepared:
        while self._ready:
            prepared = self._ready.pop()
            if prepared.holder.returncode is None and _alive(prepared.pid):
                self._refill(bwrap, nsenter)
                return prepared
            prepared.limits.remove()
        prepared = await _prepare(bwrap, nsenter, warm=False)
        self._refill(bwrap, nsenter)
        return prepared

    def _refill(self, bwrap: str, nsenter: str) -> None:
        if self._filling is None or self._filling.done():
            self._filling = asyncio.create_task(self._fill(bwrap, nsenter))

    async def _fill(self, bwrap: str, nsenter: str) -> None:
        with contextlib.suppress(SandboxError, OSError):
            while len(self._ready) < self.spares:
                self._ready.append(await _prepare(bwrap, nsenter, warm=True))

    async def drain(self) -> None:
        """Kill the spares (the engine closes)."""
        if self._filling is not None:
            self._filling.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._filling
        while self._ready:
            prepared = self._ready.pop()
            if prepared.holder.returncode is None:
                prepared.holder.kill()
                await prepared.holder.wait()
            prepared.limits.remove()


@dataclass
class Prepared:
    """A holder (user + network namespace) and a session's cgroups, made ahead of use."""

    holder: asyncio.subprocess.Process
    pid: int
    limits: Limits


async def _prepare(bwrap: str, nsenter: str, *, warm: bool) -> Prepared:
    """A holder and empty cgroups; ``warm`` runs one sandboxed ``true`` in them first.

    The first sandboxed process in fresh cgroups costs 5-15 ms more than later
    ones (kernel set-up per group); a spare pays that before anyone waits.
    """
    limits = Limits(f"pool-{uuid.uuid4().hex[:16]}", None, None, None)
    limits.create()
    holder, pid = await _spawn_holder(bwrap)
    if warm:
        argv = [*limits.wrapper(), nsenter, "-t", str(pid), "--user", "--net"]
        argv += ["--preserve-credentials", "--", bwrap, "--unshare-user", "--unshare-pid"]
        argv += [*system_mounts(), "--proc", "/proc", "--dev", "/dev", "--", "true"]
        warmup = await asyncio.create_subprocess_exec(
            *argv, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL
        )
        await warmup.wait()
    return Prepared(holder, pid, limits)


async def _spawn_holder(bwrap: str) -> tuple[asyncio.subprocess.Process, int]:
    read_end, write_end = os.pipe()
    try:
        holder = await asyncio.create_subprocess_exec(
            bwrap, "--unshare-user", "--unshare-net", "--die-with-parent",
            "--ro-bind", "/", "/", "--info-fd", str(write_end), "--", "sleep", "infinity",
            pass_fds=(write_end,), stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
    finally:
        os.close(write_end)
    info = await asyncio.get_running_loop().run_in_executor(None, _read_info, read_end)
    if "child-pid" not in info:
        err = await holder.stderr.read() if holder.stderr is not None else b""
        raise SandboxError(
            f"bubblewrap could not create the sandbox: {err.decode().strip()}. "
            "Check that unprivileged user namespaces are enabled, or use docker."
        )
    return holder, int(info["child-pid"])


_POOLS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, HolderPool] = (
    weakref.WeakKeyDictionary()
)


def pool() -> HolderPool:
    """This event loop's holder pool (subprocesses belong to the loop that made them)."""
    loop = asyncio.get_running_loop()
    found = _POOLS.get(loop)
    if found is None:
        found = _POOLS[loop] = HolderPool()
    return found


class BubblewrapSandbox(Sandbox):
    kind = "bubblewrap"

    def __init__(self, session_id: str, workspace: Path, policy: SandboxPolicy) -> None:
        super().__init__(session_id, workspace, policy)
        found = tools()
        if found is None:
            raise SandboxError(
                "bubblewrap is not installed: apt-get install bubblewrap (and util-linux for "
                "nsenter), or choose the docker or local sandbox."
            )
        self.bwrap, self.nsenter = found
        self.limits = Limits(session_id[:24], policy.memory_mb, policy.cpus, policy.pids)
        self._holder: asyncio.subprocess.Process | None = None
        self._holder_pid: int | None = None
        self._relay: asyncio.subprocess.Process | None = None
        self._relay_path = str(runtime_dir() / f"{session_id}-{os.getpid()}.sock")
        self._info_path = runtime_dir() / f"{session_id}.json"
        self._attached = False
        self._running: set[HostExecution] = set()
        self._lock = asyncio.Lock()
        self._started = False

    async def start(self) -> None:
        if self._started:
            return
        async with self._lock:
            if self._started:
                return
            if self.policy.network == "host":
                self.limits.create()
            elif not self._attach():
                prepared = await pool().take(self.bwrap, self.nsenter)
                self._holder, self._holder_pid = prepared.holder, prepared.pid
                prepared.limits.memory_mb = self.policy.memory_mb
                prepared.limits.cpus, prepared.limits.pids = self.policy.cpus, self.policy.pids
                prepared.limits.apply()
                self.limits = prepared.limits
                self._publish()
            self._started = True

    def _publish(self) -> None:
        """Say where this session's namespaces are, for other processes (previews, CLI)."""
        info = {
            "owner": owner_token(),
            "holder": self._holder_pid,
            "cgroups": [str(d) for d in self.limits.dirs],
        }
        tmp = self._info_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(info))
        tmp.replace(self._info_path)

    def _attach(self) -> bool:
        """Join the sandbox another live process of ours already runs for this session."""
        try:
            info = json.loads(self._info_path.read_text())
        except (OSError, ValueError):
            return False
        if info.get("owner") == owner_token() or not owner_alive(info.get("owner")):
            return False
        if not _alive(int(info["holder"])):
            return False
        self._holder_pid = int(info["holder"])
        self.limits.dirs = [Path(d) for d in info.get("cgroups", [])]
        self._attached = True
        return True

    def _argv(self, command: str, env: dict[str, str]) -> list[str]:
        prefix: list[str] = []
        if self._holder_pid is not None:
            prefix = [self.nsenter, "-t", str(self._holder_pid), "--user", "--net"]
            prefix += ["--preserve-credentials", "--"]
        argv = [self.bwrap, "--unshare-user", "--unshare-pid", "--unshare-ipc", "--unshare-uts"]
        argv += ["--unshare-cgroup-try", "--die-with-parent", "--hostname", "sandbox"]
        argv += ["--clearenv"]
        for key, value in {**ENV, **env}.items():
            argv += ["--setenv", key, value]
        argv += [*system_mounts(), "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp"]
        argv += ["--bind", str(self.workspace), WORKSPACE_MOUNT, "--chdir", WORKSPACE_MOUNT]
        return [*self.limits.wrapper(), *prefix, *argv, "--", "/bin/sh", "-c", command]

    async def exec(self, command: str, *, env: dict[str, str] | None = None) -> Execution:
        await self.start()
        if self._holder is not None and self._holder.returncode is not None:
            raise SandboxError("The sandbox's namespace holder died; the session must restart it.")
        process = await spawn(self._argv(command, env or {}))
        execution = HostExecution(process, wrappers=2)
        self._running.add(execution)
        process_done = asyncio.ensure_future(process.wait())
        process_done.add_done_callback(lambda _: self._running.discard(execution))
        return execution

    async def connect(self, port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self.policy.network == "host":
            return await asyncio.open_connection("127.0.0.1", port, limit=1 << 20)
        await self.start()
        if self._relay is None or self._relay.returncode is not None:
            await self._start_relay()
        return await open_via_relay(self._relay_path, port)

    async def _start_relay(self) -> None:
        assert self._holder_pid is not None
        self._relay = await asyncio.create_subprocess_exec(
            self.nsenter, "-t", str(self._holder_pid), "--user", "--net",
            "--preserve-credentials", "--", sys.executable, "-m", "agentspace.workspace.relay",
            self._relay_path, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        )  # fmt: skip
        assert self._relay.stdout is not None
        if await self._relay.stdout.readline() != b"ready\n":
            raise SandboxError("The preview relay did not start; see the server log.")

    async def counters(self) -> dict[str, int]:
        return self.limits.counters()

    async def close(self) -> None:
        for execution in list(self._running):
            execution.kill()
        for proc in (self._relay, self._holder):
            if proc is not None and proc.returncode is None:
                proc.kill()
                await proc.wait()
        if not self._attached:  # the owner ends the sandbox; a visitor only leaves
            signal_all(self.limits.pids_in(), 9)
            self.limits.remove()
            with contextlib.suppress(FileNotFoundError):
                self._info_path.unlink()
        self._holder = self._relay = None
        self._holder_pid = None
        self._started = self._attached = False
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._relay_path)


def _read_info(fd: int) -> dict[str, int]:
    """bwrap's --info-fd JSON (blocking: runs in a thread)."""
    data = b""
    with os.fdopen(fd, "rb") as pipe:
        while b"}" not in data:
            chunk = pipe.read1(4096)
            if not chunk:
                break
            data += chunk
    try:
        parsed: dict[str, int] = json.loads(data or b"{}")
        return parsed
    except ValueError:
        return {}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
