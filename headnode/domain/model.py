"""Jobs and tasks as the head node holds them in memory (no protobuf, no I/O).

A Job owns its Tasks, numbered from 1 (HPC Pack's JobTaskId). The job keeps a count of its
tasks by state so that deriving the job's state and listing jobs never walks every task.
Task specs are immutable; the mutable fields are the observed and decided run state.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from types import MappingProxyType
from collections.abc import Mapping

from common.ids import TaskId
from common.resources import Resources
from headnode.domain.states import JobState, TaskState

DEFAULT_TASK_RESOURCES = Resources(cores=1, memory_mb=0)


@dataclass(frozen=True, slots=True)
class TaskSpec:
    command_line: str
    name: str = ""
    resources: Resources = DEFAULT_TASK_RESOURCES
    environment: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    working_directory: str = ""


@dataclass(frozen=True, slots=True)
class JobSpec:
    name: str = ""
    tasks: tuple[TaskSpec, ...] = ()


@dataclass(frozen=True, slots=True)
class Change:
    """One status change: a history entry for the store and an event for watchers."""

    job_id: int
    task_id: int  # 0 when the change is to the job itself
    at: float
    state: str
    reason: str
    # 1, 2, 3... within the job: orders its history and lets a watcher drop duplicates.
    seq: int = 0


@dataclass(slots=True, eq=False)
class Task:
    id: TaskId
    spec: TaskSpec
    state: TaskState = TaskState.QUEUED
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


@dataclass(slots=True, eq=False)
class Job:
    id: int
    owner: str
    name: str
    state: JobState
    created_at: float
    submitted_at: float | None = None
    started_at: float | None = None
    ended_at: float | None = None
    reason: str = ""
    # Sequence number of the job's latest Change.
    history_seq: int = 0
    tasks: dict[int, Task] = field(default_factory=dict)
    counts: Counter[TaskState] = field(default_factory=Counter)

    def change(self, task_id: int, at: float, state: str, reason: str) -> Change:
        self.history_seq += 1
        return Change(self.id, task_id, at, state, reason, self.history_seq)

    def add_task(self, task: Task) -> None:
        self.tasks[task.id.task] = task
        self.counts[task.state] += 1

    def set_task_state(self, task: Task, state: TaskState) -> None:
        self.counts[task.state] -= 1
        self.counts[state] += 1
        task.state = state

    @property
    def ended_tasks(self) -> int:
        return self.counts[TaskState.FINISHED] + self.counts[TaskState.FAILED] + self.counts[TaskState.CANCELLED]
