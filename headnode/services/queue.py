"""The job queue as clients use it: submit, view, list, cancel, watch.

A submission is acknowledged only once it is durable in the store, and enters the
in-memory queue only then, so the scheduler never places a job a crash could lose.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass

from common import log
from common.clock import Clock
from common.errors import InvalidArgument
from common.ids import TaskId
from headnode.domain import lifecycle
from headnode.domain.cluster import Cluster
from headnode.domain.model import Job, JobSpec, Task, TaskSpec
from headnode.domain.node import Kill
from headnode.domain.states import JobState
from headnode.services.allocator import Allocator
from headnode.services.events import EventBus, JobChanged, replay
from headnode.services.journal import Journal
from headnode.services.membership import Membership
from headnode.services.output import OutputStore
from headnode.store.base import HistoryRecord
from headnode.store.records import NEXT_JOB_ID, change_of

_log = log.get("queue")

DEFAULT_PAGE_SIZE = 1000
MAX_PAGE_SIZE = 10_000


@dataclass(frozen=True)
class JobDetails:
    job: Job
    pending_reason: str
    # Per task number: pending reason and (stdout, stderr) sizes.
    task_pending: dict[int, str]
    output_sizes: dict[int, tuple[int, int]]
    history: list[HistoryRecord] | None


class QueueService:
    def __init__(
        self,
        cluster: Cluster,
        journal: Journal,
        allocator: Allocator,
        membership: Membership,
        output: OutputStore,
        bus: EventBus,
        clock: Clock,
    ) -> None:
        self.cluster = cluster
        self.journal = journal
        self.allocator = allocator
        self.membership = membership
        self.output = output
        self.bus = bus
        self.clock = clock

    async def submit(self, spec: JobSpec, owner: str) -> int:
        validate_job_spec(spec)
        now = self.clock.now()
        job_id = self.cluster.allocate_job_id()
        job, changes = lifecycle.create_job(job_id, owner, spec, now)
        changes += lifecycle.submit_job(job, now, owner)
        await self.journal.record(
            jobs=[job],
            new_tasks=job.tasks.values(),
            changes=changes,
            meta={NEXT_JOB_ID: str(self.cluster.next_job_id)},
        )
        self.cluster.add_job(job)
        self.allocator.kick()
        _log.info("job_submitted", job_id=job_id, owner=owner, tasks=len(job.tasks))
        return job_id

    async def details(self, job_id: int, full: bool = True) -> JobDetails:
        job = self.cluster.job(job_id)
        history = None
        if full:
            history = await self.journal.read(lambda store: store.history(job_id))
        task_pending = {n: self.allocator.pending_reason(t) for n, t in job.tasks.items()} if full else {}
        sizes = (
            {n: (self.output.size(t.id, "stdout"), self.output.size(t.id, "stderr")) for n, t in job.tasks.items()}
            if full
            else {}
        )
        return JobDetails(job, self.job_pending_reason(job), task_pending, sizes, history)

    def job_pending_reason(self, job: Job) -> str:
        if job.state is not JobState.QUEUED:
            return ""
        for task in job.tasks.values():
            if reason := self.allocator.pending_reason(task):
                return reason
        return ""

    def list_jobs(
        self, states: Iterable[JobState], owner: str, page_size: int, page_token: str
    ) -> tuple[list[Job], str]:
        if page_size < 0:
            raise InvalidArgument(f"page_size must be >= 0, got {page_size}")
        size = min(page_size or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
        after = 0
        if page_token:
            if not page_token.isdigit():
                raise InvalidArgument(f"page_token {page_token!r} is not one this server returned")
            after = int(page_token)
        wanted = set(states)
        page: list[Job] = []
        for job in self.cluster.jobs.values():
            if job.id <= after or (wanted and job.state not in wanted) or (owner and job.owner != owner):
                continue
            if len(page) == size:
                return page, str(page[-1].id)
            page.append(job)
        return page, ""

    async def cancel(self, job_id: int, by: str, reason: str = "") -> Job:
        job = self.cluster.job(job_id)
        text = f"cancelled by {by}" + (f": {reason}" if reason else "")
        running = [t for t in job.tasks.values() if t.holding]
        changes = lifecycle.cancel_job(job, self.clock.now(), text)
        released = False
        for task in job.tasks.values():
            self.cluster.sync_queue(task)
        for task in running:
            node = self.cluster.nodes.get(task.node)
            alloc = node.allocations.get(task.id) if node else None
            if node is None or alloc is None:
                task.holding = False
            elif alloc.launch_seq == 0 and not alloc.started:
                # Never sent to the agent: nothing runs, so release at once.
                node.release(task.id)
                task.holding = False
                released = True
            else:
                self.membership.send(node.name, Kill(task.id, task.attempt, text))
        await self.journal.record(jobs=[job], tasks=job.tasks.values(), changes=changes)
        _log.info("job_cancelled", job_id=job_id, by=by, running=len(running))
        if released:
            self.allocator.kick()
        return job

    async def watch(self, job_id: int) -> AsyncIterator[JobChanged]:
        """The job's history from its creation, then each change as it is committed, each
        exactly once, until the job is terminal.

        The subscription starts before the history is read, so a change committed in
        between is both in the history and in the queue; its sequence number drops the
        second copy, and nothing falls between the two."""
        self.cluster.job(job_id)  # NotFound before anything is sent
        with self.bus.watch(job_id) as queue:
            history = await self.journal.read(lambda store: store.history(job_id))
            last = 0
            for event in replay(change_of(r) for r in history):
                last = event.change.seq
                yield event
                if _ends(event):
                    return
            while True:
                event = await queue.get()
                if event.change.seq <= last:
                    continue
                last = event.change.seq
                yield event
                if _ends(event):
                    return

    def task_for_output(self, task_id: TaskId) -> Task:
        if task_id.instance:
            raise InvalidArgument(f"task {task_id}: instances are not supported yet")
        return self.cluster.task(task_id)


def validate_job_spec(spec: JobSpec) -> None:
    if not spec.tasks:
        raise InvalidArgument("spec.tasks is empty: a job needs at least one task")
    for i, task in enumerate(spec.tasks):
        _validate_task(f"spec.tasks[{i}]", task)


def _validate_task(where: str, task: TaskSpec) -> None:
    if not task.command_line.strip():
        raise InvalidArgument(f"{where}.command_line is empty: give the command to run")
    if "\0" in task.command_line:
        raise InvalidArgument(f"{where}.command_line contains a NUL byte")
    if task.resources.cores < 1:
        raise InvalidArgument(f"{where}.resources.cores must be at least 1, got {task.resources.cores}")
    if task.resources.memory_mb < 0:
        raise InvalidArgument(f"{where}.resources.memory_mb must be at least 1, got {task.resources.memory_mb}")
    for key, value in task.environment.items():
        if not key or "=" in key or "\0" in key:
            raise InvalidArgument(f"{where}.environment has an invalid name {key!r} (empty, '=' or NUL)")
        if "\0" in value:
            raise InvalidArgument(f"{where}.environment[{key!r}] contains a NUL byte")
    wd = task.working_directory
    if wd and not os.path.isabs(wd):
        raise InvalidArgument(f"{where}.working_directory {wd!r} must be an absolute path")


def _ends(event: JobChanged) -> bool:
    return event.change.task_id == 0 and event.job_state.terminal
