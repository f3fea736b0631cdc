"""The job queue as clients use it: the HPC Pack lifecycle operations, views and watches.

Every operation runs the pure domain (headnode/domain/operations.py) into an Outcome and
hands it to Effects, which persists it before the call returns: nothing is acknowledged to a
client before it is durable. A new job may be planned a moment before its submission is on
disk, but nothing is launched before its placement is, and the journal writes in order, so a
launch always follows the submission's commit: a crash cannot leave a process running for a
job the store never had.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass, replace

from common import log
from common.clock import Clock
from common.errors import InvalidArgument, ResourceExhausted
from common.ids import TaskId
from common.resources import Resources
from headnode.domain import eligibility, operations
from headnode.domain.cluster import Cluster
from headnode.domain.lifecycle import Outcome
from headnode.domain.model import Instance, Job, JobSpec, Task, TaskSpec
from headnode.domain.states import JobState, TaskState
from headnode.services.allocator import Allocator
from headnode.services.effects import Effects
from headnode.services.events import EventBus, JobChanged, replay
from headnode.services.journal import Journal
from headnode.services.output import OutputStore
from headnode.services.validation import (
    MAX_BATCH,
    MAX_TASKS,
    validate_job_spec,
    validate_task,
    validate_task_in_job,
)
from headnode.store.base import HistoryRecord
from headnode.store.records import NEXT_JOB_ID, change_of

_log = log.get("queue")

DEFAULT_PAGE_SIZE = 1000
MAX_PAGE_SIZE = 10_000


@dataclass(frozen=True)
class JobDetails:
    job: Job
    pending_reason: str
    task_pending: dict[int, str]  # task number -> pending reason
    output_sizes: dict[int, tuple[int, int]]  # plain tasks' (stdout, stderr) sizes
    history: list[HistoryRecord] | None
    # What the job's reservation holds, by node (empty without one).
    reserved: tuple[tuple[str, Resources], ...] = ()


@dataclass(frozen=True)
class UnitView:
    """One run unit for listing: a materialized instance, or one that never ran."""

    job: Job
    task: Task
    instance_id: int
    inst: Instance | None
    state: TaskState
    pending_reason: str
    sizes: tuple[int, int]


@dataclass(frozen=True)
class TaskDetails:
    job: Job
    task: Task
    unit: UnitView | None  # set when an instance was asked for
    pending_reason: str
    sizes: tuple[int, int]
    history: list[HistoryRecord]


class QueueService:
    def __init__(
        self,
        cluster: Cluster,
        journal: Journal,
        effects: Effects,
        allocator: Allocator,
        output: OutputStore,
        bus: EventBus,
        clock: Clock,
        max_queued_jobs: int = 0,
    ) -> None:
        self.max_queued_jobs = max_queued_jobs
        self.cluster = cluster
        self.journal = journal
        self.effects = effects
        self.allocator = allocator
        self.output = output
        self.bus = bus
        self.clock = clock

    # -- creating and submitting ----------------------------------------------------------

    async def submit(self, spec: JobSpec, owner: str) -> int:
        """HPC Pack's QueueJob: create, add the tasks and queue, in one durable step."""
        self.check_new(spec, owner)
        (job_id,) = await self.queue_checked([spec], owner)
        return job_id

    async def submit_many(self, specs: list[JobSpec], owner: str) -> list[int]:
        """Queue many jobs in one durable step: all of them, or none if one is invalid."""
        if not specs:
            raise InvalidArgument("specs is empty: give at least one job")
        if len(specs) > MAX_BATCH:
            raise InvalidArgument(f"specs has {len(specs)} jobs; at most {MAX_BATCH} per call")
        for i, spec in enumerate(specs):
            try:
                validate_job_spec(spec, self.cluster.jobs)
            except InvalidArgument as e:
                raise InvalidArgument(f"specs[{i}]: {e}") from None
        self._check_queued_limit(owner, len(specs))
        jobs = await self._queue_new(specs, owner)
        _log.info("jobs_submitted", owner=owner, jobs=len(jobs), first_job_id=jobs[0].id, last_job_id=jobs[-1].id)
        return [j.id for j in jobs]

    def check_new(self, spec: JobSpec, owner: str, ahead: int = 0) -> None:
        """What a new job is checked for before it is queued (queue_checked); `ahead`: the
        owner's jobs a stream of them has checked and not yet queued."""
        self.journal.writable()  # a stream's later requests, while the disk is full (api/errors.py gates calls)
        validate_job_spec(spec, self.cluster.jobs)
        self._check_queued_limit(owner, ahead + 1)

    async def queue_checked(self, specs: list[JobSpec], owner: str) -> list[int]:
        """Queue jobs check_new() passed, in one durable step."""
        jobs = await self._queue_new(specs, owner)
        for job in jobs:
            _log.info("job_submitted", job_id=job.id, owner=owner, tasks=len(job.tasks), units=job.total)
        return [j.id for j in jobs]

    def _check_queued_limit(self, owner: str, adding: int = 1) -> None:
        """Refuse a submission past the owner's limit of Queued jobs (the count walks the jobs,
        so it is done only when a limit is set)."""
        limit = self.max_queued_jobs
        if not limit:
            return
        queued = sum(1 for j in self.cluster.jobs.values() if j.owner == owner and j.state is JobState.QUEUED)
        if queued + adding > limit:
            raise ResourceExhausted(f"{owner} has {queued} queued jobs, the most allowed (max_queued_jobs_per_owner "
                                    f"= {limit}); wait for some to start, or cancel some")

    async def create(self, spec: JobSpec, owner: str) -> Job:
        validate_job_spec(spec, self.cluster.jobs, need_tasks=False)
        o = Outcome()
        job = operations.create_job(self._new_job_id(), owner, spec, self.clock.now(), o)
        await self._add_new(job, o)
        return job

    def _new_job_id(self) -> int:
        """The next job id, its output directory emptied of any files an id used before left
        (an old cluster's on the same output dir, or a lost timeline of a restored database)."""
        job_id = self.cluster.allocate_job_id()
        self.output.begin_job(job_id)
        return job_id

    async def _queue_new(self, specs: list[JobSpec], owner: str) -> list[Job]:
        """Create and queue validated jobs, written in one durable step."""
        o = Outcome()
        now = self.clock.now()
        jobs = []
        for spec in specs:
            job = operations.create_job(self._new_job_id(), owner, spec, now, o)
            operations.submit_job(job, owner, now, o)
            self._cancel_if_never_runnable(job, o)
            self.cluster.add_job(job)
            jobs.append(job)
        await self.effects.apply(o, meta={NEXT_JOB_ID: str(self.cluster.next_job_id)})
        return jobs

    async def _add_new(self, job: Job, o: Outcome) -> None:
        self._cancel_if_never_runnable(job, o)
        self.cluster.add_job(job)
        await self.effects.apply(o, meta={NEXT_JOB_ID: str(self.cluster.next_job_id)})

    def _cancel_if_never_runnable(self, job: Job, o: Outcome) -> None:
        """A job queued with a dependency that can already never be met is cancelled at once
        if it asked for that (later changes are followed by Effects)."""
        if job.spec.cancel_on_unsatisfiable_dependency and job.state is JobState.QUEUED:
            if why := eligibility.never_satisfiable(self.cluster.jobs, job):
                operations.cancel_job(job, why, self.clock.now(), o)

    async def add_tasks(self, job_id: int, specs: list[TaskSpec], by: str) -> list[int]:
        job = self.cluster.job(job_id)
        if not specs:
            raise InvalidArgument("tasks is empty: give at least one task to add")
        if len(job.tasks) + len(specs) > MAX_TASKS:
            raise InvalidArgument(f"job {job_id} has {len(job.tasks)} tasks; adding {len(specs)} would pass the "
                                  f"limit of {MAX_TASKS} per job (use a parametric sweep for many alike)")
        for i, spec in enumerate(specs):
            validate_task(f"tasks[{i}]", spec)
            validate_task_in_job(f"tasks[{i}]", spec, job.spec)
        o = Outcome()
        numbers = operations.add_tasks(job, specs, by, self.clock.now(), o)
        await self.effects.apply(o)
        return numbers

    async def modify_task(self, task_id: TaskId, spec: TaskSpec, by: str) -> Task:
        job, task = self.cluster.job(task_id.job), self.cluster.task(task_id)
        validate_task("spec", spec)
        validate_task_in_job("spec", spec, job.spec)
        o = Outcome()
        operations.modify_task(job, task, spec, by, self.clock.now(), o)
        await self.effects.apply(o)
        return task

    async def submit_existing(self, job_id: int, by: str) -> int:
        job = self.cluster.job(job_id)
        if job.state is JobState.CONFIGURING:
            self._check_queued_limit(job.owner)
        o = Outcome()
        operations.submit_job(job, by, self.clock.now(), o)
        await self._apply_then_follow(job, o)
        return job_id

    async def _apply_then_follow(self, job: Job, o: Outcome) -> None:
        self._cancel_if_never_runnable(job, o)
        await self.effects.apply(o)

    # -- changing the course of a job ------------------------------------------------------

    async def cancel(self, job_id: int, by: str, reason: str = "") -> Job:
        job = self.cluster.job(job_id)
        o = Outcome()
        operations.cancel_job(job, _by(by, "cancelled", reason), self.clock.now(), o)
        await self.effects.apply(o)
        _log.info("job_cancelled", job_id=job_id, by=by, stopping=len(o.kill))
        return job

    async def cancel_task(self, task_id: TaskId, by: str, reason: str = "") -> Task:
        job, task = self.cluster.job(task_id.job), self.cluster.task(task_id)
        o = Outcome()
        operations.cancel_task(job, task, task_id.instance or None, _by(by, "cancelled", reason),
                               self.clock.now(), o)
        await self.effects.apply(o)
        return task

    async def requeue(self, job_id: int, by: str, chosen: list[TaskId]) -> Job:
        job = self.cluster.job(job_id)
        o = Outcome()
        operations.requeue_job(job, by, chosen or None, self.clock.now(), o)
        await self._apply_then_follow(job, o)
        return job

    async def configure(self, job_id: int, by: str) -> Job:
        job = self.cluster.job(job_id)
        o = Outcome()
        operations.configure_job(job, by, self.clock.now(), o)
        await self.effects.apply(o)
        return job

    async def clone(self, job_id: int, by: str) -> Job:
        source = self.cluster.job(job_id)
        o = Outcome()
        job = operations.clone_job(source, self._new_job_id(), by, self.clock.now(), o)
        await self._add_new(job, o)
        return job

    async def modify_job(self, job_id: int, fields: dict[str, object], by: str) -> Job:
        job = self.cluster.job(job_id)
        if not fields:
            raise InvalidArgument("nothing to modify: set at least one field (or list them in update_mask)")
        unknown = set(fields) - operations.MODIFIABLE_JOB_FIELDS
        if not unknown:  # (the domain names unknown fields in its own error)
            validate_job_spec(replace(job.spec, **fields), self.cluster.jobs, need_tasks=False)
        o = Outcome()
        self.cluster.unindex_dependencies(job)
        try:
            operations.modify_job(job, fields, by, self.clock.now(), o)
        finally:
            self.cluster.index_dependencies(job)
        await self._apply_then_follow(job, o)
        return job

    async def hold(self, job_id: int, by: str, reason: str = "") -> Job:
        job = self.cluster.job(job_id)
        o = Outcome()
        operations.hold_job(job, by, reason, self.clock.now(), o)
        await self.effects.apply(o)
        return job

    async def release(self, job_id: int, by: str) -> Job:
        job = self.cluster.job(job_id)
        o = Outcome()
        operations.release_job(job, by, self.clock.now(), o)
        await self.effects.apply(o)
        return job

    # -- views ----------------------------------------------------------------------------

    def task_spec(self, task_id: TaskId) -> TaskSpec:
        return self.cluster.task(task_id).spec

    def job_spec(self, job_id: int) -> JobSpec:
        return self.cluster.job(job_id).spec

    async def details(self, job_id: int, full: bool = True) -> JobDetails:
        job = self.cluster.job(job_id)
        history = None
        task_pending: dict[int, str] = {}
        sizes: dict[int, tuple[int, int]] = {}
        if full:
            # Job- and task-level entries; instances' own entries are listed per instance.
            history = await self.journal.read(lambda store: store.history(job_id, instance_id=0))
            for number, task in job.tasks.items():
                task_pending[number] = self.allocator.pending_reason(job, task)
                if task.spec.plain:
                    sizes[number] = self._sizes(task.id)
        reserved = tuple((n.name, n.reserved[job.id]) for n in sorted(self.cluster.nodes.values(), key=lambda n: n.name)
                         if job.id in n.reserved) if job.spec.reservation is not None else ()
        return JobDetails(job, self.job_pending_reason(job), task_pending, sizes, history, reserved)

    async def task_details(self, task_id: TaskId) -> TaskDetails:
        job, task = self.cluster.job(task_id.job), self.cluster.task(task_id)
        unit = None
        if task_id.instance:
            operations.check_instance(task, task_id.instance)
            unit = self._unit(job, task, task_id.instance)
            history = await self.journal.read(
                lambda store: store.history(job.id, task_id=task.id.task, instance_id=task_id.instance))
        else:
            history = await self.journal.read(lambda store: store.history(job.id, task_id=task.id.task))
        sizes = self._sizes(task.id) if task.spec.plain else (0, 0)
        return TaskDetails(job, task, unit, self.allocator.pending_reason(job, task), sizes, history)

    def job_pending_reason(self, job: Job) -> str:
        if job.state is not JobState.QUEUED:
            return ""
        if reason := eligibility.job_blocked(self.cluster.jobs, job):
            return reason
        for task in job.tasks.values():
            if reason := self.allocator.pending_reason(job, task):
                return reason
        return ""

    def list_jobs(
        self, states: Iterable[JobState], owner: str, name: str, page_size: int, page_token: str,
        newest_first: bool = False, count_total: bool = False,
    ) -> tuple[list[Job], str, int]:
        """A page of the jobs that match, by id (oldest or newest first), the token for the
        next page ("" after the last) and, with `count_total`, how many match in all (else 0).

        The token is the last id sent: pages hold still while jobs are added or purged."""
        size = _page_size(page_size)
        last = _int_token(page_token)
        wanted = set(states)
        page: list[Job] = []
        token, total = "", 0
        jobs = reversed(self.cluster.jobs.values()) if newest_first else self.cluster.jobs.values()
        for job in jobs:
            if (wanted and job.state not in wanted) or (owner and job.owner != owner) or (name and name not in job.name):
                continue
            if count_total:
                total += 1
            if last and (job.id >= last if newest_first else job.id <= last):
                continue
            if len(page) == size:
                token = str(page[-1].id)
                if not count_total:
                    break
                continue
            page.append(job)
        return page, token, total

    def list_tasks(
        self, job_id: int, task_no: int, states: Iterable[TaskState], page_size: int, page_token: str
    ) -> tuple[list[tuple[Task, str]], str]:
        job = self.cluster.job(job_id)
        size, after, wanted = _page_size(page_size), _int_token(page_token), set(states)
        page: list[tuple[Task, str]] = []
        for number, task in job.tasks.items():
            if number <= after or (task_no and number != task_no) or (wanted and task.state not in wanted):
                continue
            if len(page) == size:
                return page, str(page[-1][0].id.task)
            page.append((task, self.allocator.pending_reason(job, task)))
        if task_no and task_no not in job.tasks:
            self.cluster.task(TaskId(job_id, task_no))  # NotFound
        return page, ""

    def list_units(
        self, job_id: int, task_no: int, states: Iterable[TaskState], page_size: int, page_token: str
    ) -> tuple[list[UnitView], str]:
        """Run units in (task, instance) order, paged: never-ran instances are views, not
        objects, so listing a huge sweep costs only the page asked for."""
        job = self.cluster.job(job_id)
        if task_no:
            self.cluster.task(TaskId(job_id, task_no))  # NotFound
        size, wanted = _page_size(page_size), set(states)
        start_task, start_index = _pair_token(page_token)
        page: list[UnitView] = []
        for number, task in job.tasks.items():
            if number < start_task or (task_no and number != task_no):
                continue
            first = start_index if number == start_task else 0
            waiting = self.allocator.pending_reason(job, task)  # the same for all its queued instances
            for index in range(first, task.spec.count):
                iid = task.spec.instance_id(index)
                state = task.instance_state(iid)
                if wanted and state not in wanted:
                    continue
                if len(page) == size:
                    return page, f"{number}:{index}"
                page.append(self._unit(job, task, iid, waiting))
        return page, ""

    def unit_states(self, job_id: int) -> list[tuple[Task, str]]:
        """Each task of the job with the states of its run units in order, one letter each
        (UNIT_CODES): the dashboard's grid. Never-ran instances are not objects, so this is
        one string multiplication plus one write per instance that has run."""
        job = self.cluster.job(job_id)
        out: list[tuple[Task, str]] = []
        for task in job.tasks.values():
            spec = task.spec
            codes = [UNIT_CODES[task.unstarted]] * spec.count
            for iid, inst in task.instances.items():
                index = spec.index_of(iid)
                if 0 <= index < spec.count:
                    codes[index] = UNIT_CODES[inst.state]
            out.append((task, "".join(codes)))
        return out

    def _unit(self, job: Job, task: Task, iid: int, waiting: str | None = None) -> UnitView:
        inst = task.instances.get(iid)
        state = inst.state if inst is not None else task.unstarted
        sizes = self._sizes(inst.id) if inst is not None else (0, 0)
        if state is not TaskState.QUEUED:
            reason = ""
        else:
            reason = waiting if waiting is not None else self.allocator.pending_reason(job, task)
        return UnitView(job, task, iid, inst, state, reason, sizes)

    def _sizes(self, task_id: TaskId) -> tuple[int, int]:
        return self.output.size(task_id, "stdout"), self.output.size(task_id, "stderr")

    # -- watching -------------------------------------------------------------------------

    async def watch(self, job_id: int, job_events_only: bool = False) -> AsyncIterator[JobChanged]:
        """The job's history from its creation, then each change as it is committed, each
        exactly once, until the job has ended (with `job_events_only`, the job's own changes
        alone).

        The subscription starts before the history is read, so a change committed in
        between is both in the history and in the queue; its sequence number drops the
        second copy, and nothing falls between the two."""
        job = self.cluster.job(job_id)  # NotFound before anything is sent
        with self.bus.watch(job_id, job_events_only) as queue:
            history = await self.journal.read(lambda store: store.history(job_id))
            counts = tuple((s, n) for s, n in job.counts.items() if n)
            last = 0
            ended = False
            for event in replay((change_of(r) for r in history), counts):
                last = event.change.seq
                ended = _ends(event)
                if not job_events_only or event.change.task_id == 0:
                    yield event
            if ended:
                return
            while True:
                event = await queue.get()
                if event.change.seq <= last:
                    continue
                last = event.change.seq
                yield event
                if _ends(event):
                    return

    async def watch_all(self, owner: str, ready: Callable[[], Awaitable[None]],
                        most: int = 1, job_events_only: bool = False,
                        ends_only: bool = False) -> AsyncIterator[list[JobChanged]]:
        """Every change from now on (jobs' own alone with `job_events_only`, jobs' own into
        an end state alone with `ends_only`), in lists of up to `most` that piled up while the
        caller was busy; `ready` is awaited once the subscription is in place, so a caller can
        tell its client that nothing from then on will be missed."""
        with self.bus.watch(job_events_only=job_events_only, ends_only=ends_only) as queue:
            await ready()
            while True:
                events = [await queue.get()]
                while len(events) < most and not queue.empty():
                    events.append(queue.get_nowait())
                if owner:
                    events = [e for e in events if e.owner == owner]
                if events:
                    yield events

    def output_target(self, task_id: TaskId) -> TaskId:
        task = self.cluster.task(task_id)
        if task.spec.plain and task_id.instance:
            operations.check_instance(task, task_id.instance)
        if not task.spec.plain:
            if not task_id.instance:
                raise InvalidArgument(
                    f"task {task.id} has {task.spec.count} instances; name one, for example {task.id}.1"
                )
            operations.check_instance(task, task_id.instance)
        return task_id


def _ends(event: JobChanged) -> bool:
    """A job's own change to an end state comes after its tasks' changes in the same step."""
    return event.change.task_id == 0 and event.job_state.terminal


def _by(by: str, verb: str, reason: str) -> str:
    return f"{verb} by {by}" + (f": {reason}" if reason else "")


UNIT_CODES = {TaskState.CONFIGURING: "C", TaskState.QUEUED: "Q", TaskState.RUNNING: "R",
              TaskState.FINISHED: "F", TaskState.FAILED: "X", TaskState.CANCELLED: "K"}


def _page_size(page_size: int) -> int:
    if page_size < 0:
        raise InvalidArgument(f"page_size must be >= 0, got {page_size}")
    return min(page_size or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)


def _int_token(token: str) -> int:
    if not token:
        return 0
    if not token.isdigit():
        raise InvalidArgument(f"page_token {token!r} is not one this server returned")
    return int(token)


def _pair_token(token: str) -> tuple[int, int]:
    if not token:
        return 0, 0
    a, sep, b = token.partition(":")
    if not sep or not a.isdigit() or not b.isdigit():
        raise InvalidArgument(f"page_token {token!r} is not one this server returned")
    return int(a), int(b)

