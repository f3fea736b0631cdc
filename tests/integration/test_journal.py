"""The journal against a real SQLite file: order, group commit, read-your-writes, publishing
only what is durable, and restoring the in-memory cluster from what was written."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from common.resources import Resources
from headnode.domain import lifecycle, operations
from headnode.domain.lifecycle import Outcome
from headnode.domain.model import JobSpec, Sweep, TaskSpec
from headnode.domain.node import Node
from headnode.domain.states import JobState, TaskState
from headnode.services.events import EventBus
from headnode.services.journal import Journal
from headnode.store.records import NEXT_JOB_ID, restore
from headnode.store.sqlite import SqliteStore

NOW = 1_700_000_000.0


def test_writes_commit_in_order_grouped_and_are_read_back(tmp_path: Path) -> None:
    async def scenario() -> None:
        store = SqliteStore(tmp_path / "shoal.db")
        bus = EventBus()
        fatal: list[BaseException] = []
        journal = Journal(store, bus, fatal.append)
        journal.start()
        spec = JobSpec(name="j", tasks=(TaskSpec("true"), TaskSpec("sim *", sweep=Sweep(1, 1000))))
        jobs = []
        with bus.watch(1) as watcher:
            futures = []
            for job_id in range(1, 51):
                o = Outcome()
                job = operations.create_job(job_id, "alice", spec, NOW, o)
                operations.submit_job(job, "alice", NOW, o)
                jobs.append(job)
                futures.append(journal.record_outcome(o, meta={NEXT_JOB_ID: str(job_id + 1)}))
            # Later changes to job 1, queued behind its creation: a plain task and an instance run.
            first = jobs[0]
            o = Outcome()
            for number in (1, 2):
                task = first.tasks[number]
                lifecycle.place(first, task, lifecycle.take_pending(task), "n1", 1, 0, NOW + 1, o)
            futures.append(journal.record_outcome(o, nodes=[Node("n1", Resources(2, 1024))]))
            history = await journal.read(lambda s: s.history(1))
            assert all(f.done() for f in futures), "a read overtook a write queued before it"
            await asyncio.gather(*futures)
            states = [(h.task_id, h.instance_id, h.state) for h in history]
            assert states == [(0, 0, "Configuring"), (1, 0, "Configuring"), (2, 0, "Configuring"), (0, 0, "Queued"),
                              (1, 0, "Queued"), (2, 0, "Queued"), (1, 0, "Running"), (0, 0, "Running"),
                              (2, 1, "Running"), (2, 0, "Running")]
            assert journal.commits < len(futures), "writes queued together were not grouped"
            published = [watcher.get_nowait().change.seq for _ in range(watcher.qsize())]
            assert published == [h.seq for h in history], "only committed changes, all of them, in order"
        await journal.close()
        assert not fatal
        cluster = restore(store.load(), NOW + 2)
        store.close()
        assert cluster.next_job_id == 51 and len(cluster.jobs) == 50
        restored = cluster.jobs[1]
        assert restored.state is JobState.RUNNING
        plain, sweep = restored.tasks[1], restored.tasks[2]
        assert plain.state is TaskState.RUNNING and plain.instances[0].holding
        assert sweep.spec.sweep == Sweep(1, 1000) and sweep.cursor == 1 and sweep.pending == 999
        assert restored.counts[TaskState.RUNNING] == 2 and restored.counts[TaskState.QUEUED] == 999
        assert cluster.nodes["n1"].used == Resources(2, 0) and not cluster.nodes["n1"].connected
        assert len(cluster.queue) == 99  # job 1's sweep, and both tasks of jobs 2..50

    asyncio.run(scenario())


def test_a_failed_write_is_reported_as_fatal_and_fails_the_caller(tmp_path: Path) -> None:
    async def scenario() -> None:
        store = SqliteStore(tmp_path / "shoal.db")
        reported = asyncio.Event()
        journal = Journal(store, EventBus(), lambda exc: reported.set())
        journal.start()
        o = Outcome()
        operations.create_job(1, "alice", JobSpec(tasks=(TaskSpec("true"),)), NOW, o)
        store.close()  # the database goes away under the journal
        with pytest.raises(sqlite3.ProgrammingError):
            await journal.record_outcome(o)
        await asyncio.wait_for(reported.wait(), 5)
        await journal.close()

    asyncio.run(scenario())
