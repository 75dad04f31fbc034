"""Real damage to a real state database, for tests and fire drills of ``agentspace doctor``.

``build_state`` writes a state directory as the engine leaves it (the store's own schema and
statements, session records, events, transcript rows, workspace folders with a file and a
label) without an event loop, so a test can make one before a server starts; ``damage``
then breaks the file the way disks and people do: garbage over the header, a truncated
file, one page overwritten.
"""

from __future__ import annotations

import json
import os
import sqlite3
import uuid
from pathlib import Path
from typing import Literal

from agentspace.store.database import _migrate
from agentspace.store.eventlog import INSERT as INSERT_EVENT
from agentspace.store.labels import write_label
from agentspace.store.records import INSERT_MESSAGE, INSERT_SESSION, SessionRecord

Kind = Literal["header", "truncated", "page"]
KINDS: tuple[Kind, ...] = ("header", "truncated", "page")
PAGE = 4096


def build_state(state_dir: Path, sessions: int = 3, events: int = 200) -> dict[str, str]:
    """Sessions ``nb0.ipynb``... with ``events`` events each; returns notebook → session id."""
    (state_dir / "workspaces").mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(state_dir / "agentspace.db", isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    _migrate(conn)
    made = {}
    conn.execute("BEGIN")
    for i in range(sessions):
        sid, notebook = uuid.uuid4().hex, f"nb{i}.ipynb"
        folder = state_dir / "workspaces" / sid
        folder.mkdir()
        (folder / "notes.txt").write_text(f"the files of {notebook}\n")
        write_label(state_dir, sid, notebook)
        record = SessionRecord(id=sid, notebook=notebook, model="scripted/echo")
        record.workspace = str(folder)
        conn.execute(INSERT_SESSION, (sid, notebook, record.created, record.model_dump_json()))
        for seq in range(1, events + 1):
            delta = {"type": "CUSTOM", "name": "drill", "value": {"n": seq, "pad": "x" * 300}}
            conn.execute(INSERT_EVENT, (sid, seq, "CUSTOM", json.dumps(delta)))
        for idx in range(2):
            message = {"role": "user", "content": f"message {idx} of {notebook}"}
            conn.execute(INSERT_MESSAGE, (sid, idx, json.dumps(message)))
        made[notebook] = sid
    conn.execute("COMMIT")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # everything in the main file
    conn.close()
    return made


def damage(db: Path, kind: Kind) -> None:
    """Break ``db`` for real: ``header`` (100 bytes of garbage over the header),
    ``truncated`` (cut to a third), ``page`` (one page of the events table overwritten)."""
    if kind == "header":
        with open(db, "r+b") as f:
            f.write(bytes(range(7, 107)))
    elif kind == "truncated":
        os.truncate(db, (db.stat().st_size // 3) // PAGE * PAGE + 1000)
    else:
        with open(db, "r+b") as f:
            f.seek(events_page(db) * PAGE)
            f.write(b"\xa5" * PAGE)


def events_page(db: Path) -> int:
    """A page of the events table's b-tree, in the middle of the file (0-based)."""
    conn = sqlite3.connect(db)
    try:
        (root,) = conn.execute(
            "SELECT rootpage FROM sqlite_master WHERE name = 'events'"
        ).fetchone()
        (pages,) = conn.execute("PRAGMA page_count").fetchone()
    finally:
        conn.close()
    return max(int(root), int(pages) // 2)
