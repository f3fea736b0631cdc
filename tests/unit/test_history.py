"""The dashboard's cluster history (pure: a fake clock and an in-memory cluster)."""

from __future__ import annotations

import asyncio

from common.clock import FakeClock
from common.resources import Resources
from headnode.domain.cluster import Cluster
from headnode.domain.model import Sweep, TaskSpec
from headnode.domain.node import Node
from headnode.domain.states import JobState, NodeState, TaskState
from headnode.services.history import ClusterHistory, Tee, totals
from headnode.services.metrics import Metrics
from tests.unit.test_lifecycle import finish, make_job, run


def cluster_with_work() -> Cluster:
    c = Cluster()
    c.nodes["a"] = Node("a", Resources(4, 8000, (("gpu", 2),)), connected=True)
    c.nodes["b"] = Node("b", Resources(2, 1000), state=NodeState.DRAINING, connected=True)
    c.nodes["a"].used = Resources(1, 500, (("gpu", 1),))
    job = make_job(TaskSpec("echo", sweep=Sweep(1, 5)))
    c.add_job(job)
    finish(job, run(job))
    run(job)
    return c


def test_totals_count_jobs_units_nodes_and_capacity_of_online_connected_nodes() -> None:
    t = totals(cluster_with_work(), 5.0)
    assert t.jobs[JobState.RUNNING] == 1 and sum(t.jobs.values()) == 1
    assert (t.units[TaskState.FINISHED], t.units[TaskState.RUNNING], t.units[TaskState.QUEUED]) == (1, 1, 3)
    assert (t.nodes[NodeState.ONLINE], t.nodes[NodeState.DRAINING], t.connected) == (1, 1, 2)
    # A draining node takes no new work: its cores are not capacity, but what it uses is use.
    assert (t.cores_total, t.cores_used, t.memory_total_mb, t.gpus_total, t.gpus_used) == (4, 1, 8000, 2, 1)


def test_ends_are_counted_per_minute_and_the_hour_has_sixty_minutes() -> None:
    clock = FakeClock(start=6000.0)  # a minute's start
    h = ClusterHistory(Cluster(), clock, interval=1.0)
    h.run_ended(TaskState.FINISHED)
    h.run_ended(TaskState.QUEUED)  # requeued: not an end
    clock.advance(61)
    h.run_ended(TaskState.FAILED)
    h.run_ended(TaskState.CANCELLED)
    h.run_ended(TaskState.FINISHED)
    hour = h.last_hour(clock.now())
    assert len(hour) == 60 and hour[-1].start == 6060.0 and hour[0].start == 6060.0 - 59 * 60
    assert [(m.finished, m.failed) for m in hour[-2:]] == [(1, 0), (1, 2)]
    clock.advance(3600)
    assert all(m.finished == m.failed == 0 for m in h.last_hour(clock.now())), "an hour later they are gone"


def test_samples_keep_an_hour_and_wake_listeners() -> None:
    async def main() -> None:
        clock = FakeClock()
        h = ClusterHistory(cluster_with_work(), clock, interval=600.0)
        woken = h.changed()
        runner = asyncio.create_task(h.run())
        await asyncio.wait_for(woken.wait(), 1)
        for _ in range(10):
            clock.advance(600)
            await asyncio.sleep(0)
        runner.cancel()
        assert len(h.series) == 6, "one hour at one sample each 600 s"
        assert h.latest is h.series[-1] and h.latest.time == clock.now()

    asyncio.run(main())


def test_tee_feeds_every_sink() -> None:
    seen: list[object] = []

    class Sink(Metrics):
        def run_started(self, submitted_at: float | None, attempt: int, now: float) -> None:
            seen.append(("started", attempt))

        def run_ended(self, state: TaskState) -> None:
            seen.append(("ended", state))

        def pass_done(self, seconds: float) -> None:
            seen.append(("pass", seconds))

    tee = Tee(Sink(), Sink())
    tee.run_started(None, 1, 0.0)
    tee.run_ended(TaskState.FINISHED)
    tee.pass_done(0.5)
    assert seen == [("started", 1)] * 2 + [("ended", TaskState.FINISHED)] * 2 + [("pass", 0.5)] * 2
