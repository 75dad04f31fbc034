"""What killed processes leave of workspace images, found by name and owner, and removed.

Spares and temporary mounts carry their maker's owner token (``owners.owner_token``) in
their names; a purge leaves a marker until it is done; a loop device names its image file.
So the next start can tell what belongs to nobody any more from what a live process (another
server, the CLI) is using, and remove only the former. The test suite uses ``release_under``
to leave no loop device attached.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

from agentspace.owners import owner_alive, owner_token
from agentspace.sandbox import loopmount

DIR = "disk-images"  # below the state directory: images, their metadata, spares, locks


def clean_leftovers(root: Path) -> None:
    """Remove what processes that are gone left in ``root``: half-made spares and their
    temporary mounts, unfinished purges, and loop devices whose image was deleted."""
    for path in root.iterdir():
        owner = owner_of(path.name)
        if owner is not None and not owner_alive(owner):
            if path.is_dir():
                with contextlib.suppress(OSError):
                    if os.path.ismount(path):
                        loopmount.unmount(path, lazy=True)
                    path.rmdir()
            else:
                path.unlink(missing_ok=True)
        elif path.name.endswith(".img.part"):  # a migration nobody is running any more
            with contextlib.suppress(OSError), try_lock(root / f"{path.name[:-9]}.lock") as ok:
                if ok:
                    path.unlink(missing_ok=True)
        elif path.suffix == ".purge":
            with contextlib.suppress(OSError):
                if not owner_alive(path.read_text().strip()):
                    sid = path.stem
                    purge_files(root, sid, root.parent / "workspaces" / sid)
    release_deleted()


def release_deleted() -> None:
    """Unmount and detach the loop devices of workspace images that no longer exist (their
    state directory was removed while they were mounted)."""
    for loop in loopmount.loops():
        ours = f"/{DIR}/" in loop.backing and loop.backing.endswith((".img", ".img.part"))
        if ours and (loop.deleted or not os.path.exists(loop.backing)):
            release_loop(loop)


def release_under(folder: Path) -> None:
    """Unmount and detach every workspace image below ``folder`` (the test suite's teardown)."""
    folder = folder.resolve()
    for loop in loopmount.loops():
        if loop.backing.startswith(f"{folder}/"):
            release_loop(loop)


def release_loop(loop: loopmount.Loop) -> None:
    for target, source in loopmount.mounts().items():
        if source == loop.device:
            with contextlib.suppress(OSError):
                loopmount.unmount(Path(target), lazy=True)
    with contextlib.suppress(OSError):  # auto-cleared by the unmount, unless never mounted
        loopmount.detach(loop.device)


def purge_files(root: Path, sid: str, folder: Path) -> None:
    if os.path.ismount(folder):
        loopmount.unmount(folder, lazy=True)  # processes were stopped; a straggler keeps
    for suffix in (".img", ".img.part", ".json", ".swap"):  # its files until it goes
        (root / f"{sid}{suffix}").unlink(missing_ok=True)
    (root / f"{sid}.purge").unlink(missing_ok=True)
    (root / f"{sid}.lock").unlink(missing_ok=True)


@contextlib.contextmanager
def try_lock(lock: Path) -> Iterator[bool]:
    """The workspace's lock if nobody holds it (True), without waiting."""
    fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)


def token_name() -> str:
    return owner_token().replace(":", "_")


def owner_of(name: str) -> str | None:
    """The owner token in a spare's or temporary mount's name, if it has one."""
    for prefix in ("spare-", ".prep-", ".migrate-"):
        if name.startswith(prefix):
            token = name[len(prefix) :].split("-", 1)[0]
            return token.replace("_", ":")
    return None
