"""SQLite backend: the embedded default, one file in the head node's state dir.

WAL mode with synchronous=FULL: a batch is on disk when write() returns, which is what lets
the head acknowledge a submission. Commits are grouped by the caller (one transaction per
batch of changes), which keeps that durability cheap (~0.5 ms per fsync on this machine).
Schema changes are numbered migrations tracked in PRAGMA user_version.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from headnode.store.base import HistoryRecord, JobRecord, Loaded, NodeRecord, TaskRecord, WriteBatch

MIGRATIONS: list[str] = [
    # 1: v0 schema
    """
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE jobs (
        id INTEGER PRIMARY KEY, owner TEXT NOT NULL, name TEXT NOT NULL, state TEXT NOT NULL,
        reason TEXT NOT NULL, created_at REAL NOT NULL, submitted_at REAL, started_at REAL,
        ended_at REAL, history_seq INTEGER NOT NULL, spec TEXT NOT NULL
    );
    CREATE TABLE tasks (
        job_id INTEGER NOT NULL, task_id INTEGER NOT NULL, state TEXT NOT NULL, reason TEXT NOT NULL,
        attempt INTEGER NOT NULL, node TEXT NOT NULL, holding INTEGER NOT NULL, exit_code INTEGER,
        signal INTEGER NOT NULL, started_at REAL, ended_at REAL, spec TEXT NOT NULL,
        PRIMARY KEY (job_id, task_id)
    );
    CREATE TABLE history (
        job_id INTEGER NOT NULL, seq INTEGER NOT NULL, task_id INTEGER NOT NULL,
        at REAL NOT NULL, state TEXT NOT NULL, reason TEXT NOT NULL,
        PRIMARY KEY (job_id, seq)
    ) WITHOUT ROWID;
    CREATE TABLE nodes (
        name TEXT PRIMARY KEY, state TEXT NOT NULL, reason TEXT NOT NULL, cores INTEGER NOT NULL,
        memory_mb INTEGER NOT NULL, hostname TEXT NOT NULL, agent_version TEXT NOT NULL,
        instance_id TEXT NOT NULL, registered_at REAL NOT NULL, last_heartbeat REAL NOT NULL
    );
    """,
]


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
        jobs = [JobRecord(*row) for row in db.execute(
            "SELECT id, owner, name, state, reason, created_at, submitted_at, started_at, ended_at, history_seq, "
            "spec FROM jobs ORDER BY id")]
        tasks = [
            TaskRecord(r[0], r[1], r[2], r[3], r[4], r[5], bool(r[6]), r[7], r[8], r[9], r[10], r[11])
            for r in db.execute(
                "SELECT job_id, task_id, state, reason, attempt, node, holding, exit_code, signal, "
                "started_at, ended_at, spec FROM tasks ORDER BY job_id, task_id")
        ]
        nodes = [NodeRecord(*row) for row in db.execute(
            "SELECT name, state, reason, cores, memory_mb, hostname, agent_version, instance_id, "
            "registered_at, last_heartbeat FROM nodes ORDER BY name")]
        meta = dict(db.execute("SELECT key, value FROM meta"))
        return Loaded(jobs, tasks, nodes, meta)

    def write(self, batch: WriteBatch) -> None:
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            if batch.jobs:
                db.executemany(
                    "INSERT OR REPLACE INTO jobs (id, owner, name, state, reason, created_at, submitted_at, "
                    "started_at, ended_at, history_seq, spec) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                    [_job_row(j) for j in batch.jobs.values()],
                )
            if batch.tasks:
                created = [t for t in batch.tasks.values() if t.spec is not None]
                updated = [t for t in batch.tasks.values() if t.spec is None]
                if created:
                    db.executemany(
                        "INSERT OR REPLACE INTO tasks (job_id, task_id, state, reason, attempt, node, holding, "
                        "exit_code, signal, started_at, ended_at, spec) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                        [_task_row(t) for t in created],
                    )
                if updated:
                    db.executemany(
                        "UPDATE tasks SET state=?, reason=?, attempt=?, node=?, holding=?, exit_code=?, signal=?, "
                        "started_at=?, ended_at=? WHERE job_id=? AND task_id=?",
                        [_task_row(t)[2:11] + (t.job_id, t.task_id) for t in updated],
                    )
            if batch.nodes:
                db.executemany(
                    "INSERT OR REPLACE INTO nodes (name, state, reason, cores, memory_mb, hostname, "
                    "agent_version, instance_id, registered_at, last_heartbeat) VALUES (?,?,?,?,?,?,?,?,?,?)",
                    [_node_row(n) for n in batch.nodes.values()],
                )
            if batch.history:
                db.executemany(
                    "INSERT INTO history (job_id, seq, task_id, at, state, reason) VALUES (?,?,?,?,?,?)",
                    [(h.job_id, h.seq, h.task_id, h.at, h.state, h.reason) for h in batch.history],
                )
            if batch.meta:
                db.executemany("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", batch.meta.items())
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise

    def history(self, job_id: int) -> list[HistoryRecord]:
        return [HistoryRecord(*row) for row in self._db.execute(
            "SELECT job_id, task_id, at, state, reason, seq FROM history WHERE job_id = ? ORDER BY seq", (job_id,))]

    def close(self) -> None:
        self._db.close()


def _split(script: str) -> list[str]:
    return [s.strip() for s in script.split(";") if s.strip()]


def _job_row(j: JobRecord) -> tuple:
    return (j.id, j.owner, j.name, j.state, j.reason, j.created_at, j.submitted_at, j.started_at, j.ended_at,
            j.history_seq, j.spec)


def _task_row(t: TaskRecord) -> tuple:
    return (t.job_id, t.task_id, t.state, t.reason, t.attempt, t.node, int(t.holding), t.exit_code, t.signal,
            t.started_at, t.ended_at, t.spec)


def _node_row(n: NodeRecord) -> tuple:
    return (n.name, n.state, n.reason, n.cores, n.memory_mb, n.hostname, n.agent_version, n.instance_id,
            n.registered_at, n.last_heartbeat)
