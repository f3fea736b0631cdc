"""PostgreSQL backend (psycopg 3): for larger clusters and for several head nodes sharing one
database (one active, the others standing by; see services/lease.py).

Same records and the same contract as the SQLite store. A URL like
`postgresql://host:5432/db?schema=shoal` picks the schema (created if missing; default
`public`); everything else in the URL goes to libpq. Every write is one transaction, committed
with PostgreSQL's synchronous commit before write() returns; one the server's disk has no room
for raises DiskFull, which the journal holds and retries (services/journal.py). Schema changes
are numbered migrations recorded in shoal_schema.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import psycopg

from common.errors import DiskFull
from headnode.store import sql
from headnode.store.base import HistoryRecord, Loaded, UsageQuery, UsageReport, WriteBatch

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
    # 2: named resources, multi-node runs, node groups, labels and state history
    """
    ALTER TABLE instances ADD COLUMN detail TEXT NOT NULL DEFAULT '{}';
    ALTER TABLE nodes ADD COLUMN detail TEXT NOT NULL DEFAULT '{}'
    """,
    # 3: accounting: what ended jobs used, kept when they are purged
    """
    CREATE TABLE usage (
        job_id BIGINT PRIMARY KEY, owner TEXT NOT NULL, project TEXT NOT NULL, name TEXT NOT NULL,
        state TEXT NOT NULL, submitted_at DOUBLE PRECISION, started_at DOUBLE PRECISION,
        ended_at DOUBLE PRECISION NOT NULL, tasks INTEGER NOT NULL, units BIGINT NOT NULL,
        failed BIGINT NOT NULL, core_seconds DOUBLE PRECISION NOT NULL,
        wall_seconds DOUBLE PRECISION NOT NULL, max_memory_mb BIGINT NOT NULL, nonzero_exits BIGINT NOT NULL,
        exit_codes TEXT NOT NULL
    );
    CREATE INDEX usage_ended_at ON usage (ended_at)
    """,
]



def _upsert(table: str, columns: str, keys: str) -> str:
    names = [c.strip() for c in columns.split(",")]
    key_set = {k.strip() for k in keys.split(",")}
    updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in names if c not in key_set)
    return (f"INSERT INTO {table} ({columns}) VALUES ({sql.marks('%s', columns)}) "
            f"ON CONFLICT ({keys}) DO UPDATE SET {updates}")


SQL = sql.Statements("%s", _upsert)


def _without_password(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


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
        self.full = f"the database server's disk is full ({_without_password(self.url)}, schema {self.schema})"
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
        return sql.load(self._db)

    def write(self, batch: WriteBatch) -> None:
        """Apply the batch in one transaction. The guard, if set, runs first inside it (the
        leader lease's fencing check) and may raise to abort the whole batch."""
        try:
            with self._db.transaction(), self._db.cursor() as cur:
                if self.guard is not None:
                    self.guard(cur)
                sql.write(cur, SQL, batch)
        except psycopg.errors.DiskFull as e:  # SQLSTATE 53100; the transaction was rolled back
            raise DiskFull.at(self.full) from e

    def history(self, job_id: int, task_id: int | None = None, instance_id: int | None = None) -> list[HistoryRecord]:
        return sql.history(self._db, SQL, job_id, task_id, instance_id)

    def usage_report(self, query: UsageQuery) -> UsageReport:
        # A connection of its own, so a report never waits for (or holds up) the writer's.
        with psycopg.connect(self.url, autocommit=True) as db:
            db.execute(f'SET search_path TO "{self.schema}"')
            return sql.usage_report(db, "%s", query)

    def close(self) -> None:
        self._db.close()

