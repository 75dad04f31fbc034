"""What a bubblewrap sandbox sees: read-only system folders, a small /etc, a clean env.

Kept apart from the sandbox class because the holder pool and the benchmarks
build bwrap command lines from the same pieces.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import os
import shutil
import stat
import tempfile
from functools import cache
from pathlib import Path

from agentspace.errors import SandboxError
from agentspace.sandbox import sandboxuser
from agentspace.sandbox.base import SANDBOX_UID, WORKSPACE_MOUNT
from agentspace.sandbox.hostproc import alive

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
    clean_stale()
    staging = Path(tempfile.mkdtemp(dir=runtime_dir(), prefix="etc-"))
    os.chmod(staging, 0o755)  # bubblewrap reads it as the sandbox user (root servers)
    for name in ETC:
        source = Path("/etc") / name
        with contextlib.suppress(OSError):
            if source.is_dir() and not source.is_symlink():
                shutil.copytree(source, staging / name, symlinks=True)
            elif source.is_symlink():
                os.symlink(os.readlink(source), staging / name)
            elif source.is_file():
                shutil.copy2(source, staging / name)
    passwd, group = sandboxuser.account(SANDBOX_UID)
    for name, line in (("passwd", passwd), ("group", group)):
        with contextlib.suppress(OSError), open(staging / name, "a") as f:
            f.write(line)
    try:
        staging.rename(target)
    except OSError:  # another thread made it first
        shutil.rmtree(staging, ignore_errors=True)
    else:
        atexit.register(shutil.rmtree, target, ignore_errors=True)
    return target


def clean_stale() -> None:
    """Remove what servers that died left here: their /etc copies and workspace doors."""
    folder = runtime_dir()
    for entry in folder.glob("etc-*"):
        pid = entry.name[len("etc-") :]
        if pid.isdigit() and not alive(int(pid)):
            shutil.rmtree(entry, ignore_errors=True)
    if sandboxuser.dropping():
        sandboxuser.clean_doors(folder)


def runtime_dir() -> Path:
    """A private folder for relay sockets: short path (sockets), mode 0700."""
    base = os.environ.get("XDG_RUNTIME_DIR") or "/tmp"
    path = Path(base) / f"agentspace-{os.getuid()}"
    path.mkdir(mode=0o700, exist_ok=True)
    info = path.lstat()
    if info.st_uid != os.getuid() or not stat.S_ISDIR(info.st_mode):
        raise SandboxError(f"{path} belongs to another user; set XDG_RUNTIME_DIR to a private dir.")
    # As root, the sandbox user must traverse it (not list it) to reach /etc and the doors;
    # the relay sockets in it stay 0600.
    mode = 0o711 if sandboxuser.dropping() else 0o700
    if stat.S_IMODE(info.st_mode) != mode:
        os.chmod(path, mode)
    return path


async def usable() -> bool:
    """Whether bubblewrap can make namespaces here (tried once with ``true``)."""
    found = tools()
    if found is None:
        return False
    proc = await asyncio.create_subprocess_exec(
        *sandboxuser.drop(SANDBOX_UID), found[0], "--unshare-all", "--die-with-parent",
        *system_mounts(), "--", "true",
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    return await proc.wait() == 0
