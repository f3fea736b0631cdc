"""Compute nodes as the head node sees them, and what it tells them to do.

A node's `allocations` are the head's decided placements that still hold resources; they
are released only when the agent reports the process gone (or the node is declared lost),
so a cancelled task's cores are not handed out while its process is still dying.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from common.ids import TaskId
from common.resources import ZERO, Resources
from headnode.domain.launch import RunSpec
from headnode.domain.states import NodeState


@dataclass(slots=True, eq=False)
class Allocation:
    task: TaskId
    attempt: int
    resources: Resources
    # Sequence number of the Launch message in the node's current session; 0 = not sent yet.
    launch_seq: int = 0
    started: bool = False


@dataclass(slots=True, eq=False)
class Node:
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
    allocations: dict[TaskId, Allocation] = field(default_factory=dict)
    used: Resources = ZERO

    @property
    def free(self) -> Resources:
        return self.capacity - self.used

    @property
    def schedulable(self) -> bool:
        return self.state is NodeState.ONLINE and self.connected

    def unavailable_reason(self) -> str:
        if self.state is not NodeState.ONLINE:
            return self.state.value
        if not self.connected:
            return "disconnected"
        return ""

    def allocate(self, alloc: Allocation) -> None:
        self.allocations[alloc.task] = alloc
        self.used = self.used + alloc.resources

    def release(self, task: TaskId) -> Allocation | None:
        alloc = self.allocations.pop(task, None)
        if alloc is not None:
            self.used = self.used - alloc.resources
        return alloc


# Instructions the head sends to an agent (converted to HeadMessage by the API layer).


@dataclass(frozen=True, slots=True)
class Launch:
    task: TaskId
    attempt: int
    run: RunSpec


@dataclass(frozen=True, slots=True)
class Kill:
    task: TaskId
    attempt: int
    reason: str


@dataclass(frozen=True, slots=True)
class AckExit:
    task: TaskId
    attempt: int


Instruction = Launch | Kill | AckExit


# What an agent reports (converted from AgentMessage by the API layer).


@dataclass(frozen=True, slots=True)
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


@dataclass(frozen=True, slots=True)
class Hello:
    node_name: str
    instance_id: str
    capacity: Resources
    hostname: str = ""
    agent_version: str = ""
    tasks: tuple[TaskReport, ...] = ()


@dataclass(frozen=True, slots=True)
class Heartbeat:
    acked_seq: int
    tasks: tuple[TaskReport, ...] = ()


@dataclass(frozen=True, slots=True)
class Started:
    task: TaskId
    attempt: int
    pid: int
    at: float


@dataclass(frozen=True, slots=True)
class Output:
    task: TaskId
    attempt: int
    stream: str  # "stdout" | "stderr"
    offset: int
    data: bytes


@dataclass(frozen=True, slots=True)
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


AgentEvent = Heartbeat | Started | Output | Exited
