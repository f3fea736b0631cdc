"""The journal against a real SQLite file: order, group commit, read-your-writes, publishing
only what is durable, and restoring the in-memory cluster from what was written."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from common.resources import Resources
from headnode.domain import lifecycle
from headnode.domain.node import Node
from headnode.domain.model import JobSpec, TaskSpec
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
        spec = JobSpec(name="j", tasks=(TaskSpec(command_line="true"),))
        jobs = []
        with bus.watch(1) as watcher:
            futures = []
            for job_id in range(1, 51):
                job, changes = lifecycle.create_job(job_id, "alice", spec, NOW)
                changes += lifecycle.submit_job(job, NOW, "alice")
                jobs.append(job)
                futures.append(journal.record(jobs=[job], new_tasks=job.tasks.values(), changes=changes,
                                              meta={NEXT_JOB_ID: str(job_id + 1)}))
            # A later change to job 1, queued behind its creation.
            first = jobs[0]
            changes = lifecycle.place_task(first, first.tasks[1], "n1", NOW + 1)
            n1 = Node("n1", Resources(2, 1024))
            futures.append(journal.record(jobs=[first], tasks=[first.tasks[1]], nodes=[n1], changes=changes))
            history = await journal.read(lambda s: s.history(1))
            assert all(f.done() for f in futures), "a read overtook a write queued before it"
            await asyncio.gather(*futures)
            assert [h.state for h in history] == ["Configuring", "Queued", "Queued", "Running", "Running"]
            assert journal.commits < len(futures), "writes queued together were not grouped"
            published = [watcher.get_nowait().change.state for _ in range(watcher.qsize())]
            assert published == ["Configuring", "Queued", "Queued", "Running", "Running"]
        await journal.close()
        assert not fatal
        cluster = restore(store.load(), NOW + 2)
        store.close()
        assert cluster.next_job_id == 51 and len(cluster.jobs) == 50
        restored = cluster.jobs[1]
        assert restored.state is JobState.RUNNING and restored.tasks[1].state is TaskState.RUNNING
        assert restored.tasks[1].spec.command_line == "true" and restored.tasks[1].holding
        assert cluster.nodes["n1"].used == Resources(1, 0) and not cluster.nodes["n1"].connected
        assert len(cluster.queue) == 49

    asyncio.run(scenario())


def test_a_failed_write_is_reported_as_fatal_and_fails_the_caller(tmp_path: Path) -> None:
    async def scenario() -> None:
        store = SqliteStore(tmp_path / "shoal.db")
        reported = asyncio.Event()
        journal = Journal(store, EventBus(), lambda exc: reported.set())
        journal.start()
        job, _ = lifecycle.create_job(1, "alice", JobSpec(tasks=(TaskSpec(command_line="true"),)), NOW)
        store.close()  # the database goes away under the journal
        with pytest.raises(sqlite3.ProgrammingError):
            await journal.record(jobs=[job])
        await asyncio.wait_for(reported.wait(), 5)
        await journal.close()

    asyncio.run(scenario())
