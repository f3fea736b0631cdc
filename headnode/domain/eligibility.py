"""May a task's instances be placed now, and if not, why not (pure).

The queue holds only eligible tasks; for the others this gives the pending reason a user
sees: the job is held, a job it depends on has not ended as required, or a task it depends
on has not finished. Resource reasons come from the scheduler instead.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping

from headnode.domain.model import DependencyKind, Job, JobDependency, Task
from headnode.domain.states import JobState, TaskState

_ACTIVE = (JobState.QUEUED, JobState.RUNNING)


class Status(enum.Enum):
    MET = "met"
    WAITING = "waiting"
    NEVER = "never"  # as things stand it can never be met


def dependency_status(dep: JobDependency, parent: Job | None) -> tuple[Status, str]:
    kind = dep.kind.value
    if parent is None:
        return Status.NEVER, f"dependency can never be satisfied: job {dep.job_id} no longer exists ({kind})"
    state = parent.state
    if dep.kind is DependencyKind.AFTER_ANY:
        met = state.terminal
        never = False
    elif dep.kind is DependencyKind.AFTER_OK:
        met = state is JobState.FINISHED
        never = state in (JobState.FAILED, JobState.CANCELLED)
    else:  # AFTER_NOT_OK
        met = state in (JobState.FAILED, JobState.CANCELLED)
        never = state is JobState.FINISHED
    if met:
        return Status.MET, ""
    if never:
        return Status.NEVER, f"dependency can never be satisfied: job {parent.id} {state.value} ({kind})"
    return Status.WAITING, f"waiting for job {parent.id} ({kind}; it is {state.value})"


def job_blocked(jobs: Mapping[int, Job], job: Job) -> str | None:
    if job.state not in _ACTIVE:
        return f"job {job.id} is {job.state.value}"
    if job.held_by:
        return f"held by {job.held_by}"
    for dep in job.spec.dependencies:
        status, why = dependency_status(dep, jobs.get(dep.job_id))
        if status is not Status.MET:
            return why
    return None


def task_blocked(jobs: Mapping[int, Job], job: Job, task: Task) -> str | None:
    if reason := job_blocked(jobs, job):
        return reason
    for name in task.spec.depends_on:
        for other in job.tasks_named(name):
            if not other.state.terminal:
                return f"waiting for task {other.id} ({name}) to finish; it is {other.state.value}"
            if other.state is not TaskState.FINISHED and not job.spec.run_dependents_after_failure:
                return f"dependency {name} {other.state.value.lower()}"
    return None


def never_satisfiable(jobs: Mapping[int, Job], job: Job) -> str | None:
    """The reason if one of the job's dependencies can never be met as things stand."""
    for dep in job.spec.dependencies:
        status, why = dependency_status(dep, jobs.get(dep.job_id))
        if status is Status.NEVER:
            return why
    return None
