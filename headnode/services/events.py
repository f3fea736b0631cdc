"""Fan-out of committed status changes to watchers (WatchJob streams).

Events are published after the change is durable, so a watcher never sees a state that a
head-node crash could take back. Each event carries the job's state and task counts as
they were when the change was made, so a watcher sees a consistent sequence even though
it reads them later.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterable, Iterator
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


def replay(changes: Iterable[Change]) -> Iterator[JobChanged]:
    """Rebuild the events of a stored history, with the job state and task counts each
    change left behind (the history holds only the changes themselves)."""
    job_state = JobState.CONFIGURING
    tasks: dict[int, TaskState] = {}
    counts: Counter[TaskState] = Counter()
    for change in changes:
        if change.task_id == 0:
            job_state = JobState(change.state)
        else:
            if (old := tasks.get(change.task_id)) is not None:
                counts[old] -= 1
            tasks[change.task_id] = new = TaskState(change.state)
            counts[new] += 1
        yield JobChanged(change, job_state, tuple((s, n) for s, n in counts.items() if n))
