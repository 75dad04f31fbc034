"""SQLite (WAL) store with group commit: the only place state lives.

Why group commit in a thread: an agent streams hundreds of deltas a second per
session and each must be durable before anyone sees it. Writes are queued in
order from the event loop (cheap, synchronous ``write``), a single writer
thread commits everything queued so far in one transaction, and only then are
the batch's after-commit callbacks (publishing events to subscribers) run on
the loop. Ordering across tables holds because there is one queue; the loop is
never blocked by SQLite; a crash loses only what nobody has seen.

Reads use a second connection in their own thread (WAL readers do not block
the writer). Nothing here knows about sessions' behaviour: ``records`` holds
the queries.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from agentspace.errors import StoreDamaged, StoreError
from agentspace.fairness.pacing import checkpoint
from agentspace.store.health import translate
from agentspace.store.states import OLD_OUTCOMES, OLD_STATUSES

log = logging.getLogger(__name__)
T = TypeVar("T")

SCHEMA = """
CREATE TABLE IF NOT EXISTS sessions (
    id TEXT PRIMARY KEY,
    notebook TEXT NOT NULL UNIQUE,
    created REAL NOT NULL,
    data TEXT NOT NULL,
    owner TEXT,
    stop_requested INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS events (
    session_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    type TEXT NOT NULL,
    data TEXT NOT NULL,
    PRIMARY KEY (session_id, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS messages (
    session_id TEXT NOT NULL,
    idx INTEGER NOT NULL,
    data TEXT NOT NULL,
    PRIMARY KEY (session_id, idx)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS inbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    session_id TEXT NOT NULL,
    message_id TEXT NOT NULL,
    text TEXT NOT NULL,
    sender TEXT,
    run_id TEXT,
    created REAL NOT NULL,
    context TEXT
);
CREATE INDEX IF NOT EXISTS inbox_session ON inbox (session_id, id);
CREATE TABLE IF NOT EXISTS approvals (
    session_id TEXT NOT NULL,
    tool_call_id TEXT NOT NULL,
    run_id TEXT NOT NULL,
    name TEXT NOT NULL,
    arguments TEXT NOT NULL,
    status TEXT NOT NULL,
    decision TEXT,
    created REAL NOT NULL,
    executor TEXT NOT NULL DEFAULT 'sandbox',
    needs_approval INTEGER NOT NULL DEFAULT 1,
    decided_by TEXT,
    announced INTEGER NOT NULL DEFAULT 1,
    preview TEXT,
    PRIMARY KEY (session_id, tool_call_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS runs (
    session_id TEXT NOT NULL,
    run_id TEXT NOT NULL,
    started REAL NOT NULL,
    ended REAL,
    outcome TEXT,
    usage TEXT,
    owner TEXT,
    first_seq INTEGER NOT NULL,
    PRIMARY KEY (session_id, run_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS runs_open ON runs (ended) WHERE ended IS NULL;
"""


# Columns added after a table was first shipped: (table, column, declaration). A database
# made by an older version gets them on open; CREATE TABLE above already has them.
ADDED_COLUMNS = [
    ("approvals", "executor", "TEXT NOT NULL DEFAULT 'sandbox'"),
    ("approvals", "needs_approval", "INTEGER NOT NULL DEFAULT 1"),
    ("approvals", "decided_by", "TEXT"),
    ("approvals", "announced", "INTEGER NOT NULL DEFAULT 1"),
    ("inbox", "context", "TEXT"),
    ("approvals", "preview", "TEXT"),  # what a held call would change (NULL: none, or older)
]


VERSION = 6
"""``PRAGMA user_version`` of today's store: 5 the stored words of ``store.states``, 6 the
approvals' ``preview`` column; 0 before them."""


def _renamed(old: dict[str, str], column: str) -> str:
    cases = " ".join(f"WHEN '{a}' THEN '{b}'" for a, b in old.items())
    names = ", ".join(f"'{a}'" for a in old)
    return f"CASE {column} {cases} END WHERE {column} IN ({names})"


RENAMES = [
    "UPDATE sessions SET data = json_set(data, '$.status', "
    + _renamed(OLD_STATUSES, "json_extract(data, '$.status')").replace(" WHERE ", ") WHERE ", 1),
    "UPDATE runs SET outcome = " + _renamed(OLD_OUTCOMES, "outcome"),
]
"""Stored values renamed since an older version wrote them (idempotent, run once)."""


def _migrate(conn: sqlite3.Connection) -> None:
    """Create the tables, add the columns an older database lacks, rename old values.

    The columns come first, so a store whose ``user_version`` says 6 has ``preview``.
    """
    conn.executescript(SCHEMA)
    for table, column, declaration in ADDED_COLUMNS:
        have = {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}
        if column not in have:
            try:
                conn.execute(f"ALTER TABLE {table} ADD COLUMN {column} {declaration}")
            except sqlite3.OperationalError as exc:  # another process added it just now
                if "duplicate column" not in str(exc):
                    raise
    if conn.execute("PRAGMA user_version").fetchone()[0] < VERSION:
        conn.execute("BEGIN IMMEDIATE")  # all or nothing; a racing process waits, then no-ops
        try:
            for statement in RENAMES:
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {VERSION}")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")


def _connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=10)
    conn.execute("PRAGMA journal_mode=WAL")
    # NORMAL in WAL mode survives a process crash (kill -9); only power loss can
    # drop the last transactions. That is the trade every WAL app makes.
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA busy_timeout=10000")
    return conn


def _missing_or_empty(path: Path) -> bool:
    try:
        return path.stat().st_size == 0
    except FileNotFoundError:
        return True


Write = tuple[str, tuple[Any, ...]]


class Store:
    """Ordered, grouped writes; threaded reads. Create with ``await Store.open(path)``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="agentspace-store-w")
        self._reader = ThreadPoolExecutor(1, thread_name_prefix="agentspace-store-r")
        self._wconn: sqlite3.Connection | None = None
        self._rconn: sqlite3.Connection | None = None
        self._pending: list[Write] = []
        self._after: list[Callable[[], None]] = []
        self._waiters: list[asyncio.Future[None]] = []
        self._wake = asyncio.Event()
        self._flusher: asyncio.Task[None] | None = None
        self._closed = False
        self._busy = False  # a batch is being committed
        self.fresh = False  # the file was missing or empty when opened (store.health warns)
        self.damaged: StoreDamaged | None = None  # set once SQLite says the file is corrupt

    @classmethod
    async def open(cls, path: Path) -> Store:
        self = cls(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        self.fresh = _missing_or_empty(path)
        loop = asyncio.get_running_loop()
        try:
            self._wconn = await loop.run_in_executor(self._writer, _connect, path)
            await loop.run_in_executor(self._writer, _migrate, self._wconn)
            self._rconn = await loop.run_in_executor(self._reader, _connect, path)
        except sqlite3.Error as exc:
            await self._abandon()  # a server retries on its next request: leak nothing
            raise translate(exc, path, "opening") from exc
        self._flusher = asyncio.create_task(self._flush_loop(), name="agentspace-store-flush")
        return self

    # -- writes --------------------------------------------------------------
    def write(self, sql: str, params: tuple[Any, ...] = ()) -> None:
        """Queue one statement; it commits with the next group, in order."""
        if self._closed:
            raise StoreError(f"the state database {self.path} is closed")
        self._pending.append((sql, params))
        self._wake.set()

    def after_commit(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` on the loop once everything queued so far is committed."""
        self._after.append(callback)
        self._wake.set()

    @property
    def backlog(self) -> int:
        return len(self._pending)

    async def flush(self) -> None:
        """Wait until everything queued so far is committed (raise StoreError if not)."""
        if not self._pending and not self._after and not self._busy:
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(fut)
        self._wake.set()
        await fut
        # One commit wakes every waiter in the same loop turn (200 POSTs in a burst):
        # what each does next takes its turn, in its lane (fairness/pacing.py).
        await checkpoint()

    async def _flush_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._pending or self._after or self._waiters:
                batch, self._pending = self._pending, []
                after, self._after = self._after, []
                waiters, self._waiters = self._waiters, []
                self._busy = True
                error: BaseException | None = None
                try:
                    if batch and self.damaged is not None:
                        error = self.damaged  # never write more into a corrupt file
                    elif batch:
                        await loop.run_in_executor(self._writer, self._commit, batch)
                except Exception as exc:  # sqlite3.Error, or a bad parameter from a caller
                    error = self._failed(exc, "writing")
                    log.error("%s", error)
                finally:
                    self._busy = False
                if error is None:
                    for callback in after:
                        try:
                            callback()
                        except Exception:
                            log.exception("after-commit callback failed")
                for fut in waiters:
                    if not fut.done():
                        if error is None:
                            fut.set_result(None)
                        else:
                            fut.set_exception(error)

    def _commit(self, batch: list[Write]) -> None:
        conn = self._wconn
        assert conn is not None
        conn.execute("BEGIN")
        try:
            i = 0
            while i < len(batch):
                sql = batch[i][0]
                j = i + 1
                while j < len(batch) and batch[j][0] == sql:
                    j += 1
                if j - i > 1:
                    conn.executemany(sql, [p for _, p in batch[i:j]])
                else:
                    conn.execute(sql, batch[i][1])
                i = j
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    async def transaction(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn`` in its own immediate transaction on the writer, after pending writes."""
        await self.flush()

        def run() -> T:
            conn = self._wconn
            assert conn is not None
            conn.execute("BEGIN IMMEDIATE")
            try:
                result = fn(conn)
                conn.execute("COMMIT")
                return result
            except BaseException:
                conn.execute("ROLLBACK")
                raise

        if self.damaged is not None:
            raise self.damaged
        try:
            return await asyncio.get_running_loop().run_in_executor(self._writer, run)
        except sqlite3.Error as exc:
            raise self._failed(exc, "a transaction in") from exc

    # -- reads ---------------------------------------------------------------
    async def read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn`` with the read connection in the reader thread (sees committed data)."""
        conn = self._rconn
        assert conn is not None
        try:
            result = await asyncio.get_running_loop().run_in_executor(self._reader, fn, conn)
        except sqlite3.Error as exc:
            raise self._failed(exc, "reading") from exc
        await checkpoint()  # reads finish in bursts too; what the reader does next takes turns
        return result

    async def snapshot(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """``read``, in one read transaction: every query of ``fn`` sees the same commit.

        Without it each SELECT sees the newest commit when it runs, so two of them may
        straddle a commit (a status from before a pause, its calls from after).
        """

        def run(conn: sqlite3.Connection) -> T:
            conn.execute("BEGIN")
            try:
                return fn(conn)
            finally:
                conn.execute("ROLLBACK")  # only read: nothing to keep

        return await self.read(run)

    async def query(self, sql: str, params: Iterable[Any] = ()) -> list[tuple[Any, ...]]:
        args = tuple(params)
        return await self.read(lambda conn: conn.execute(sql, args).fetchall())

    def _failed(self, exc: BaseException, doing: str) -> StoreError:
        """Translate once (store.health); a corrupt file marks the store damaged for good."""
        error = translate(exc, self.path, doing)
        if isinstance(error, StoreDamaged) and self.damaged is None:
            self.damaged = error
            log.error("%s", error)
        return error

    # -- lifecycle -----------------------------------------------------------
    async def _abandon(self) -> None:
        loop = asyncio.get_running_loop()
        for pool, conn in ((self._writer, self._wconn), (self._reader, self._rconn)):
            if conn is not None:
                await loop.run_in_executor(pool, conn.close)
            pool.shutdown(wait=False)
        self._wconn = self._rconn = None

    async def close(self) -> None:
        """Commit what is queued, then close both connections."""
        if self._closed:
            return
        try:
            if self.damaged is None:  # a corrupt file gets nothing more
                await self.flush()
        finally:
            self._closed = True
            if self._flusher is not None:
                self._flusher.cancel()
            loop = asyncio.get_running_loop()
            if self._wconn is not None:
                await loop.run_in_executor(self._writer, self._wconn.close)
            if self._rconn is not None:
                await loop.run_in_executor(self._reader, self._rconn.close)
            self._writer.shutdown(wait=False)
            self._reader.shutdown(wait=False)
