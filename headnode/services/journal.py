"""Write-through of in-memory changes to the store, in order, on one thread.

`record()` snapshots the changed objects into immutable records on the event loop and
queues them; the writer thread applies everything queued so far in one transaction (group
commit) and resolves each caller's future when its batch is durable. Because there is one
queue and one thread, the store always holds a prefix of the changes made in memory, and a
`read()` queued after a write sees it. A job's usage record (accounting) is written in the
same batch as the end state it reaches. Committed status changes are then published to
watchers.

A write the disk has no room for (DiskFull) is held, not dropped: the writer thread retries
that same batch every 0.5-2 s until it commits, and everything queued after it waits behind
it, so the store still holds a prefix of memory's changes when space returns. Meanwhile the
head serves on: `writable()` refuses requests that would change something (headnode/api/
errors.py asks it), the callers of requests already under way are told at once
(`answered()`), reads of the store are answered from what is durable, and internal writers
(placements, exits) simply wait, as they would for a slow disk. Any other failed write is
fatal: the head stops rather than run on with memory and disk disagreeing; on restart it
rebuilds from what was committed.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, TypeVar

from common import log
from common.clock import SystemClock
from common.errors import DiskFull, ShoalError
from common.retry import Backoff
from headnode.domain.lifecycle import Outcome
from headnode.domain.model import Change, Instance, Job, Task
from headnode.domain.node import Node
from headnode.domain.states import JobState, TaskState
from headnode.services.events import EventBus, JobChanged
from headnode.store.base import Store, TemplateRecord, WriteBatch
from headnode.store.records import (
    history_record,
    instance_record,
    job_record,
    node_record,
    task_record,
    usage_record,
)

R = TypeVar("R")
_STOP = object()
_log = log.get("journal")


class _Write:
    __slots__ = ("batch", "future", "events")

    def __init__(self, batch: WriteBatch, future: asyncio.Future[None], events: list[JobChanged]) -> None:
        self.batch = batch
        self.future = future
        self.events = events


class _Read:
    __slots__ = ("fn", "future")

    def __init__(self, fn: Callable[[Store], Any], future: asyncio.Future[Any]) -> None:
        self.fn = fn
        self.future = future


class Journal:
    def __init__(self, store: Store, bus: EventBus, on_fatal: Callable[[BaseException], None],
                 on_writable: Callable[[], None] = lambda: None) -> None:
        """`on_writable`: called on the loop when a held write commits (space came back)."""
        self._store = store
        self._bus = bus
        self._on_fatal = on_fatal
        self._on_writable = on_writable
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()  # close() was called: a held write gets one last try
        # While a write is held: the fault (set and cleared on the loop), and a future that
        # resolves when the journal goes from writing to holding, for answered().
        self.full: DiskFull | None = None
        self._went_full: asyncio.Future[DiskFull] | None = None
        self.commits = 0  # transactions, for tests and metrics

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._thread = threading.Thread(target=self._run, name="shoal-journal", daemon=True)
        self._thread.start()

    async def close(self) -> None:
        """Commit everything queued, then stop the writer thread (a write held for want of
        space gets one more try; if it fails too, what was never acknowledged is dropped)."""
        if self._thread is None:
            return
        self._stopping.set()
        self._queue.put(_STOP)
        await asyncio.to_thread(self._thread.join)
        self._thread = None

    def record(
        self,
        *,
        jobs: Iterable[Job] = (),
        tasks: Iterable[Task] = (),
        new_tasks: Iterable[Task] = (),
        instances: Iterable[Instance] = (),
        nodes: Iterable[Node] = (),
        changes: Iterable[Change] = (),
        meta: dict[str, str] | None = None,
        templates: dict[str, TemplateRecord | None] | None = None,
        deleted_jobs: Iterable[int] = (),
        deleted_nodes: Iterable[str] = (),
        ended: Iterable[Job] = (),
    ) -> asyncio.Future[None]:
        """Queue the current state of these objects for writing; the future resolves when durable.
        `ended`: jobs that reached an end state in this change, whose usage is recorded with it.

        Callers that acknowledge something to a client await it; others may drop it (a
        failure is fatal and handled here)."""
        assert self._loop is not None, "journal not started"
        batch = WriteBatch()
        job_list = list(jobs)
        for job in job_list:
            batch.jobs[job.id] = job_record(job)
        for task in tasks:
            batch.tasks[(task.id.job, task.id.task)] = task_record(task)
        for task in new_tasks:
            batch.tasks[(task.id.job, task.id.task)] = task_record(task, with_spec=True)
        for inst in instances:
            batch.instances[(inst.id.job, inst.id.task, inst.id.instance)] = instance_record(inst)
        for node in nodes:
            batch.nodes[node.name] = node_record(node)
        batch.deleted_nodes.update(deleted_nodes)
        change_list = list(changes)
        batch.history.extend(history_record(c) for c in change_list)
        if meta:
            batch.meta.update(meta)
        if templates:
            batch.templates.update(templates)
        batch.deleted_jobs.update(deleted_jobs)
        for job in ended:
            if job.state.terminal:
                batch.usage[job.id] = usage_record(job)
        events = _events_for(change_list, job_list)
        future: asyncio.Future[None] = self._loop.create_future()
        future.add_done_callback(_retrieve)
        self._queue.put(_Write(batch, future, events))
        return future

    def record_outcome(
        self, o: Outcome, nodes: Iterable[Node] = (), meta: dict[str, str] | None = None
    ) -> asyncio.Future[None]:
        """Write everything a domain operation touched."""
        return self.record(
            jobs=o.jobs.values(),
            tasks=[t for key, t in o.tasks.items() if key not in o.new_tasks],
            new_tasks=o.new_tasks.values(),
            instances=o.instances.values(),
            nodes=nodes,
            changes=o.changes,
            meta=meta,
            ended=o.ended,
        )

    # -- while the disk is full -------------------------------------------------------------

    def writable(self) -> None:
        """Raise DiskFull while a write is held: for requests that would change something,
        refused before they change memory."""
        if self.full is not None:
            raise self.full

    async def answered(self, work: Awaitable[R]) -> R:
        """Run a client's request; if the journal starts holding a write before the request is
        done, fail it at once with DiskFull instead of leaving the client waiting for space.
        The request itself runs on to its end (a task of its own): what it changed in memory
        is queued to be written, so it must finish as it would have, not stop half-way. (The
        task and futures cost ~4 us a request here, against ~2.5 ms of head CPU per job.)"""
        assert self._loop is not None, "journal not started"
        task = asyncio.ensure_future(work)
        if self._went_full is None:
            self._went_full = self._loop.create_future()
        went_full = self._went_full
        woken = self._loop.create_future()

        def wake(_: object) -> None:
            if not woken.done():
                woken.set_result(None)

        task.add_done_callback(wake)
        went_full.add_done_callback(wake)
        try:
            await woken
        except asyncio.CancelledError:  # the client went away: the request still runs to its end
            task.add_done_callback(_late)
            raise
        finally:
            went_full.remove_done_callback(wake)
        if task.done():
            return task.result()
        task.add_done_callback(_late)
        raise went_full.result().in_flight()

    def _hold(self, fault: DiskFull) -> None:
        """On the loop: a write failed for want of space and is held."""
        if self.full is None:
            _log.warning("disk_full", error=fault.message)
        self.full = fault
        went_full, self._went_full = self._went_full, None
        if went_full is not None and not went_full.done():
            went_full.set_result(fault)

    def _release(self) -> None:
        """On the loop: the held write committed."""
        if self.full is not None:
            _log.info("disk_writable_again", detail="the write held for want of space is committed")
        self.full = None
        self._on_writable()

    def read(self, fn: Callable[[Store], R]) -> asyncio.Future[R]:
        """Run fn(store) on the writer thread after every write queued before it (while a
        write is held for want of space: at once, on what is durable)."""
        assert self._loop is not None, "journal not started"
        future: asyncio.Future[R] = self._loop.create_future()
        self._queue.put(_Read(fn, future))
        return future

    # -- writer thread -----------------------------------------------------------------

    def _run(self) -> None:
        # Items taken off the queue and not yet handled: what arrives while a write is held
        # waits here, in order, behind it.
        backlog: deque[Any] = deque()
        stopping = False
        while not stopping or backlog:
            if not backlog:
                backlog.append(self._queue.get())
            while True:
                try:
                    backlog.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            writes: list[_Write] = []
            while backlog:
                item = backlog.popleft()
                if item is _STOP:
                    stopping = True
                elif isinstance(item, _Write):
                    writes.append(item)
                else:
                    if not self._flush(writes, backlog):
                        return
                    writes = []
                    self._do_read(item)
            if not self._flush(writes, backlog):
                return

    def _flush(self, writes: list[_Write], backlog: deque[Any]) -> bool:
        """Commit these writes as one transaction; False if the journal cannot go on."""
        if not writes:
            return True
        if len(writes) == 1:
            merged = writes[0].batch
        else:
            merged = WriteBatch()
            for w in writes:
                merged.merge(w.batch)
        failure: BaseException | None
        try:
            self._store.write(merged)
            failure = None
        except DiskFull as full:
            failure = self._retry(merged, full, backlog)
        except BaseException as exc:  # noqa: BLE001 - reported to the loop, which stops the head
            failure = exc
        if failure is not None:
            self._give_up(writes, backlog, failure)
            return False
        self.commits += 1
        events = [e for w in writes for e in w.events]
        # One call back into the loop for the whole commit (each call wakes the loop).
        self._call(self._committed, events, [w.future for w in writes])
        return True

    def _retry(self, batch: WriteBatch, full: DiskFull, backlog: deque[Any]) -> BaseException | None:
        """Write the batch again until it commits (None). Gives up (returns why) on a failure
        other than a full disk, or when close() asks to stop and one last try fails. Reads
        are answered meanwhile; everything else waits in the backlog. A store write is all or
        nothing, so the same batch can be written again."""
        self._call(self._hold, full)
        for item in [i for i in backlog if isinstance(i, _Read)]:
            backlog.remove(item)
            self._do_read(item)
        clock = SystemClock()
        backoff = Backoff(initial=1.0, maximum=2.0)  # 0.5-1 s, then 1-2 s
        while True:
            last = self._stopping.is_set()
            if not last:
                until = clock.monotonic() + backoff.next_delay()
                while (left := until - clock.monotonic()) > 0:
                    try:
                        item = self._queue.get(timeout=left)
                    except queue.Empty:
                        break
                    if isinstance(item, _Read):
                        self._do_read(item)
                        continue
                    backlog.append(item)
                    if item is _STOP:
                        break
            try:
                self._store.write(batch)
            except DiskFull as again:
                if last:
                    return again
                continue
            except BaseException as exc:  # noqa: BLE001 - not a full disk: as any failed write, fatal
                return exc
            self._call(self._release)
            return None

    def _give_up(self, writes: list[_Write], backlog: deque[Any], exc: BaseException) -> None:
        """Fail these writes and every one queued after them, and report the failure (the
        loop stops the head). None of them was acknowledged: nothing durable is lost."""
        dropped = list(writes)
        while True:
            if backlog:
                item = backlog.popleft()
            else:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
            if isinstance(item, _Write):
                dropped.append(item)
            elif isinstance(item, _Read):
                self._resolve(item.future, exc)
        for w in dropped:
            self._resolve(w.future, exc)
        if isinstance(exc, DiskFull):
            _log.error("journal_not_written", writes=len(dropped), error=exc.message)
        self._call(self._on_fatal, exc)

    def _committed(self, events: list[JobChanged], futures: list[asyncio.Future[None]]) -> None:
        if events:
            self._bus.publish(events)
        for future in futures:
            if not future.done():
                future.set_result(None)

    def _do_read(self, item: _Read) -> None:
        try:
            result = item.fn(self._store)
        except BaseException as exc:  # noqa: BLE001
            self._resolve(item.future, exc)
        else:
            self._resolve(item.future, None, result)

    def _call(self, fn: Callable[..., Any], *args: Any) -> None:
        assert self._loop is not None
        try:
            self._loop.call_soon_threadsafe(fn, *args)
        except RuntimeError:  # loop closed during shutdown
            pass

    def _resolve(self, future: asyncio.Future[Any], exc: BaseException | None, result: Any = None) -> None:
        def settle() -> None:
            if future.done():
                return
            if exc is not None:
                future.set_exception(exc)
            else:
                future.set_result(result)

        self._call(settle)


def _retrieve(future: asyncio.Future[None]) -> None:
    # Failures are handled by on_fatal; keep asyncio from logging "never retrieved".
    if not future.cancelled():
        future.exception()


def _late(task: asyncio.Future[Any]) -> None:
    """A request whose caller was already answered (disk full, or gone) ended: log a failure
    other than a refusal, since no one else sees it."""
    if task.cancelled():
        return
    exc = task.exception()
    if exc is not None and not isinstance(exc, ShoalError):
        _log.error("request_failed_after_answer", error=repr(exc))


def _events_for(changes: list[Change], jobs: list[Job]) -> list[JobChanged]:
    if not changes:
        return []
    by_id = {job.id: job for job in jobs}
    snapshots: dict[int, tuple[JobState, tuple[tuple[TaskState, int], ...]]] = {}
    events = []
    for change in changes:
        job = by_id.get(change.job_id)
        if job is None:
            _log.warning("change_without_job", job_id=change.job_id)
            continue
        if job.id not in snapshots:
            snapshots[job.id] = (job.state, tuple((state, n) for state, n in job.counts.items() if n))
        state, counts = snapshots[job.id]
        events.append(JobChanged(change, state, counts, job.owner))
    return events
