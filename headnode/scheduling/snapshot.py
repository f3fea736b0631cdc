"""The scheduler's input: a frozen picture of the nodes and the queue at one moment."""

from __future__ import annotations

from dataclasses import dataclass

from common.ids import TaskId
from common.resources import Resources


@dataclass(frozen=True, slots=True)
class NodeView:
    name: str
    capacity: Resources
    used: Resources
    # Non-empty: the node takes no new work, and this says why ("Unreachable", "disconnected").
    unavailable: str = ""

    @property
    def free(self) -> Resources:
        return self.capacity - self.used


@dataclass(frozen=True, slots=True)
class TaskRequest:
    """A task with `count` instances waiting, each needing `resources` (cores: the minimum)."""

    id: TaskId
    resources: Resources
    count: int = 1
    max_cores: int = 0  # up to this many cores when free; 0: the minimum
    exclusive: bool = False  # a whole node each
    gang: bool = False  # all `count` instances start together or none does


@dataclass(frozen=True, slots=True)
class Snapshot:
    nodes: tuple[NodeView, ...]
    # Queued tasks in queue order (first come, first served).
    queue: tuple[TaskRequest, ...]
