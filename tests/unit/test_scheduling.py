"""The pure scheduling core: placement, FCFS blocking, pending reasons, no over-commit."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from common.ids import TaskId
from common.resources import Resources, fits
from headnode.scheduling.core import schedule
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
    assert plan.pending[TaskId(1, 1)] == "no node has 64 cores; largest has 2"
    assert [p.task for p in plan.placements] == [TaskId(2, 1)]
    assert plan.blocked_at is None


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
    assert plan.pending[TaskId(1, 1)] == "no node is online (a: Unreachable, b: disconnected)"


def test_no_nodes_at_all() -> None:
    plan = schedule(Snapshot(nodes=(), queue=(task(1),)), NOW)
    assert plan.pending[TaskId(1, 1)] == "no compute node has registered yet"


nodes_strategy = st.lists(
    st.tuples(st.integers(1, 8), st.integers(0, 8), st.integers(0, 4096), st.booleans()), min_size=0, max_size=6
)
queue_strategy = st.lists(st.tuples(st.integers(1, 10), st.integers(0, 3000)), min_size=0, max_size=30)


@settings(max_examples=300, deadline=None)
@given(nodes_strategy, queue_strategy, st.sampled_from(["pack", "spread"]))
def test_no_plan_over_commits_a_node(raw_nodes, raw_queue, policy) -> None:
    views = []
    for i, (cores, used_cores, memory, online) in enumerate(raw_nodes):
        used = Resources(min(used_cores, cores), 0)
        views.append(node(f"n{i}", cores, memory, used, "" if online else "Unreachable"))
    queue = tuple(task(j, cores=c, memory=m) for j, (c, m) in enumerate(raw_queue, start=1))
    plan = schedule(Snapshot(tuple(views), queue), NOW, policy)
    free = {v.name: v.free for v in views}
    for p in plan.placements:
        view = next(v for v in views if v.name == p.node)
        assert not view.unavailable
        assert fits(p.resources, free[p.node]), f"{p} over-commits {p.node}"
        free[p.node] = free[p.node] - p.resources
    placed = {p.task for p in plan.placements}
    assert not placed & set(plan.pending), "a task is both placed and pending"
    assert len(placed) == len(plan.placements), "a task placed twice"
