"""Fan-out of committed status changes to watchers (WatchJob streams).

Events are published after the change is durable, so a watcher never sees a state that a
head-node crash could take back. Each event carries the job's state and task counts as
they were when the change was made, so a watcher sees a consistent sequence even though
it reads them later.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from headnode.domain.model import Change
from headnode.domain.states import JobState, TaskState


# Values, never changed once built; not frozen= (see headnode/scheduling/snapshot.py: 4-5x cheaper to build).
@dataclass(slots=True)
class JobChanged:
    change: Change
    job_state: JobState
    # Run units by state when the change was made; empty when not known (replayed history).
    counts: tuple[tuple[TaskState, int], ...]
    owner: str = ""


ALL_JOBS = 0
# What a watcher sees: every change, jobs' own changes alone, or jobs' own changes into an end
# state alone (what a client waiting for many jobs needs: a third of the events of a job).
EVERY, JOBS, ENDS = 0, 1, 2


class EventBus:
    def __init__(self) -> None:
        # (job id or ALL_JOBS, EVERY, JOBS or ENDS) -> the queues of its watchers.
        self._watchers: dict[tuple[int, int], set[asyncio.Queue[JobChanged]]] = {}

    @contextmanager
    def watch(self, job_id: int = ALL_JOBS, job_events_only: bool = False,
              ends_only: bool = False) -> Iterator[asyncio.Queue[JobChanged]]:
        """A queue of the changes to come (of one job, or of all); with `job_events_only`,
        of jobs' own changes alone, which leaves out every task's (most of them); with
        `ends_only`, of jobs' own changes into an end state alone."""
        key = (job_id, ENDS if ends_only else JOBS if job_events_only else EVERY)
        queue: asyncio.Queue[JobChanged] = asyncio.Queue()
        self._watchers.setdefault(key, set()).add(queue)
        try:
            yield queue
        finally:
            watchers = self._watchers.get(key)
            if watchers is not None:
                watchers.discard(queue)
                if not watchers:
                    del self._watchers[key]

    def publish(self, events: list[JobChanged]) -> None:
        if not self._watchers:
            return
        watchers = self._watchers
        everyone = watchers.get((ALL_JOBS, EVERY), ())
        jobs_of_everyone = watchers.get((ALL_JOBS, JOBS), ())
        ends_of_everyone = watchers.get((ALL_JOBS, ENDS), ())
        for event in events:
            job_id = event.change.job_id
            for queue in (*watchers.get((job_id, EVERY), ()), *everyone):
                queue.put_nowait(event)
            if event.change.task_id == 0:
                for queue in (*watchers.get((job_id, JOBS), ()), *jobs_of_everyone):
                    queue.put_nowait(event)
                if event.job_state.terminal:
                    for queue in (*watchers.get((job_id, ENDS), ()), *ends_of_everyone):
                        queue.put_nowait(event)


def replay(changes: Iterable[Change], counts_now: tuple[tuple[TaskState, int], ...]) -> Iterator[JobChanged]:
    """Rebuild the events of a stored history, with the job state each change left behind.

    Counts are given only to the last event (as they are now): instances that never ran
    change state in bulk without an entry each, so earlier counts cannot be rebuilt."""
    items = list(changes)
    job_state = JobState.CONFIGURING
    for i, change in enumerate(items):
        if change.task_id == 0:
            job_state = JobState(change.state)
        yield JobChanged(change, job_state, counts_now if i == len(items) - 1 else ())
