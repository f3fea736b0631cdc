"""PostgreSQL backend (psycopg 3): for larger clusters and for several head nodes sharing one
database (one active, the others standing by; see services/lease.py).

Same records and the same contract as the SQLite store. A URL like
`postgresql://host:5432/db?schema=shoal` picks the schema (created if missing; default
`public`); everything else in the URL goes to libpq. Every write is one transaction, committed
with PostgreSQL's synchronous commit before write() returns. Schema changes are numbered
migrations recorded in shoal_schema.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import psycopg

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
        id BIGINT PRIMARY KEY, owner TEXT NOT NULL, state TEXT NOT NULL, reason TEXT NOT NULL,
        created_at DOUBLE PRECISION NOT NULL, submitted_at DOUBLE PRECISION, started_at DOUBLE PRECISION,
        ended_at DOUBLE PRECISION, held_by TEXT NOT NULL, history_seq BIGINT NOT NULL, spec TEXT NOT NULL
    );
    CREATE TABLE tasks (
        job_id BIGINT NOT NULL, task_id INTEGER NOT NULL, state TEXT NOT NULL, reason TEXT NOT NULL,
        unstarted TEXT NOT NULL, cursor BIGINT NOT NULL, ahead BIGINT NOT NULL, requeued TEXT NOT NULL,
        started_at DOUBLE PRECISION, ended_at DOUBLE PRECISION, spec TEXT NOT NULL,
        PRIMARY KEY (job_id, task_id)
    );
    CREATE TABLE instances (
        job_id BIGINT NOT NULL, task_id INTEGER NOT NULL, instance_id INTEGER NOT NULL,
        state TEXT NOT NULL, reason TEXT NOT NULL, attempt INTEGER NOT NULL, node TEXT NOT NULL,
        holding BOOLEAN NOT NULL, exit_code INTEGER, signal INTEGER NOT NULL, started_at DOUBLE PRECISION,
        ended_at DOUBLE PRECISION, retries INTEGER NOT NULL, cores INTEGER NOT NULL, memory_mb BIGINT NOT NULL,
        PRIMARY KEY (job_id, task_id, instance_id)
    );
    CREATE TABLE history (
        job_id BIGINT NOT NULL, seq BIGINT NOT NULL, task_id INTEGER NOT NULL, instance_id INTEGER NOT NULL,
        at DOUBLE PRECISION NOT NULL, state TEXT NOT NULL, reason TEXT NOT NULL,
        PRIMARY KEY (job_id, seq)
    );
    CREATE TABLE nodes (
        name TEXT PRIMARY KEY, state TEXT NOT NULL, reason TEXT NOT NULL, cores INTEGER NOT NULL,
        memory_mb BIGINT NOT NULL, hostname TEXT NOT NULL, agent_version TEXT NOT NULL,
        instance_id TEXT NOT NULL, registered_at DOUBLE PRECISION NOT NULL, last_heartbeat DOUBLE PRECISION NOT NULL
    );
    CREATE TABLE templates (
        name TEXT PRIMARY KEY, owner TEXT NOT NULL, created_at DOUBLE PRECISION NOT NULL, body TEXT NOT NULL
    );
    """,
]



def _marks(columns: str) -> str:
    return ",".join(["%s"] * (columns.count(",") + 1))


def _upsert(table: str, columns: str, keys: str) -> str:
    names = [c.strip() for c in columns.split(",")]
    key_set = {k.strip() for k in keys.split(",")}
    updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in names if c not in key_set)
    return f"INSERT INTO {table} ({columns}) VALUES ({_marks(columns)}) ON CONFLICT ({keys}) DO UPDATE SET {updates}"


def split_url(url: str) -> tuple[str, str]:
    """('libpq url without our schema parameter', schema)."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query)
    schema = next((v for k, v in query if k == "schema"), "public")
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,62}", schema):
        raise ValueError(f"schema {schema!r} in the database URL is not a plain SQL name")
    rest = urlencode([(k, v) for k, v in query if k != "schema"])
    return urlunsplit(parts._replace(query=rest)), schema


class PostgresStore:
    def __init__(self, url: str) -> None:
        self.url, self.schema = split_url(url)
        # Set by the leader lease: runs first in every write transaction (fencing).
        self.guard: Callable[[psycopg.Cursor], None] | None = None
        self._db = psycopg.connect(self.url, autocommit=True)
        for attempt in range(5):
            try:
                self._db.execute(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"')
                self._db.execute(f'SET search_path TO "{self.schema}"')
                self._migrate()
                break
            except (psycopg.errors.UniqueViolation, psycopg.errors.DuplicateTable):
                # Two head nodes creating the same schema at once: the loser finds it done.
                if attempt == 4:
                    raise

    @property
    def connection(self) -> psycopg.Connection:
        return self._db

    def _migrate(self) -> None:
        db = self._db
        with db.transaction():
            db.execute("CREATE TABLE IF NOT EXISTS shoal_schema (version INTEGER NOT NULL)")
            # One head at a time migrates; others wait here, then find the work done.
            db.execute("LOCK TABLE shoal_schema IN EXCLUSIVE MODE")
            row = db.execute("SELECT max(version) FROM shoal_schema").fetchone()
            version = row[0] or 0
            if version > len(MIGRATIONS):
                raise RuntimeError(f"the database was written by a newer Shoal (schema {version}, "
                                   f"this one knows {len(MIGRATIONS)})")
            for number in range(version, len(MIGRATIONS)):
                for statement in (s.strip() for s in MIGRATIONS[number].split(";")):
                    if statement:
                        db.execute(statement)
                db.execute("INSERT INTO shoal_schema (version) VALUES (%s)", (number + 1,))

    def load(self) -> Loaded:
        db = self._db
        jobs = [JobRecord(*row) for row in db.execute(f"SELECT {JOB_COLUMNS} FROM jobs ORDER BY id")]
        tasks = [TaskRecord(*row) for row in db.execute(
            f"SELECT {TASK_COLUMNS} FROM tasks ORDER BY job_id, task_id")]
        instances = [InstanceRecord(*row) for row in db.execute(
            f"SELECT {INSTANCE_COLUMNS} FROM instances ORDER BY job_id, task_id, instance_id")]
        nodes = [NodeRecord(*row) for row in db.execute(f"SELECT {NODE_COLUMNS} FROM nodes ORDER BY name")]
        templates = [TemplateRecord(*row) for row in db.execute(
            "SELECT name, owner, created_at, body FROM templates ORDER BY name")]
        meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
        return Loaded(jobs, tasks, instances, nodes, templates, meta)

    def write(self, batch: WriteBatch) -> None:
        """Apply the batch in one transaction. The guard, if set, runs first inside it (the
        leader lease's fencing check) and may raise to abort the whole batch."""
        db = self._db
        with db.transaction(), db.cursor() as cur:
            if self.guard is not None:
                self.guard(cur)
            if batch.deleted_jobs:
                ids = [(i,) for i in batch.deleted_jobs]
                for table, column in (("jobs", "id"), ("tasks", "job_id"), ("instances", "job_id"),
                                      ("history", "job_id")):
                    cur.executemany(f"DELETE FROM {table} WHERE {column} = %s", ids)
            if batch.jobs:
                cur.executemany(_upsert("jobs", JOB_COLUMNS, "id"), [job_row(j) for j in batch.jobs.values()])
            if batch.tasks:
                created = [t for t in batch.tasks.values() if t.spec is not None]
                updated = [t for t in batch.tasks.values() if t.spec is None]
                if created:
                    cur.executemany(_upsert("tasks", TASK_COLUMNS, "job_id, task_id"),
                                    [task_row(t) for t in created])
                if updated:
                    cur.executemany(
                        "UPDATE tasks SET state=%s, reason=%s, unstarted=%s, cursor=%s, ahead=%s, requeued=%s, "
                        "started_at=%s, ended_at=%s WHERE job_id=%s AND task_id=%s",
                        [task_update_row(t) for t in updated],
                    )
            if batch.instances:
                cur.executemany(_upsert("instances", INSTANCE_COLUMNS, "job_id, task_id, instance_id"),
                                [instance_row(i) for i in batch.instances.values()])
            if batch.nodes:
                cur.executemany(_upsert("nodes", NODE_COLUMNS, "name"), [node_row(n) for n in batch.nodes.values()])
            if batch.history:
                cur.executemany(f"INSERT INTO history ({HISTORY_COLUMNS}) VALUES ({_marks(HISTORY_COLUMNS)})",
                                [history_row(h) for h in batch.history])
            for name, template in batch.templates.items():
                if template is None:
                    cur.execute("DELETE FROM templates WHERE name = %s", (name,))
                else:
                    cur.execute(_upsert("templates", "name, owner, created_at, body", "name"),
                                (template.name, template.owner, template.created_at, template.body))
            if batch.meta:
                cur.executemany(_upsert("meta", "key, value", "key"), list(batch.meta.items()))

    def history(self, job_id: int, task_id: int | None = None, instance_id: int | None = None) -> list[HistoryRecord]:
        where, args = "job_id = %s", [job_id]
        if task_id is not None:
            where += " AND task_id = %s"
            args.append(task_id)
        if instance_id is not None:
            where += " AND instance_id = %s"
            args.append(instance_id)
        return [history_record_of(row) for row in self._db.execute(
            f"SELECT {HISTORY_COLUMNS} FROM history WHERE {where} ORDER BY seq", args)]

    def close(self) -> None:
        self._db.close()

