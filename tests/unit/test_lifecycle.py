"""Job and task state transitions, without sockets: the tables and the lifecycle functions."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from common.errors import FailedPrecondition
from headnode.domain import lifecycle
from headnode.domain.model import Job, JobSpec, TaskSpec
from headnode.domain.states import (
    JOB_TRANSITIONS,
    TASK_TRANSITIONS,
    JobEvent,
    JobState,
    TaskEvent,
    TaskState,
    next_job_state,
    next_task_state,
)

NOW = 1_700_000_000.0


def make_job(tasks: int = 2) -> Job:
    spec = JobSpec(name="j", tasks=tuple(TaskSpec(command_line=f"echo {i}") for i in range(tasks)))
    job, _ = lifecycle.create_job(7, "alice", spec, NOW)
    lifecycle.submit_job(job, NOW, "alice")
    return job


def test_terminal_states_have_no_way_out() -> None:
    for (state, _), _ in TASK_TRANSITIONS.items():
        assert not state.terminal
    for (state, _), _ in JOB_TRANSITIONS.items():
        assert not state.terminal


def test_illegal_transition_says_what_is_allowed() -> None:
    with pytest.raises(FailedPrecondition, match="job 3 is Finished; cancel is allowed only when it is "
                                                 "Configuring, Queued or Running"):
        next_job_state(JobState.FINISHED, JobEvent.CANCEL, "job 3")
    with pytest.raises(FailedPrecondition):
        next_task_state(TaskState.QUEUED, TaskEvent.EXIT_OK)


def test_create_and_submit_record_history() -> None:
    spec = JobSpec(name="j", tasks=(TaskSpec(command_line="true"),))
    job, changes = lifecycle.create_job(1, "alice", spec, NOW)
    assert job.state is JobState.CONFIGURING and job.tasks[1].state is TaskState.CONFIGURING
    changes += lifecycle.submit_job(job, NOW + 1, "alice")
    assert [(c.task_id, c.state, c.reason) for c in changes] == [
        (0, "Configuring", "created by alice"),
        (0, "Queued", "submitted by alice"),
        (1, "Queued", ""),
    ]
    assert job.counts[TaskState.QUEUED] == 1


def test_all_tasks_finishing_finishes_the_job() -> None:
    job = make_job(2)
    t1, t2 = job.tasks[1], job.tasks[2]
    changes = lifecycle.place_task(job, t1, "n1", NOW)
    assert job.state is JobState.RUNNING and t1.attempt == 1 and t1.holding
    assert [c.state for c in changes] == ["Running", "Running"]
    lifecycle.place_task(job, t2, "n2", NOW)
    assert lifecycle.task_exited(job, t1, 0, 0, "", NOW + 1)[0].reason == "exit code 0"
    assert job.state is JobState.RUNNING
    changes = lifecycle.task_exited(job, t2, 0, 0, "", NOW + 2)
    assert job.state is JobState.FINISHED and job.reason == "all 2 tasks finished"
    assert changes[-1].state == "Finished" and job.ended_at == NOW + 2
    assert not t2.holding


def test_one_failure_fails_the_job_when_all_have_ended() -> None:
    job = make_job(2)
    for t in job.tasks.values():
        lifecycle.place_task(job, t, "n1", NOW)
    lifecycle.task_exited(job, job.tasks[1], 3, 0, "", NOW)
    assert job.tasks[1].state is TaskState.FAILED and job.tasks[1].reason == "exit code 3"
    assert job.state is JobState.RUNNING  # the other task still runs
    lifecycle.task_exited(job, job.tasks[2], 0, 0, "", NOW)
    assert job.state is JobState.FAILED and job.reason == "1 of 2 tasks failed"


def test_signal_and_launch_errors_are_failures_with_reasons() -> None:
    job = make_job(2)
    for t in job.tasks.values():
        lifecycle.place_task(job, t, "n1", NOW)
    lifecycle.task_exited(job, job.tasks[1], 0, 9, "", NOW)
    assert job.tasks[1].reason == "killed by signal 9 (SIGKILL)"
    lifecycle.task_exited(job, job.tasks[2], 0, 0, "working directory /x does not exist", NOW)
    assert job.tasks[2].reason == "could not start: working directory /x does not exist"
    assert job.tasks[2].exit_code is None


def test_cancel_keeps_resources_held_until_the_process_is_gone() -> None:
    job = make_job(2)
    running = job.tasks[1]
    lifecycle.place_task(job, running, "n1", NOW)
    lifecycle.cancel_job(job, NOW, "cancelled by bob")
    assert job.state is JobState.CANCELLED
    assert all(t.state is TaskState.CANCELLED for t in job.tasks.values())
    assert running.holding  # released when the agent reports the exit
    assert lifecycle.task_exited(job, running, 0, 15, "", NOW + 1) == []
    assert running.state is TaskState.CANCELLED and running.signal == 15 and not running.holding


def test_cancel_of_a_finished_job_is_refused() -> None:
    job = make_job(1)
    lifecycle.place_task(job, job.tasks[1], "n1", NOW)
    lifecycle.task_exited(job, job.tasks[1], 0, 0, "", NOW)
    with pytest.raises(FailedPrecondition, match="is Finished"):
        lifecycle.cancel_job(job, NOW, "cancelled by bob")


def test_lost_node_fails_its_running_task() -> None:
    job = make_job(1)
    lifecycle.place_task(job, job.tasks[1], "n2", NOW)
    lifecycle.task_lost(job, job.tasks[1], "n2", NOW)
    assert job.tasks[1].state is TaskState.FAILED and job.tasks[1].reason == "node n2 lost"
    assert job.state is JobState.FAILED


# Random sequences of operations never reach an undefined state or change a terminal one.

OPS = ["place", "exit_ok", "exit_fail", "lost", "cancel"]


@settings(max_examples=400, deadline=None)
@given(st.integers(1, 4), st.lists(st.tuples(st.sampled_from(OPS), st.integers(1, 4)), max_size=25))
def test_random_operations_keep_the_model_consistent(n_tasks: int, ops: list[tuple[str, int]]) -> None:
    job = make_job(n_tasks)
    for op, number in ops:
        task = job.tasks.get((number - 1) % n_tasks + 1)
        before_job, before_task = job.state, task.state
        try:
            if op == "place":
                lifecycle.place_task(job, task, "n1", NOW)
            elif op == "exit_ok" and task.holding:
                lifecycle.task_exited(job, task, 0, 0, "", NOW)
            elif op == "exit_fail" and task.holding:
                lifecycle.task_exited(job, task, 1, 0, "", NOW)
            elif op == "lost" and task.holding:
                lifecycle.task_lost(job, task, "n1", NOW)
            elif op == "cancel":
                lifecycle.cancel_job(job, NOW, "cancelled")
        except FailedPrecondition:
            assert (job.state, task.state) == (before_job, before_task), "a refused operation changed state"
        if before_job.terminal:
            assert job.state is before_job, "a terminal job changed state"
        if before_task.terminal:
            assert task.state is before_task, "a terminal task changed state"
        # Counts always match the tasks, and the job's state follows from them.
        assert sum(job.counts.values()) == n_tasks
        for state in TaskState:
            assert job.counts[state] == sum(1 for t in job.tasks.values() if t.state is state)
        if job.ended_tasks == n_tasks:
            assert job.state.terminal
        if job.counts[TaskState.RUNNING] and not job.state.terminal:
            assert job.state is JobState.RUNNING
