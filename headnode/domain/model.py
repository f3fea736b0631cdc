"""Jobs, tasks and instances as the head node holds them in memory (no protobuf, no I/O).

A Job owns Tasks numbered from 1 (HPC Pack's JobTaskId). A Task runs as one or more
Instances, the unit that is placed on a node and runs a process: a plain task has the one
instance 0; a parametric sweep has instances 1..N, one per value; a multi-instance task has
instances 1..N that start together. Instances exist as objects only once they have been
placed: the ones that never ran share the task's `unstarted` state and are counted, not
stored, so a sweep of 100,000 instances costs one spec and a few numbers until it runs.

Counts by state are kept incrementally on the task and on the job (the job counts run
units), so deriving states and listing never walks every instance.
"""

from __future__ import annotations

import enum
from collections import Counter, deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from common.constraints import NONE, Constraints
from common.ids import TaskId
from common.resources import Generic, Resources
from headnode.domain.states import JobState, TaskState

DEFAULT_TASK_RESOURCES = Resources(cores=1, memory_mb=0)
DEFAULT_MAX_RETRIES = 3

NORMAL_PRIORITY = 2000  # level index * 1000 + offset within the level (HPC Pack's expanded priority)


class DependencyKind(enum.Enum):
    AFTER_OK = "after-ok"
    AFTER_ANY = "after-any"
    AFTER_NOT_OK = "after-not-ok"


# Values, never changed once built; not frozen= (see headnode/scheduling/snapshot.py: 4-5x cheaper to build).
@dataclass(slots=True)
class JobDependency:
    kind: DependencyKind
    job_id: int


@dataclass(slots=True)
class Sweep:
    start: int
    end: int
    step: int = 1

    @property
    def count(self) -> int:
        return (self.end - self.start) // self.step + 1

    def value(self, instance: int) -> int:
        return self.start + (instance - 1) * self.step


@dataclass(slots=True)
class TaskSpec:
    command_line: str
    name: str = ""
    resources: Resources = DEFAULT_TASK_RESOURCES  # cores: the minimum
    max_cores: int = 0  # 0: the minimum
    environment: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    working_directory: str = ""
    stdin_path: str = ""
    stdout_path: str = ""
    stderr_path: str = ""
    depends_on: tuple[str, ...] = ()
    runtime_limit: float = 0.0  # seconds; 0: none
    valid_exit_codes: tuple[tuple[int, int], ...] = ()  # inclusive ranges; empty: only 0
    rerunnable: bool = True
    max_retries: int = DEFAULT_MAX_RETRIES
    exclusive: bool = False
    sweep: Sweep | None = None
    instances: int = 0  # >1: multi-instance
    placement: Constraints = NONE
    nodes: int = 0  # >0: each instance takes this many whole nodes (multi-node, MPI-style)

    @property
    def multi(self) -> bool:
        return self.sweep is None and self.instances > 1

    @property
    def count(self) -> int:
        if self.sweep is not None:
            return self.sweep.count
        return self.instances if self.instances > 1 else 1

    @property
    def plain(self) -> bool:
        return self.count == 1 and self.sweep is None

    def instance_id(self, index: int) -> int:
        """The id of the index-th instance (0-based): 0 for a plain task, else index + 1."""
        return 0 if self.plain else index + 1

    def index_of(self, instance_id: int) -> int:
        return 0 if self.plain else instance_id - 1

    def has_instance(self, instance_id: int) -> bool:
        return instance_id == 0 if self.plain else 1 <= instance_id <= self.count

    def succeeded(self, exit_code: int) -> bool:
        if not self.valid_exit_codes:
            return exit_code == 0
        return any(lo <= exit_code <= hi for lo, hi in self.valid_exit_codes)

    @property
    def cores_max(self) -> int:
        return max(self.max_cores, self.resources.cores)


RESERVE_CORES = "cores"
RESERVE_NODES = "nodes"


@dataclass(slots=True)
class Reservation:
    """A job-level allocation of `minimum` to `maximum` cores or whole nodes (HPC Pack's
    job unit type with MinCores/MaxCores or MinNodes/MaxNodes)."""

    unit: str
    minimum: int
    maximum: int


@dataclass(slots=True)
class JobSpec:
    """Job-level fields. Tasks come with a submission and then live in Job.tasks."""

    name: str = ""
    project: str = ""
    priority: int = NORMAL_PRIORITY
    runtime_limit: float = 0.0
    fail_on_task_failure: bool = False
    dependencies: tuple[JobDependency, ...] = ()
    cancel_on_unsatisfiable_dependency: bool = False
    run_dependents_after_failure: bool = False
    hold: bool = False
    placement: Constraints = NONE
    exclusive: bool = False  # its nodes run no other job's work
    reservation: Reservation | None = None
    tasks: tuple[TaskSpec, ...] = ()


@dataclass(slots=True)
class Change:
    """One status change: a history entry for the store and an event for watchers."""

    job_id: int
    task_id: int  # 0 when the change is to the job itself
    at: float
    state: str
    reason: str
    # 1, 2, 3... within the job: orders its history and lets a watcher drop duplicates.
    seq: int = 0
    instance_id: int = 0  # for changes to one instance of a sweep or multi-instance task


@dataclass(slots=True, eq=False)
class Instance:
    id: TaskId
    state: TaskState
    reason: str = ""
    # Placements so far; the current placement is attempt `attempt` on `node`.
    attempt: int = 0
    node: str = ""
    # Resources are held on `node` from placement until the agent reports the process gone.
    holding: bool = False
    exit_code: int | None = None
    signal: int = 0
    started_at: float | None = None
    ended_at: float | None = None
    retries: int = 0  # requeues after a lost node
    # What the current placement was given (cores between the task's minimum and maximum).
    cores: int = 0
    memory_mb: int = 0
    generic: Generic = ()
    # A multi-node run's other nodes and the cores it holds on each (it runs on `node`).
    hosts: tuple[tuple[str, int], ...] = ()


@dataclass(slots=True, eq=False)
class Task:
    id: TaskId  # instance 0
    spec: TaskSpec
    state: TaskState = TaskState.CONFIGURING
    reason: str = ""
    # Placed at least once (materialized), by instance id.
    instances: dict[int, Instance] = field(default_factory=dict)
    # State of the instances never placed: spec.instance_id(cursor) onwards.
    unstarted: TaskState = TaskState.CONFIGURING
    cursor: int = 0
    # Instances at or past the cursor that were materialized out of order (cancelled one by one).
    ahead: int = 0
    # Materialized instances waiting to be placed again (requeued), in order.
    requeued: deque[int] = field(default_factory=deque)
    counts: Counter[TaskState] = field(default_factory=Counter)
    started_at: float | None = None
    ended_at: float | None = None
    # Its key in the cluster's queue while it is there (not stored).
    queue_key: tuple[int, int, int] | None = None

    @property
    def unstarted_count(self) -> int:
        return self.spec.count - self.cursor - self.ahead

    @property
    def pending(self) -> int:
        """Instances waiting to be placed."""
        fresh = self.unstarted_count if self.unstarted is TaskState.QUEUED else 0
        return len(self.requeued) + fresh

    def instance_state(self, instance_id: int) -> TaskState:
        inst = self.instances.get(instance_id)
        return inst.state if inst is not None else self.unstarted

    def run(self) -> Instance | None:
        """The instance of a plain task, once it has run."""
        return self.instances.get(0) if self.spec.plain else None


@dataclass(slots=True, eq=False)
class Job:
    id: int
    owner: str
    spec: JobSpec  # tasks are kept in `tasks`, not in spec.tasks
    state: JobState
    created_at: float
    submitted_at: float | None = None
    started_at: float | None = None
    ended_at: float | None = None
    reason: str = ""
    held_by: str = ""  # non-empty: held (and why)
    # Sequence number of the job's latest Change.
    history_seq: int = 0
    tasks: dict[int, Task] = field(default_factory=dict)
    # Run units (instances) by state, over all tasks.
    counts: Counter[TaskState] = field(default_factory=Counter)
    # Derived from the tasks' names and depends_on when the job is submitted (not stored):
    # task number -> numbers of the tasks that depend on it, and name -> task numbers.
    dependents: dict[int, tuple[int, ...]] = field(default_factory=dict)
    by_name: dict[str, tuple[int, ...]] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def total(self) -> int:
        return sum(t.spec.count for t in self.tasks.values())

    @property
    def ended_units(self) -> int:
        return self.counts[TaskState.FINISHED] + self.counts[TaskState.FAILED] + self.counts[TaskState.CANCELLED]

    def change(self, task_id: int, at: float, state: str, reason: str, instance_id: int = 0) -> Change:
        self.history_seq += 1
        return Change(self.id, task_id, at, state, reason, self.history_seq, instance_id)

    def tasks_named(self, name: str) -> list[Task]:
        return [self.tasks[n] for n in self.by_name.get(name, ())]
