"""The job model's state machines and operations, without sockets (pure domain code)."""

from __future__ import annotations

import re
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from common.errors import FailedPrecondition, InvalidArgument, NotFound
from common.ids import TaskId
from headnode.domain import lifecycle, operations
from headnode.domain.lifecycle import Outcome
from headnode.domain.model import Job, JobSpec, Sweep, TaskSpec
from headnode.domain.states import (
    JOB_TRANSITIONS,
    TASK_TRANSITIONS,
    JobEvent,
    JobState,
    TaskEvent,
    TaskState,
    next_job_state,
)

NOW = 1_700_000_000.0
T = TaskState


def make_job(*tasks: TaskSpec, submit: bool = True, **job_fields: object) -> Job:
    o = Outcome()
    job = operations.create_job(7, "alice", JobSpec(tasks=tasks or (TaskSpec("echo"),), **job_fields), NOW, o)
    if submit:
        operations.submit_job(job, "alice", NOW, o)
    return job


def run(job: Job, number: int = 1, node: str = "n1") -> lifecycle.Instance:
    task = job.tasks[number]
    iid = lifecycle.take_pending(task)
    assert iid is not None, f"task {number} has nothing pending"
    return lifecycle.place(job, task, iid, node, 1, 0, NOW, Outcome())


def finish(job: Job, inst: lifecycle.Instance, code: int = 0) -> Outcome:
    o = Outcome()
    lifecycle.exited(job, job.tasks[inst.id.task], inst, code, 0, "", False, NOW + 1, o)
    return o


def check_counts(job: Job) -> None:
    """Counts kept incrementally always equal counts computed from scratch."""
    total = Counter()
    for task in job.tasks.values():
        fresh = Counter({task.unstarted: task.unstarted_count}) if task.unstarted_count else Counter()
        for inst in task.instances.values():
            fresh[inst.state] += 1
        assert +task.counts == +fresh, f"task {task.id} counts {task.counts} != {fresh}"
        assert sum(task.counts.values()) == task.spec.count
        total += fresh
    assert +job.counts == +total


# -- tables ----------------------------------------------------------------------------------


def test_end_states_are_left_only_by_requeue_or_configure() -> None:
    for (state, event) in TASK_TRANSITIONS:
        if state.terminal:
            assert event in (TaskEvent.REQUEUE, TaskEvent.CONFIGURE)
    for (state, event) in JOB_TRANSITIONS:
        if state.terminal:
            assert event in (JobEvent.REQUEUE, JobEvent.CONFIGURE)
            assert state is not JobState.FINISHED, "a Finished job is final"


def test_illegal_transition_says_what_is_allowed() -> None:
    with pytest.raises(FailedPrecondition, match="job 3 is Finished; cancel is allowed only when it is "
                                                 "Configuring, Queued or Running"):
        next_job_state(JobState.FINISHED, JobEvent.CANCEL, "job 3")


# -- plain tasks -----------------------------------------------------------------------------


def test_create_and_submit_record_history_in_order() -> None:
    o = Outcome()
    job = operations.create_job(1, "alice", JobSpec(tasks=(TaskSpec("true"),)), NOW, o)
    assert job.state is JobState.CONFIGURING and job.tasks[1].state is T.CONFIGURING
    operations.submit_job(job, "alice", NOW, o)
    assert [(c.task_id, c.state, c.reason, c.seq) for c in o.changes] == [
        (0, "Configuring", "created by alice", 1),
        (1, "Configuring", "added by alice", 2),
        (0, "Queued", "submitted by alice", 3),
        (1, "Queued", "", 4),
    ]
    assert job.tasks[1].pending == 1 and not job.tasks[1].instances  # nothing materialized before it runs


def test_a_job_finishes_when_all_tasks_finish() -> None:
    job = make_job(TaskSpec("a"), TaskSpec("b"))
    a, b = run(job, 1), run(job, 2)
    assert job.state is JobState.RUNNING and a.attempt == 1 and a.holding
    finish(job, a)
    assert job.state is JobState.RUNNING
    o = finish(job, b)
    assert job.state is JobState.FINISHED and job.reason == "all 2 tasks finished"
    assert o.changes[-1].task_id == 0 and o.changes[-1].state == "Finished"  # the job's end comes last
    check_counts(job)


def test_failure_signals_launch_errors_and_valid_exit_codes() -> None:
    job = make_job(TaskSpec("a"), TaskSpec("b"), TaskSpec("c", valid_exit_codes=((0, 0), (3, 5))),
                   TaskSpec("d"))
    a, b, c, d = (run(job, n) for n in (1, 2, 3, 4))
    lifecycle.exited(job, job.tasks[1], a, 0, 9, "", False, NOW, Outcome())
    assert job.tasks[1].reason == "killed by signal 9 (SIGKILL)" and a.state is T.FAILED
    lifecycle.exited(job, job.tasks[2], b, 0, 0, "working directory /x does not exist", False, NOW, Outcome())
    assert job.tasks[2].reason == "could not start: working directory /x does not exist" and b.exit_code is None
    finish(job, c, 4)
    assert c.state is T.FINISHED  # 4 is in 3-5
    finish(job, d, 3)
    assert d.state is T.FAILED and job.state is JobState.FAILED and job.reason == "3 of 4 tasks failed"
    check_counts(job)


def test_runtime_limit_exceeded_fails_with_its_reason() -> None:
    job = make_job(TaskSpec("sleep 9", runtime_limit=90))
    inst = run(job)
    lifecycle.exited(job, job.tasks[1], inst, 0, 15, "", True, NOW, Outcome())
    assert inst.state is T.FAILED and inst.reason == "runtime limit 90s exceeded"


def test_cancel_keeps_resources_until_the_process_is_gone() -> None:
    job = make_job(TaskSpec("a"), TaskSpec("b"))
    inst = run(job, 1)
    o = Outcome()
    operations.cancel_job(job, "cancelled by bob", NOW, o)
    assert job.state is JobState.CANCELLED and all(t.state is T.CANCELLED for t in job.tasks.values())
    assert o.kill == [inst] and inst.holding
    assert o.changes[-1].task_id == 0, "the job's end is its last change"
    lifecycle.exited(job, job.tasks[1], inst, 0, 15, "", False, NOW, Outcome())
    assert inst.state is T.CANCELLED and inst.signal == 15 and not inst.holding
    with pytest.raises(FailedPrecondition, match="job 7 is Cancelled"):
        operations.cancel_job(job, "again", NOW, Outcome())
    check_counts(job)


def test_lost_node_retries_a_rerunnable_task_then_fails_it() -> None:
    job = make_job(TaskSpec("a", max_retries=1))
    first = run(job)
    lifecycle.lost(job, job.tasks[1], first, "n2", NOW, Outcome())
    assert first.state is T.QUEUED and first.reason == "node n2 lost; requeued (retry 1 of 1)"
    assert job.tasks[1].pending == 1 and job.state is JobState.RUNNING
    again = run(job)
    assert again is first and again.attempt == 2
    lifecycle.lost(job, job.tasks[1], again, "n2", NOW, Outcome())
    assert again.state is T.FAILED and again.reason == "node n2 lost" and job.state is JobState.FAILED


def test_not_rerunnable_fails_at_once() -> None:
    job = make_job(TaskSpec("a", rerunnable=False))
    inst = run(job)
    lifecycle.lost(job, job.tasks[1], inst, "n1", NOW, Outcome())
    assert inst.state is T.FAILED


# -- sweeps and multi-instance tasks ---------------------------------------------------------


def test_a_huge_sweep_costs_nothing_per_instance_until_it_runs() -> None:
    job = make_job(TaskSpec("sim *", sweep=Sweep(1, 100_000)))
    task = job.tasks[1]
    assert task.spec.count == 100_000 and task.pending == 100_000 and not task.instances
    assert job.counts[T.QUEUED] == 100_000
    insts = [run(job) for _ in range(3)]
    assert [i.id.instance for i in insts] == [1, 2, 3] and task.pending == 99_997
    assert task.state is T.RUNNING and job.counts[T.RUNNING] == 3
    finish(job, insts[0])
    o = Outcome()
    operations.cancel_task(job, task, None, "cancelled by alice", NOW, o)
    assert job.counts[T.CANCELLED] == 99_999 and job.counts[T.FINISHED] == 1
    assert len(task.instances) == 3, "the never-started ones were cancelled in bulk"
    assert sorted(o.kill, key=lambda i: i.id) == insts[1:]
    check_counts(job)


def test_cancelling_one_unstarted_instance_skips_it_later() -> None:
    job = make_job(TaskSpec("x *", sweep=Sweep(1, 5)))
    task = job.tasks[1]
    operations.cancel_task(job, task, 3, "not needed", NOW, Outcome())
    assert task.instance_state(3) is T.CANCELLED and task.pending == 4
    placed = [run(job).id.instance for _ in range(4)]
    assert placed == [1, 2, 4, 5] and lifecycle.take_pending(task) is None
    check_counts(job)


def test_multi_instance_counts_instances() -> None:
    job = make_job(TaskSpec("mpi", instances=4))
    assert job.tasks[1].spec.count == 4 and job.counts[T.QUEUED] == 4
    insts = [run(job) for _ in range(4)]
    for inst in insts:
        finish(job, inst)
    assert job.state is JobState.FINISHED and job.reason == "all 4 task instances finished"


# -- fail fast, dependencies -----------------------------------------------------------------


def test_fail_on_task_failure_fails_the_job_and_stops_the_rest() -> None:
    job = make_job(TaskSpec("a"), TaskSpec("b"), TaskSpec("c"), fail_on_task_failure=True)
    a, b = run(job, 1), run(job, 2)
    o = finish(job, a, 2)
    assert job.state is JobState.FAILED and job.reason == "task 7.1 failed: exit code 2"
    assert b.state is T.CANCELLED and o.kill == [b]
    assert job.tasks[3].state is T.CANCELLED and job.tasks[3].reason == "job failed: task 7.1 failed: exit code 2"
    check_counts(job)


def test_dag_problems_are_named() -> None:
    cases = [
        ((TaskSpec("a", name="a", depends_on=("zz",)),), "depends on 'zz', but no task of the job has that name"),
        ((TaskSpec("a", name="a", depends_on=("a",)),), "task 7.1 (a) depends on itself"),
        ((TaskSpec("a", name="a", depends_on=("c",)), TaskSpec("b", name="b", depends_on=("a",)),
          TaskSpec("c", name="c", depends_on=("b",))), "form a dependency cycle"),
    ]
    for tasks, message in cases:
        job = make_job(*tasks, submit=False)
        with pytest.raises(InvalidArgument, match=re.escape(message)):
            operations.submit_job(job, "alice", NOW, Outcome())
        assert job.state is JobState.CONFIGURING, "a refused submit changes nothing"


def test_a_failed_dependency_cancels_its_dependents_transitively() -> None:
    job = make_job(TaskSpec("a", name="a"), TaskSpec("b", name="b", depends_on=("a",)),
                   TaskSpec("c", name="c", depends_on=("b",)), TaskSpec("d", name="d"))
    finish(job, run(job, 1), 1)
    assert job.tasks[2].state is T.CANCELLED and job.tasks[2].reason == "dependency a failed"
    assert job.tasks[3].state is T.CANCELLED and job.tasks[3].reason == "dependency b cancelled"
    assert job.tasks[4].state is T.QUEUED and job.state is JobState.RUNNING
    finish(job, run(job, 4))
    assert job.state is JobState.FAILED


def test_run_dependents_after_failure_keeps_them() -> None:
    job = make_job(TaskSpec("a", name="a"), TaskSpec("b", name="b", depends_on=("a",)),
                   run_dependents_after_failure=True)
    finish(job, run(job, 1), 1)
    assert job.tasks[2].state is T.QUEUED


# -- requeue, configure, clone, modify, hold --------------------------------------------------


def failed_job() -> Job:
    job = make_job(TaskSpec("a"), TaskSpec("b"), TaskSpec("c *", sweep=Sweep(1, 3)))
    finish(job, run(job, 1))
    finish(job, run(job, 2), 1)
    for _ in range(3):
        finish(job, run(job, 3), 0)
    assert job.state is JobState.FAILED
    return job


def test_requeue_reruns_only_what_did_not_finish() -> None:
    job = failed_job()
    o = Outcome()
    operations.requeue_job(job, "alice", None, NOW, o)
    assert job.state is JobState.QUEUED and job.reason == "requeued by alice"
    assert job.tasks[1].state is T.FINISHED and job.tasks[3].state is T.FINISHED
    assert job.tasks[2].state is T.QUEUED and job.tasks[2].pending == 1
    inst = run(job, 2)
    assert inst.attempt == 2
    finish(job, inst)
    assert job.state is JobState.FINISHED
    check_counts(job)


def test_requeue_chosen_tasks_even_finished_ones() -> None:
    job = failed_job()
    operations.requeue_job(job, "alice", [TaskId(7, 1), TaskId(7, 3, 2)], NOW, Outcome())
    assert job.tasks[1].state is T.QUEUED and job.tasks[2].state is T.FAILED
    assert job.tasks[3].instance_state(2) is T.QUEUED and job.tasks[3].instance_state(1) is T.FINISHED
    with pytest.raises(NotFound):
        operations.requeue_job(failed_job(), "alice", [TaskId(7, 9)], NOW, Outcome())
    check_counts(job)


def test_requeue_is_refused_for_running_and_finished_jobs() -> None:
    job = make_job()
    with pytest.raises(FailedPrecondition, match="job 7 is Queued; requeue is allowed only when it is Failed or Cancelled"):
        operations.requeue_job(job, "alice", None, NOW, Outcome())
    finish(job, run(job))
    with pytest.raises(FailedPrecondition, match="is Finished"):
        operations.requeue_job(job, "alice", None, NOW, Outcome())


def test_configure_then_fix_then_submit() -> None:
    job = failed_job()
    operations.configure_job(job, "alice", NOW, Outcome())
    assert job.state is JobState.CONFIGURING
    assert job.tasks[2].state is T.CONFIGURING and job.tasks[1].state is T.FINISHED
    operations.modify_task(job, job.tasks[2], TaskSpec("fixed"), "alice", NOW, Outcome())
    operations.submit_job(job, "alice", NOW, Outcome())
    assert job.tasks[2].pending == 1 and job.tasks[1].pending == 0
    finish(job, run(job, 2))
    assert job.state is JobState.FINISHED
    check_counts(job)


def test_tasks_change_only_while_configuring() -> None:
    job = make_job()
    with pytest.raises(FailedPrecondition, match="tasks can be added only while it is Configuring"):
        operations.add_tasks(job, [TaskSpec("x")], "alice", NOW, Outcome())
    with pytest.raises(FailedPrecondition, match="tasks can be modified only while it is Configuring"):
        operations.modify_task(job, job.tasks[1], TaskSpec("y"), "alice", NOW, Outcome())


def test_clone_copies_every_task_for_whoever_clones() -> None:
    job = failed_job()
    o = Outcome()
    copy = operations.clone_job(job, 8, "alice", NOW, o)
    assert copy.state is JobState.CONFIGURING and copy.id == 8 and len(copy.tasks) == 3
    assert copy.tasks[3].spec == job.tasks[3].spec and copy.counts[T.CONFIGURING] == 5
    assert operations.clone_job(job, 9, "root", NOW, Outcome()).owner == "root"


def test_modify_only_before_start_and_hold_release() -> None:
    job = make_job()
    operations.modify_job(job, {"priority": 4000, "name": "urgent"}, "alice", NOW, Outcome())
    assert job.spec.priority == 4000 and job.name == "urgent"
    operations.hold_job(job, "bob", "maintenance", NOW, Outcome())
    assert job.held_by == "bob: maintenance"
    with pytest.raises(FailedPrecondition, match="already held"):
        operations.hold_job(job, "bob", "", NOW, Outcome())
    operations.release_job(job, "bob", NOW, Outcome())
    assert not job.held_by
    run(job)
    with pytest.raises(FailedPrecondition, match="job 7 is Running; it can be modified only while"):
        operations.modify_job(job, {"name": "late"}, "alice", NOW, Outcome())
    with pytest.raises(FailedPrecondition, match="job 7 is Running; it can be held only while it is Queued"):
        operations.hold_job(job, "bob", "", NOW, Outcome())


# -- random sequences ------------------------------------------------------------------------

OPS = ["place", "exit_ok", "exit_fail", "lost", "cancel_job", "cancel_task", "cancel_instance", "requeue",
       "configure", "submit", "hold", "release"]


def _snapshot(job: Job) -> object:
    return (job.state, job.held_by, tuple(
        (t.state, t.unstarted, t.cursor, t.ahead, tuple(t.requeued),
         tuple(sorted((i, x.state, x.holding) for i, x in t.instances.items())))
        for t in job.tasks.values()))


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.sampled_from(["plain", "sweep", "multi"]), min_size=1, max_size=3),
    st.booleans(),
    st.lists(st.tuples(st.sampled_from(OPS), st.integers(1, 3), st.integers(1, 4)), max_size=30),
)
def test_random_operations_keep_the_model_consistent(kinds: list[str], fail_fast: bool,
                                                      ops: list[tuple[str, int, int]]) -> None:
    specs = [TaskSpec("x", sweep=Sweep(1, 3)) if k == "sweep" else TaskSpec("x", instances=2) if k == "multi"
             else TaskSpec("x") for k in kinds]
    job = make_job(*specs, fail_on_task_failure=fail_fast)
    for op, number, iid in ops:
        task = job.tasks[(number - 1) % len(specs) + 1]
        running = [i for i in task.instances.values() if i.state is T.RUNNING and i.holding]
        before = _snapshot(job)
        was_finished = job.state is JobState.FINISHED
        o = Outcome()
        try:
            if op == "place":
                if task.pending and job.state in (JobState.QUEUED, JobState.RUNNING) and not job.held_by:
                    i = lifecycle.take_pending(task)
                    if i is not None:
                        lifecycle.place(job, task, i, "n1", 1, 0, NOW, o)
            elif op in ("exit_ok", "exit_fail") and running:
                lifecycle.exited(job, task, running[0], 0 if op == "exit_ok" else 1, 0, "", False, NOW, o)
            elif op == "lost" and running:
                lifecycle.lost(job, task, running[0], "n1", NOW, o)
            elif op == "cancel_job":
                operations.cancel_job(job, "cancelled", NOW, o)
            elif op == "cancel_task":
                operations.cancel_task(job, task, None, "cancelled", NOW, o)
            elif op == "cancel_instance":
                operations.cancel_task(job, task, iid if not task.spec.plain else 0, "cancelled", NOW, o)
            elif op == "requeue":
                operations.requeue_job(job, "a", None, NOW, o)
            elif op == "configure":
                operations.configure_job(job, "a", NOW, o)
            elif op == "submit":
                operations.submit_job(job, "a", NOW, o)
            elif op == "hold":
                operations.hold_job(job, "a", "", NOW, o)
            elif op == "release":
                operations.release_job(job, "a", NOW, o)
        except (FailedPrecondition, NotFound):
            assert _snapshot(job) == before, f"a refused {op} changed the job"
        # Processes that must stop are those still holding resources in an end state.
        for inst in o.kill:
            assert inst.holding and inst.state.terminal
        for inst in (i for t in job.tasks.values() for i in t.instances.values()):
            if inst.holding and inst.state.terminal and not any(k is inst for k in o.kill):
                pass  # already told to stop by an earlier operation
            inst.holding = inst.holding and inst.state is T.RUNNING  # the kill lands at once here
        if was_finished:
            assert job.state is JobState.FINISHED, "a Finished job changed"
        check_counts(job)
        total = sum(job.counts.values())
        if job.state in (JobState.QUEUED, JobState.RUNNING):
            assert job.ended_units < total, "an active job whose units have all ended"
        if job.state.terminal:
            assert job.ended_units == total, "an ended job with units still to run"
        seqs = [c.seq for c in o.changes]
        assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)


def test_a_preempted_instance_is_queued_but_placed_again_only_once_its_process_is_gone() -> None:
    job = make_job(TaskSpec("echo"))
    inst = run(job)
    task = job.tasks[1]
    o = Outcome()
    lifecycle.preempt(job, task, inst, "preempted by job 9 (Highest priority)", NOW + 1, o)
    assert inst.state is T.QUEUED and inst.reason == "preempted by job 9 (Highest priority)"
    assert o.kill == [inst] and inst.holding, "its process is told to stop; its resources stay held"
    assert task.pending == 0, "not placed again while it still runs"
    assert inst.retries == 0, "a preemption is not a retry"
    o = finish(job, inst, 143)
    assert task.pending == 1 and list(task.requeued) == [0] and task.id in o.resync
    assert inst.state is T.QUEUED and not inst.holding
    again = run(job)
    assert again is inst and inst.attempt == 2 and inst.state is T.RUNNING
    check_counts(job)


def test_the_cluster_keeps_for_housekeeping_the_running_jobs_with_a_runtime_limit() -> None:
    from headnode.domain.cluster import Cluster

    cluster = Cluster()
    limited, free = make_job(runtime_limit=60.0), make_job()
    free.id = 8
    for job in (limited, free):
        cluster.add_job(job)
    assert cluster.limited == set()  # queued, not running
    for job in (limited, free):
        run(job)
        cluster.sync_job(job)
    assert limited.state is JobState.RUNNING and free.state is JobState.RUNNING
    assert cluster.limited == {limited.id}


def test_a_parked_task_leaves_the_queue_keeps_its_reason_and_comes_back_when_anything_changes_it() -> None:
    from headnode.domain.cluster import Cluster

    cluster = Cluster()
    o = Outcome()
    big = make_job()
    small = operations.create_job(8, "alice", JobSpec(tasks=(TaskSpec("echo"),)), NOW, o)
    operations.submit_job(small, "alice", NOW, o)
    for job in (big, small):
        cluster.add_job(job)
    task = big.tasks[1]
    cluster.park(task, "no node has 64 cores")
    assert [t.id.job for t in cluster.queued()] == [8] and cluster.waiting() == 2
    assert cluster.parked_reason(task) == "no node has 64 cores"
    assert cluster.parked_reason(small.tasks[1]) is None
    cluster.sync_job(big)  # e.g. the task was modified: looked at again
    assert [t.id.job for t in cluster.queued()] == [7, 8] and not cluster.parked
    cluster.park(task, "no node has 64 cores")
    cluster.rank = lambda job: 10 if job.id == 7 else 0  # rekey() passes parked tasks by ...
    cluster.rekey()
    assert cluster.unpark_all() == 1  # ... so they come back where the rank says
    assert task.queue_key == (-10, 7, 1) and [t.id.job for t in cluster.queued()] == [7, 8]
    cluster.park(task, "no node has 64 cores")
    cluster.remove_job(big)
    assert not cluster.parked and cluster.waiting() == 1


def test_an_owners_end_puts_back_in_queue_order_as_many_held_tasks_as_the_freed_cores_could_start() -> None:
    from common.resources import Resources
    from headnode.domain.cluster import Cluster

    cluster = Cluster()
    o = Outcome()
    jobs = []
    for job_id, cores in ((1, 2), (2, 1), (3, 1), (4, 1)):
        spec = JobSpec(tasks=(TaskSpec("echo", resources=Resources(cores, 0)),))
        job = operations.create_job(job_id, "alice", spec, NOW, o)
        operations.submit_job(job, "alice", NOW, o)
        cluster.add_job(job)
        jobs.append(job)
    for job in jobs:  # alice runs all her limit allows (room 0)
        task = job.tasks[1]
        cluster.park(task, "held back by the owner limit", "alice", task.spec.resources.cores, room=0)
    assert not cluster.queue and cluster.waiting() == 4
    assert cluster.freed("bob", 1) == 0, "bob holds nothing back"
    # One core freed: job 1 needs 2 and stays; job 2 takes the core; 3 and 4 wait for more.
    assert cluster.freed("alice", 1) == 1 and [t.id.job for t in cluster.queued()] == [2]
    # Two more (the room is an upper bound: 1 + 2): job 1 (2 cores) then job 3 (1 core).
    assert cluster.freed("alice", 2) == 2 and [t.id.job for t in cluster.queued()] == [1, 2, 3]
    cluster.sync_job(jobs[3])  # job 4 changed: back by itself, and dropped from alice's held
    assert cluster.freed("alice", 5) == 0 and "alice" not in cluster.held
    cluster.park(jobs[3].tasks[1], "held back by the owner limit", "alice", 1, room=0)
    assert cluster.unpark_held() == 1 and not cluster.parked and not cluster.held


def test_a_nodes_shape_changes_are_counted_and_its_load_is_not() -> None:
    # The allocator puts tasks no node could run back in the queue when this count moves.
    from common.resources import Resources
    from headnode.domain.node import Allocation, Node
    from headnode.domain.states import NodeState

    before = Node.shape_changes
    node = Node("n1", Resources(2, 0))
    assert Node.shape_changes > before, "a new node counts"
    for change in (lambda: setattr(node, "connected", True), lambda: setattr(node, "state", NodeState.DRAINING),
                   lambda: setattr(node, "groups", frozenset({"gpu"})), lambda: setattr(node, "capacity", Resources(4, 0)),
                   lambda: setattr(node, "agent_labels", frozenset({"ssd"}))):
        before = Node.shape_changes
        change()
        assert Node.shape_changes == before + 1
    before = Node.shape_changes
    node.allocate(Allocation(TaskId(1, 1), 1, Resources(1, 0)))
    node.release(TaskId(1, 1))
    node.seen_at = 5.0
    assert Node.shape_changes == before
