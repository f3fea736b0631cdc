"""Compute nodes as the head node sees them, and what it tells them to do.

A node's `allocations` are the head's decided placements that still hold resources; they
are released only when the agent reports the process gone (or the node is declared lost),
so a cancelled task's cores are not handed out while its process is still dying. A
multi-node run holds a `secondary` allocation on each of its other nodes: no process runs
there under Shoal's eye (MPI starts its ranks), so agents never report it and it is
released with the run. `reserved` holds job-level reservations (scheduling/pools.py): a
pooled allocation is charged to the node only beyond the cores its job reserved.

`Node.shape_changes` counts every change, on any node, to what decides whether a task could
ever run on it (its size, state, connection, groups and labels), new nodes included: the
allocator keeps tasks no node could run set aside until it moves, and this costs nothing per
pass, where comparing every node's fields each pass cost 0.4 ms at 1,000 nodes.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any, ClassVar

from common.ids import TaskId
from common.resources import ZERO, Resources
from headnode.domain.launch import RunSpec
from headnode.domain.states import NodeState

HISTORY = 20  # state changes kept per node
HEARTBEATS_KEPT = 60


@dataclass(slots=True, eq=False)
class Allocation:
    task: TaskId
    attempt: int
    resources: Resources
    # Sequence number of the Launch message in the node's current session; 0 = not sent yet.
    launch_seq: int = 0
    started: bool = False
    # What counts against the node's capacity; None: all of `resources`.
    charge: Resources | None = None
    secondary: bool = False
    pool: int = 0  # the job whose reservation it runs in (0: none)
    # Dispatched ahead: sent while the node had no room for it; its agent holds it until it
    # has (not stored: a restarted head treats it as any other allocation).
    ahead: bool = False
    # Not reported by a new agent on an emptied state dir, which cannot know what its
    # predecessor started: it may still run there until its lease lapses, so it is held until
    # node_lost_after past this (monotonic) time, when the head last heard of it; 0: not so.
    doubtful_since: float = 0.0

    @property
    def charged(self) -> Resources:
        return self.resources if self.charge is None else self.charge


_SHAPE = frozenset({"capacity", "state", "connected", "groups", "labels", "agent_groups", "agent_labels",
                    "condition"})


@dataclass(slots=True, eq=False)
class Node:
    shape_changes: ClassVar[int] = 0
    name: str
    capacity: Resources
    state: NodeState = NodeState.ONLINE
    reason: str = ""
    connected: bool = False
    hostname: str = ""
    agent_version: str = ""
    # The agent process the current or last session belongs to.
    instance_id: str = ""
    registered_at: float = 0.0
    last_heartbeat: float = 0.0
    # Monotonic time the head last heard from the agent (not stored; reset at start-up).
    seen_at: float = 0.0
    # When a task on it last ended (the head's clock; 0: none since the head started).
    last_exit: float = 0.0
    allocations: dict[TaskId, Allocation] = field(default_factory=dict)
    used: Resources = ZERO
    # Set by admins at the head node (stored), and declared by the agent (not stored).
    groups: frozenset[str] = frozenset()
    labels: frozenset[str] = frozenset()
    agent_groups: frozenset[str] = frozenset()
    agent_labels: frozenset[str] = frozenset()
    # Why the agent says the node should take no new work now ("spool disk full: ..."); set and
    # cleared by the agent in every heartbeat, not stored. Its running tasks are not touched.
    condition: str = ""
    # Job id -> what its reservation holds here (part of `used`).
    reserved: dict[int, Resources] = field(default_factory=dict)
    state_at: float = 0.0
    # The latest state changes, oldest first: (time, state, reason).
    history: list[tuple[float, str, str]] = field(default_factory=list)
    # The latest heartbeats: (time, tasks the agent reported running). Not stored: for the
    # dashboard's node page, which shows whether an agent beats steadily.
    heartbeats: deque[tuple[float, int]] = field(default_factory=lambda: deque(maxlen=HEARTBEATS_KEPT))

    def __setattr__(self, name: str, value: Any) -> None:
        if name in _SHAPE:
            Node.shape_changes += 1
        object.__setattr__(self, name, value)

    @property
    def free(self) -> Resources:
        return self.capacity - self.used

    @property
    def all_groups(self) -> frozenset[str]:
        return self.groups | self.agent_groups

    @property
    def all_labels(self) -> frozenset[str]:
        return self.labels | self.agent_labels

    def jobs(self) -> set[int]:
        out = {t.job for t in self.allocations}
        out.update(self.reserved)
        return out

    def running(self) -> int:
        """Runs whose process is on this node."""
        return sum(1 for a in self.allocations.values() if not a.secondary)

    @property
    def schedulable(self) -> bool:
        return self.state is NodeState.ONLINE and self.connected and not self.condition

    def unavailable_reason(self) -> str:
        if self.state is not NodeState.ONLINE:
            return self.state.value
        if not self.connected:
            return "disconnected"
        return self.condition

    def allocate(self, alloc: Allocation) -> None:
        self.allocations[alloc.task] = alloc
        self.used = self.used + alloc.charged

    def release(self, task: TaskId) -> Allocation | None:
        alloc = self.allocations.pop(task, None)
        if alloc is not None:
            self.used = self.used - alloc.charged
        return alloc

    def reserve(self, job: int, resources: Resources) -> None:
        self.reserved[job] = self.reserved.get(job, ZERO) + resources
        self.used = self.used + resources

    def unreserve(self, job: int, resources: Resources | None = None) -> None:
        held = self.reserved.get(job)
        if held is None:
            return
        give = held if resources is None else resources
        left = held - give
        if left == ZERO:
            self.reserved.pop(job)
        else:
            self.reserved[job] = left
        self.used = self.used - give

    def set_state(self, state: NodeState, reason: str, now: float) -> None:
        self.state = state
        self.reason = reason
        self.state_at = now
        self.history.append((now, state.value, reason))
        del self.history[:-HISTORY]


# Instructions the head sends to an agent (converted to HeadMessage by the API layer).


# Values, never changed once built; not frozen= (see headnode/scheduling/snapshot.py: 4-5x cheaper to build).
@dataclass(slots=True)
class Launch:
    task: TaskId
    attempt: int
    run: RunSpec


@dataclass(slots=True)
class Kill:
    task: TaskId
    attempt: int
    reason: str


@dataclass(slots=True)
class AckExit:
    task: TaskId
    attempt: int


@dataclass(slots=True)
class HeartbeatAck:
    """The answer to a heartbeat, which renews the node's task lease."""

    number: int


Instruction = Launch | Kill | AckExit | HeartbeatAck


# What an agent reports (converted from AgentMessage by the API layer).


@dataclass(slots=True)
class TaskReport:
    task: TaskId
    attempt: int
    running: bool
    exit_code: int = 0
    signal: int = 0
    error: str = ""
    stdout_bytes: int = 0
    stderr_bytes: int = 0
    runtime_exceeded: bool = False
    out_of_memory: bool = False
    queued: bool = False  # dispatched ahead and held by the agent, not started (running is True)
    fenced: bool = False  # stopped by its node because its lease lapsed


@dataclass(slots=True)
class Hello:
    node_name: str
    instance_id: str
    capacity: Resources
    hostname: str = ""
    agent_version: str = ""
    tasks: tuple[TaskReport, ...] = ()
    groups: frozenset[str] = frozenset()
    labels: frozenset[str] = frozenset()
    fresh_state: bool = False  # the agent's state dir was new: it cannot report a predecessor's tasks
    condition: str = ""


@dataclass(slots=True)
class Heartbeat:
    acked_seq: int
    tasks: tuple[TaskReport, ...] = ()
    number: int = 0
    condition: str = ""


@dataclass(slots=True)
class Started:
    task: TaskId
    attempt: int
    pid: int
    at: float


@dataclass(slots=True)
class Output:
    task: TaskId
    attempt: int
    stream: str  # "stdout" | "stderr"
    offset: int
    data: bytes


@dataclass(slots=True)
class Exited:
    task: TaskId
    attempt: int
    exit_code: int
    signal: int
    error: str
    at: float
    stdout_bytes: int = 0
    stderr_bytes: int = 0
    runtime_exceeded: bool = False
    out_of_memory: bool = False
    fenced: bool = False


AgentEvent = Heartbeat | Started | Output | Exited
