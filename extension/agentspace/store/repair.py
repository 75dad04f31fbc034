"""Repairing a damaged state database: a backup first, then every readable row kept.

Why this way: SQLite's own ``.recover`` lives in its command-line shell, not in the library
Python links, and the backup API copies page by page, so it stops at the first bad one. A
damaged page usually breaks a table's b-tree in one place, so each table is read in key
order from the front until the damage, then from the back until the damage again: what
lies on either side is kept, and what was between (the rows on the bad pages) is named as
lost. The damaged file (with its WAL and shared memory) is copied to ``<db>.bak-<time>``
before anything is touched, and the rows are read from a scratch copy, so neither the
original nor its backup is changed by reading.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import struct
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Each table and the key it is read in (rowid tables by rowid).
KEYS = {
    "sessions": ["rowid"],
    "events": ["session_id", "seq"],
    "messages": ["session_id", "idx"],
    "inbox": ["id"],
    "approvals": ["session_id", "tool_call_id"],
    "runs": ["session_id", "run_id"],
}
SUFFIXES = ("", "-wal", "-shm")
PAGE_SIZES = (4096, 1024, 2048, 8192, 16384, 32768, 65536)  # SQLite's default first


@dataclass
class TableResult:
    table: str
    recovered: int = 0
    lost: str = ""  # empty: read to the end from the front

    def to_dict(self) -> dict[str, Any]:
        return {"table": self.table, "recovered": self.recovered, "lost": self.lost}


@dataclass
class Repair:
    backup: Path
    tables: list[TableResult] = field(default_factory=list)
    header_rebuilt: bool = False  # its first 100 bytes were garbage: rebuilt to read the rest

    @property
    def complete(self) -> bool:
        return all(not t.lost for t in self.tables)

    def to_dict(self) -> dict[str, Any]:
        return {
            "backup": str(self.backup),
            "complete": self.complete,
            "header_rebuilt": self.header_rebuilt,
            "tables": [t.to_dict() for t in self.tables],
        }


def holders(db: Path) -> list[int]:
    """Other processes with the database open (a server, a kernel): never repair under them.
    Only the processes /proc lets this user see (all of them as root)."""
    names = {os.path.realpath(f"{db}{suffix}") for suffix in SUFFIXES}
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            fds = os.scandir(f"/proc/{entry.name}/fd")
        except OSError:
            continue
        with fds:
            for fd in fds:
                try:
                    if os.readlink(fd.path) in names:
                        found.append(int(entry.name))
                        break
                except OSError:
                    continue
    return found


def backup(db: Path) -> Path:
    """Copy the database and its WAL and shared-memory files to ``<db>.bak-<time>``."""
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
    target = db.with_name(f"{db.name}.bak-{stamp}")
    n = 1
    while target.exists():
        n += 1
        target = db.with_name(f"{db.name}.bak-{stamp}-{n}")
    for suffix in SUFFIXES:
        source = Path(f"{db}{suffix}")
        if source.exists():
            shutil.copy2(source, f"{target}{suffix}")
    return target


def repair(db: Path) -> Repair:
    """Back up ``db``, copy every readable row into a fresh database, put it in place."""
    from agentspace.store.database import _migrate

    result = Repair(backup(db))
    with tempfile.TemporaryDirectory(prefix="agentspace-repair-", dir=db.parent) as tmp:
        scratch = Path(tmp) / "damaged.db"
        for suffix in SUFFIXES:
            if Path(f"{result.backup}{suffix}").exists():
                shutil.copy2(f"{result.backup}{suffix}", f"{scratch}{suffix}")
        fresh = Path(tmp) / "repaired.db"
        dest = sqlite3.connect(fresh, isolation_level=None)
        try:
            _migrate(dest)
            src = _open_source(scratch, result)
            for table, key in KEYS.items():
                result.tables.append(_copy(src, dest, table, key))
            if src is not None:
                src.close()
            dest.execute("PRAGMA journal_mode=WAL")
        finally:
            dest.close()
        for suffix in ("-wal", "-shm"):  # a stale WAL must never be applied to the new file
            Path(f"{db}{suffix}").unlink(missing_ok=True)
        os.replace(fresh, db)
        for suffix in ("-wal", "-shm"):
            if Path(f"{fresh}{suffix}").exists():
                os.replace(f"{fresh}{suffix}", f"{db}{suffix}")
    return result


def _readable(path: Path) -> sqlite3.Connection | None:
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except sqlite3.Error:
        conn.close()
        return None
    return conn


def _open_source(scratch: Path, result: Repair) -> sqlite3.Connection | None:
    """The scratch copy, readable; if its header is garbage, with a rebuilt header.

    The header (the first 100 bytes) only describes the file: page size, page count, format
    numbers. The tables' b-trees start right after it, so a header written from a fresh
    database's template (no freelist, the page count from the file's size) makes the rest
    readable again. The page size is taken from the WAL's header if there is one, else
    each size SQLite allows is tried, the default first.
    """
    try:
        conn = _readable(scratch)
    except sqlite3.Error:
        conn = None
    if conn is not None:
        return conn
    sizes = list(PAGE_SIZES)
    wal = Path(f"{scratch}-wal")
    if wal.exists():
        with open(wal, "rb") as f:
            head = f.read(32)
        if len(head) == 32 and struct.unpack_from(">I", head, 8)[0] in sizes:
            sizes.insert(0, struct.unpack_from(">I", head, 8)[0])
    template = _template_header()
    length = scratch.stat().st_size
    for size in sizes:
        header = bytearray(template)
        struct.pack_into(">H", header, 16, size if size < 65536 else 1)
        struct.pack_into(">I", header, 28, length // size)  # page count
        struct.pack_into(">II", header, 32, 0, 0)  # no freelist
        struct.pack_into(">I", header, 92, struct.unpack_from(">I", header, 24)[0])
        with open(scratch, "r+b") as f:
            f.write(bytes(header))
        try:
            conn = _readable(scratch)
        except sqlite3.Error:
            conn = None
        if conn is not None:
            result.header_rebuilt = True
            return conn
    return None


def _template_header() -> bytes:
    with tempfile.TemporaryDirectory(prefix="agentspace-header-") as tmp:
        path = Path(tmp) / "t.db"
        conn = sqlite3.connect(path, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("CREATE TABLE t (x)")
        conn.close()
        return path.read_bytes()[:100]


def _columns(conn: sqlite3.Connection | None, table: str) -> list[str]:
    if conn is None:
        return []
    try:
        return [row[1] for row in conn.execute(f"PRAGMA table_info({table})")]
    except sqlite3.Error:
        return []


def _copy(
    src: sqlite3.Connection | None, dest: sqlite3.Connection, table: str, key: list[str]
) -> TableResult:
    result = TableResult(table)
    have = _columns(src, table)
    columns = [c for c in _columns(dest, table) if c in have] if have else []
    if src is None or not columns:
        result.lost = "all of it: the table's schema could not be read"
        return result
    n = len(key)
    n = len(key)
    keys = ", ".join(key)
    select = f"SELECT {keys}, {', '.join(columns)} FROM {table}"
    rows, _, ended = _read(src, f"{select} ORDER BY {keys}", (), n)
    if not ended:  # read the keys alone (they sit in the b-tree cells, seldom on the bad
        # pages), then each row by its key: only the rows that cannot be read are lost
        found, last, ended = _read(src, f"SELECT {keys} FROM {table} ORDER BY {keys}", (), n)
        gap = ""
        if not ended:
            where = f"({keys}) > ({', '.join('?' * n)})" if last else "1"
            desc = ", ".join(f"{k} DESC" for k in key)
            back, first, _ = _read(
                src, f"SELECT {keys} FROM {table} WHERE {where} ORDER BY {desc}", last or (), n
            )
            found += back
            after = f"after {_show(key, last)}" if last else "from the start"
            until = f" up to {_show(key, first)}" if first else " to the end"
            gap = f"the rows {after}{until}"
        rows, bad = [], []
        match = " AND ".join(f"{k} = ?" for k in key)
        for k in found:
            try:
                row = src.execute(f"{select} WHERE {match}", k).fetchone()
            except sqlite3.Error:
                bad.append(k)
                continue
            if row is not None:
                rows.append(row)
        shown = ", ".join(f"({_show(key, b)})" for b in bad[:5]) + (", ..." if bad[5:] else "")
        lost = [f"{len(bad)} row(s) {shown}"] if bad else []
        result.lost = " and ".join([*lost, *([gap] if gap else [])]) + " could not be read"
    insert = (
        f"INSERT OR IGNORE INTO {table} ({', '.join(columns)}) "
        f"VALUES ({', '.join('?' * len(columns))})"
    )
    dest.execute("BEGIN")
    dest.executemany(insert, [row[n:] for row in rows])
    dest.execute("COMMIT")
    result.recovered = len(rows)
    return result


def _show(key: list[str], values: tuple[Any, ...] | None) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in zip(key, values or (), strict=False))


def _read(
    conn: sqlite3.Connection, sql: str, params: tuple[Any, ...], n: int
) -> tuple[list[tuple[Any, ...]], tuple[Any, ...] | None, bool]:
    """Rows until the end or the first damaged page: (rows, last key read, reached the end)."""
    rows: list[tuple[Any, ...]] = []
    try:
        for row in conn.execute(sql, params):  # one at a time: a bad row loses only itself
            rows.append(row)
    except sqlite3.Error:
        return rows, rows[-1][:n] if rows else None, False
    return rows, rows[-1][:n] if rows else None, True
