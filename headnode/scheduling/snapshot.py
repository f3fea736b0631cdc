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
    id: TaskId
    resources: Resources


@dataclass(frozen=True, slots=True)
class Snapshot:
    nodes: tuple[NodeView, ...]
    # Queued tasks in queue order (first come, first served).
    queue: tuple[TaskRequest, ...]
