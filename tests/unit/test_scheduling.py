"""The pure scheduling core: placement, FCFS blocking, pending reasons, no over-commit."""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from common.constraints import Constraints
from common.ids import TaskId
from common.resources import Resources, fits
from headnode.scheduling.core import Placement, schedule
from headnode.scheduling.policy import Policy
from headnode.scheduling.snapshot import NodeView, Snapshot, TaskRequest

NOW = 1_700_000_000.0


def node(name: str, cores: int, memory: int = 4096, used: Resources = Resources(), unavailable: str = "") -> NodeView:
    return NodeView(name, Resources(cores, memory), used, unavailable)


def task(job: int, number: int = 1, cores: int = 1, memory: int = 0) -> TaskRequest:
    return TaskRequest(TaskId(job, number), Resources(cores, memory))


def test_places_in_queue_order_and_packs_by_default() -> None:
    snap = Snapshot(nodes=(node("a", 2), node("b", 2)), queue=(task(1), task(2), task(3)))
    plan = schedule(snap, NOW)
    assert [(p.task.job, p.node) for p in plan.placements] == [(1, "a"), (2, "a"), (3, "b")]
    assert plan.pending == {} and plan.blocked_at is None


def test_spread_prefers_the_emptiest_node() -> None:
    snap = Snapshot(nodes=(node("a", 2), node("b", 2)), queue=(task(1), task(2)))
    plan = schedule(snap, NOW, policy="spread")
    assert [p.node for p in plan.placements] == ["a", "b"]


def test_placement_is_deterministic_for_a_snapshot() -> None:
    snap = Snapshot(nodes=(node("b", 4), node("a", 4), node("c", 4)), queue=tuple(task(j) for j in range(1, 9)))
    assert schedule(snap, NOW) == schedule(snap, NOW)
    assert schedule(snap, NOW).placements[0].node == "a"  # equal scores: first name wins


def test_task_larger_than_every_node_says_why_and_does_not_block() -> None:
    snap = Snapshot(nodes=(node("a", 2), node("b", 1)), queue=(task(1, cores=64), task(2)))
    plan = schedule(snap, NOW)
    assert plan.pending[TaskId(1, 1)] == "no node has 64 cores; largest has 2, and all online nodes together have 3"
    assert [p.task for p in plan.placements] == [TaskId(2, 1)]
    assert plan.blocked_at is None
    assert plan.never == (TaskId(1, 1),)


def test_the_plan_names_what_could_never_run_on_these_nodes_and_nothing_that_waits_for_room() -> None:
    picky = TaskRequest(TaskId(3, 1), Resources(1, 0), constraints=Constraints(groups=frozenset({"gpu"})))
    gang = TaskRequest(TaskId(4, 1), Resources(1, 0), count=9, gang=True)
    busy = task(5, cores=2)  # fits an empty node: waits for room, not for ever
    snap = Snapshot(nodes=(node("a", 2, used=Resources(1, 0)), node("b", 2, used=Resources(1, 0))),
                    queue=(task(1, cores=64), task(2, memory=10_000), picky, gang, task(6), busy))
    plan = schedule(snap, NOW, policy=Policy(name="easy"))
    assert plan.never == (TaskId(1, 1), TaskId(2, 1), TaskId(3, 1), TaskId(4, 1))
    assert plan.blocked_at == TaskId(5, 1) and [p.task for p in plan.placements] == [TaskId(6, 1)]
    half = TaskRequest(TaskId(7, 1), Resources(2, 0), count=3)  # one fits now, the rest wait
    assert schedule(Snapshot(nodes=(node("a", 2),), queue=(half,)), NOW).never == ()


def test_memory_too_large_names_memory() -> None:
    snap = Snapshot(nodes=(node("a", 8, memory=1000),), queue=(task(1, memory=5000),))
    assert schedule(snap, NOW).pending[TaskId(1, 1)] == "no node has 5000 MB of memory; largest has 1000 MB"


def test_busy_cluster_blocks_first_come_first_served() -> None:
    busy = Resources(2, 0)
    snap = Snapshot(nodes=(node("a", 2, used=busy), node("b", 2, used=Resources(1, 0))),
                    queue=(task(1, cores=2), task(2, cores=1)))
    plan = schedule(snap, NOW)
    # Job 2 would fit on b, but job 1 is first and could run on an empty node: strict FCFS.
    assert plan.placements == ()
    assert plan.blocked_at == TaskId(1, 1)
    assert plan.pending[TaskId(1, 1)].startswith("waiting for resources: needs 2 cores")
    assert TaskId(2, 1) not in plan.pending


def test_unavailable_nodes_are_skipped_with_their_reason() -> None:
    snap = Snapshot(nodes=(node("a", 4, unavailable="Unreachable"), node("b", 4, unavailable="disconnected")),
                    queue=(task(1),))
    plan = schedule(snap, NOW)
    assert plan.pending[TaskId(1, 1)] == "no node is online (a: Unreachable; b: disconnected)"


def test_no_nodes_at_all() -> None:
    plan = schedule(Snapshot(nodes=(), queue=(task(1),)), NOW)
    assert plan.pending[TaskId(1, 1)] == "no compute node has registered yet"


@pytest.mark.parametrize(("nodes", "reason"), [
    ((), "no compute node has registered yet"),
    ((node("a", 4, unavailable="Draining"), node("b", 4, unavailable="Unreachable")),
     "no node is online (a: Draining; b: Unreachable)"),
])
def test_where_no_node_takes_work_the_pass_stops_at_the_first_task_with_everyones_reason(nodes, reason) -> None:
    def queue():
        yield task(1)
        yield task(2)
        raise AssertionError("a pass with nowhere to place anything went past the first two tasks")

    plan = schedule(Snapshot(nodes=nodes, queue=queue()), NOW)
    assert plan.placements == () and plan.blocked_at is None, "no task holds the others up"
    assert plan.pending == {TaskId(1, 1): reason} and plan.everyone == reason
    # One node taking work and the pass looks at each task again.
    plan = schedule(Snapshot(nodes=(*nodes, node("c", 1)), queue=(task(1), task(2, cores=8), task(3))), NOW)
    assert [p.task for p in plan.placements] == [TaskId(1, 1)] and plan.everyone == ""


def _requests(raw_queue):
    return tuple(
        TaskRequest(TaskId(j, 1), Resources(c, m), count=n, max_cores=mx, exclusive=ex, gang=g)
        for j, (c, m, n, mx, ex, g) in enumerate(raw_queue, start=1)
    )


nodes_strategy = st.lists(
    st.tuples(st.integers(1, 8), st.integers(0, 8), st.integers(0, 4096), st.booleans()), min_size=0, max_size=6
)
queue_strategy = st.lists(
    st.tuples(st.integers(1, 10), st.integers(0, 3000), st.integers(1, 5), st.integers(0, 12), st.booleans(),
              st.booleans()),
    min_size=0, max_size=20,
)


@settings(max_examples=300, deadline=None)
@given(nodes_strategy, queue_strategy, st.sampled_from(["pack", "spread"]))
def test_no_plan_over_commits_a_node(raw_nodes, raw_queue, policy) -> None:
    views = []
    for i, (cores, used_cores, memory, online) in enumerate(raw_nodes):
        used = Resources(min(used_cores, cores), 0)
        views.append(node(f"n{i}", cores, memory, used, "" if online else "Unreachable"))
    queue = _requests(raw_queue)
    plan = schedule(Snapshot(tuple(views), queue), NOW, policy)
    free = {v.name: v.free for v in views}
    for p in plan.placements:
        for name, part in ((p.node, p.resources), *p.extra):
            view = next(v for v in views if v.name == name)
            assert not view.unavailable
            assert fits(part, free[name]), f"{p} over-commits {name}"
            free[name] = free[name] - part
    by_task = Counter(p.task for p in plan.placements)
    for request in queue:
        placed = by_task.get(request.id, 0)
        assert placed <= request.count, "more instances placed than were waiting"
        if request.gang:
            assert placed in (0, request.count), "a gang partly started"
        for p in plan.placements:
            if p.task == request.id:
                cores = p.resources.cores + sum(g.cores for _, g in p.extra)
                assert request.resources.cores <= cores <= max(request.max_cores, request.resources.cores) \
                    or request.exclusive
    exclusive_nodes = {p.node for p in plan.placements if next(r for r in queue if r.id == p.task).exclusive}
    for name in exclusive_nodes:
        assert sum(1 for p in plan.placements if p.node == name) == 1, "an exclusive node shared"


def test_a_task_with_many_instances_places_as_many_as_fit_then_blocks() -> None:
    request = TaskRequest(TaskId(1, 1), Resources(1, 0), count=10)
    plan = schedule(Snapshot(nodes=(node("a", 2), node("b", 2)), queue=(request, task(2))), NOW)
    assert [p.node for p in plan.placements] == ["a", "a", "b", "b"]
    assert plan.blocked_at == TaskId(1, 1) and TaskId(2, 1) not in plan.pending


def test_cores_between_min_and_max_take_what_is_free() -> None:
    request = TaskRequest(TaskId(1, 1), Resources(2, 0), count=1, max_cores=8)
    plan = schedule(Snapshot(nodes=(node("a", 4, used=Resources(1, 0)),), queue=(request,)), NOW)
    assert plan.placements[0].resources == Resources(3, 0)
    tight = TaskRequest(TaskId(1, 1), Resources(4, 0), count=1, max_cores=8)
    plan = schedule(Snapshot(nodes=(node("a", 4, used=Resources(1, 0)),), queue=(tight,)), NOW)
    assert plan.placements == () and plan.blocked_at == TaskId(1, 1)


def test_exclusive_takes_a_whole_free_node() -> None:
    request = TaskRequest(TaskId(1, 1), Resources(1, 0), count=1, exclusive=True)
    snap = Snapshot(nodes=(node("a", 4, used=Resources(1, 0)), node("b", 4, memory=100)), queue=(request, task(2)))
    plan = schedule(snap, NOW)
    assert plan.placements[0] == Placement(TaskId(1, 1), "b", Resources(4, 100))
    assert plan.placements[1].node == "a", "nothing else lands on the exclusive node"
    busy = Snapshot(nodes=(node("a", 4, used=Resources(1, 0)),), queue=(request,))
    assert schedule(busy, NOW).pending[TaskId(1, 1)] == "waiting for a whole free node (exclusive)"


def test_gang_instances_start_together_or_not_at_all() -> None:
    gang = TaskRequest(TaskId(1, 1), Resources(1, 0), count=4, gang=True)
    plan = schedule(Snapshot(nodes=(node("a", 2, used=Resources(1, 0)), node("b", 2)), queue=(gang, task(2))), NOW)
    assert plan.placements == () and plan.blocked_at == TaskId(1, 1)
    assert plan.pending[TaskId(1, 1)].startswith("its 4 instances must start together")
    plan = schedule(Snapshot(nodes=(node("a", 2), node("b", 2)), queue=(gang,)), NOW)
    assert len(plan.placements) == 4
    never = TaskRequest(TaskId(1, 1), Resources(1, 0), count=9, gang=True)
    plan = schedule(Snapshot(nodes=(node("a", 2), node("b", 2)), queue=(never, task(2))), NOW)
    assert plan.blocked_at is None and [p.task for p in plan.placements] == [TaskId(2, 1)]
