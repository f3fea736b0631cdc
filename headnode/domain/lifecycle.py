"""What happens to instances, tasks and jobs when something happens to them (pure, no I/O).

Every function takes the event's time `now` and an Outcome that collects the effects: the
status Changes to record and publish, the rows touched (to persist only those), the
instances that hold resources but must stop (to kill), and the tasks whose place in the
queue may have changed. States move only through the tables in `states.py`.

The run unit is the instance. A task's state is derived from its instances' counts, and a
job's from all of them, in one place each (`_task_state`, `_derive_job`), so they never
disagree. Instances that never ran change state in bulk (`set_unstarted`) without an
entry per instance, which keeps a 100,000-instance sweep cheap to submit and to cancel.
"""

from __future__ import annotations

import signal as _signal
from dataclasses import dataclass, field

from common.ids import TaskId
from common.resources import Generic
from headnode.domain.model import Change, Instance, Job, Task
from headnode.domain.states import (
    JobEvent,
    JobState,
    TaskEvent,
    TaskState,
    next_job_state,
    next_task_state,
)

ACTIVE_JOB = (JobState.QUEUED, JobState.RUNNING)


@dataclass
class Outcome:
    changes: list[Change] = field(default_factory=list)
    jobs: dict[int, Job] = field(default_factory=dict)
    tasks: dict[TaskId, Task] = field(default_factory=dict)
    new_tasks: dict[TaskId, Task] = field(default_factory=dict)  # rows whose spec must be written
    instances: dict[TaskId, Instance] = field(default_factory=dict)
    # Hold resources on a node but should no longer run: stop them.
    kill: list[Instance] = field(default_factory=list)
    # Tasks whose eligibility or pending count may have changed.
    resync: dict[TaskId, Task] = field(default_factory=dict)
    # Jobs that reached an end state (their dependents in other jobs may move).
    ended: list[Job] = field(default_factory=list)

    def touch(self, job: Job, task: Task | None = None, inst: Instance | None = None) -> None:
        self.jobs[job.id] = job
        if task is not None:
            self.tasks[task.id] = task
            self.resync[task.id] = task
        if inst is not None:
            self.instances[inst.id] = inst


# -- placement and reports ------------------------------------------------------------------


def take_pending(task: Task) -> int | None:
    """The next instance to place: requeued ones first (skipping any whose last process is
    still stopping), then never-started ones in order. None if there is none."""
    for _ in range(len(task.requeued)):
        iid = task.requeued.popleft()
        if not task.instances[iid].holding:
            return iid
        task.requeued.append(iid)
    if task.unstarted is TaskState.QUEUED:
        while task.cursor < task.spec.count:
            iid = task.spec.instance_id(task.cursor)
            task.cursor += 1
            if iid not in task.instances:
                return iid
            task.ahead -= 1  # passed one that was materialized out of order (cancelled)
    return None


def place(job: Job, task: Task, iid: int, node: str, cores: int, memory_mb: int, now: float, o: Outcome,
          generic: Generic = (), hosts: tuple[tuple[str, int], ...] = ()) -> Instance:
    """Resources allocated: `cores`, `memory_mb` and `generic` on `node`, and for a multi-node
    run `hosts` (other node, cores) with the same memory and generic resources on each."""
    inst = task.instances.get(iid)
    if inst is None:
        inst = task.instances[iid] = Instance(TaskId(job.id, task.id.task, iid), TaskState.QUEUED)
    inst.attempt += 1
    inst.node = node
    inst.holding = True
    inst.cores = cores
    inst.memory_mb = memory_mb
    inst.generic = generic
    inst.hosts = hosts
    inst.started_at = now
    inst.ended_at = None
    inst.exit_code = None
    inst.signal = 0
    if task.started_at is None:
        task.started_at = now
    where = node if not hosts else f"{node} and {', '.join(h for h, _ in hosts)}"
    move_unit(job, task, inst, TaskEvent.PLACE, now, f"started on {where}", o)
    return inst


def reserved(job: Job, where: str, now: float, o: Outcome) -> None:
    """The job's reservation now holds its minimum: it is Running (HPC Pack) before any task is."""
    if job.state is not JobState.QUEUED:
        return
    job.state = next_job_state(job.state, JobEvent.START, f"job {job.id}")
    job.started_at = now
    job.reason = f"allocated {where}"
    o.changes.append(job.change(0, now, job.state.value, job.reason))
    o.touch(job)


def preempt(job: Job, task: Task, inst: Instance, reason: str, now: float, o: Outcome) -> None:
    """Stop a running instance for higher-priority work. It is Queued at once (not a retry),
    but waits to be placed again until its process is gone (`released`), so its resources
    are never counted twice."""
    if inst.state is not TaskState.RUNNING:
        return
    move_unit(job, task, inst, TaskEvent.PREEMPT, now, reason, o)
    if inst.holding:
        o.kill.append(inst)
    else:
        released(task, inst, o)


def released(task: Task, inst: Instance, o: Outcome) -> None:
    """The instance's process is gone: a preempted one may now be placed again."""
    iid = inst.id.instance
    if inst.state is TaskState.QUEUED and not inst.holding and iid not in task.requeued:
        task.requeued.append(iid)
        o.resync[task.id] = task
        o.tasks[task.id] = task


OUT_OF_MEMORY = "OUT_OF_MEMORY"


def exited(
    job: Job, task: Task, inst: Instance, exit_code: int, signal: int, error: str, runtime_exceeded: bool,
    now: float, o: Outcome, out_of_memory: bool = False,
) -> None:
    """The agent reports the current attempt's process gone (the caller checked the attempt)."""
    inst.holding = False
    inst.exit_code = None if error else exit_code
    inst.signal = signal
    o.touch(job, task, inst)
    if inst.state is not TaskState.RUNNING:
        released(task, inst, o)
        return  # stopped on request: the exit is the kill landing, not a new state
    ok = not (error or signal or runtime_exceeded or out_of_memory) and task.spec.succeeded(exit_code)
    reason = describe_exit(exit_code, signal, error, task.spec.runtime_limit if runtime_exceeded else 0.0)
    if out_of_memory:
        reason = f"{OUT_OF_MEMORY}: killed for using more than its {inst.memory_mb} MB of memory"
    inst.ended_at = now
    move_unit(job, task, inst, TaskEvent.EXIT_OK if ok else TaskEvent.EXIT_FAIL, now, reason, o)
    if not ok:
        _fail_fast(job, inst, reason, now, o)


def lost(job: Job, task: Task, inst: Instance, node: str, now: float, o: Outcome, what: str = "lost") -> None:
    """The node running the instance was lost (or taken offline, `what`); the process is
    presumed gone with it."""
    inst.holding = False
    o.touch(job, task, inst)
    if inst.state is not TaskState.RUNNING:
        released(task, inst, o)
        return
    spec = task.spec
    if spec.rerunnable and inst.retries < spec.max_retries and job.state in ACTIVE_JOB:
        inst.retries += 1
        reason = f"node {node} {what}; requeued (retry {inst.retries} of {spec.max_retries})"
        move_unit(job, task, inst, TaskEvent.RETRY, now, reason, o)
        task.requeued.append(inst.id.instance)
        return
    inst.ended_at = now
    reason = f"node {node} {what}"
    move_unit(job, task, inst, TaskEvent.LOST, now, reason, o)
    _fail_fast(job, inst, reason, now, o)


def describe_exit(exit_code: int, signal: int, error: str, runtime_limit: float = 0.0) -> str:
    if error:
        return f"could not start: {error}"
    if runtime_limit:
        return f"runtime limit {format_seconds(runtime_limit)} exceeded"
    if signal:
        try:
            name = _signal.Signals(signal).name
        except ValueError:
            name = "unknown signal"
        return f"killed by signal {signal} ({name})"
    return f"exit code {exit_code}"


def format_seconds(seconds: float) -> str:
    s = int(seconds)
    if s % 86400 == 0 and s:
        return f"{s // 86400}d"
    if s % 3600 == 0 and s:
        return f"{s // 3600}h"
    if s % 60 == 0 and s:
        return f"{s // 60}m"
    return f"{seconds:g}s"


# -- stopping -------------------------------------------------------------------------------


def stop_units(job: Job, task: Task, event: TaskEvent, now: float, reason: str, o: Outcome) -> None:
    """Move every unit of the task that has not ended through `event` (CANCEL): running ones
    keep their resources until their processes are confirmed gone."""
    for inst in list(task.instances.values()):
        if not inst.state.terminal:
            inst.ended_at = now
            move_unit(job, task, inst, event, now, reason, o, derive=False)
    task.requeued.clear()
    if not task.unstarted.terminal and task.unstarted_count:
        set_unstarted(job, task, next_task_state(task.unstarted, event, f"task {task.id}"))
    elif not task.unstarted.terminal:
        task.unstarted = next_task_state(task.unstarted, event, f"task {task.id}")
    o.touch(job, task)
    settle_task(job, task, now, reason, o)


def cancel_instance(job: Job, task: Task, iid: int, now: float, reason: str, o: Outcome) -> None:
    inst = task.instances.get(iid)
    if inst is None:
        # Never started (so at or past the cursor): it gets a state of its own, apart from
        # the run of unstarted ones it is counted with until now.
        inst = Instance(TaskId(job.id, task.id.task, iid), task.unstarted)
        next_task_state(inst.state, TaskEvent.CANCEL, f"task {inst.id}")  # refuses before changing anything
        task.instances[iid] = inst
        task.ahead += 1
    if inst.id.instance in task.requeued:
        task.requeued.remove(inst.id.instance)
    inst.ended_at = now
    move_unit(job, task, inst, TaskEvent.CANCEL, now, reason, o)


# -- the derived states ---------------------------------------------------------------------


def _move_counts(job: Job, task: Task, old: TaskState, new: TaskState, n: int = 1) -> None:
    task.counts[old] -= n
    task.counts[new] += n
    job.counts[old] -= n
    job.counts[new] += n


def set_unstarted(job: Job, task: Task, state: TaskState) -> None:
    n = task.unstarted_count
    if n:
        _move_counts(job, task, task.unstarted, state, n)
    task.unstarted = state


def move_unit(
    job: Job, task: Task, inst: Instance, event: TaskEvent, now: float, reason: str, o: Outcome,
    derive: bool = True,
) -> None:
    old = inst.state
    new = next_task_state(old, event, f"task {inst.id}")
    inst.state = new
    inst.reason = reason
    _move_counts(job, task, old, new)
    o.touch(job, task, inst)
    if inst.holding and new.terminal:
        o.kill.append(inst)
    if not task.spec.plain:
        o.changes.append(job.change(task.id.task, now, new.value, reason, inst.id.instance))
    if derive:
        settle_task(job, task, now, reason, o)


def _task_state(task: Task) -> TaskState:
    if task.spec.plain:
        return task.instance_state(0)
    c = task.counts
    if c[TaskState.RUNNING]:
        return TaskState.RUNNING
    if c[TaskState.CONFIGURING]:
        return TaskState.CONFIGURING
    if c[TaskState.QUEUED]:
        return TaskState.RUNNING if task.started_at is not None else TaskState.QUEUED
    if c[TaskState.FINISHED] == task.spec.count:
        return TaskState.FINISHED
    return TaskState.FAILED if c[TaskState.FAILED] else TaskState.CANCELLED


def settle_task(job: Job, task: Task, now: float, reason: str, o: Outcome) -> None:
    """Recompute the task's state from its units; follow the consequences of an end."""
    new = _task_state(task)
    if new is not task.state:
        old = task.state
        task.state = new
        task.reason = reason if task.spec.plain else _task_summary(task, new)
        if new.terminal:
            task.ended_at = now
        elif old.terminal:
            task.ended_at = None
        o.changes.append(job.change(task.id.task, now, new.value, task.reason))
        o.touch(job, task)
        if new.terminal:
            _dependents_of_ended(job, task, now, o)
    _derive_job(job, now, o)


def _task_summary(task: Task, state: TaskState) -> str:
    n = task.spec.count
    if state is TaskState.RUNNING:
        return f"{task.counts[TaskState.RUNNING]} of {n} instances running"
    if state is TaskState.FINISHED:
        return f"all {n} instances finished"
    if state.terminal:
        parts = [f"{task.counts[s]} of {n} instances {s.value.lower()}"
                 for s in (TaskState.FAILED, TaskState.CANCELLED) if task.counts[s]]
        return ", ".join(parts)
    return ""


def _dependents_of_ended(job: Job, task: Task, now: float, o: Outcome) -> None:
    for number in job.dependents.get(task.id.task, ()):
        dependent = job.tasks[number]
        o.resync[dependent.id] = dependent
        if task.state is TaskState.FINISHED or job.spec.run_dependents_after_failure:
            continue
        if not dependent.state.terminal and job.state in (*ACTIVE_JOB, JobState.CONFIGURING):
            why = f"dependency {task.spec.name} {task.state.value.lower()}"
            stop_units(job, dependent, TaskEvent.CANCEL, now, why, o)


def _fail_fast(job: Job, inst: Instance, reason: str, now: float, o: Outcome) -> None:
    if job.spec.fail_on_task_failure and job.state in ACTIVE_JOB:
        fail_job(job, now, f"task {inst.id} failed: {reason}", o)


def fail_job(job: Job, now: float, reason: str, o: Outcome) -> None:
    """The job fails as a whole (a task failed with fail_on_task_failure, or its runtime
    limit passed): whatever has not ended is cancelled."""
    job.state = next_job_state(job.state, JobEvent.FAIL, f"job {job.id}")
    why = f"job failed: {reason}"
    for task in job.tasks.values():
        if not task.state.terminal:
            stop_units(job, task, TaskEvent.CANCEL, now, why, o)
    end_job(job, now, reason, o)  # last, so watchers see the tasks' changes before the end


def end_job(job: Job, now: float, reason: str, o: Outcome) -> None:
    job.ended_at = now
    job.reason = reason
    o.changes.append(job.change(0, now, job.state.value, reason))
    o.touch(job)
    o.ended.append(job)


def _derive_job(job: Job, now: float, o: Outcome) -> None:
    if job.state not in ACTIVE_JOB:
        return
    c = job.counts
    total = sum(c.values())
    if total and job.ended_units == total:
        if c[TaskState.FINISHED] == total:
            event, reason = JobEvent.ALL_FINISHED, _finished_summary(job, total)
        elif not c[TaskState.FAILED] and c[TaskState.CANCELLED] == total:
            event, reason = JobEvent.ALL_CANCELLED, "every task was cancelled"
        else:
            event, reason = JobEvent.SOME_FAILED, _failure_summary(job, total)
        job.state = next_job_state(job.state, event, f"job {job.id}")
        end_job(job, now, reason, o)
    elif job.state is JobState.QUEUED and c[TaskState.RUNNING] > 0:
        job.state = next_job_state(job.state, JobEvent.START, f"job {job.id}")
        job.started_at = now
        job.reason = ""
        o.changes.append(job.change(0, now, job.state.value, ""))
        o.touch(job)


def _units_word(job: Job, n: int) -> str:
    plain = all(t.spec.plain for t in job.tasks.values())
    return ("task" if plain else "task instance") + ("" if n == 1 else "s")


def _finished_summary(job: Job, total: int) -> str:
    if total == 1:
        return f"task {next(iter(job.tasks.values())).id} finished"
    return f"all {total} {_units_word(job, total)} finished"


def _failure_summary(job: Job, total: int) -> str:
    if total == 1:
        task = next(iter(job.tasks.values()))
        return f"task {task.id} {task.state.value.lower()}: {task.reason}"
    parts = []
    for state in (TaskState.FAILED, TaskState.CANCELLED):
        if n := job.counts[state]:
            parts.append(f"{n} of {total} {_units_word(job, total)} {state.value.lower()}")
    return ", ".join(parts)
