"""Copy a workspace's tree and check the copy: how a plain folder moves into its image.

Kept apart from the filesystems themselves: it is plain file work (modes, owners, times,
links, FIFOs), and the check is what decides that the original may be deleted.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
from pathlib import Path


def copy_tree(src: Path, dst: Path) -> None:
    """Copy a workspace's files, links and FIFOs with their modes, owners and times."""
    shutil.copystat(src, dst)
    with contextlib.suppress(PermissionError):
        st = src.stat()
        os.chown(dst, st.st_uid, st.st_gid)
    for dirpath, dirnames, filenames in os.walk(src):
        rel = os.path.relpath(dirpath, src)
        target = dst / rel
        for name in [*dirnames, *filenames]:
            s, d = os.path.join(dirpath, name), target / name
            info = os.lstat(s)
            if stat.S_ISLNK(info.st_mode):
                os.symlink(os.readlink(s), d)
            elif stat.S_ISDIR(info.st_mode):
                d.mkdir()
                shutil.copystat(s, d)
            elif stat.S_ISREG(info.st_mode):
                shutil.copy2(s, d, follow_symlinks=False)
            elif stat.S_ISFIFO(info.st_mode):
                os.mkfifo(d, stat.S_IMODE(info.st_mode))
            else:
                continue  # sockets, devices: nothing to keep
            os.lchown(d, info.st_uid, info.st_gid)
    for dirpath, _, _ in os.walk(src):  # directory times last: copying changed them
        rel = os.path.relpath(dirpath, src)
        shutil.copystat(dirpath, dst / rel)


def inventory(root: Path) -> dict[str, tuple[int, int, int, str]]:
    """Path -> (mode, size, mtime, link target) of what copy_tree keeps (the verification)."""
    found: dict[str, tuple[int, int, int, str]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in [*dirnames, *filenames]:
            path = os.path.join(dirpath, name)
            info = os.lstat(path)
            if (
                stat.S_ISSOCK(info.st_mode)
                or stat.S_ISBLK(info.st_mode)
                or stat.S_ISCHR(info.st_mode)
            ):
                continue
            link = os.readlink(path) if stat.S_ISLNK(info.st_mode) else ""
            regular = stat.S_ISREG(info.st_mode)
            size, mtime = (info.st_size, info.st_mtime_ns) if regular else (0, 0)
            found[os.path.relpath(path, root)] = (info.st_mode, size, mtime, link)
    return found


def tree_bytes(folder: Path) -> int:
    total = 0
    for dirpath, _, files in os.walk(folder):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(dirpath, name)).st_blocks * 512
    return total
