"""Who a sandboxed command runs as when the server is root, and how it still reaches its files.

bubblewrap run by root maps the sandbox's user to the host's root whatever ``--uid`` says, so
file permissions let a "dropped" command write ``/proc/sys``. A command must therefore be an
unprivileged *host* user before bubblewrap starts: ``setpriv`` switches to the sandbox uid,
clears the groups, the bounding and inheritable capability sets and sets ``no_new_privs``
(as the ``sh`` that joins the session's cgroups still runs as root, the cgroup files stay
root's). Two consequences are handled here:

* bubblewrap resolves its mount sources as that user, and the workspace usually lies under a
  folder it cannot traverse (``/root/.local/share/jupyter``, pytest's 0700 temp dirs). Each
  sandbox gets a *door*: a bind mount of its workspace under the server's runtime folder, the
  only path bubblewrap is given. Doors of dead servers are unmounted at the next start.
* the workspace must stay writable by the sandbox user while the user's (root) kernel and the
  server keep writing there too. POSIX ACLs grant the sandbox uid ``rwx`` on every file and,
  as a default ACL, on everything created later, whoever creates it.

When the server is not root, bubblewrap's own user namespace already makes the command the
server's (unprivileged) user without capabilities; nothing here applies.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import shutil
import stat
import struct
from functools import cache
from pathlib import Path

from agentspace.errors import SandboxError
from agentspace.sandbox import loopmount
from agentspace.sandbox.hostproc import alive

log = logging.getLogger(__name__)
GRANTED = ".agentspace/granted"  # marks a workspace whose existing files carry the grant
_ACL_ACCESS, _ACL_DEFAULT = "system.posix_acl_access", "system.posix_acl_default"
_USER_OBJ, _USER, _GROUP_OBJ, _MASK, _OTHER = 0x01, 0x02, 0x04, 0x10, 0x20
_UNDEFINED = 0xFFFFFFFF


def dropping() -> bool:
    """Whether commands must be dropped to the sandbox user (the server runs as root)."""
    return os.geteuid() == 0


@cache
def _setpriv() -> str:
    found = shutil.which("setpriv")
    if found is None:
        raise SandboxError(
            "setpriv is missing (util-linux): as root the sandbox needs it to run commands as an "
            "unprivileged user. Install util-linux, or run the server as a normal user."
        )
    return found


def drop(uid: int) -> list[str]:
    """argv prefix that execs the rest as ``uid`` with no capabilities (root only, else [])."""
    if not dropping():
        return []
    return [
        _setpriv(), f"--reuid={uid}", f"--regid={uid}", "--clear-groups",
        "--bounding-set=-all", "--inh-caps=-all", "--no-new-privs", "--",
    ]  # fmt: skip


def account(uid: int) -> tuple[str, str]:
    """The ``/etc/passwd`` and ``/etc/group`` lines that give the sandbox user a name."""
    return (
        f"sandbox:x:{uid}:{uid}:agentspace sandbox:/workspace:/bin/sh\n",
        f"sandbox:x:{uid}:\n",
    )


# --- doors -------------------------------------------------------------------------------


def doors_dir(runtime: Path) -> Path:
    path = runtime / "doors"
    path.mkdir(mode=0o711, exist_ok=True)
    return path


def open_door(runtime: Path, name: str, workspace: Path) -> Path:
    """A path to ``workspace`` the sandbox user can reach: a bind mount under ``runtime``."""
    door = doors_dir(runtime) / f"{name}-{os.getpid()}"
    if is_door(door):
        return door
    door.mkdir(mode=0o700, exist_ok=True)
    loopmount.bind(workspace, door)
    return door


def is_door(path: Path) -> bool:
    """Whether ``path`` is a mount point (a bind mount on the same filesystem included, which
    ``os.path.ismount`` cannot tell)."""
    return os.path.realpath(path) in loopmount.mounts()


def close_door(door: Path) -> None:
    with contextlib.suppress(OSError):
        loopmount.unmount(door, lazy=True)
    with contextlib.suppress(OSError):
        door.rmdir()


def clean_doors(runtime: Path) -> int:
    """Unmount the doors of servers that died without closing them; how many there were."""
    folder = runtime / "doors"
    if not folder.is_dir():
        return 0
    cleaned = 0
    for door in folder.iterdir():
        pid = door.name.rsplit("-", 1)[-1]
        if not pid.isdigit() or alive(int(pid)):
            continue
        close_door(door)
        cleaned += 1
    return cleaned


# --- the grant ---------------------------------------------------------------------------


def _acl(entries: list[tuple[int, int, int]]) -> bytes:
    return struct.pack("<I", 2) + b"".join(struct.pack("<HHI", *e) for e in entries)


def _access_acl(mode: int, uid: int, *, folder: bool) -> bytes:
    perm = 7 if folder or mode & 0o111 else 6
    owner, group, other = (mode >> 6) & 7, (mode >> 3) & 7, mode & 7
    return _acl(
        [(_USER_OBJ, owner, _UNDEFINED), (_USER, perm, uid), (_GROUP_OBJ, group, _UNDEFINED),
         (_MASK, perm | group, _UNDEFINED), (_OTHER, other, _UNDEFINED)]
    )  # fmt: skip


def _default_acl(uid: int) -> bytes:
    return _acl(
        [(_USER_OBJ, 7, _UNDEFINED), (_USER, 7, uid), (_GROUP_OBJ, 5, _UNDEFINED),
         (_MASK, 7, _UNDEFINED), (_OTHER, 5, _UNDEFINED)]
    )  # fmt: skip


def grant(workspace: Path, uid: int) -> None:
    """Let ``uid`` read and write everything in ``workspace``, now and later (idempotent).

    The first time (no marker), every existing entry is granted; after that only the root is
    checked, since the default ACLs carry the grant to whatever is created later. The walk is
    by file descriptor without following links, and skips files with several links, so a
    command cannot steer it onto files outside the workspace.
    """
    root = os.open(workspace, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        _grant_fd(root, uid, folder=True)
        marker = workspace / GRANTED
        with contextlib.suppress(OSError):
            if marker.read_text().strip() == str(uid):
                return
        for _, dirs, files, dirfd in os.fwalk(workspace, follow_symlinks=False):
            for name in (*dirs, *files):
                _grant_at(dirfd, name, uid)
        marker.parent.mkdir(exist_ok=True)
        marker.write_text(f"{uid}\n")
    except OSError as exc:
        if exc.errno in (errno.ENOTSUP, errno.EOPNOTSUPP):
            raise SandboxError(
                f"The workspace's filesystem ({workspace}) has no POSIX ACLs, which the sandbox "
                "needs when the server runs as root: put the state directory on a filesystem "
                "with ACLs (ext4, xfs, btrfs, tmpfs), or run the server as a normal user."
            ) from exc
        raise
    finally:
        os.close(root)


def _grant_at(dirfd: int, name: str, uid: int) -> None:
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
    try:
        fd = os.open(name, flags, dir_fd=dirfd)
    except OSError:  # a link, a socket, gone meanwhile: nothing to grant
        return
    try:
        info = os.fstat(fd)
        folder = stat.S_ISDIR(info.st_mode)
        if folder or (stat.S_ISREG(info.st_mode) and info.st_nlink == 1):
            _grant_fd(fd, uid, folder=folder)
    finally:
        os.close(fd)


def _grant_fd(fd: int, uid: int, *, folder: bool) -> None:
    mode = stat.S_IMODE(os.fstat(fd).st_mode)
    os.setxattr(fd, _ACL_ACCESS, _access_acl(mode, uid, folder=folder))
    if folder:
        os.setxattr(fd, _ACL_DEFAULT, _default_acl(uid))
