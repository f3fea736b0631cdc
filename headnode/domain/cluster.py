"""The head node's in-memory view of the cluster: jobs, the queue, nodes (no I/O).

While the head node runs, this is the authoritative state; every change to it is also
written to the store (services/journal.py), from which it is rebuilt at start-up. The queue
holds the Queued tasks in first-come first-served order (job id, then task id).
"""

from __future__ import annotations

from collections.abc import Iterator

from common.errors import NotFound
from common.ids import TaskId
from headnode.domain.model import Job, Task
from headnode.domain.node import Node
from headnode.domain.states import TaskState


class Cluster:
    def __init__(self, next_job_id: int = 1) -> None:
        self.jobs: dict[int, Job] = {}
        self.nodes: dict[str, Node] = {}
        # dict as an ordered set: insertion order is queue order.
        self.queue: dict[TaskId, Task] = {}
        self.next_job_id = next_job_id

    def allocate_job_id(self) -> int:
        job_id = self.next_job_id
        self.next_job_id += 1
        return job_id

    def add_job(self, job: Job) -> None:
        self.jobs[job.id] = job
        for task in job.tasks.values():
            self.sync_queue(task)

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
            raise NotFound(f"task {task_id} does not exist (job {job.id} has {len(job.tasks)} tasks)") from None

    def find_task(self, task_id: TaskId) -> tuple[Job, Task] | None:
        job = self.jobs.get(task_id.job)
        task = job.tasks.get(task_id.task) if job else None
        return (job, task) if job and task else None

    def node(self, name: str) -> Node:
        try:
            return self.nodes[name]
        except KeyError:
            raise NotFound(f"node {name!r} does not exist") from None

    def sync_queue(self, task: Task) -> None:
        """Keep the queue index in step with the task's state; call after any task change."""
        if task.state is TaskState.QUEUED:
            self.queue.setdefault(task.id, task)
        else:
            self.queue.pop(task.id, None)

    def queued(self) -> Iterator[Task]:
        return iter(self.queue.values())

    def may_output(self, task_id: TaskId) -> bool:
        """Whether more output may still arrive for the task (it has not run, or its
        process has not been reported gone)."""
        found = self.find_task(task_id)
        return found is not None and (found[1].holding or not found[1].state.terminal)
