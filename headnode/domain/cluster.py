"""The head node's in-memory view of the cluster: jobs, the queue, nodes (no I/O).

While the head node runs, this is the authoritative state; every change to it is also
written to the store (services/journal.py), from which it is rebuilt at start-up.

The queue holds the tasks that have instances waiting and nothing blocking them (see
eligibility.py), ordered by priority (higher first), then job id (submission order), then
task number. `sync` keeps a task's place right after anything that may change it.

A queued task that no node could ever run as the nodes are (too big for each, or ruled out
by its placement), or whose owner runs all the cores its limit allows, is parked: kept, with
its reason, out of `queue`, so that passes do not look at it again and again (4,000 such
tasks cost each SubmitJob 129 ms of the head's CPU, and 50 ms held back by a limit). The
allocator parks them and puts them all back when a node joins or changes. When one of an
owner's runs ends, effects.py calls `freed`, which puts back, in queue order, as many of the
owner's held tasks as the cores its limit may now let start could take (an upper bound: the
room the last pass left it, plus every core freed since), not all of them: a user with
thousands of short jobs queued over the limit would otherwise have them all looked at again
at each end. Housekeeping puts all held tasks back every few seconds, so none waits longer
than that on a count that came out low (a task put back that cannot start for want of a node
leaves the room to the next). `sync` puts one back whenever anything about it changes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from sortedcontainers import SortedDict

from common.errors import NotFound, quote
from common.ids import TaskId
from headnode.domain import eligibility
from headnode.domain.model import Instance, Job, Task
from headnode.domain.node import Node
from headnode.domain.states import JobState


class Cluster:
    def __init__(self, next_job_id: int = 1) -> None:
        self.jobs: dict[int, Job] = {}
        self.nodes: dict[str, Node] = {}
        self.queue: SortedDict = SortedDict()  # (-rank, job id, task number) -> Task
        self.parked: dict[tuple[float, int, int], tuple[Task, str]] = {}  # queue key -> (task, its reason)
        # Owner -> its tasks parked by its limit, in queue order: key -> the cores each needs at
        # once; and at most how many cores its limit lets it start now (`freed`).
        self.held: dict[str, SortedDict] = {}
        self.room: dict[str, int] = {}
        self.next_job_id = next_job_id
        # Job id -> ids of the jobs that depend on it.
        self.dependents: dict[int, set[int]] = {}
        # Jobs with a job-level reservation that is, or may soon be, held on nodes.
        self.reserving: set[int] = set()
        # Running jobs with a runtime limit (and, until housekeeping next looks, some that no
        # longer run): what housekeeping checks every second, rather than every job kept.
        self.limited: set[int] = set()
        # A job's place in the queue, higher first: its priority, or with fair-share its
        # effective priority (services/fairshare.py sets this and calls `rekey`).
        self.rank: Callable[[Job], float] = lambda job: job.spec.priority

    def allocate_job_id(self) -> int:
        job_id = self.next_job_id
        self.next_job_id += 1
        return job_id

    def add_job(self, job: Job) -> None:
        self.jobs[job.id] = job
        self.index_dependencies(job)
        self.sync_job(job)

    def index_dependencies(self, job: Job) -> None:
        for dep in job.spec.dependencies:
            self.dependents.setdefault(dep.job_id, set()).add(job.id)

    def unindex_dependencies(self, job: Job) -> None:
        for dep in job.spec.dependencies:
            children = self.dependents.get(dep.job_id)
            if children is not None:
                children.discard(job.id)
                if not children:
                    del self.dependents[dep.job_id]

    def remove_job(self, job: Job) -> None:
        for task in job.tasks.values():
            self._unqueue(task)
        self.unindex_dependencies(job)
        self.jobs.pop(job.id, None)

    def job(self, job_id: int) -> Job:
        try:
            return self.jobs[job_id]
        except KeyError:
            raise NotFound(f"job {job_id} does not exist") from None

    def task(self, task_id: TaskId) -> Task:
        job = self.job(task_id.job)
        try:
            return job.tasks[task_id.task]
        except KeyError:
            raise NotFound(f"task {task_id.job}.{task_id.task} does not exist (job {job.id} has "
                           f"{len(job.tasks)} tasks)") from None

    def find_instance(self, task_id: TaskId) -> tuple[Job, Task, Instance] | None:
        job = self.jobs.get(task_id.job)
        task = job.tasks.get(task_id.task) if job else None
        inst = task.instances.get(task_id.instance) if task else None
        return (job, task, inst) if job and task and inst else None

    def release_secondaries(self, task_id: TaskId, attempt: int, hosts: tuple[tuple[str, int], ...]) -> list[Node]:
        """Free a multi-node run's holds on its other nodes; returns those nodes."""
        freed = []
        for name, _ in hosts:
            node = self.nodes.get(name)
            alloc = node.allocations.get(task_id) if node else None
            if node is not None and alloc is not None and alloc.secondary and alloc.attempt == attempt:
                node.release(task_id)
                freed.append(node)
        return freed

    def node(self, name: str) -> Node:
        try:
            return self.nodes[name]
        except KeyError:
            raise NotFound(f"node {quote(name)!r} does not exist") from None

    # -- the queue -----------------------------------------------------------------------

    def blocked_reason(self, job: Job, task: Task) -> str | None:
        return eligibility.task_blocked(self.jobs, job, task)

    def sync(self, job: Job, task: Task) -> None:
        """Put the task in the queue, move it, or take it out, as its state says."""
        if job.spec.reservation is not None and job.state in (JobState.QUEUED, JobState.RUNNING):
            self.reserving.add(job.id)
        if job.spec.runtime_limit > 0 and job.state is JobState.RUNNING:
            self.limited.add(job.id)
        if task.pending and self.blocked_reason(job, task) is None:
            key = self._key(job, task)
            if task.queue_key != key or key in self.parked:
                self._unqueue(task)
                self.queue[key] = task
                task.queue_key = key
        else:
            self._unqueue(task)

    def rekey(self) -> int:
        """Put every queued task where `rank` now says; returns how many moved."""
        moved = 0
        ranks: dict[int, float] = {}
        for old, task in list(self.queue.items()):
            job_id = task.id.job
            if job_id not in ranks:
                ranks[job_id] = self.rank(self.jobs[job_id])
            key = (-ranks[job_id], job_id, task.id.task)
            if key != old:
                del self.queue[old]
                self.queue[key] = task
                task.queue_key = key
                moved += 1
        return moved

    def sync_job(self, job: Job) -> None:
        for task in job.tasks.values():
            self.sync(job, task)

    def queued(self) -> Iterator[Task]:
        return iter(self.queue.values())

    def waiting(self) -> int:
        """Tasks with instances waiting and nothing blocking them, parked ones included."""
        return len(self.queue) + len(self.parked)

    def park(self, task: Task, reason: str, owner: str = "", need: int = 0, room: int = 0) -> None:
        """Take a queued task out of the queue, with its reason. `owner`: parked because that
        owner's limit lets it start `room` more cores and the task needs `need` at once."""
        key = task.queue_key
        if key is not None and self.queue.pop(key, None) is not None:
            self.parked[key] = (task, reason)
            if owner:
                self.held.setdefault(owner, SortedDict())[key] = need
                self.room[owner] = room

    def parked_reason(self, task: Task) -> str | None:
        entry = self.parked.get(task.queue_key) if task.queue_key is not None else None
        return entry[1] if entry is not None else None

    def unpark_all(self) -> int:
        """Put every parked task back in the queue; returns how many."""
        count = len(self.parked)
        for task, _ in self.parked.values():
            self._requeue(task)
        self.parked.clear()
        self.held.clear()
        self.room.clear()
        return count

    def unpark_held(self) -> int:
        """Put back every task parked by its owner's limit; returns how many."""
        count = 0
        for held in self.held.values():
            for key in held:
                count += self._unpark(key)
        self.held.clear()
        self.room.clear()
        return count

    def freed(self, owner: str, cores: int) -> int:
        """One of `owner`'s runs stopped running, freeing `cores` of its limit: put back, in
        queue order, the held tasks that room could start; returns how many."""
        held = self.held.get(owner)
        if not held:
            return 0
        room = self.room[owner] = self.room.get(owner, 0) + cores
        given, back = 0, []
        for key, need in held.items():
            if given >= room:
                break
            if key not in self.parked:  # put back since (sync), or gone
                back.append(key)
            elif need <= room - given:
                back.append(key)
                given += need
        count = 0
        for key in back:
            del held[key]
            count += self._unpark(key)
        if not held:
            del self.held[owner], self.room[owner]
        return count

    def _unpark(self, key: tuple[float, int, int]) -> int:
        entry = self.parked.pop(key, None)
        if entry is None:
            return 0
        self._requeue(entry[0])
        return 1

    def _key(self, job: Job, task: Task) -> tuple[float, int, int]:
        return (-self.rank(job), job.id, task.id.task)

    def _requeue(self, task: Task) -> None:
        # Where `rank` says now: rekey() passes parked tasks by.
        key = self._key(self.jobs[task.id.job], task)
        self.queue[key] = task
        task.queue_key = key

    def _unqueue(self, task: Task) -> None:
        if task.queue_key is not None:
            if self.queue.pop(task.queue_key, None) is None:
                self.parked.pop(task.queue_key, None)
            task.queue_key = None

    def may_output(self, task_id: TaskId) -> bool:
        """Whether more output may still arrive for the instance: it has not run yet, or
        its process has not been reported gone."""
        job = self.jobs.get(task_id.job)
        task = job.tasks.get(task_id.task) if job else None
        if task is None:
            return False
        inst = task.instances.get(task_id.instance)
        if inst is None:
            return not task.unstarted.terminal
        return inst.holding or not inst.state.terminal
