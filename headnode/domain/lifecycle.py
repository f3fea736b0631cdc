"""What happens to a job and its tasks when something happens to them (pure, no I/O).

Each function takes the event's time `now`, moves states through the transition tables in
`states.py`, updates the run fields, and returns the Changes to record in history and
publish to watchers. The job's own state is derived from its task counts after every task
change, in one place (`_derive_job`).
"""

from __future__ import annotations

import signal as _signal

from common.ids import TaskId
from headnode.domain.model import Change, Job, JobSpec, Task
from headnode.domain.states import (
    JobEvent,
    JobState,
    TaskEvent,
    TaskState,
    next_job_state,
    next_task_state,
)


def create_job(job_id: int, owner: str, spec: JobSpec, now: float) -> tuple[Job, list[Change]]:
    job = Job(id=job_id, owner=owner, name=spec.name, state=JobState.CONFIGURING, created_at=now)
    for number, task_spec in enumerate(spec.tasks, start=1):
        job.add_task(Task(id=TaskId(job_id, number), spec=task_spec, state=TaskState.CONFIGURING))
    job.reason = f"created by {owner}"
    return job, [job.change(0, now, job.state.value, job.reason)]


def submit_job(job: Job, now: float, by: str) -> list[Change]:
    job.state = next_job_state(job.state, JobEvent.SUBMIT, f"job {job.id}")
    job.submitted_at = now
    job.reason = f"submitted by {by}"
    changes = [job.change(0, now, job.state.value, job.reason)]
    for task in job.tasks.values():
        _move(job, task, TaskEvent.SUBMIT, now, "", changes)
    return changes


def place_task(job: Job, task: Task, node: str, now: float) -> list[Change]:
    changes: list[Change] = []
    task.attempt += 1
    task.node = node
    task.holding = True
    task.started_at = now
    task.ended_at = None
    task.exit_code = None
    task.signal = 0
    _move(job, task, TaskEvent.PLACE, now, f"started on {node}", changes)
    changes += _derive_job(job, now)
    return changes


def task_exited(job: Job, task: Task, exit_code: int, signal: int, error: str, now: float) -> list[Change]:
    """The agent reports the current attempt's process gone. The caller checked the attempt."""
    task.holding = False
    task.exit_code = None if error else exit_code
    task.signal = signal
    if task.state is not TaskState.RUNNING:
        # Cancelled while running: the exit is the kill landing, not a new state.
        return []
    ok = not error and signal == 0 and exit_code == 0
    changes: list[Change] = []
    task.ended_at = now
    _move(job, task, TaskEvent.EXIT_OK if ok else TaskEvent.EXIT_FAIL, now, describe_exit(exit_code, signal, error), changes)
    changes += _derive_job(job, now)
    return changes


def task_lost(job: Job, task: Task, node: str, now: float) -> list[Change]:
    """The node running the task was lost; the process is presumed gone with it."""
    task.holding = False
    if task.state is not TaskState.RUNNING:
        return []
    changes: list[Change] = []
    task.ended_at = now
    _move(job, task, TaskEvent.LOST, now, f"node {node} lost", changes)
    changes += _derive_job(job, now)
    return changes


def cancel_job(job: Job, now: float, reason: str) -> list[Change]:
    """Cancel the job and every task that has not ended; running ones keep `holding`
    until their processes are confirmed gone."""
    job.state = next_job_state(job.state, JobEvent.CANCEL, f"job {job.id}")
    job.ended_at = now
    job.reason = reason
    changes = [job.change(0, now, job.state.value, reason)]
    for task in job.tasks.values():
        if not task.state.terminal:
            task.ended_at = now
            _move(job, task, TaskEvent.CANCEL, now, reason, changes)
    return changes


def describe_exit(exit_code: int, signal: int, error: str) -> str:
    if error:
        return f"could not start: {error}"
    if signal:
        try:
            name = _signal.Signals(signal).name
        except ValueError:
            name = "unknown signal"
        return f"killed by signal {signal} ({name})"
    return f"exit code {exit_code}"


def _move(job: Job, task: Task, event: TaskEvent, now: float, reason: str, changes: list[Change]) -> None:
    state = next_task_state(task.state, event, f"task {task.id}")
    job.set_task_state(task, state)
    task.reason = reason
    changes.append(job.change(task.id.task, now, state.value, reason))


def _derive_job(job: Job, now: float) -> list[Change]:
    if job.state.terminal:
        return []
    total = len(job.tasks)
    if total and job.ended_tasks == total:
        finished = job.counts[TaskState.FINISHED]
        if finished == total:
            event = JobEvent.ALL_FINISHED
            reason = f"all {total} tasks finished" if total > 1 else f"task {next(iter(job.tasks.values())).id} finished"
        else:
            event, reason = JobEvent.SOME_FAILED, _failure_summary(job, total)
        job.ended_at = now
    elif job.state is JobState.QUEUED and job.counts[TaskState.RUNNING] > 0:
        event, reason = JobEvent.START, ""
        job.started_at = now
    else:
        return []
    job.state = next_job_state(job.state, event, f"job {job.id}")
    job.reason = reason
    return [job.change(0, now, job.state.value, reason)]


def _failure_summary(job: Job, total: int) -> str:
    failed = job.counts[TaskState.FAILED]
    cancelled = job.counts[TaskState.CANCELLED]
    if total == 1:
        task = next(iter(job.tasks.values()))
        return f"task {task.id} {task.state.value.lower()}: {task.reason}"
    parts = []
    if failed:
        parts.append(f"{failed} of {total} tasks failed")
    if cancelled:
        parts.append(f"{cancelled} of {total} tasks cancelled")
    return ", ".join(parts)
