"""A workspace's size quota as a real filesystem limit: one ext4 image per workspace.

The file tools and ``PUT files`` can check a quota before they write, but a command in the
sandbox writes wherever it likes (``dd``, a build, a download). Where the server can (root,
loop devices, ``mkfs.ext4``), each workspace folder is therefore the mount point of its own
sparse image file, ``<state>/disk-images/<session id>.img``, so the kernel itself refuses
the write past the quota (ENOSPC) for every writer: commands, file tools, the user's kernel.
The mount lives in the host's mount namespace, so the server, the kernel and the CLI all
read the same folder; it persists across server restarts and is reused, and only a purge
(or the leftover cleanup) unmounts it. Where the server cannot, the quota is only checked by
the file tools and ``PUT`` (``mode == "checked"``), and the session's status says so.

Formatting costs far more than mounting, so a pool keeps one formatted spare image for the
default quota (made in a thread, like the holder pool): a new session's first command only
renames it and mounts it. Files named with an owner token (``owners.owner_token``) let the
next start remove what a killed process left half-made.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import shutil
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from agentspace.owners import owner_token
from agentspace.sandbox import loopmount
from agentspace.sandbox.diskleftovers import DIR, clean_leftovers, purge_files, token_name
from agentspace.sandbox.treecopy import copy_tree, inventory, tree_bytes

MB = 1 << 20
# 4 KiB blocks, no root reserve, one inode per 8 KiB, a 4 MiB journal (none below 64 MB,
# where it would be a large share); the image is sparse and new (all zeros), so the inode
# tables need no zeroing now nor later (no background writes filling the sparse file).
MKFS = (
    "mkfs.ext4", "-q", "-F", "-b", "4096", "-m", "0", "-i", "8192",
    "-E", "lazy_itable_init=1,lazy_journal_init=1,assume_storage_prezeroed=1,nodiscard",
)  # fmt: skip
JOURNAL_FROM_MB = 64
FULL_BYTES = 256 << 10  # less free than this after a command: it filled the workspace

Mode = Literal["filesystem", "checked", "none"]


def image_bytes(quota_mb: int) -> int:
    """An image size whose ext4 leaves at least ``quota_mb`` usable (metadata on top:
    inode tables ~3%, reserved clusters ~2%, the journal)."""
    size = (quota_mb << 20) * 106 // 100 + (5 * MB if quota_mb >= JOURNAL_FROM_MB else MB)
    return -(-size // 4096) * 4096


def mkfs_argv(image: Path, quota_mb: int) -> list[str]:
    journal = ["-J", "size=4"] if quota_mb >= JOURNAL_FROM_MB else ["-O", "^has_journal"]
    return [*MKFS, *journal, str(image)]


@dataclass
class DiskState:
    """What holds for one workspace's quota, for the status line and the quota checks."""

    mode: Mode
    quota_mb: int | None
    note: str = ""

    def describe(self) -> str:
        if self.mode == "none":
            return "disk: no quota"
        if self.mode == "filesystem":
            line = f"disk: {self.quota_mb} MB quota enforced by its own filesystem (commands too)"
        else:
            line = (
                f"disk: {self.quota_mb} MB quota checked by the file tools and PUT only; "
                "commands are NOT limited"
            )
        return f"{line} ({self.note})" if self.note else line


def full_message(quota_mb: int | None) -> str:
    limit = f"its quota is {quota_mb} MB" if quota_mb else "it is at its quota"
    return (
        f"the workspace is full: {limit} (sandbox_policy.quota_mb). "
        "Delete files (large logs are in .agentspace/logs) or raise the quota; the files "
        "written before are intact."
    )


class Disks:
    """The quota filesystems of one state directory's workspaces (one per engine)."""

    def __init__(self, state_dir: Path) -> None:
        self.root = state_dir / DIR
        self.states: dict[str, DiskState] = {}
        self.unavailable: str | None = None  # why no filesystem can be made here
        self._spares: dict[int, list[Path]] = {}
        self._lock = threading.Lock()
        self._started = False

    # -- lifecycle -----------------------------------------------------------
    def start(self) -> None:
        """Probe what this machine allows; clean what dead processes left (once)."""
        with self._lock:
            if self._started:
                return
            self._started = True
        self.unavailable = probe()
        if self.unavailable is None:
            self.root.mkdir(parents=True, exist_ok=True)
            clean_leftovers(self.root)

    def fill(self, quota_mb: int | None) -> None:
        """Make one spare for ``quota_mb`` if none is ready (blocking: run in a thread)."""
        if quota_mb is None or self.unavailable is not None:
            return
        with self._lock:
            if self._spares.get(quota_mb):
                return
        spare = self.root / f"spare-{token_name()}-{uuid.uuid4().hex[:8]}.img"
        try:
            make_image(spare, quota_mb, self.root)
        except (OSError, subprocess.SubprocessError) as exc:
            spare.unlink(missing_ok=True)
            self.unavailable = f"no filesystem could be made: {_reason(exc)}"
            return
        with self._lock:
            self._spares.setdefault(quota_mb, []).append(spare)

    def close(self) -> None:
        """Delete the spares this process made (its sessions' images stay mounted)."""
        with self._lock:
            spares = [p for ps in self._spares.values() for p in ps]
            self._spares.clear()
        for spare in spares:
            spare.unlink(missing_ok=True)

    # -- one workspace -------------------------------------------------------
    def open(
        self, session_id: str, folder: Path, quota_mb: int | None, *, new: bool = False
    ) -> DiskState:
        """Make sure ``folder`` is its image's mount point, at ``quota_mb`` (blocking).
        ``new``: the session was just made, so nothing else can hold its folder yet."""
        self.start()
        if quota_mb is None and os.path.ismount(folder):
            had = _read_meta(self.root / f"{session_id}.json")
            state = DiskState(
                "filesystem", had, "the quota was removed; the filesystem keeps this size"
            )
        elif quota_mb is None:
            state = DiskState("none", None)
        elif self.unavailable is not None:
            state = DiskState("checked", quota_mb, self.unavailable)
        else:
            with self._locked(session_id):
                try:
                    state = self._open(session_id, folder, quota_mb, new)
                except (OSError, subprocess.SubprocessError) as exc:  # nothing was removed
                    state = DiskState(
                        "checked", quota_mb, f"its quota filesystem failed: {_reason(exc)}"
                    )
        self.states[session_id] = state
        return state

    def _open(self, sid: str, folder: Path, quota_mb: int, new: bool) -> DiskState:
        image, meta = self.root / f"{sid}.img", self.root / f"{sid}.json"
        plain = folder.parent / f".{sid}.plain"  # the old folder while a migration swaps
        (self.root / f"{sid}.img.part").unlink(missing_ok=True)  # an interrupted migration
        folder.mkdir(parents=True, exist_ok=True)
        if not new and not os.path.ismount(folder) and bound_elsewhere(folder):
            return DiskState(
                "checked",
                quota_mb,
                "the folder is in use by a container made before its quota filesystem: it "
                "moves into one when the session reopens after that container is gone",
            )
        swap = self.root / f"{sid}.swap"  # the image holds a verified copy of the folder
        if not os.path.ismount(folder):
            if not image.exists():
                if _has_entries(folder):
                    note = self._migrate(sid, folder, quota_mb)
                    if note:
                        return DiskState("checked", quota_mb, note)
                else:
                    swap.unlink(missing_ok=True)
                    self._new_image(image, quota_mb)
                    _write_meta(meta, quota_mb)
            if _has_entries(folder):
                if not swap.exists():  # written while unmounted: never hide nor delete them
                    return DiskState(
                        "checked",
                        quota_mb,
                        "files were written to the folder while its quota filesystem "
                        f"({image}) was not mounted; it is not mounted over them: move them "
                        "aside, reopen the session, then copy them back in",
                    )
                if plain.exists():
                    shutil.rmtree(plain)
                folder.rename(plain)  # the original, kept until the image is mounted
                folder.mkdir()
                shutil.copystat(plain, folder)
            loopmount.mount_ext4(image, folder)
        if swap.exists():  # mounted: the original can go (also after a kill right here)
            if plain.exists() and inventory(plain) != inventory(folder):
                swap.unlink()  # changed since it was copied (by whom?): keep both, say so
                return DiskState(
                    "filesystem",
                    quota_mb,
                    f"the old folder changed after it was copied into the filesystem; it is "
                    f"kept at {plain}: compare and delete it",
                )
            if plain.exists():
                shutil.rmtree(plain)
            swap.unlink()
        return self._resize(sid, folder, image, meta, quota_mb)

    def _new_image(self, image: Path, quota_mb: int) -> None:
        with self._lock:
            spares = self._spares.get(quota_mb) or []
            spare = spares.pop() if spares else None
        if spare is not None:
            spare.rename(image)
            return
        try:
            make_image(image, quota_mb, self.root)
        except (OSError, subprocess.SubprocessError) as exc:  # this machine refuses: say so
            image.unlink(missing_ok=True)
            self.unavailable = f"no filesystem could be made: {_reason(exc)}"
            raise

    def _migrate(self, sid: str, folder: Path, quota_mb: int) -> str:
        """Copy a plain workspace into a new image and verify it; '' on success, else why not.

        The image is complete only when renamed from ``.part``; until then the plain folder
        is the only copy and is untouched. A failure keeps the plain folder as it was.
        """
        used = tree_bytes(folder)
        if used > quota_mb * MB:
            return (
                f"this workspace predates quota filesystems and holds {used // MB} MB, over its "
                "quota: kept as a plain folder; delete files and reopen it to move it into one"
            )
        part = self.root / f"{sid}.img.part"
        mnt = self.root / f".migrate-{token_name()}-{sid}"
        try:
            make_image(part, quota_mb, self.root)
            mnt.mkdir()
            loopmount.mount_ext4(part, mnt)
            try:
                copy_tree(folder, mnt)
                if inventory(folder) != inventory(mnt):
                    raise OSError("the copy differs from the original")
            finally:
                loopmount.unmount(mnt)
            _write_meta(self.root / f"{sid}.json", quota_mb)
            (self.root / f"{sid}.swap").touch()
            part.rename(self.root / f"{sid}.img")
        except (OSError, subprocess.SubprocessError) as exc:
            part.unlink(missing_ok=True)
            return (
                f"moving this older workspace into a quota filesystem failed ({_reason(exc)}): "
                "kept as a plain folder"
            )
        finally:
            with contextlib.suppress(OSError):
                mnt.rmdir()
        return ""

    def _resize(self, sid: str, folder: Path, image: Path, meta: Path, quota_mb: int) -> DiskState:
        """Bring a mounted image to ``quota_mb`` (offline: unmount, resize2fs, mount)."""
        had = _read_meta(meta)
        if had == quota_mb:
            return DiskState("filesystem", quota_mb)
        if had is None:  # unknown (made elsewhere): take the filesystem's own size
            _write_meta(meta, quota_mb)
            return DiskState("filesystem", quota_mb)
        st = os.statvfs(folder)
        used = (st.f_blocks - st.f_bfree) * st.f_frsize
        if quota_mb < had and used > quota_mb * MB * 9 // 10:
            return DiskState(
                "filesystem",
                had,
                f"the quota was lowered to {quota_mb} MB but {used // MB} MB are in use: the "
                f"filesystem keeps its {had} MB until files are deleted and the session reopened",
            )
        later = DiskState(
            "filesystem",
            had,
            f"the quota changed to {quota_mb} MB; it applies once nothing uses the workspace "
            "(its processes, a container, a shell in it) and the session is reopened",
        )
        try:
            loopmount.unmount(folder)
        except OSError as exc:
            if exc.errno != errno.EBUSY:
                raise
            return later
        live = [lp for lp in loopmount.loops() if lp.backing == str(image) and not lp.deleted]
        if live:  # still mounted elsewhere (a container's bind mount): resizing would corrupt it
            loopmount.mount_device(live[0].device, folder)
            return later
        try:
            size = image_bytes(quota_mb)
            _run("e2fsck", "-f", "-p", str(image))
            if size > image.stat().st_size:
                os.truncate(image, size)
                _run("resize2fs", str(image))
            else:
                _run("resize2fs", str(image), f"{size // 1024}K")
                os.truncate(image, size)
            fit(image, quota_mb, folder)
            _write_meta(meta, quota_mb)
        except (OSError, subprocess.SubprocessError) as exc:
            return DiskState("filesystem", had, f"resizing to {quota_mb} MB failed: {_reason(exc)}")
        finally:
            loopmount.mount_ext4(image, folder)
        return DiskState("filesystem", quota_mb)

    def purge(self, session_id: str, folder: Path) -> None:
        """Unmount and delete a workspace's image (its session is purged; blocking)."""
        self.states.pop(session_id, None)
        if not self.root.is_dir():
            return
        with self._locked(session_id):
            marker = self.root / f"{session_id}.purge"
            marker.write_text(owner_token())
            purge_files(self.root, session_id, folder)

    def describe(self, session_id: str) -> str | None:
        state = self.states.get(session_id)
        return None if state is None else state.describe()

    @contextlib.contextmanager
    def _locked(self, session_id: str) -> Iterator[None]:
        """One process at a time mounts, migrates or resizes a workspace (server, CLI)."""
        self.root.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.root / f"{session_id}.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)


def probe() -> str | None:
    """Why this machine cannot give workspaces their own filesystem, or None if it can."""
    if not sys.platform.startswith("linux"):
        return "quota filesystems need Linux"
    if os.geteuid() != 0:
        return "the server does not run as root, so it cannot mount a filesystem per workspace"
    missing = [t for t in ("mkfs.ext4", "e2fsck", "resize2fs") if shutil.which(t) is None]
    if missing:
        return f"{', '.join(missing)} not found (apt-get install e2fsprogs)"
    try:
        os.close(os.open(loopmount.LOOP_CONTROL, os.O_RDWR | os.O_CLOEXEC))
    except OSError as exc:
        return f"no loop devices ({loopmount.LOOP_CONTROL}: {exc.strerror})"
    return None


def bound_elsewhere(folder: Path) -> bool:
    """Whether another mount namespace has ``folder`` itself bind-mounted (a docker
    container made before the folder had its filesystem). Mounting over it, or swapping it
    for a copy, would leave that container writing to a folder nobody else sees."""
    tail = "/" + "/".join(folder.parts[-2:])  # workspaces/<session id>: unique enough
    own = os.stat("/proc/self/ns/mnt").st_ino
    seen = {own}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            ns = os.stat(f"/proc/{entry.name}/ns/mnt").st_ino
            if ns in seen:
                continue
            seen.add(ns)
            with open(f"/proc/{entry.name}/mountinfo") as f:
                if any(line.split()[3].endswith(tail) for line in f):
                    return True
        except (OSError, IndexError):
            continue
    return False


def make_image(path: Path, quota_mb: int, scratch: Path) -> None:
    """A sparse ext4 image with at least ``quota_mb`` usable and an empty root (no
    ``lost+found``: the workspace listing stays what the user made)."""
    with open(path, "wb") as f:
        f.truncate(image_bytes(quota_mb))
    _run(*mkfs_argv(path, quota_mb))
    mnt = scratch / f".prep-{token_name()}-{uuid.uuid4().hex[:8]}"
    mnt.mkdir()
    try:
        fit(path, quota_mb, mnt)
    finally:
        mnt.rmdir()


def fit(image: Path, quota_mb: int, mnt: Path) -> None:
    """Grow an unmounted ``image`` until its filesystem offers ``quota_mb`` (fixed metadata,
    such as a shrunk filesystem's journal and inode tables, can take more than the estimate).
    Mounts it at ``mnt`` to measure; leaves it unmounted, with no ``lost+found``."""
    for _ in range(3):
        loopmount.mount_ext4(image, mnt)
        try:
            with contextlib.suppress(FileNotFoundError, OSError):
                (mnt / "lost+found").rmdir()  # OSError: not empty (e2fsck put files there)
            st = os.statvfs(mnt)
            short = quota_mb * MB - st.f_bavail * st.f_frsize
        finally:
            loopmount.unmount(mnt)
        if short <= 0:
            return
        os.truncate(image, image.stat().st_size + -(-short * 11 // 10 // 4096) * 4096)
        _run("resize2fs", "-f", str(image))
    raise OSError(f"the filesystem offers less than {quota_mb} MB")


def _has_entries(folder: Path) -> bool:
    with os.scandir(folder) as it:
        return next(it, None) is not None


def _read_meta(meta: Path) -> int | None:
    try:
        value = json.loads(meta.read_text()).get("quota_mb")
    except (OSError, ValueError):
        return None
    return value if isinstance(value, int) else None


def _write_meta(meta: Path, quota_mb: int) -> None:
    tmp = meta.with_suffix(".json.tmp")
    tmp.write_text(json.dumps({"quota_mb": quota_mb}))
    tmp.replace(meta)


def _run(*argv: str) -> None:
    done = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=300)
    if done.returncode not in (0, 1) or (done.returncode == 1 and argv[0] != "e2fsck"):
        raise subprocess.SubprocessError(
            f"{argv[0]} failed ({done.returncode}): {(done.stderr or done.stdout).strip()}"
        )


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc)
