"""The state database's health: damage told apart from other failures, integrity, orphans.

Why a module of its own: a damaged SQLite file must never look like a bug (a 500) nor be
written to further, and a deleted database must never silently orphan every workspace. The
store translates SQLite's errors here once (``translate``); the engine asks here at start
which workspace folders no session reaches (``scan``) and logs it loudly; ``GET api/status``
and ``agentspace doctor`` read the same facts. Everything here is bounded: an integrity check
stops after a budget of SQLite steps, a size walk after a number of entries, and results
are cached, so a status call stays cheap on a large state directory.
"""

from __future__ import annotations

import os
import re
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path

from agentspace.errors import StoreDamaged, StoreError

# SQLite's primary result codes that mean the file itself is bad (not busy, not full).
DAMAGE_CODES = {11, 26}  # SQLITE_CORRUPT, SQLITE_NOTADB
CHECK_STEPS = 20_000_000  # VM steps a status call's quick_check may take before it gives up
SIZE_ENTRIES = 10_000  # directory entries a status call counts per orphan before it stops
SESSION_ID = re.compile(r"^[0-9a-f]{32}$")  # what engine/engine.py names a session (uuid4().hex)
CHECK_TTL = 600.0  # seconds an integrity result is reused
SCAN_TTL = 30.0  # seconds an orphan listing is reused


def repair_advice(path: Path) -> str:
    state = path.parent
    return (
        f"Run `agentspace doctor --repair --state-dir {state}`: it keeps a backup of the file "
        "beside it, copies every readable row into a new one and says what was lost (it names "
        "the processes that still have the file open: stop those first)."
    )


def damaged(path: Path, detail: str) -> StoreDamaged:
    return StoreDamaged(
        f"The state database {path} is damaged ({detail}); nothing more is written to it. "
        + repair_advice(path),
        path=str(path),
    )


def is_damage(exc: BaseException) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    if isinstance(code, int) and code & 0xFF in DAMAGE_CODES:
        return True
    text = str(exc)
    return "malformed" in text or "not a database" in text


def translate(exc: BaseException, path: Path, doing: str) -> StoreError:
    """A SQLite error as this tree's error: StoreDamaged when the file is bad."""
    if isinstance(exc, StoreError):
        return exc
    if is_damage(exc):
        return damaged(path, str(exc))
    return StoreError(f"{doing} the state database {path} failed: {exc}")


# -- integrity ---------------------------------------------------------------
@dataclass
class Integrity:
    state: str  # "ok", "damaged", "incomplete" (the budget ran out), "unchecked"
    detail: str = ""
    checked_at: float | None = None

    def to_dict(self) -> dict[str, object]:
        return {"state": self.state, "detail": self.detail, "checked_at": self.checked_at}


def check(path: Path, *, full: bool = False, steps: int | None = CHECK_STEPS) -> Integrity:
    """``PRAGMA quick_check`` (or ``integrity_check``) on a connection of its own (blocking).

    ``steps`` bounds the work (SQLite's progress handler); None checks everything.
    """
    now = time.time()
    if not path.exists():
        return Integrity("unchecked", "the database file does not exist", now)
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    except sqlite3.Error as exc:
        return Integrity("damaged", str(exc), now)
    ran_out = False
    if steps is not None:
        budget = [steps // 1000]

        def tick() -> int:
            nonlocal ran_out
            budget[0] -= 1
            ran_out = budget[0] < 0
            return 1 if ran_out else 0

        conn.set_progress_handler(tick, 1000)
    try:
        pragma = "integrity_check" if full else "quick_check"
        rows = [r[0] for r in conn.execute(f"PRAGMA {pragma}(20)").fetchall()]
    except sqlite3.OperationalError as exc:
        if ran_out:
            return Integrity("incomplete", "too large to check here: run agentspace doctor", now)
        if is_damage(exc):
            return Integrity("damaged", str(exc), now)
        return Integrity("unchecked", str(exc), now)
    except sqlite3.Error as exc:
        return Integrity("damaged", str(exc), now)
    finally:
        conn.close()
    if rows == ["ok"]:
        return Integrity("ok", "", now)
    return Integrity("damaged", "; ".join(rows)[:2000], now)


# -- orphans -----------------------------------------------------------------
@dataclass
class Orphan:
    """A workspace folder (or its quota image) that no session in the database names."""

    id: str
    folder: Path
    bytes: int = 0
    complete: bool = True  # False: more than SIZE_ENTRIES entries; ``bytes`` is a lower bound
    notebook: str | None = None  # from its label, if it has one

    def to_dict(self) -> dict[str, object]:
        return {
            "id": self.id,
            "path": str(self.folder),
            "bytes": self.bytes,
            "bytes_complete": self.complete,
            "notebook": self.notebook,
        }


def workspace_ids(state_dir: Path) -> set[str]:
    """Session ids that have a workspace folder or a quota image (one directory listing each)."""
    found: set[str] = set()
    for e in _entries(state_dir / "workspaces"):
        if SESSION_ID.match(e.name) and e.is_dir(follow_symlinks=False):
            found.add(e.name)
    for e in _entries(state_dir / "disk-images"):  # spares are named spare-...: not ids
        if e.name.endswith(".img") and SESSION_ID.match(e.name[:-4]):
            found.add(e.name[:-4])
    return found


def _entries(path: Path) -> list[os.DirEntry[str]]:
    try:
        with os.scandir(path) as it:
            return list(it)
    except (FileNotFoundError, NotADirectoryError):
        return []


def size_of(state_dir: Path, sid: str, limit: int | None = SIZE_ENTRIES) -> tuple[int, bool]:
    """Bytes a workspace takes: its quota image's allocated blocks, else a bounded walk."""
    image = state_dir / "disk-images" / f"{sid}.img"
    try:
        return image.stat().st_blocks * 512, True
    except OSError:
        pass
    total, seen, stack = 0, 0, [state_dir / "workspaces" / sid]
    while stack:
        for entry in _entries(stack.pop()):
            seen += 1
            if limit is not None and seen > limit:
                return total, False
            try:
                if entry.is_dir(follow_symlinks=False):
                    stack.append(Path(entry.path))
                else:
                    total += entry.stat(follow_symlinks=False).st_blocks * 512
            except OSError:
                continue
    return total, True


@dataclass
class Scan:
    """What the state directory holds that the database does not know, and the reverse."""

    orphans: list[Orphan] = field(default_factory=list)
    missing: list[tuple[str, str, str]] = field(default_factory=list)  # (id, notebook, folder)


def scan(
    state_dir: Path,
    sessions: dict[str, tuple[str, str]],
    *,
    sizes: bool = True,
    limit: int | None = SIZE_ENTRIES,
) -> Scan:
    """Orphans (folders with no session) and sessions whose folder is gone (blocking).

    ``sessions``: id → (notebook, workspace folder) as the database says.
    """
    from agentspace.store.labels import read_label

    result = Scan()
    for sid in sorted(workspace_ids(state_dir) - set(sessions)):
        orphan = Orphan(sid, state_dir / "workspaces" / sid, notebook=read_label(state_dir, sid))
        if sizes:
            orphan.bytes, orphan.complete = size_of(state_dir, sid, limit)
        result.orphans.append(orphan)
    for sid, (notebook, folder) in sorted(sessions.items()):
        if folder and not os.path.isdir(folder):
            result.missing.append((sid, notebook, folder))
    return result


def orphan_warning(state_dir: Path, count: int, *, fresh: bool) -> str:
    db = state_dir / "agentspace.db"
    why = (
        "the database was just created, next to existing workspaces (was it deleted, emptied "
        "or replaced?)"
        if fresh
        else "their sessions are not in the database"
    )
    return (
        f"{count} workspace folder(s) in {state_dir / 'workspaces'} have no session in {db}: "
        f"{why}. Their files are kept, but no notebook reaches them. Run `agentspace doctor "
        f"--state-dir {state_dir}` to list them, then `--adopt` to give each a session again "
        "or `--prune` to delete them."
    )
