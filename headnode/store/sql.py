"""The SQL both backends share: reading the whole state back, applying a WriteBatch, reading
history and usage reports. The backends differ only in dialect (the parameter mark, how a row
replaces another), which `Statements` takes, and in connecting, migrating and opening a
transaction, which each store keeps. Statements are built once per store, not on every commit.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from headnode.store.base import (
    HISTORY_COLUMNS,
    INSTANCE_COLUMNS,
    JOB_COLUMNS,
    NODE_COLUMNS,
    TASK_COLUMNS,
    USAGE_COLUMNS,
    HistoryRecord,
    InstanceRecord,
    JobRecord,
    Loaded,
    NodeRecord,
    TaskRecord,
    TemplateRecord,
    UsageQuery,
    UsageRecord,
    UsageReport,
    UsageRow,
    WriteBatch,
    history_record_of,
    history_row,
    instance_row,
    job_row,
    node_row,
    task_row,
    task_update_row,
    usage_row,
)

TEMPLATE_COLUMNS = "name, owner, created_at, body"
# Rows of a deleted job, by table (not its usage: accounting outlives the job).
_JOB_TABLES = (("jobs", "id"), ("tasks", "job_id"), ("instances", "job_id"), ("history", "job_id"))

# (table, columns, key columns) -> an INSERT that replaces the row with the same key.
Upsert = Callable[[str, str, str], str]


def marks(mark: str, columns: str) -> str:
    return ",".join([mark] * (columns.count(",") + 1))


class Statements:
    def __init__(self, mark: str, upsert: Upsert) -> None:
        self.mark = mark
        self.delete_job = [f"DELETE FROM {table} WHERE {column} = {mark}" for table, column in _JOB_TABLES]
        self.job = upsert("jobs", JOB_COLUMNS, "id")
        self.task = upsert("tasks", TASK_COLUMNS, "job_id, task_id")
        # A plain UPDATE for tasks written without their spec: an upsert would have to carry
        # the spec, and SQLite checks NOT NULL on an upsert's values before the conflict.
        self.task_update = ("UPDATE tasks SET state=?, reason=?, unstarted=?, cursor=?, ahead=?, requeued=?, "
                            "started_at=?, ended_at=? WHERE job_id=? AND task_id=?").replace("?", mark)
        self.instance = upsert("instances", INSTANCE_COLUMNS, "job_id, task_id, instance_id")
        self.node = upsert("nodes", NODE_COLUMNS, "name")
        self.history = f"INSERT INTO history ({HISTORY_COLUMNS}) VALUES ({marks(mark, HISTORY_COLUMNS)})"
        self.template = upsert("templates", TEMPLATE_COLUMNS, "name")
        self.delete_template = f"DELETE FROM templates WHERE name = {mark}"
        self.meta = upsert("meta", "key, value", "key")
        self.delete_node = f"DELETE FROM nodes WHERE name = {mark}"
        self.usage = upsert("usage", USAGE_COLUMNS, "job_id")


def load(db: Any) -> Loaded:
    """Everything, from a connection or cursor (sqlite3 or psycopg)."""
    jobs = [JobRecord(*row) for row in db.execute(f"SELECT {JOB_COLUMNS} FROM jobs ORDER BY id")]
    tasks = [TaskRecord(*row) for row in db.execute(f"SELECT {TASK_COLUMNS} FROM tasks ORDER BY job_id, task_id")]
    instances = [  # SQLite gives the boolean `holding` back as an integer
        InstanceRecord(*r[:7], bool(r[7]), *r[8:])
        for r in db.execute(f"SELECT {INSTANCE_COLUMNS} FROM instances ORDER BY job_id, task_id, instance_id")
    ]
    nodes = [NodeRecord(*row) for row in db.execute(f"SELECT {NODE_COLUMNS} FROM nodes ORDER BY name")]
    templates = [TemplateRecord(*row) for row in db.execute(f"SELECT {TEMPLATE_COLUMNS} FROM templates ORDER BY name")]
    meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
    return Loaded(jobs, tasks, instances, nodes, templates, meta)


def write(cur: Any, sql: Statements, batch: WriteBatch) -> None:
    """Apply the batch inside the transaction the caller has opened."""
    if batch.deleted_jobs:
        ids = [(i,) for i in batch.deleted_jobs]
        for statement in sql.delete_job:
            cur.executemany(statement, ids)
    if batch.jobs:
        cur.executemany(sql.job, [job_row(j) for j in batch.jobs.values()])
    if batch.tasks:
        created = [task_row(t) for t in batch.tasks.values() if t.spec is not None]
        updated = [task_update_row(t) for t in batch.tasks.values() if t.spec is None]
        if created:
            cur.executemany(sql.task, created)
        if updated:
            cur.executemany(sql.task_update, updated)
    if batch.instances:
        cur.executemany(sql.instance, [instance_row(i) for i in batch.instances.values()])
    if batch.deleted_nodes:
        cur.executemany(sql.delete_node, [(n,) for n in batch.deleted_nodes])
    if batch.nodes:
        cur.executemany(sql.node, [node_row(n) for n in batch.nodes.values()])
    if batch.history:
        cur.executemany(sql.history, [history_row(h) for h in batch.history])
    for name, template in batch.templates.items():
        if template is None:
            cur.execute(sql.delete_template, (name,))
        else:
            cur.execute(sql.template, (template.name, template.owner, template.created_at, template.body))
    if batch.meta:
        cur.executemany(sql.meta, list(batch.meta.items()))
    if batch.usage:
        cur.executemany(sql.usage, [usage_row(u) for u in batch.usage.values()])


def history(db: Any, sql: Statements, job_id: int, task_id: int | None, instance_id: int | None
            ) -> list[HistoryRecord]:
    where, args = f"job_id = {sql.mark}", [job_id]
    if task_id is not None:
        where += f" AND task_id = {sql.mark}"
        args.append(task_id)
    if instance_id is not None:
        where += f" AND instance_id = {sql.mark}"
        args.append(instance_id)
    return [history_record_of(row) for row in db.execute(
        f"SELECT {HISTORY_COLUMNS} FROM history WHERE {where} ORDER BY seq", args)]


_GROUPS = {"owner": "owner", "project": "project"}  # what a report may group by, besides job
_SUMS = ("COUNT(*), COALESCE(SUM(units), 0), COALESCE(SUM(failed), 0), COALESCE(SUM(core_seconds), 0), "
         "COALESCE(SUM(wall_seconds), 0), COALESCE(MAX(max_memory_mb), 0), COALESCE(SUM(nonzero_exits), 0)")


def usage_report(db: Any, mark: str, q: UsageQuery) -> UsageReport:
    """Aggregate in the database (GROUP BY): the usage table may hold years of jobs."""
    if q.by != "job" and q.by not in _GROUPS:
        raise ValueError(f"usage reports group by owner, project or job, not {q.by!r}")
    where, args = [], []
    for clause, value in (("ended_at >= ", q.since), ("ended_at < ", q.until), ("owner = ", q.owner or None),
                          ("project = ", q.project or None)):
        if value is not None:
            where.append(clause + mark)
            args.append(value)
    condition = f" WHERE {' AND '.join(where)}" if where else ""
    limit = f" LIMIT {int(q.limit) + 1}"  # one more than asked tells whether there were more
    if q.by == "job":
        records = [UsageRecord(*row) for row in db.execute(
            f"SELECT {USAGE_COLUMNS} FROM usage{condition} ORDER BY ended_at, job_id{limit}", args)]
        rows = [_row_of_record(r) for r in records]
    else:
        column = _GROUPS[q.by]
        grouped = f"SELECT {column}, {_SUMS} FROM usage{condition} GROUP BY {column} ORDER BY {column}{limit}"
        rows = [_row(row[0], row[1:]) for row in db.execute(grouped, args)]
    total = _row("", db.execute(f"SELECT {_SUMS} FROM usage{condition}", args).fetchone())
    return UsageReport(rows[:q.limit], total, len(rows) > q.limit)


def _row(key: str, sums: tuple) -> UsageRow:
    # int()/float(): PostgreSQL sums integers into NUMERIC, which psycopg gives as Decimal.
    jobs, units, failed, core_seconds, wall_seconds, memory, nonzero = sums
    return UsageRow(str(key), int(jobs), int(units), int(failed), float(core_seconds), float(wall_seconds),
                    int(memory), int(nonzero))


def _row_of_record(r: UsageRecord) -> UsageRow:
    return UsageRow(str(r.job_id), 1, r.units, r.failed, r.core_seconds, r.wall_seconds, r.max_memory_mb,
                    r.nonzero_exits, r)
