"""The cluster's recent past, for the dashboard: totals now, a sampled series, ends per minute.

`totals(cluster)` is the one count of jobs, run units, nodes and resources by state; the
Prometheus gauges (services/metrics.py) and the dashboard both read it. `ClusterHistory`
samples it every `interval` seconds into an hour-long ring, and counts run ends per minute
through the `Metrics` hooks (it is one of the sinks a `Tee` feeds). It lives in memory only:
a restarted head node starts a new hour. Listeners (the dashboard's push streams) wait on
`changed()` and read `latest`.
"""

from __future__ import annotations

import asyncio
import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from common.clock import Clock
from common.resources import GPU
from headnode.domain.cluster import Cluster
from headnode.domain.states import JobState, NodeState, TaskState
from headnode.services.metrics import Metrics

SPAN = 3600.0  # seconds of history kept


@dataclass(slots=True)
class Totals:
    time: float
    jobs: dict[JobState, int]
    units: dict[TaskState, int]
    nodes: dict[NodeState, int]
    connected: int = 0
    queued_tasks: int = 0  # tasks in the queue (with instances waiting), not instances
    # Capacity counts Online, connected nodes (what can take work); use counts every node.
    cores_total: int = 0
    cores_used: int = 0
    memory_total_mb: int = 0
    memory_used_mb: int = 0
    gpus_total: int = 0
    gpus_used: int = 0


def totals(cluster: Cluster, now: float = 0.0) -> Totals:
    t = Totals(now, dict.fromkeys(JobState, 0), dict.fromkeys(TaskState, 0), dict.fromkeys(NodeState, 0))
    jobs, units = t.jobs, t.units
    for job in cluster.jobs.values():
        jobs[job.state] += 1
        for state, n in job.counts.items():
            units[state] += n
    for node in cluster.nodes.values():
        t.nodes[node.state] += 1
        t.connected += node.connected
        if node.connected and node.state is NodeState.ONLINE:
            t.cores_total += node.capacity.cores
            t.memory_total_mb += node.capacity.memory_mb
            t.gpus_total += node.capacity.get(GPU)
        t.cores_used += node.used.cores
        t.memory_used_mb += node.used.memory_mb
        t.gpus_used += node.used.get(GPU)
    t.queued_tasks = cluster.waiting()
    return t


@dataclass(slots=True)
class Minute:
    start: float
    finished: int = 0
    failed: int = 0  # Failed or Cancelled


@dataclass(slots=True)
class ClusterHistory(Metrics):
    cluster: Cluster
    clock: Clock
    interval: float = 2.0
    latest: Totals | None = None
    series: deque[Totals] = field(default_factory=deque)
    minutes: deque[Minute] = field(default_factory=deque)
    _changed: asyncio.Event | None = None

    def __post_init__(self) -> None:
        self.series = deque(maxlen=max(1, math.ceil(SPAN / self.interval)))
        self.minutes = deque(maxlen=60)

    # -- Metrics hooks (called as runs end) --------------------------------------------------

    def run_ended(self, state: TaskState) -> None:
        if state is TaskState.QUEUED:  # requeued: it will run again
            return
        minute = self._minute(self.clock.now())
        if state is TaskState.FINISHED:
            minute.finished += 1
        else:
            minute.failed += 1

    def _minute(self, now: float) -> Minute:
        start = now - now % 60
        if not self.minutes or self.minutes[-1].start < start:
            self.minutes.append(Minute(start))
        return self.minutes[-1]

    def last_hour(self, now: float) -> list[Minute]:
        """One entry per minute of the last hour, oldest first, empty minutes included."""
        current = now - now % 60
        kept = {m.start: m for m in self.minutes}
        return [kept.get(current - 60 * i) or Minute(current - 60 * i) for i in range(59, -1, -1)]

    # -- sampling ----------------------------------------------------------------------------

    def sample(self) -> Totals:
        now = self.clock.now()
        self._minute(now)
        self.latest = totals(self.cluster, now)
        self.series.append(self.latest)
        if self._changed is not None:
            self._changed.set()
            self._changed = None
        return self.latest

    def changed(self) -> asyncio.Event:
        """Set at the next sample."""
        if self._changed is None:
            self._changed = asyncio.Event()
        return self._changed

    async def run(self) -> None:
        while True:
            self.sample()
            await self.clock.sleep(self.interval)


class Tee(Metrics):
    """Several sinks fed by the same hooks (Prometheus and the dashboard's history)."""

    def __init__(self, *sinks: Metrics) -> None:
        self.sinks = sinks
        self._started: list[Callable[[float | None, int, float], None]] = [s.run_started for s in sinks]
        self._ended: list[Callable[[TaskState], None]] = [s.run_ended for s in sinks]
        self._passes: list[Callable[[float], None]] = [s.pass_done for s in sinks]

    def run_started(self, submitted_at: float | None, attempt: int, now: float) -> None:
        for f in self._started:
            f(submitted_at, attempt, now)

    def run_ended(self, state: TaskState) -> None:
        for f in self._ended:
            f(state)

    def pass_done(self, seconds: float) -> None:
        for f in self._passes:
            f(seconds)
