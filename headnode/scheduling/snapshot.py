"""The scheduler's input: a picture of the nodes and the queue at one moment.

Nothing changes these once built, but they are plain slots dataclasses, not frozen ones (as
are the core's Placement, Plan and Rejection): a pass builds them by the thousand on a big
cluster, and a frozen dataclass costs 4-5 times as much to build (2.0 against 0.43 us for
six fields here), since each field is set through object.__setattr__.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from common.constraints import NONE, Constraints
from common.ids import TaskId
from common.resources import Resources


@dataclass(slots=True)
class NodeView:
    name: str
    capacity: Resources
    used: Resources
    # Non-empty: the node takes no new work, and this says why ("Draining", "disconnected").
    unavailable: str = ""
    groups: frozenset[str] = frozenset()
    labels: frozenset[str] = frozenset()
    # Jobs with work (or a reservation) on the node, and the one holding it exclusively (0: none).
    jobs: frozenset[int] = frozenset()
    exclusive_job: int = 0

    @property
    def free(self) -> Resources:
        return self.capacity - self.used


@dataclass(slots=True)
class TaskRequest:
    """A task with `count` instances waiting, each needing `resources` (cores: the minimum)."""

    id: TaskId
    resources: Resources
    count: int = 1
    max_cores: int = 0  # up to this many cores when free; 0: the minimum
    exclusive: bool = False  # a whole node each
    gang: bool = False  # all `count` instances start together or none does
    constraints: Constraints = NONE  # the job's and the task's, merged
    job_exclusive: bool = False  # the job shares no node with other jobs
    nodes: int = 0  # >0: each instance takes this many whole nodes at once
    runtime: float = 0.0  # its runtime limit in seconds; 0: none (the policy's default is assumed)
    owner: str = ""
    level: int = 2  # priority level, 0 (Lowest) .. 4 (Highest)

    @property
    def job(self) -> int:
        return self.id.job


@dataclass(slots=True)
class Running:
    """A run holding resources: where, until when at the latest, and whose."""

    task: TaskId
    parts: tuple[tuple[str, Resources], ...]  # (node, what it holds there); first: its process
    ends: float  # start + runtime limit (or the default); a past time: it may end any moment
    owner: str = ""
    level: int = 2
    # Told to stop (cancelled, preempted): its resources come back as soon as it is gone.
    dying: bool = False


@dataclass(slots=True)
class PoolView:
    """A job's own allocation (a job-level reservation) and how much of it is in use."""

    job: int
    unit: str  # "cores" or "nodes"
    minimum: int
    maximum: int
    # node -> reserved there (cores only; a whole node's capacity in the nodes unit)
    held: Mapping[str, Resources] = field(default_factory=dict)
    # node -> what its running instances use of the pool there (cores only in the cores unit)
    in_use: Mapping[str, Resources] = field(default_factory=dict)
    started: bool = False  # the job already holds (or held) its minimum and is Running
    pending: bool = False  # it has instances still to run (queued or waiting on dependencies)
    ended: bool = False  # the job is over: release everything
    constraints: Constraints = NONE
    exclusive: bool = False


@dataclass(slots=True)
class Snapshot:
    nodes: tuple[NodeView, ...]
    # Queued tasks in queue order (priority, then submission). May be a lazy iterable: the
    # core reads it once, in order, and stops where the policy stops the pass, so a queue of
    # 100,000 tasks behind a blocked one costs nothing.
    queue: Iterable[TaskRequest]
    pools: Mapping[int, PoolView] = field(default_factory=dict)
    # What runs now (for backfill reservations, owner limits and preemption). May be lazy:
    # read at most once, and only when the policy needs it.
    running: Iterable[Running] = ()
