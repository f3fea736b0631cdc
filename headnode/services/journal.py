"""Write-through of in-memory changes to the store, in order, on one thread.

`record()` snapshots the changed objects into immutable records on the event loop and
queues them; the writer thread applies everything queued so far in one transaction (group
commit) and resolves each caller's future when its batch is durable. Because there is one
queue and one thread, the store always holds a prefix of the changes made in memory, and a
`read()` queued after a write sees it. A job's usage record (accounting) is written in the
same batch as the end state it reaches. Committed status changes are then published to
watchers. A failed write is fatal: the head stops rather than run on with memory and disk
disagreeing; on restart it rebuilds from what was committed.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from common import log
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
    def __init__(self, store: Store, bus: EventBus, on_fatal: Callable[[BaseException], None]) -> None:
        self._store = store
        self._bus = bus
        self._on_fatal = on_fatal
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self.commits = 0  # transactions, for tests and metrics

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._thread = threading.Thread(target=self._run, name="shoal-journal", daemon=True)
        self._thread.start()

    async def close(self) -> None:
        """Commit everything queued, then stop the writer thread."""
        if self._thread is None:
            return
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

    def read(self, fn: Callable[[Store], R]) -> asyncio.Future[R]:
        """Run fn(store) on the writer thread after every write queued before it."""
        assert self._loop is not None, "journal not started"
        future: asyncio.Future[R] = self._loop.create_future()
        self._queue.put(_Read(fn, future))
        return future

    # -- writer thread -----------------------------------------------------------------

    def _run(self) -> None:
        stopping = False
        while not stopping:
            items = [self._queue.get()]
            while True:
                try:
                    items.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            writes: list[_Write] = []
            for item in items:
                if item is _STOP:
                    stopping = True
                elif isinstance(item, _Write):
                    writes.append(item)
                else:
                    self._flush(writes)
                    writes = []
                    self._do_read(item)
            self._flush(writes)

    def _flush(self, writes: list[_Write]) -> None:
        if not writes:
            return
        if len(writes) == 1:
            merged = writes[0].batch
        else:
            merged = WriteBatch()
            for w in writes:
                merged.merge(w.batch)
        try:
            self._store.write(merged)
            self.commits += 1
        except BaseException as exc:  # noqa: BLE001 - reported to the loop, which stops the head
            for w in writes:
                self._resolve(w.future, exc)
            self._call(self._on_fatal, exc)
            return
        events = [e for w in writes for e in w.events]
        # One call back into the loop for the whole commit (each call wakes the loop).
        self._call(self._committed, events, [w.future for w in writes])

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
