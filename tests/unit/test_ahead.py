"""Dispatch ahead (pure): which nodes get room beyond their free cores, and what goes there."""

from __future__ import annotations

from common.ids import TaskId
from common.resources import ZERO, Resources
from headnode.scheduling import ahead
from headnode.scheduling.policy import Policy
from headnode.scheduling.snapshot import NodeView, TaskRequest

ON = Policy(name="easy", dispatch_ahead=1.0, dispatch_ahead_wait=2.0)
FULL = [NodeView("a", Resources(2, 1000), Resources(2, 0)), NodeView("b", Resources(2, 1000), Resources(2, 0))]
ROOMS = {"a": Resources(2, 1000), "b": Resources(2, 1000)}


def req(job: int, cores: int = 1, count: int = 1, **kw: object) -> TaskRequest:
    return TaskRequest(TaskId(job, 1), Resources(cores, 0), count=count, **kw)  # type: ignore[arg-type]


def test_only_a_node_that_ended_a_task_lately_gets_room() -> None:
    assert ahead.room(Resources(4, 800), last_exit=99.0, now=100.0, policy=ON) == Resources(4, 800)
    assert ahead.room(Resources(4, 800), last_exit=97.0, now=100.0, policy=ON) == ZERO
    assert ahead.room(Resources(3, 0), 100.0, 100.0, Policy(dispatch_ahead=0.5)) == Resources(2, 0)
    assert ahead.room(Resources(4, 800), 100.0, 100.0, Policy()) == ZERO, "off by default"


def test_the_queue_goes_ahead_in_order_up_to_the_room() -> None:
    plan = ahead.plan(FULL, ROOMS, [req(1, count=3), req(2, count=3)], (), 0.0, ON)
    placed = [(p.task.job, p.node) for p in plan.placements]
    assert len(placed) == 4 and {n for _, n in placed} == {"a", "b"}
    assert [j for j, _ in placed] == [1, 1, 1, 2], "queue order holds"


def test_it_stops_at_the_first_task_that_may_not_go_ahead() -> None:
    queue = [req(1), req(2, nodes=2), req(3)]
    assert [p.task.job for p in ahead.plan(FULL, ROOMS, queue, (), 0.0, ON).placements] == [1]
    # Wider than the smallest node with room: its agent could never run it alone.
    assert ahead.plan(FULL, ROOMS, [req(4, cores=3), req(5)], (), 0.0, ON).placements == ()
    for kw in ({"exclusive": True}, {"gang": True}, {"max_cores": 2}, {"job_exclusive": True}):
        assert ahead.plan(FULL, ROOMS, [req(6, **kw), req(7)], (), 0.0, ON).placements == (), kw


def test_nodes_without_room_get_nothing() -> None:
    plan = ahead.plan(FULL, {"b": Resources(1, 0)}, [req(1, count=5)], (), 0.0, ON)
    assert [p.node for p in plan.placements] == ["b"]
    assert ahead.plan(FULL, {}, [req(1)], (), 0.0, ON).placements == ()
