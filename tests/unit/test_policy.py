"""Scheduling policies on hand-built snapshots: EASY backfill, fair-share, owner limits,
preemption (pure)."""

from __future__ import annotations

import pytest

from common.ids import TaskId
from common.resources import Resources
from headnode.scheduling import policy as pol
from headnode.scheduling.core import schedule
from headnode.scheduling.policy import EASY, FCFS, Policy
from headnode.scheduling.snapshot import NodeView, Running, Snapshot, TaskRequest

NOW = 1000.0


def node(name: str, cores: int, used: int = 0) -> NodeView:
    return NodeView(name, Resources(cores, 0), Resources(used, 0))


def req(job: int, cores: int = 1, runtime: float = 0.0, owner: str = "alice", level: int = 2,
        count: int = 1) -> TaskRequest:
    return TaskRequest(TaskId(job, 1), Resources(cores), count=count, runtime=runtime, owner=owner, level=level)


def run(job: int, node_name: str, cores: int, ends: float, owner: str = "bob", level: int = 2,
        dying: bool = False) -> Running:
    return Running(TaskId(job, 1), ((node_name, Resources(cores)),), ends, owner, level, dying)


# A 4-core node; job 1 holds 2 cores until NOW + 100. Job 2 needs all 4: it cannot start now,
# so under EASY it is reserved to start at NOW + 100.
BUSY = (node("n1", 4, used=2),)
RUNNING = (run(1, "n1", 2, NOW + 100),)


def test_backfill_starts_a_short_job_in_the_hole() -> None:
    queue = (req(2, cores=4, runtime=500), req(3, cores=2, runtime=50))
    plan = schedule(Snapshot(BUSY, queue, running=RUNNING), NOW, Policy(name=EASY))
    assert [p.task.job for p in plan.placements] == [3], "ends at +50, before the reservation at +100"
    assert plan.reserved == (TaskId(2, 1), NOW + 100)
    assert plan.pending[TaskId(2, 1)].endswith("; reserved to start in 100s")
    fcfs = schedule(Snapshot(BUSY, queue, running=RUNNING), NOW, Policy(name=FCFS))
    assert fcfs.placements == () and fcfs.blocked_at == TaskId(2, 1)


def test_backfill_refuses_a_job_that_would_delay_the_reservation() -> None:
    queue = (req(2, cores=4, runtime=500), req(3, cores=2, runtime=150), req(4, cores=2))
    plan = schedule(Snapshot(BUSY, queue, running=RUNNING), NOW, Policy(name=EASY, default_runtime=3600))
    assert plan.placements == ()
    assert plan.pending[TaskId(3, 1)] == ("waiting for resources: starting it now would delay job 2, "
                                          "reserved to start in 100s")
    assert TaskId(4, 1) in plan.pending, "no runtime limit: the default (an hour) is assumed"


def test_a_backfill_candidate_wider_than_all_free_cores_gets_the_same_refusal() -> None:
    """Such a request is settled without a node search (core.py's shortcut); its reason and
    the rest of the plan are what the search gives, and a smaller one behind it still starts."""
    queue = (req(2, cores=4, runtime=500), req(3, cores=3, runtime=10), req(4, cores=1, runtime=10))
    plan = schedule(Snapshot(BUSY, queue, running=RUNNING), NOW, Policy(name=EASY))
    assert plan.pending[TaskId(3, 1)] == ("waiting for resources: starting it now would delay job 2, "
                                          "reserved to start in 100s")
    assert [p.task.job for p in plan.placements] == [4]
    # alice already runs 2 of her 4 allowed cores: job 3 (hers) is held by the limit, which
    # says so rather than the backfill refusal; carol's job 2 is still reserved.
    queue = (req(2, cores=4, runtime=500, owner="carol"), req(3, cores=3, runtime=10))
    limited = schedule(Snapshot(BUSY, queue, running=(run(1, "n1", 2, NOW + 100, owner="alice"),)), NOW,
                       Policy(name=EASY, max_running_cores=4))
    assert limited.reserved == (TaskId(2, 1), NOW + 100)
    assert limited.pending[TaskId(3, 1)] == "held back by the owner limit: alice runs 2 of at most 4 cores"


def test_backfill_uses_resources_the_reservation_will_not_need() -> None:
    # Two nodes: the reserved job (4 cores) will take n1 at +100; n2's 2 free cores are spare.
    nodes = (node("n1", 4, used=2), node("n2", 2))
    queue = (req(2, cores=4, runtime=500), req(3, cores=2, runtime=10_000), req(4, cores=2, runtime=10_000))
    plan = schedule(Snapshot(nodes, queue, running=RUNNING), NOW, Policy(name=EASY))
    assert [(p.task.job, p.node) for p in plan.placements] == [(3, "n2")]
    assert plan.reserved == (TaskId(2, 1), NOW + 100)


def test_without_a_known_end_the_blocked_task_stops_the_pass() -> None:
    # Nothing running that frees n1: no reservation can be computed, so it stays FCFS.
    plan = schedule(Snapshot((node("n1", 4, used=4),), (req(2, cores=4), req(3)), running=()), NOW,
                    Policy(name=EASY))
    assert plan.reserved is None and plan.blocked_at == TaskId(2, 1) and plan.placements == ()


def test_fair_share_reorders_two_owners_within_a_level() -> None:
    factors = pol.factors({"owner:alice": 9000.0, "owner:bob": 1000.0}, ["owner:alice", "owner:bob"])
    assert factors["owner:bob"] > factors["owner:alice"]
    assert factors["owner:alice"] == pytest.approx(2 ** -1.8) and factors["owner:bob"] == pytest.approx(2 ** -0.2)
    normal = 2000
    keys = {o: pol.effective_priority(normal, factors[f"owner:{o}"], 1000) for o in ("alice", "bob")}
    assert keys["bob"] > keys["alice"], "the heavy user sinks below the light one"
    assert pol.effective_priority(3000, 0.0, 1000) > pol.effective_priority(2999, 1.0, 100_000), \
        "never below a lower level, whatever the usage"
    # The queue is in that order, and the core starts bob's job first.
    queue = sorted([req(1, owner="alice"), req(2, owner="bob")],
                   key=lambda r: -keys[r.owner])
    plan = schedule(Snapshot((node("n1", 1),), tuple(queue)), NOW, Policy(name=FCFS))
    assert [p.task.job for p in plan.placements] == [2]


def test_usage_decays_with_its_half_life() -> None:
    assert pol.decayed(800.0, since=0.0, now=3600.0, half_life=1800.0) == pytest.approx(200.0)
    assert pol.factors({}, ["owner:a", "owner:b"]) == {"owner:a": 1.0, "owner:b": 1.0}
    assert pol.account("alice", "") == "owner:alice" and pol.account("alice", "climate") == "project:climate"


def test_the_running_cores_limit_holds_back_an_owner_without_blocking_others() -> None:
    nodes = (node("n1", 8),)
    running = (run(1, "n1", 3, NOW + 100, owner="alice"),)
    queue = (req(2, cores=1, owner="alice", count=3), req(3, cores=2, owner="bob"))
    plan = schedule(Snapshot(nodes, queue, running=running), NOW, Policy(name=FCFS, max_running_cores=4))
    assert [(p.task.job, p.node) for p in plan.placements] == [(2, "n1"), (3, "n1")]
    assert plan.pending[TaskId(2, 1)] == "held back by the owner limit: alice runs 3 of at most 4 cores"
    assert plan.blocked_at is None
    assert plan.held == (), "one of job 2's instances started: it is not held back whole"
    full = (run(1, "n1", 4, NOW + 100, owner="alice"),)
    plan = schedule(Snapshot(nodes, queue, running=full), NOW, Policy(name=FCFS, max_running_cores=4))
    assert plan.held == ((TaskId(2, 1), 1),) and plan.room == {"alice": 0}
    assert [p.task.job for p in plan.placements] == [3]



def test_a_task_bigger_than_the_owner_limit_says_so_and_is_never_held_for_an_end() -> None:
    nodes = (node("n1", 16),)
    gang = TaskRequest(TaskId(3, 1), Resources(2, 0), count=3, owner="alice", gang=True)
    queue = (req(2, cores=8, owner="alice"), gang, req(4, cores=1, owner="alice"))
    plan = schedule(Snapshot(nodes, queue), NOW, Policy(name=FCFS, max_running_cores=4))
    assert plan.pending[TaskId(2, 1)] == ("needs 8 cores at once, more than the owner limit of 4 "
                                          "(max_running_cores_per_owner)")
    assert plan.pending[TaskId(3, 1)].startswith("needs 6 cores at once")
    assert plan.never == (TaskId(2, 1), TaskId(3, 1)) and plan.held == ()
    assert [p.task.job for p in plan.placements] == [4] and plan.blocked_at is None


def test_preemption_requeues_the_lower_level() -> None:
    nodes = (node("n1", 4, used=4), node("n2", 4, used=4))
    running = (run(1, "n1", 2, NOW + 10, level=1), run(2, "n1", 2, NOW + 900, level=0),
               run(3, "n2", 4, NOW + 50, level=2))
    urgent = req(9, cores=2, level=4)
    plan = schedule(Snapshot(nodes, (urgent,), running=running), NOW, Policy(name=FCFS, preemption=True))
    assert plan.preempt == ((TaskId(2, 1), "preempted by job 9 (Highest priority)"),), \
        "the lowest level first; one victim is enough on n1"
    assert plan.pending[TaskId(9, 1)].endswith("; preempting 1 lower-priority task(s)")
    # Once it is stopping, the next pass waits for it rather than preempting more.
    stopping = (run(1, "n1", 2, NOW + 10, level=1), run(2, "n1", 2, NOW, level=0, dying=True),
                run(3, "n2", 4, NOW + 50, level=2))
    again = schedule(Snapshot(nodes, (urgent,), running=stopping), NOW, Policy(name=FCFS, preemption=True))
    assert again.preempt == ()
    # Nothing of a lower level, or preemption off: nothing is preempted.
    assert schedule(Snapshot(nodes, (req(9, cores=2, level=0),), running=running), NOW,
                    Policy(preemption=True)).preempt == ()
    assert schedule(Snapshot(nodes, (urgent,), running=running), NOW, Policy()).preempt == ()
