"""Reconciling an agent's full view with the head's decisions (pure)."""

from __future__ import annotations

from common.ids import TaskId
from common.resources import Resources
from headnode.domain.node import Allocation, TaskReport
from headnode.domain.reconcile import reconcile

A, B, C = TaskId(1, 1), TaskId(1, 2), TaskId(2, 1)


def alloc(task: TaskId, attempt: int = 1, launch_seq: int = 0, started: bool = False) -> Allocation:
    return Allocation(task, attempt, Resources(1, 0), launch_seq=launch_seq, started=started)


def running(task: TaskId, attempt: int = 1) -> TaskReport:
    return TaskReport(task, attempt, running=True)


def exited(task: TaskId, attempt: int = 1) -> TaskReport:
    return TaskReport(task, attempt, running=False, exit_code=0)


def always(_: TaskId, __: int) -> bool:
    return True


def test_unknown_or_stale_reports_are_killed_or_forgotten() -> None:
    allocations = {A: alloc(A, attempt=2)}
    d = reconcile(allocations, always, (running(A, attempt=1), exited(C), running(A, attempt=2)), 5, True)
    assert d.kill == [(A, 1, "not assigned to this node")]
    assert d.forget == [(C, 1)]
    assert d.confirmed == [A] and d.running == [A]


def test_running_task_that_should_not_run_is_killed() -> None:
    d = reconcile({A: alloc(A)}, lambda t, a: False, (running(A),), 3, True)
    assert d.kill == [(A, 1, "cancelled")]


def test_hello_from_the_same_agent_redelivers_unstarted_launches() -> None:
    allocations = {A: alloc(A), B: alloc(B, started=True)}
    d = reconcile(allocations, always, (), None, same_agent=True)
    assert d.redeliver == [A]
    assert d.lost == [B]


def test_hello_from_a_new_agent_process_loses_everything_it_does_not_report() -> None:
    allocations = {A: alloc(A), B: alloc(B)}
    d = reconcile(allocations, always, (running(B),), None, same_agent=False)
    assert d.lost == [A] and d.redeliver == []


def test_heartbeat_only_loses_launches_the_agent_has_acted_on() -> None:
    allocations = {A: alloc(A, launch_seq=4), B: alloc(B, launch_seq=9), C: alloc(C, launch_seq=0)}
    d = reconcile(allocations, always, (), acked_seq=5, same_agent=True)
    assert d.lost == [A]  # B is still in flight, C was never sent in this session


def test_a_launch_held_by_the_agent_is_confirmed_but_not_started() -> None:
    allocations = {A: alloc(A, launch_seq=2), B: alloc(B, launch_seq=3)}
    held = TaskReport(B, 1, running=True, queued=True)
    d = reconcile(allocations, lambda t, a: t != B, (running(A), held), acked_seq=3, same_agent=True)
    assert d.confirmed == [A, B] and d.running == [A]
    assert d.kill == [(B, 1, "cancelled")] and d.lost == []


def test_hello_from_a_new_agent_process_redelivers_what_it_was_sent_ahead_and_never_started() -> None:
    ahead = Allocation(A, 1, Resources(1, 0), launch_seq=4, ahead=True)
    d = reconcile({A: ahead, B: alloc(B, launch_seq=3)}, always, (), None, same_agent=False)
    assert d.redeliver == [A] and d.lost == [B]
