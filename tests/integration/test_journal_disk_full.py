"""The journal on a full disk: the failed batch is held and written again, in order, before
anything later; callers under way are told at once; requests are refused meanwhile; reads go
on; and on close a batch that still cannot be written is failed, never half-written."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest

from common.errors import DiskFull
from headnode.domain import operations
from headnode.domain.lifecycle import Outcome
from headnode.domain.model import JobSpec, TaskSpec
from headnode.services.events import EventBus
from headnode.services.journal import Journal
from headnode.store.base import WriteBatch
from headnode.store.records import NEXT_JOB_ID, restore
from headnode.store.sqlite import SqliteStore

NOW = 1_700_000_000.0
FULL = "the head node's disk is full (state dir /x)"


class FillingStore(SqliteStore):
    """A real SQLite store whose disk can be 'full' (writes raise DiskFull until emptied)."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.disk_is_full = threading.Event()
        self.broken = threading.Event()  # writes fail otherwise (an I/O error)
        self.attempts = 0
        self.written: list[list[int]] = []  # the job ids of each committed batch, in order

    def write(self, batch: WriteBatch) -> None:
        self.attempts += 1
        if self.broken.is_set():
            raise OSError(5, "Input/output error")
        if self.disk_is_full.is_set():
            raise DiskFull.at(FULL)
        super().write(batch)
        self.written.append(sorted(batch.jobs))


def _job(job_id: int) -> Outcome:
    o = Outcome()
    job = operations.create_job(job_id, "alice", JobSpec(tasks=(TaskSpec("true"),)), NOW, o)
    operations.submit_job(job, "alice", NOW, o)
    return o


async def _until(predicate, what: str, timeout: float = 10.0) -> None:
    async def wait() -> None:
        while not predicate():
            await asyncio.sleep(0.01)
    try:
        await asyncio.wait_for(wait(), timeout)
    except TimeoutError:
        raise AssertionError(f"timed out after {timeout:g}s waiting for {what}") from None


def test_a_full_disk_holds_the_batch_and_writes_it_first_when_space_returns(tmp_path: Path) -> None:
    async def scenario() -> None:
        store = FillingStore(tmp_path / "shoal.db")
        fatal: list[BaseException] = []
        writable_again = asyncio.Event()
        journal = Journal(store, EventBus(), fatal.append, on_writable=writable_again.set)
        journal.start()
        await journal.record_outcome(_job(1), meta={NEXT_JOB_ID: "2"})
        journal.writable()  # nothing held: no refusal

        store.disk_is_full.set()

        async def request() -> str:  # a client's request: its write is the one that fails
            await journal.record_outcome(_job(2), meta={NEXT_JOB_ID: "3"})
            return "done"

        answering = asyncio.ensure_future(journal.answered(request()))
        with pytest.raises(DiskFull) as told:
            await asyncio.wait_for(answering, 10)
        assert "disk is full (state dir /x)" in told.value.message and "check whether" in told.value.message
        assert journal.full is not None
        with pytest.raises(DiskFull, match="disk is full .* free space and retry"):
            journal.writable()
        # An internal writer queued behind the held batch waits; a read is answered meanwhile.
        later = journal.record_outcome(_job(3), meta={NEXT_JOB_ID: "4"})
        history = await asyncio.wait_for(journal.read(lambda s: s.history(1)), 10)
        assert history, "a read was not answered while a write was held"
        await _until(lambda: store.attempts >= 3, "the held batch to be tried again")
        assert not later.done() and store.written == [[1]]

        store.disk_is_full.clear()
        await asyncio.wait_for(later, 10)
        await asyncio.wait_for(writable_again.wait(), 10)
        assert journal.full is None
        journal.writable()
        # The held batch first, then what was queued after it: the store is a prefix of memory.
        assert store.written == [[1], [2], [3]]
        await journal.close()
        assert not fatal
        cluster = restore(store.load(), NOW)
        assert sorted(cluster.jobs) == [1, 2, 3] and cluster.next_job_id == 4
        store.close()

    asyncio.run(scenario())


def test_closing_while_the_disk_is_full_fails_what_was_never_written(tmp_path: Path) -> None:
    async def scenario() -> None:
        store = FillingStore(tmp_path / "shoal.db")
        fatal: list[BaseException] = []
        journal = Journal(store, EventBus(), fatal.append)
        journal.start()
        await journal.record_outcome(_job(1))
        store.disk_is_full.set()
        held = journal.record_outcome(_job(2))
        await _until(lambda: journal.full is not None, "the write to be held")
        behind = journal.record_outcome(_job(3))
        await asyncio.wait_for(journal.close(), 10)
        for future in (held, behind):
            assert isinstance(future.exception(), DiskFull)
        assert len(fatal) == 1 and isinstance(fatal[0], DiskFull)
        assert sorted(restore(store.load(), NOW).jobs) == [1]
        store.close()

    asyncio.run(scenario())


def test_another_failure_while_holding_is_fatal(tmp_path: Path) -> None:
    async def scenario() -> None:
        store = FillingStore(tmp_path / "shoal.db")
        reported = asyncio.Event()
        journal = Journal(store, EventBus(), lambda exc: reported.set())
        journal.start()
        store.disk_is_full.set()
        held = journal.record_outcome(_job(1))
        await _until(lambda: journal.full is not None, "the write to be held")
        store.broken.set()  # the next try fails otherwise
        await asyncio.wait_for(reported.wait(), 10)
        assert isinstance(held.exception(), OSError)
        await journal.close()
        store.close()

    asyncio.run(scenario())
