"""``GET api/status``: the store's health as a server reports it, cheap enough to poll.

Why cached: a monitor may call it every few seconds, and the facts behind it (an integrity
check, sizes of folders) cost reads proportional to the state directory. The integrity
check is bounded (health.CHECK_STEPS) and reused for CHECK_TTL; the orphan listing is
one directory listing plus a bounded size walk per orphan, reused for SCAN_TTL.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agentspace.errors import SandboxError, StoreDamaged
from agentspace.store.database import ADDED_COLUMNS
from agentspace.store.health import (
    CHECK_TTL,
    SCAN_TTL,
    Integrity,
    Scan,
    check,
    damaged,
    repair_advice,
    scan,
)

if TYPE_CHECKING:
    from agentspace.engine.engine import Engine

SCHEMA_VERSION = 1 + len(ADDED_COLUMNS)  # the tables of store.SCHEMA, then each added column
_cache: dict[tuple[str, str], tuple[float, Any]] = {}


def _cached(kind: str, path: Path, ttl: float) -> Any:
    hit = _cache.get((kind, str(path)))
    if hit is not None and time.monotonic() - hit[0] < ttl:
        return hit[1]
    return None


def _keep(kind: str, path: Path, value: Any) -> Any:
    _cache[(kind, str(path))] = (time.monotonic(), value)
    return value


def forget(path: Path) -> None:
    """Drop what is cached about one database (after a repair, in tests)."""
    for key in [k for k in _cache if k[1] == str(path)]:
        del _cache[key]


def schema_version(conn: Any) -> int:
    """1 for the first shipped tables, +1 for each added column present (store.ADDED_COLUMNS)."""
    version = 1
    for table, column, _ in ADDED_COLUMNS:
        have = {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}
        if column not in have:
            break
        version += 1
    return version


async def check_integrity(engine: Engine, *, cached: bool = True) -> Integrity:
    """The bounded quick_check (reused for CHECK_TTL if ``cached``); damage found marks the
    store, so that every API call answers 503 from then on (server/base.py)."""
    store = engine.store
    integrity: Integrity | None = _cached("integrity", store.path, CHECK_TTL) if cached else None
    if integrity is None:
        integrity = _keep("integrity", store.path, await asyncio.to_thread(check, store.path))
    if integrity.state == "damaged" and store.damaged is None:
        store.damaged = damaged(store.path, integrity.detail)
    return integrity


async def store_status(engine: Engine) -> dict[str, Any]:
    store = engine.store
    path, state_dir = store.path, engine.config.state_dir
    backend = await _backend(engine)
    if store.damaged is not None:
        return damaged_status(state_dir, store.damaged, backend)
    integrity = await check_integrity(engine)
    if integrity.state == "damaged":
        return damaged_status(state_dir, store.damaged, backend, integrity)
    rows = await store.query(
        "SELECT id, notebook, COALESCE(json_extract(data, '$.workspace'), '') FROM sessions"
    )
    version = await store.read(schema_version)
    found: Scan | None = _cached("scan", path, SCAN_TTL)
    if found is None:
        sessions = {sid: (notebook, folder) for sid, notebook, folder in rows}
        found = _keep("scan", path, await asyncio.to_thread(scan, state_dir, sessions))
    problems = []
    if found.orphans:
        problems.append(
            f"{len(found.orphans)} workspace folder(s) have no session: run `agentspace doctor "
            f"--state-dir {state_dir}` (then --adopt or --prune)"
        )
    if found.missing:
        problems.append(f"{len(found.missing)} session(s) have no workspace folder")
    return {
        "ok": not problems,
        "message": "; ".join(problems) or "the store is healthy",
        "store": {
            "path": str(path),
            "schema_version": version,
            "schema_current": version == SCHEMA_VERSION,
            "sessions": len(rows),
            "integrity": integrity.to_dict(),
        },
        "orphaned_workspaces": [o.to_dict() for o in found.orphans],
        "sessions_without_workspace": [
            {"id": sid, "notebook": notebook, "path": folder}
            for sid, notebook, folder in found.missing
        ],
        "sandbox": backend,
    }


def damaged_status(
    state_dir: Path,
    error: StoreDamaged | None,
    backend: str,
    integrity: Integrity | None = None,
) -> dict[str, Any]:
    """The report when the database cannot be trusted (it could not be opened or read)."""
    path = state_dir / "agentspace.db"
    detail = integrity.detail if integrity else (error.message if error else "")
    return {
        "ok": False,
        "message": error.message
        if error
        else f"The state database {path} is damaged ({detail}). {repair_advice(path)}",
        "store": {
            "path": str(path),
            "schema_version": None,
            "schema_current": False,
            "sessions": None,
            "integrity": (integrity or Integrity("damaged", detail, time.time())).to_dict(),
        },
        "orphaned_workspaces": [],
        "sessions_without_workspace": [],
        "sandbox": backend,
    }


async def _backend(engine: Engine) -> str:
    try:
        return str(await engine.workspaces.backend())
    except SandboxError as exc:
        return f"none ({exc.message})"
