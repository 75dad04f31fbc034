"""Resource limits through cgroups, where this process may write them.

Machines differ: cgroup v1 (separate memory/pids/cpu hierarchies), v2 (one
unified tree, needs delegation), or hybrid; writable only as root or in a
delegated subtree. We detect what works by trying it (create a child of our
own cgroup, write a limit) and fall back to rlimits where nothing does. A
session gets one group per controller; each command joins it before it execs
(so nothing it forks escapes the limit), and the groups' event counters tell
which limit a killed command hit.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import signal
import time
import uuid
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from agentspace.sandbox.hostproc import alive

log = logging.getLogger(__name__)
REMOVE_GRACE = 1.0  # seconds to wait for killed processes to leave a group being removed
ROOT = Path("/sys/fs/cgroup")


def _own_path(controller: str) -> str | None:
    """Our cgroup path for ``controller`` ('' means the v2 unified hierarchy)."""
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if controller in controllers.split(",") or (controller == "" and controllers == ""):
            return path
    return None


@cache
def layout() -> str:
    """'v1', 'v2' or 'none': which cgroup tree this process can create limits in."""
    for version, probe in (("v1", _probe_v1), ("v2", _probe_v2)):
        try:
            if probe():
                return version
        except OSError as exc:
            log.debug("cgroup %s probe failed: %s", version, exc)
    return "none"


def _probe_v1() -> bool:
    base = ROOT / "memory"
    own = _own_path("memory")
    if not (base / "memory.limit_in_bytes").exists() or own is None:
        return False
    probe = base / own.lstrip("/") / f"agentspace-probe-{os.getpid()}"
    probe.mkdir()
    try:
        (probe / "memory.limit_in_bytes").write_text(str(1 << 30))
        return True
    finally:
        probe.rmdir()


def _probe_v2() -> bool:
    own = _own_path("")
    if not (ROOT / "cgroup.controllers").exists() or own is None:
        return False
    parent = ROOT / own.lstrip("/")
    wanted = {"memory", "pids", "cpu"}
    if not wanted <= set((parent / "cgroup.subtree_control").read_text().split()):
        return False
    probe = parent / f"agentspace-probe-{os.getpid()}"
    probe.mkdir()
    try:
        (probe / "memory.max").write_text(str(1 << 30))
        return True
    finally:
        probe.rmdir()


@dataclass
class Limits:
    """Limits of one sandbox; ``join`` runs in the child before exec."""

    name: str
    memory_mb: int | None
    cpus: float | None
    pids: int | None
    dirs: list[Path] = field(default_factory=list)
    _counters_for: tuple[Path, ...] = field(default=(), repr=False)
    _counter_list: list[tuple[str, str, str]] = field(default_factory=list, repr=False)

    def create(self) -> None:
        """Make the groups and write the limits (no-op where cgroups are not writable)."""
        version = layout()
        if version == "v1" and not self.dirs:
            for controller in ("memory", "pids", "cpu"):
                if (ROOT / controller).exists():
                    self._group(controller, ROOT / controller)
        elif version == "v2" and not self.dirs:
            self._group("", ROOT)
        self.apply()

    def _group(self, controller: str, base: Path) -> Path:
        own = _own_path(controller) or "/"
        group = base / own.lstrip("/") / f"agentspace-{self.name}"
        group.mkdir(exist_ok=True)
        self.dirs.append(group)
        return group

    def apply(self) -> None:
        """Write the current limit values into the groups (also after a change)."""
        memory = str(self.memory_mb << 20) if self.memory_mb else None
        pids = str(self.pids) if self.pids else "max"
        for group in self.dirs:
            if (group / "memory.limit_in_bytes").exists():  # v1
                with contextlib.suppress(OSError):  # memsw must stay >= limit: order matters
                    (group / "memory.memsw.limit_in_bytes").write_text("-1")
                (group / "memory.limit_in_bytes").write_text(memory or "-1")
                with contextlib.suppress(OSError):  # no swap accounting on some kernels
                    (group / "memory.memsw.limit_in_bytes").write_text(memory or "-1")
            if (group / "pids.max").exists():
                (group / "pids.max").write_text(pids)
            if (group / "cpu.cfs_quota_us").exists():
                (group / "cpu.cfs_period_us").write_text("100000")
                quota = int(self.cpus * 100_000) if self.cpus else -1
                (group / "cpu.cfs_quota_us").write_text(str(quota))
            if (group / "memory.max").exists():  # v2
                (group / "memory.max").write_text(memory or "max")
                with contextlib.suppress(OSError):
                    (group / "memory.swap.max").write_text("0")
                cpu = f"{int(self.cpus * 100_000)} 100000" if self.cpus else "max 100000"
                (group / "cpu.max").write_text(cpu)

    def wrapper(self) -> list[str]:
        """argv prefix that puts the command in the groups (or under rlimits), then execs it.

        A tiny ``sh`` joins before it execs, so nothing the command forks can
        escape the limits; it is cheaper than a Python ``preexec_fn``, which
        forces a full fork of the server process.
        """
        steps = [f"echo $$ > {group}/cgroup.procs" for group in self.dirs]
        if not self.dirs:
            if self.memory_mb:
                steps.append(f"ulimit -v {self.memory_mb << 10}")
            if self.pids:
                steps.append(f"ulimit -u {self.pids} 2>/dev/null")
        if not steps:
            return []
        return ["/bin/sh", "-c", " && ".join([*steps, 'exec "$@"']), "agentspace-limits"]

    def counters(self) -> dict[str, int]:
        """OOM kills and refused forks so far (monotonic)."""
        out: dict[str, int] = {}
        for path, key, label in self._counter_files():
            with contextlib.suppress(OSError), open(path) as f:
                for line in f:
                    name, _, value = line.partition(" ")
                    if name == key:
                        out[label] = out.get(label, 0) + int(value)
        return out

    def _counter_files(self) -> list[tuple[str, str, str]]:
        """The event files that exist in our groups (found once: this runs per command)."""
        key = tuple(self.dirs)
        if self._counters_for != key:
            self._counter_list = [
                (str(group / file), name, label)
                for group in self.dirs
                for file, name, label in (
                    ("memory.oom_control", "oom_kill", "memory"),
                    ("memory.events", "oom_kill", "memory"),
                    ("pids.events", "max", "pids"),
                )
                if (group / file).exists()
            ]
            self._counters_for = key
        return self._counter_list

    def pids_in(self) -> list[int]:
        """Every process in the groups (to kill what escaped a process tree)."""
        found: set[int] = set()
        for group in self.dirs:
            with contextlib.suppress(OSError):
                found.update(int(p) for p in (group / "cgroup.procs").read_text().split())
        return sorted(found)

    def remove(self) -> None:
        """Delete the groups, killing what is still in them.

        A group cannot be removed until its last process is gone, and a process killed
        just before is usually still exiting: wait for that, briefly (it blocks), killing
        again what a racing fork added. Groups still busy after that are left behind.
        """
        deadline = time.monotonic() + REMOVE_GRACE
        for group in reversed(self.dirs):
            while True:
                try:
                    group.rmdir()
                    break
                except OSError as exc:
                    if exc.errno != errno.EBUSY or time.monotonic() > deadline:
                        break
                for pid in self.pids_in():
                    with contextlib.suppress(OSError):
                        os.kill(pid, signal.SIGKILL)
                time.sleep(0.002)
        self.dirs.clear()


POOL = "pool-"  # holders.py's groups: agentspace-pool-<owner pid>-<random>


def pool_name() -> str:
    """A name for a spare holder's groups that says which process made them (for
    ``remove_stale_pools`` after that process was killed without removing them)."""
    return f"{POOL}{os.getpid()}-{uuid.uuid4().hex[:12]}"


def remove_stale_pools() -> list[Path]:
    """Remove the empty ``agentspace-pool-<pid>-*`` groups whose process is gone (a server
    killed with ``kill -9``); a live server's groups, and any with processes, stay."""
    removed: list[Path] = []
    version = layout()
    if version == "none":
        return removed
    controllers = ["memory", "pids", "cpu"] if version == "v1" else [""]
    for controller in controllers:
        own = _own_path(controller)
        base = ROOT / controller if controller else ROOT
        if own is None or not base.is_dir():
            continue
        for group in (base / own.lstrip("/")).glob(f"agentspace-{POOL}*-*"):
            pid = group.name[len(f"agentspace-{POOL}") :].split("-", 1)[0]
            if not pid.isdigit() or alive(int(pid)):
                continue
            with contextlib.suppress(OSError):  # busy (processes in it) or gone meanwhile
                group.rmdir()
                removed.append(group)
    return removed
