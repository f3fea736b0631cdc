"""SQLite backend: the embedded default, one file in the head node's state dir.

WAL mode with synchronous=FULL: a batch is on disk when write() returns, which is what lets
the head acknowledge a submission. Commits are grouped by the caller (one transaction per
batch of changes), which keeps that durability cheap (~0.5 ms per fsync on this machine).
Schema changes are numbered migrations tracked in PRAGMA user_version.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from headnode.store.base import (
    HISTORY_COLUMNS,
    INSTANCE_COLUMNS,
    JOB_COLUMNS,
    NODE_COLUMNS,
    TASK_COLUMNS,
    HistoryRecord,
    InstanceRecord,
    JobRecord,
    Loaded,
    NodeRecord,
    TaskRecord,
    TemplateRecord,
    WriteBatch,
    history_record_of,
    history_row,
    instance_row,
    job_row,
    node_row,
    task_row,
    task_update_row,
)

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
]



def _marks(columns: str) -> str:
    return ",".join("?" * (columns.count(",") + 1))


class SqliteStore:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # The store is used by one thread at a time (the journal's writer thread after
        # start-up), so the connection may move between threads.
        self._db = sqlite3.connect(str(self.path), isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("PRAGMA busy_timeout=5000")
        self._migrate()

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
        db = self._db
        jobs = [JobRecord(*row) for row in db.execute(f"SELECT {JOB_COLUMNS} FROM jobs ORDER BY id")]
        tasks = [TaskRecord(*row) for row in db.execute(f"SELECT {TASK_COLUMNS} FROM tasks ORDER BY job_id, task_id")]
        instances = [
            InstanceRecord(*r[:7], bool(r[7]), *r[8:])
            for r in db.execute(f"SELECT {INSTANCE_COLUMNS} FROM instances ORDER BY job_id, task_id, instance_id")
        ]
        nodes = [NodeRecord(*row) for row in db.execute(f"SELECT {NODE_COLUMNS} FROM nodes ORDER BY name")]
        templates = [TemplateRecord(*row) for row in db.execute(
            "SELECT name, owner, created_at, body FROM templates ORDER BY name")]
        meta = dict(db.execute("SELECT key, value FROM meta"))
        return Loaded(jobs, tasks, instances, nodes, templates, meta)

    def write(self, batch: WriteBatch) -> None:
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            if batch.deleted_jobs:
                ids = [(i,) for i in batch.deleted_jobs]
                for table, column in (("jobs", "id"), ("tasks", "job_id"), ("instances", "job_id"),
                                      ("history", "job_id")):
                    db.executemany(f"DELETE FROM {table} WHERE {column} = ?", ids)
            if batch.jobs:
                db.executemany(f"INSERT OR REPLACE INTO jobs ({JOB_COLUMNS}) VALUES ({_marks(JOB_COLUMNS)})",
                               [job_row(j) for j in batch.jobs.values()])
            if batch.tasks:
                created = [t for t in batch.tasks.values() if t.spec is not None]
                updated = [t for t in batch.tasks.values() if t.spec is None]
                if created:
                    db.executemany(
                        f"INSERT OR REPLACE INTO tasks ({TASK_COLUMNS}) VALUES ({_marks(TASK_COLUMNS)})",
                        [task_row(t) for t in created],
                    )
                if updated:
                    # A plain UPDATE: SQLite checks NOT NULL on an upsert's values before it
                    # resolves the conflict, so an upsert without the spec would fail.
                    db.executemany(
                        "UPDATE tasks SET state=?, reason=?, unstarted=?, cursor=?, ahead=?, requeued=?, "
                        "started_at=?, ended_at=? WHERE job_id=? AND task_id=?",
                        [task_update_row(t) for t in updated],
                    )
            if batch.instances:
                db.executemany(
                    f"INSERT OR REPLACE INTO instances ({INSTANCE_COLUMNS}) VALUES ({_marks(INSTANCE_COLUMNS)})",
                    [instance_row(i) for i in batch.instances.values()],
                )
            if batch.nodes:
                db.executemany(f"INSERT OR REPLACE INTO nodes ({NODE_COLUMNS}) VALUES ({_marks(NODE_COLUMNS)})",
                               [node_row(n) for n in batch.nodes.values()])
            if batch.history:
                db.executemany(f"INSERT INTO history ({HISTORY_COLUMNS}) VALUES ({_marks(HISTORY_COLUMNS)})",
                               [history_row(h) for h in batch.history])
            for name, template in batch.templates.items():
                if template is None:
                    db.execute("DELETE FROM templates WHERE name = ?", (name,))
                else:
                    db.execute("INSERT OR REPLACE INTO templates (name, owner, created_at, body) VALUES (?,?,?,?)",
                               (template.name, template.owner, template.created_at, template.body))
            if batch.meta:
                db.executemany("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", batch.meta.items())
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise

    def history(self, job_id: int, task_id: int | None = None, instance_id: int | None = None) -> list[HistoryRecord]:
        where, args = "job_id = ?", [job_id]
        if task_id is not None:
            where += " AND task_id = ?"
            args.append(task_id)
        if instance_id is not None:
            where += " AND instance_id = ?"
            args.append(instance_id)
        return [history_record_of(row) for row in self._db.execute(
            f"SELECT {HISTORY_COLUMNS} FROM history WHERE {where} ORDER BY seq", args)]

    def close(self) -> None:
        self._db.close()


def _split(script: str) -> list[str]:
    return [s.strip() for s in script.split(";") if s.strip()]

