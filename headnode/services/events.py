"""Fan-out of committed status changes to watchers (WatchJob streams).

Events are published after the change is durable, so a watcher never sees a state that a
head-node crash could take back. Each event carries the job's state and task counts as
they were when the change was made, so a watcher sees a consistent sequence even though
it reads them later.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from headnode.domain.model import Change
from headnode.domain.states import JobState, TaskState


@dataclass(frozen=True, slots=True)
class JobChanged:
    change: Change
    job_state: JobState
    counts: tuple[tuple[TaskState, int], ...]


class EventBus:
    def __init__(self) -> None:
        self._watchers: dict[int, set[asyncio.Queue[JobChanged]]] = {}

    @contextmanager
    def watch(self, job_id: int) -> Iterator[asyncio.Queue[JobChanged]]:
        queue: asyncio.Queue[JobChanged] = asyncio.Queue()
        self._watchers.setdefault(job_id, set()).add(queue)
        try:
            yield queue
        finally:
            watchers = self._watchers.get(job_id)
            if watchers is not None:
                watchers.discard(queue)
                if not watchers:
                    del self._watchers[job_id]

    def publish(self, events: list[JobChanged]) -> None:
        if not self._watchers:
            return
        for event in events:
            for queue in self._watchers.get(event.change.job_id, ()):
                queue.put_nowait(event)
