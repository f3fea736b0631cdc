"""SQLite backend: the embedded default, one file in the head node's state dir.

WAL mode with synchronous=FULL: a batch is on disk when write() returns, which is what lets
the head acknowledge a submission. Commits are grouped by the caller (one transaction per
batch of changes), which keeps that durability cheap (~0.5 ms per fsync on this machine).
Schema changes are numbered migrations tracked in PRAGMA user_version. An existing file is
checked for damage before it is used (store/checks.py). A write the disk has no room for raises
DiskFull, which the journal holds and retries (services/journal.py); other failures are raised
as they are.
"""

from __future__ import annotations

import errno
import os
import sqlite3
from pathlib import Path

from common.errors import ConfigError, DiskFull
from headnode.store import checks, sql
from headnode.store.base import HistoryRecord, Loaded, UsageQuery, UsageReport, WriteBatch

MIGRATIONS: list[str] = [
    # 1: jobs, tasks, instances, history, nodes, templates
    """
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE jobs (
        id INTEGER PRIMARY KEY, owner TEXT NOT NULL, state TEXT NOT NULL, reason TEXT NOT NULL,
        created_at REAL NOT NULL, submitted_at REAL, started_at REAL, ended_at REAL,
        held_by TEXT NOT NULL, history_seq INTEGER NOT NULL, spec TEXT NOT NULL
    );
    CREATE TABLE tasks (
        job_id INTEGER NOT NULL, task_id INTEGER NOT NULL, state TEXT NOT NULL, reason TEXT NOT NULL,
        unstarted TEXT NOT NULL, cursor INTEGER NOT NULL, ahead INTEGER NOT NULL, requeued TEXT NOT NULL,
        started_at REAL, ended_at REAL, spec TEXT NOT NULL,
        PRIMARY KEY (job_id, task_id)
    ) WITHOUT ROWID;
    CREATE TABLE instances (
        job_id INTEGER NOT NULL, task_id INTEGER NOT NULL, instance_id INTEGER NOT NULL,
        state TEXT NOT NULL, reason TEXT NOT NULL, attempt INTEGER NOT NULL, node TEXT NOT NULL,
        holding INTEGER NOT NULL, exit_code INTEGER, signal INTEGER NOT NULL, started_at REAL,
        ended_at REAL, retries INTEGER NOT NULL, cores INTEGER NOT NULL, memory_mb INTEGER NOT NULL,
        PRIMARY KEY (job_id, task_id, instance_id)
    ) WITHOUT ROWID;
    CREATE TABLE history (
        job_id INTEGER NOT NULL, seq INTEGER NOT NULL, task_id INTEGER NOT NULL, instance_id INTEGER NOT NULL,
        at REAL NOT NULL, state TEXT NOT NULL, reason TEXT NOT NULL,
        PRIMARY KEY (job_id, seq)
    ) WITHOUT ROWID;
    CREATE TABLE nodes (
        name TEXT PRIMARY KEY, state TEXT NOT NULL, reason TEXT NOT NULL, cores INTEGER NOT NULL,
        memory_mb INTEGER NOT NULL, hostname TEXT NOT NULL, agent_version TEXT NOT NULL,
        instance_id TEXT NOT NULL, registered_at REAL NOT NULL, last_heartbeat REAL NOT NULL
    );
    CREATE TABLE templates (
        name TEXT PRIMARY KEY, owner TEXT NOT NULL, created_at REAL NOT NULL, body TEXT NOT NULL
    );
    """,
    # 2: named resources, multi-node runs, node groups, labels and state history
    """
    ALTER TABLE instances ADD COLUMN detail TEXT NOT NULL DEFAULT '{}';
    ALTER TABLE nodes ADD COLUMN detail TEXT NOT NULL DEFAULT '{}'
    """,
    # 3: accounting: what ended jobs used, kept when they are purged
    """
    CREATE TABLE usage (
        job_id INTEGER PRIMARY KEY, owner TEXT NOT NULL, project TEXT NOT NULL, name TEXT NOT NULL,
        state TEXT NOT NULL, submitted_at REAL, started_at REAL, ended_at REAL NOT NULL,
        tasks INTEGER NOT NULL, units INTEGER NOT NULL, failed INTEGER NOT NULL, core_seconds REAL NOT NULL,
        wall_seconds REAL NOT NULL, max_memory_mb INTEGER NOT NULL, nonzero_exits INTEGER NOT NULL,
        exit_codes TEXT NOT NULL
    );
    CREATE INDEX usage_ended_at ON usage (ended_at)
    """,
]



# SQLite's INSERT OR REPLACE: every row we write is whole, so replacing it is an upsert.
SQL = sql.Statements("?", lambda table, columns, keys: (
    f"INSERT OR REPLACE INTO {table} ({columns}) VALUES ({sql.marks('?', columns)})"))


SQLITE_IOERR, SQLITE_FULL = 10, 13


class SqliteStore:
    def __init__(self, path: Path, where: str = "") -> None:
        """`where` names the place for a disk-full message ("state dir PATH"; default: the file)."""
        self.path = Path(path)
        self.full = f"the head node's disk is full ({where or f'database {self.path}'})"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        existed = self.path.exists() and self.path.stat().st_size > 0
        try:
            # The store is used by one thread at a time (the journal's writer thread after
            # start-up), so the connection may move between threads.
            self._db = sqlite3.connect(str(self.path), isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute("PRAGMA busy_timeout=5000")
            if existed:
                checks.check_integrity(self._db, self.path)
            self._migrate()
        except sqlite3.Error as e:
            if checks.is_corruption(e):
                raise checks.corrupted(self.path, str(e)) from None
            if self.disk_full(e):
                raise DiskFull.at(self.full) from None
            raise ConfigError(f"cannot use the database {self.path}: {e}") from None

    def _migrate(self) -> None:
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        if version > len(MIGRATIONS):
            raise RuntimeError(
                f"{self.path} was written by a newer Shoal (schema {version}, this one knows {len(MIGRATIONS)})"
            )
        for number in range(version, len(MIGRATIONS)):
            self._db.execute("BEGIN IMMEDIATE")
            try:
                for statement in _split(MIGRATIONS[number]):
                    self._db.execute(statement)
                self._db.execute(f"PRAGMA user_version={number + 1}")
                self._db.execute("COMMIT")
            except BaseException:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise

    def load(self) -> Loaded:
        return sql.load(self._db)

    def write(self, batch: WriteBatch) -> None:
        db = self._db
        try:
            if db.in_transaction:  # left open by a failed try whose ROLLBACK failed too
                db.execute("ROLLBACK")
            db.execute("BEGIN IMMEDIATE")
            try:
                sql.write(db, SQL, batch)
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise
        except sqlite3.Error as e:
            # SQLite has already undone the transaction (or the ROLLBACK above did): nothing
            # of the batch is stored, so it can be written again whole.
            if self.disk_full(e):
                raise DiskFull.at(self.full) from e
            raise

    def disk_full(self, e: BaseException) -> bool:
        """SQLite's "database or disk is full" (SQLITE_FULL, which it returns for ENOSPC), or
        an I/O error while the disk has no room: growing the WAL index (-shm) on a full disk is
        reported as SQLITE_IOERR, as is making it at start-up."""
        if isinstance(e, OSError):
            return e.errno == errno.ENOSPC
        code = getattr(e, "sqlite_errorcode", None)  # extended: the primary code is its low byte
        primary = code & 0xFF if code is not None else None
        if primary == SQLITE_FULL or "database or disk is full" in str(e):
            return True
        if primary == SQLITE_IOERR:
            try:
                return os.statvfs(self.path.parent).f_bavail == 0
            except OSError:
                return False
        return False

    def history(self, job_id: int, task_id: int | None = None, instance_id: int | None = None) -> list[HistoryRecord]:
        return sql.history(self._db, SQL, job_id, task_id, instance_id)

    def usage_report(self, query: UsageQuery) -> UsageReport:
        # A read-only connection of its own, opened and closed on the calling thread: WAL lets
        # it read while the writer commits, and the writer's connection stays the writer's.
        db = sqlite3.connect(self.path.resolve().as_uri() + "?mode=ro", uri=True)
        try:
            db.execute("PRAGMA busy_timeout=5000")
            return sql.usage_report(db, "?", query)
        finally:
            db.close()

    def close(self) -> None:
        self._db.close()


def _split(script: str) -> list[str]:
    return [s.strip() for s in script.split(";") if s.strip()]

