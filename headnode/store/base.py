"""The Store interface every backend implements, and the records it stores.

The head node keeps its state in memory and writes every change through to the store in
batches (services/journal.py); at start-up it loads the state back. Records are immutable
snapshots made on the event loop, so the writer thread never sees an object that is still
changing. A backend must apply a WriteBatch atomically: all of it or none of it.
The contract suite in tests/contract runs against every backend.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Protocol


# Values, never changed once built; not frozen= (see headnode/scheduling/snapshot.py: 4-5x cheaper to build).
@dataclass(slots=True)
class JobRecord:
    id: int
    owner: str
    state: str
    reason: str
    created_at: float
    submitted_at: float | None
    started_at: float | None
    ended_at: float | None
    held_by: str
    history_seq: int
    spec: str  # JSON of the job-level spec fields


@dataclass(slots=True)
class TaskRecord:
    job_id: int
    task_id: int
    state: str
    reason: str
    unstarted: str  # state of the instances that never ran
    cursor: int
    ahead: int
    requeued: str  # JSON list of instance ids waiting to run again
    started_at: float | None
    ended_at: float | None
    # JSON of the task spec; None in updates that leave the spec as stored.
    spec: str | None


@dataclass(slots=True)
class InstanceRecord:
    job_id: int
    task_id: int
    instance_id: int
    state: str
    reason: str
    attempt: int
    node: str
    holding: bool
    exit_code: int | None
    signal: int
    started_at: float | None
    ended_at: float | None
    retries: int
    cores: int
    memory_mb: int
    # JSON: named resources given ("generic") and a multi-node run's other nodes ("hosts").
    detail: str = "{}"


@dataclass(slots=True)
class NodeRecord:
    name: str
    state: str
    reason: str
    cores: int
    memory_mb: int
    hostname: str
    agent_version: str
    # The agent process of the last session: a reconnect of the same process may be sent
    # launches it missed; a new process cannot have them.
    instance_id: str
    registered_at: float
    last_heartbeat: float
    # JSON: named resources, admin-set groups and labels, state time and recent state history.
    detail: str = "{}"


@dataclass(slots=True)
class HistoryRecord:
    job_id: int
    task_id: int  # 0: the job itself
    at: float
    state: str
    reason: str
    seq: int  # the Change's sequence number within its job
    instance_id: int = 0


@dataclass(slots=True)
class TemplateRecord:
    name: str
    owner: str
    created_at: float
    body: str  # the template as the API defines it (JSON); the store does not look inside


@dataclass(slots=True)
class UsageRecord:
    """What an ended job used, kept after the job itself is purged (accounting).

    Written with the job's end state, in the same batch; a job that is requeued and ends
    again replaces its record (the key is the job id), so it is counted once, with what its
    instances used in their latest runs."""

    job_id: int
    owner: str
    project: str
    name: str
    state: str  # the end state: Finished, Failed or Cancelled
    submitted_at: float | None
    started_at: float | None
    ended_at: float
    tasks: int
    units: int  # run units: plain tasks and the instances of sweeps and multi-instance tasks
    failed: int  # run units that Failed
    core_seconds: float  # over every run unit: cores held x (ended - started) of its latest run
    wall_seconds: float  # the job's ended - started (0 if it never started)
    max_memory_mb: int  # the most memory one run unit was given (what was requested; peaks are not known)
    nonzero_exits: int  # run units whose process exited non-zero or was killed by a signal
    exit_codes: str  # the distinct exit codes seen, ascending, comma-separated (at most 16)


@dataclass(slots=True)
class UsageQuery:
    """Usage of the jobs that ended in [since, until), by owner, project or job."""

    by: str = "owner"  # owner | project | job
    since: float | None = None
    until: float | None = None
    owner: str = ""  # only this owner's jobs
    project: str = ""  # only this project's jobs
    limit: int = 10_000  # at most this many rows


@dataclass(slots=True)
class UsageRow:
    key: str  # the owner, the project, or the job id
    jobs: int
    units: int
    failed: int
    core_seconds: float
    wall_seconds: float
    max_memory_mb: int
    nonzero_exits: int
    record: UsageRecord | None = None  # by job: the job's own record


@dataclass(slots=True)
class UsageReport:
    rows: list[UsageRow]
    total: UsageRow  # over every matching job, not only the rows returned
    truncated: bool  # more rows matched than the query's limit


@dataclass
class WriteBatch:
    """Upserts keyed by identity (a later record replaces an earlier one), appends, deletes."""

    jobs: dict[int, JobRecord] = field(default_factory=dict)
    tasks: dict[tuple[int, int], TaskRecord] = field(default_factory=dict)
    instances: dict[tuple[int, int, int], InstanceRecord] = field(default_factory=dict)
    nodes: dict[str, NodeRecord] = field(default_factory=dict)
    history: list[HistoryRecord] = field(default_factory=list)
    templates: dict[str, TemplateRecord | None] = field(default_factory=dict)  # None: delete
    deleted_jobs: set[int] = field(default_factory=set)  # with their tasks, instances, history
    meta: dict[str, str] = field(default_factory=dict)
    deleted_nodes: set[str] = field(default_factory=set)
    usage: dict[int, UsageRecord] = field(default_factory=dict)  # by job id; deleting a job keeps it

    def merge(self, later: WriteBatch) -> None:
        self.jobs.update(later.jobs)
        for key, record in later.tasks.items():
            earlier = self.tasks.get(key)
            if record.spec is None and earlier is not None and earlier.spec is not None:
                record = replace(record, spec=earlier.spec)
            self.tasks[key] = record
        self.instances.update(later.instances)
        self.nodes.update(later.nodes)
        self.history.extend(later.history)
        self.templates.update(later.templates)
        self.deleted_jobs |= later.deleted_jobs
        self.meta.update(later.meta)
        for name in later.deleted_nodes:
            self.nodes.pop(name, None)
        self.deleted_nodes = (self.deleted_nodes - set(later.nodes)) | later.deleted_nodes
        self.usage.update(later.usage)

    def __bool__(self) -> bool:
        return bool(self.jobs or self.tasks or self.instances or self.nodes or self.history or self.templates
                    or self.deleted_jobs or self.meta or self.deleted_nodes or self.usage)


@dataclass
class Loaded:
    jobs: list[JobRecord]
    tasks: list[TaskRecord]  # ordered by (job_id, task_id)
    instances: list[InstanceRecord]
    nodes: list[NodeRecord]
    templates: list[TemplateRecord]
    meta: dict[str, str]


class Store(Protocol):
    def load(self) -> Loaded:
        """Everything but history, as of the last committed batch."""

    def write(self, batch: WriteBatch) -> None:
        """Apply the batch atomically and durably (synchronous commit) before returning.
        Deletions apply before the upserts of the same batch."""

    def history(self, job_id: int, task_id: int | None = None, instance_id: int | None = None) -> list[HistoryRecord]:
        """The job's status changes in sequence order: all of them, or only those of one task
        (task_id; 0 is the job itself) and/or one instance (instance_id; 0 is the task level)."""

    def usage_report(self, query: UsageQuery) -> UsageReport:
        """Usage of ended jobs, purged or not, aggregated as the query asks. Safe to call from
        any thread while write() goes on: it reads on a connection of its own."""

    def close(self) -> None: ...


# Column orders and row tuples shared by the backends (each maps them to its own SQL).
JOB_COLUMNS = "id, owner, state, reason, created_at, submitted_at, started_at, ended_at, held_by, history_seq, spec"
TASK_COLUMNS = "job_id, task_id, state, reason, unstarted, cursor, ahead, requeued, started_at, ended_at, spec"
INSTANCE_COLUMNS = ("job_id, task_id, instance_id, state, reason, attempt, node, holding, exit_code, signal, "
                    "started_at, ended_at, retries, cores, memory_mb, detail")
NODE_COLUMNS = ("name, state, reason, cores, memory_mb, hostname, agent_version, instance_id, registered_at, "
                "last_heartbeat, detail")
HISTORY_COLUMNS = "job_id, seq, task_id, instance_id, at, state, reason"
USAGE_COLUMNS = ("job_id, owner, project, name, state, submitted_at, started_at, ended_at, tasks, units, "
                 "failed, core_seconds, wall_seconds, max_memory_mb, nonzero_exits, exit_codes")


def job_row(j: JobRecord) -> tuple:
    return (j.id, j.owner, j.state, j.reason, j.created_at, j.submitted_at, j.started_at, j.ended_at, j.held_by,
            j.history_seq, j.spec)


def task_row(t: TaskRecord) -> tuple:
    return (t.job_id, t.task_id, t.state, t.reason, t.unstarted, t.cursor, t.ahead, t.requeued, t.started_at,
            t.ended_at, t.spec)


def task_update_row(t: TaskRecord) -> tuple:
    """The columns a state change writes (all but the keys and the spec), then the keys."""
    return task_row(t)[2:10] + (t.job_id, t.task_id)


def instance_row(i: InstanceRecord) -> tuple:
    return (i.job_id, i.task_id, i.instance_id, i.state, i.reason, i.attempt, i.node, i.holding, i.exit_code,
            i.signal, i.started_at, i.ended_at, i.retries, i.cores, i.memory_mb, i.detail)


def node_row(n: NodeRecord) -> tuple:
    return (n.name, n.state, n.reason, n.cores, n.memory_mb, n.hostname, n.agent_version, n.instance_id,
            n.registered_at, n.last_heartbeat, n.detail)


def history_row(h: HistoryRecord) -> tuple:
    return (h.job_id, h.seq, h.task_id, h.instance_id, h.at, h.state, h.reason)


def usage_row(u: UsageRecord) -> tuple:
    return (u.job_id, u.owner, u.project, u.name, u.state, u.submitted_at, u.started_at, u.ended_at, u.tasks,
            u.units, u.failed, u.core_seconds, u.wall_seconds, u.max_memory_mb, u.nonzero_exits, u.exit_codes)


def history_record_of(row: tuple) -> HistoryRecord:
    job_id, seq, task_id, instance_id, at, state, reason = row
    return HistoryRecord(job_id, task_id, at, state, reason, seq, instance_id)
