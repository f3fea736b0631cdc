"""The HPC Pack job lifecycle as users drive it (pure): create, add and modify tasks while
Configuring, submit, cancel a job or a task, requeue, configure, clone, modify, hold and
release. Each checks the job's state through the transition tables, so an operation from
a state that does not allow it fails with FailedPrecondition naming the current state, and
changes nothing.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from typing import Any

from common.errors import FailedPrecondition, InvalidArgument, NotFound
from common.ids import TaskId
from headnode.domain.lifecycle import (
    Outcome,
    cancel_instance,
    end_job,
    move_unit,
    set_unstarted,
    settle_task,
    stop_units,
)
from headnode.domain.model import Job, JobSpec, Task, TaskSpec
from headnode.domain.states import JobEvent, JobState, TaskEvent, TaskState, next_job_state

MODIFIABLE_JOB_FIELDS = frozenset({
    "name", "project", "priority", "runtime_limit", "fail_on_task_failure", "dependencies",
    "cancel_on_unsatisfiable_dependency", "run_dependents_after_failure",
})


def create_job(job_id: int, owner: str, spec: JobSpec, now: float, o: Outcome, why: str = "") -> Job:
    job = Job(id=job_id, owner=owner, spec=replace(spec, tasks=()), state=JobState.CONFIGURING, created_at=now)
    job.reason = why or f"created by {owner}"
    o.changes.append(job.change(0, now, job.state.value, job.reason))
    o.touch(job)
    add_tasks(job, spec.tasks, owner, now, o)
    return job


def add_tasks(job: Job, specs: tuple[TaskSpec, ...] | list[TaskSpec], by: str, now: float, o: Outcome) -> list[int]:
    _require(job, (JobState.CONFIGURING,), "tasks can be added")
    numbers = []
    next_number = max(job.tasks, default=0) + 1
    for spec in specs:
        task = Task(id=TaskId(job.id, next_number), spec=spec, reason=f"added by {by}")
        task.counts[TaskState.CONFIGURING] = spec.count
        job.counts[TaskState.CONFIGURING] += spec.count
        job.tasks[next_number] = task
        o.changes.append(job.change(next_number, now, task.state.value, task.reason))
        o.touch(job, task)
        o.new_tasks[task.id] = task
        numbers.append(next_number)
        next_number += 1
    return numbers


def modify_task(job: Job, task: Task, spec: TaskSpec, by: str, now: float, o: Outcome) -> None:
    _require(job, (JobState.CONFIGURING,), "tasks can be modified")
    if spec.count != task.spec.count and task.instances:
        raise FailedPrecondition(
            f"task {task.id} has run before; its number of instances ({task.spec.count}) cannot change"
        )
    delta = spec.count - task.spec.count
    task.counts[TaskState.CONFIGURING] += delta
    job.counts[TaskState.CONFIGURING] += delta
    task.spec = spec
    o.changes.append(job.change(task.id.task, now, task.state.value, f"modified by {by}"))
    o.touch(job, task)
    o.new_tasks[task.id] = task


def submit_job(job: Job, by: str, now: float, o: Outcome) -> None:
    if job.state is JobState.CONFIGURING and not job.tasks:
        raise FailedPrecondition(f"job {job.id} has no tasks: add one with `shoal job add {job.id} -- CMD`")
    state = next_job_state(job.state, JobEvent.SUBMIT, f"job {job.id}")
    if problem := dag_problem(job):
        raise InvalidArgument(problem)
    job.state = state
    index_dependencies(job)
    job.submitted_at = now
    job.started_at = job.ended_at = None
    job.reason = f"submitted by {by}"
    if job.spec.hold:
        job.held_by = f"{by} (submitted held)"
    o.changes.append(job.change(0, now, job.state.value, job.reason))
    o.touch(job)
    for task in job.tasks.values():
        task.started_at = None
        for inst in task.instances.values():
            if inst.state is TaskState.CONFIGURING:
                move_unit(job, task, inst, TaskEvent.SUBMIT, now, "", o, derive=False)
                task.requeued.append(inst.id.instance)
        if task.unstarted is TaskState.CONFIGURING:
            set_unstarted(job, task, TaskState.QUEUED)
        o.touch(job, task)
    _settle_all(job, job.tasks.values(), now, "", o)


def cancel_job(job: Job, reason: str, now: float, o: Outcome) -> None:
    job.state = next_job_state(job.state, JobEvent.CANCEL, f"job {job.id}")
    for task in job.tasks.values():
        if not task.state.terminal:
            stop_units(job, task, TaskEvent.CANCEL, now, reason, o)
    end_job(job, now, reason, o)  # last, so watchers see the tasks' changes before the end


def cancel_task(job: Job, task: Task, instance_id: int | None, reason: str, now: float, o: Outcome) -> None:
    _require(job, (JobState.CONFIGURING, JobState.QUEUED, JobState.RUNNING), "its tasks can be cancelled")
    if instance_id is None:
        if task.state.terminal:
            raise FailedPrecondition(f"task {task.id} is {task.state.value}; only a task that has not ended can be cancelled")
        stop_units(job, task, TaskEvent.CANCEL, now, reason, o)
    else:
        check_instance(task, instance_id)
        cancel_instance(job, task, instance_id, now, reason, o)


def requeue_job(job: Job, by: str, chosen: list[TaskId] | None, now: float, o: Outcome) -> None:
    """Back to the queue: every unit that did not finish, or only the chosen tasks or
    instances (whatever their state: choosing one is asking for it to run again)."""
    units: dict[int, set[int] | None] = {}  # task number -> instance ids (None: the whole task)
    unstarted_too: set[int] = set()  # tasks whose never-started instances were chosen
    for ref in chosen or ():
        task = job.tasks.get(ref.task)
        if task is None:
            raise NotFound(f"task {ref} does not exist (job {job.id} has {len(job.tasks)} tasks)")
        if ref.instance:
            check_instance(task, ref.instance)
            if ref.instance not in task.instances:
                unstarted_too.add(ref.task)  # never ran: it is one of the task's unstarted run
            existing = units.setdefault(ref.task, set())
            if existing is not None:
                existing.add(ref.instance)
        else:
            units[ref.task] = None
    job.state = next_job_state(job.state, JobEvent.REQUEUE, f"job {job.id}")
    job.reason = f"requeued by {by}"
    job.started_at = job.ended_at = None
    o.changes.append(job.change(0, now, job.state.value, job.reason))
    o.touch(job)
    everything = not chosen
    touched = []
    for number, task in job.tasks.items():
        if not everything and number not in units:
            continue
        only = units.get(number)
        for inst in task.instances.values():
            if only is not None and inst.id.instance not in only:
                continue
            if inst.state.terminal and (not everything or inst.state is not TaskState.FINISHED):
                inst.retries = 0
                move_unit(job, task, inst, TaskEvent.REQUEUE, now, job.reason, o, derive=False)
                task.requeued.append(inst.id.instance)
        if (only is None or number in unstarted_too) and task.unstarted is TaskState.CANCELLED:
            set_unstarted(job, task, TaskState.QUEUED)
        task.started_at = task.ended_at = None
        o.touch(job, task)
        touched.append(task)
    _settle_all(job, touched, now, job.reason, o)


def configure_job(job: Job, by: str, now: float, o: Outcome) -> None:
    """Back to Configuring so its tasks can be fixed; finished ones keep their results."""
    job.state = next_job_state(job.state, JobEvent.CONFIGURE, f"job {job.id}")
    job.reason = f"configured by {by}"
    job.started_at = job.ended_at = None
    o.changes.append(job.change(0, now, job.state.value, job.reason))
    o.touch(job)
    for task in job.tasks.values():
        for inst in task.instances.values():
            if inst.state is not TaskState.FINISHED and inst.state is not TaskState.CONFIGURING:
                move_unit(job, task, inst, TaskEvent.CONFIGURE, now, job.reason, o, derive=False)
        task.requeued.clear()
        if task.unstarted in (TaskState.QUEUED, TaskState.CANCELLED):
            set_unstarted(job, task, TaskState.CONFIGURING)
        task.started_at = task.ended_at = None
        o.touch(job, task)
    _settle_all(job, job.tasks.values(), now, job.reason, o)


def clone_job(source: Job, new_id: int, by: str, now: float, o: Outcome) -> Job:
    """A new Configuring job owned by `by` (who may clone is the API's call: identity.py)."""
    spec = replace(source.spec, tasks=tuple(t.spec for t in source.tasks.values()))
    return create_job(new_id, by, spec, now, o, why=f"cloned from job {source.id} by {by}")


def modify_job(job: Job, fields: dict[str, Any], by: str, now: float, o: Outcome) -> None:
    _require(job, (JobState.CONFIGURING, JobState.QUEUED), "it can be modified")
    if job.state is JobState.QUEUED and job.started_at is not None:
        raise FailedPrecondition(f"job {job.id} has started; it can be modified only before it starts")
    unknown = set(fields) - MODIFIABLE_JOB_FIELDS
    if unknown:
        raise InvalidArgument(
            f"cannot modify {', '.join(sorted(unknown))}; modifiable: {', '.join(sorted(MODIFIABLE_JOB_FIELDS))}"
        )
    job.spec = replace(job.spec, **fields)
    job.reason = f"modified by {by} ({', '.join(sorted(fields))})"
    o.changes.append(job.change(0, now, job.state.value, job.reason))
    o.touch(job)
    for task in job.tasks.values():
        o.resync[task.id] = task


def hold_job(job: Job, by: str, reason: str, now: float, o: Outcome) -> None:
    _require(job, (JobState.QUEUED,), "it can be held")
    if job.held_by:
        raise FailedPrecondition(f"job {job.id} is already held by {job.held_by}")
    job.held_by = by + (f": {reason}" if reason else "")
    o.changes.append(job.change(0, now, job.state.value, f"held by {job.held_by}"))
    o.touch(job)
    for task in job.tasks.values():
        o.resync[task.id] = task


def release_job(job: Job, by: str, now: float, o: Outcome) -> None:
    if not job.held_by:
        raise FailedPrecondition(f"job {job.id} is not held")
    job.held_by = ""
    o.changes.append(job.change(0, now, job.state.value, f"released by {by}"))
    o.touch(job)
    for task in job.tasks.values():
        o.resync[task.id] = task


def _settle_all(job: Job, tasks: Iterable[Task], now: float, reason: str, o: Outcome) -> None:
    """Derive task states only once every unit has moved: settling one task while others
    have not moved yet would derive the job from a half-changed picture."""
    for task in tasks:
        settle_task(job, task, now, reason, o)


def check_instance(task: Task, instance_id: int) -> None:
    if not task.spec.has_instance(instance_id):
        if task.spec.plain:
            raise NotFound(f"task {task.id} has no instances (it is a plain task); use {task.id}")
        raise NotFound(f"task {task.id} has instances 1..{task.spec.count}, not {instance_id}")


def index_dependencies(job: Job) -> None:
    """Fill job.dependents and job.by_name from the tasks' names (call after dag_problem)."""
    numbers_by_name: dict[str, list[int]] = {}
    for number, task in job.tasks.items():
        numbers_by_name.setdefault(task.spec.name, []).append(number)
    dependents: dict[int, list[int]] = {}
    for number, task in job.tasks.items():
        for name in task.spec.depends_on:
            for parent in numbers_by_name.get(name, ()):
                dependents.setdefault(parent, []).append(number)
    job.dependents = {k: tuple(v) for k, v in dependents.items()}
    job.by_name = {k: tuple(v) for k, v in numbers_by_name.items()}


def dag_problem(job: Job) -> str | None:
    """Why the tasks' dependencies cannot be run, or None: unknown names, a task depending
    on itself, or a cycle, each naming the tasks involved."""
    names: dict[str, list[int]] = {}
    for number, task in job.tasks.items():
        if task.spec.name:
            names.setdefault(task.spec.name, []).append(number)
    edges: dict[int, list[int]] = {}
    for number, task in job.tasks.items():
        for name in task.spec.depends_on:
            if name == task.spec.name:
                return f"task {_label(job, number)} depends on itself"
            if name not in names:
                known = ", ".join(sorted(names)) or "none"
                return f"task {_label(job, number)} depends on {name!r}, but no task of the job has that name (names: {known})"
            edges.setdefault(number, []).extend(names[name])
    # Iterative depth-first search; a grey node met again closes a cycle.
    colour: dict[int, int] = {}
    for start in job.tasks:
        if colour.get(start):
            continue
        stack: list[tuple[int, int]] = [(start, 0)]
        path: list[int] = []
        while stack:
            node, i = stack.pop()
            if i == 0:
                colour[node] = 1
                path.append(node)
            children = edges.get(node, [])
            if i < len(children):
                stack.append((node, i + 1))
                child = children[i]
                if colour.get(child) == 1:
                    cycle = path[path.index(child):] + [child]
                    return "tasks " + " -> ".join(_label(job, n) for n in cycle) + " form a dependency cycle"
                if not colour.get(child):
                    stack.append((child, 0))
            else:
                colour[node] = 2
                path.pop()
    return None


def _label(job: Job, number: int) -> str:
    name = job.tasks[number].spec.name
    return f"{job.id}.{number} ({name})" if name else f"{job.id}.{number}"


def _require(job: Job, states: tuple[JobState, ...], what: str) -> None:
    if job.state not in states:
        allowed = " or ".join(s.value for s in states)
        raise FailedPrecondition(f"job {job.id} is {job.state.value}; {what} only while it is {allowed}")

