"""Loop devices and mounts by system call: attach an image file, mount it, find and undo both.

Through ``ioctl`` and libc rather than ``losetup``/``mount``: a session's cold start takes a
prepared image and mounts it, and two subprocesses would cost more than the rest of that
start. The loop device is attached with ``LO_FLAGS_AUTOCLEAR``, so unmounting the last mount
(or the death of whoever held the device open) detaches it: no loop device outlives its use.
Linux only; every call needs root (``CAP_SYS_ADMIN`` and access to ``/dev/loop-control``).
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import os
import struct
from dataclasses import dataclass
from functools import cache
from pathlib import Path

LOOP_CONTROL = "/dev/loop-control"
LOOP_CTL_GET_FREE = 0x4C82
LOOP_CONFIGURE = 0x4C0A
LOOP_CLR_FD = 0x4C01
LO_FLAGS_AUTOCLEAR = 4
MS_NOSUID, MS_NODEV, MS_BIND = 2, 4, 4096
MNT_DETACH = 2
_INFO64 = "=5Q4I64s64s32s2Q"  # struct loop_info64


@cache
def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def _check(result: int, what: str, path: str) -> None:
    if result != 0:
        code = ctypes.get_errno()
        raise OSError(code, f"{what}: {os.strerror(code)}", path)


def attach(image: Path) -> tuple[str, int]:
    """A free loop device backed by ``image`` and an fd holding it: the device is cleared as
    soon as nothing holds it (close the fd once something else does, e.g. a mount)."""
    for _ in range(16):  # another process may take the free device first: ask again
        ctl = os.open(LOOP_CONTROL, os.O_RDWR | os.O_CLOEXEC)
        try:
            number = fcntl.ioctl(ctl, LOOP_CTL_GET_FREE)
        finally:
            os.close(ctl)
        device = f"/dev/loop{number}"
        backing = os.open(image, os.O_RDWR | os.O_CLOEXEC)
        try:
            loop = os.open(device, os.O_RDWR | os.O_CLOEXEC)
            name = os.fsencode(os.path.abspath(image))[:63]
            info = struct.pack(
                _INFO64, 0, 0, 0, 0, 0, 0, 0, 0, LO_FLAGS_AUTOCLEAR, name, b"", b"", 0, 0
            )
            try:
                fcntl.ioctl(loop, LOOP_CONFIGURE, struct.pack("=II", backing, 0) + info + bytes(64))
            except OSError as exc:
                os.close(loop)
                if exc.errno != errno.EBUSY:
                    raise
                continue
            return device, loop
        finally:
            os.close(backing)
    raise OSError(errno.EBUSY, "no free loop device", str(image))


def mount_ext4(image: Path, target: Path) -> None:
    """Attach ``image`` and mount it at ``target`` (nosuid, nodev)."""
    device, holder = attach(image)
    try:
        mount_device(device, target)
    finally:
        os.close(holder)  # the mount holds the device now; failed, it is cleared here


def mount_device(device: str, target: Path) -> None:
    """Mount the ext4 on ``device`` at ``target`` (nosuid, nodev)."""
    flags = MS_NOSUID | MS_NODEV
    result = _libc().mount(device.encode(), os.fsencode(target), b"ext4", flags, None)
    _check(result, f"mount {device}", str(target))


def bind(source: Path, target: Path) -> None:
    """Bind-mount the folder ``source`` at ``target`` (nosuid, nodev)."""
    flags = MS_BIND | MS_NOSUID | MS_NODEV
    result = _libc().mount(os.fsencode(source), os.fsencode(target), None, flags, None)
    _check(result, f"bind {source}", str(target))


def unmount(target: Path, *, lazy: bool = False) -> None:
    """Unmount ``target``; ``lazy`` detaches it now even while in use (freed when unused)."""
    _check(_libc().umount2(os.fsencode(target), MNT_DETACH if lazy else 0), "umount", str(target))


def detach(device: str) -> None:
    """Detach a loop device that no mount holds."""
    fd = os.open(device, os.O_RDWR | os.O_CLOEXEC)
    try:
        fcntl.ioctl(fd, LOOP_CLR_FD)
    except OSError as exc:
        if exc.errno != errno.ENXIO:  # already detached
            raise
    finally:
        os.close(fd)


@dataclass(frozen=True)
class Loop:
    """An attached loop device and the file behind it (``deleted``: unlinked since)."""

    device: str
    backing: str
    deleted: bool


def loops() -> list[Loop]:
    """Every attached loop device on this machine."""
    found = []
    for entry in Path("/sys/block").glob("loop*"):
        try:
            backing = (entry / "loop" / "backing_file").read_text().rstrip("\n")
        except OSError:  # not attached
            continue
        deleted = backing.endswith(" (deleted)")
        found.append(Loop(f"/dev/{entry.name}", backing.removesuffix(" (deleted)"), deleted))
    return found


def mounts() -> dict[str, str]:
    """Mount point -> source for every mount this process sees."""
    found = {}
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            dash = fields.index("-")
            found[_unescape(fields[4])] = _unescape(fields[dash + 2])
    return found


def _unescape(field: str) -> str:
    return field.encode().decode("unicode_escape").encode("latin-1").decode(errors="replace")
