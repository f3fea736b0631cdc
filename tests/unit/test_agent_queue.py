"""The agent's own capacity: launches dispatched ahead wait, first in first out, for room."""

from __future__ import annotations

import signal

from hypothesis import example, given, settings
from hypothesis import strategies as st_

from common.ids import TaskId
from computenode import state as s


def k(n: int) -> s.Key:
    return (TaskId(7, n), 1)


A, B, C, D = k(1), k(2), k(3), k(4)


def launch(key: s.Key, cores: int = 1, memory_mb: int = 0, limit: float = 0.0) -> s.LaunchRequested:
    return s.LaunchRequested(key, f"launch {key[0].task}", limit, cores, memory_mb)


def starts(out: list[s.Instruction]) -> list[s.Key]:
    return [i.key for i in out if isinstance(i, s.Start)]


def test_launches_beyond_the_cores_wait_and_start_as_one_ends() -> None:
    a = s.AgentState(cores=2)
    assert a.handle(launch(A)) == [s.Start(A, "launch 1")]
    assert a.handle(launch(B)) == [s.Start(B, "launch 2")]
    assert a.handle(launch(C)) == [], "no room: held, nothing to do yet"
    assert a.tasks[C].phase is s.Phase.QUEUED and list(a.queue) == [C]
    assert a.handle(s.ProcessStarted(A, 10)) == [s.ReportStarted(A, 10)]
    assert a.handle(s.ProcessExited(A, 0, 0)) == [
        s.Signal(A, signal.SIGKILL), s.ReportExited(A), s.Start(C, "launch 3")]
    assert a.tasks[C].phase is s.Phase.RUNNING and not a.queue
    assert a.tasks[C].launch is None, "the message is not kept once handed over"


def test_the_runtime_clock_starts_with_the_process_not_the_launch() -> None:
    a = s.AgentState(cores=1)
    a.handle(launch(A))
    assert a.handle(launch(B, limit=5.0)) == []
    a.handle(s.ProcessExited(A, 0, 0))
    assert a.handle(s.ProcessStarted(B, 11)) == [s.ReportStarted(B, 11), s.StartRuntimeTimer(B, 5.0)]


def test_strict_fifo_a_large_launch_at_the_head_holds_the_smaller_ones_behind_it() -> None:
    a = s.AgentState(cores=2)
    a.handle(launch(A))
    assert a.handle(launch(B, cores=2)) == []
    assert a.handle(launch(C, cores=1)) == [], "one core is free, but B was first"
    assert list(a.queue) == [B, C]
    out = a.handle(s.ProcessExited(A, 0, 0))
    assert starts(out) == [B], "B takes both cores; C still waits"
    assert starts(a.handle(s.ProcessExited(B, 0, 0))) == [C]


def test_several_queued_launches_start_at_once_in_order_when_room_frees() -> None:
    a = s.AgentState(cores=3)
    a.handle(launch(A, cores=3))
    for key in (B, C, D):
        assert a.handle(launch(key)) == []
    assert starts(a.handle(s.ProcessExited(A, 0, 0))) == [B, C, D]


def test_memory_is_a_limit_too() -> None:
    a = s.AgentState(cores=8, memory_mb=1000)
    assert starts(a.handle(launch(A, memory_mb=600))) == [A]
    assert a.handle(launch(B, memory_mb=600)) == []
    assert starts(a.handle(s.ProcessExited(A, 0, 0))) == [B]


def test_a_launch_asking_for_no_cores_counts_as_one() -> None:
    a = s.AgentState(cores=1)
    a.handle(launch(A, cores=0))
    assert a.handle(launch(B, cores=0)) == []


def test_a_launch_larger_than_the_node_starts_once_nothing_else_runs() -> None:
    a = s.AgentState(cores=2, memory_mb=100)
    a.handle(launch(A))
    assert a.handle(launch(B, cores=4)) == []
    assert starts(a.handle(s.ProcessExited(A, 0, 0))) == [B], "never held forever"
    b = s.AgentState(cores=2, memory_mb=100)
    assert starts(b.handle(launch(A, memory_mb=500))) == [A], "an idle node starts it at once"


def test_a_killed_queued_launch_is_reported_killed_without_starting() -> None:
    a = s.AgentState(cores=1)
    a.handle(launch(A))
    a.handle(launch(B))
    assert a.handle(s.KillRequested(B)) == [s.ReportExited(B)]
    t = a.tasks[B]
    assert t.phase is s.Phase.REPORTED and t.signal == signal.SIGKILL and t.exit_code == 0 and not t.error
    assert not a.queue
    assert starts(a.handle(s.ProcessExited(A, 0, 0))) == [], "it is not started later either"
    assert a.handle(s.ExitAcked(B)) == [s.Forget(B)]


def test_taking_back_the_head_of_the_queue_lets_the_next_start_when_it_fits() -> None:
    a = s.AgentState(cores=2)
    a.handle(launch(A))
    a.handle(launch(B, cores=2))
    a.handle(launch(C))
    assert a.handle(s.KillRequested(B)) == [s.ReportExited(B), s.Start(C, "launch 3")]


def test_killing_tasks_hold_their_cores_until_their_process_is_gone() -> None:
    a = s.AgentState(cores=1)
    a.handle(launch(A))
    a.handle(launch(B))
    assert starts(a.handle(s.KillRequested(A))) == []
    assert starts(a.handle(s.KillTimeout(A))) == []
    assert starts(a.handle(s.ProcessExited(A, 0, signal.SIGKILL))) == [B]


def test_a_start_failure_frees_the_room() -> None:
    a = s.AgentState(cores=1)
    a.handle(launch(A))
    a.handle(launch(B))
    assert a.handle(s.StartFailed(A, "no such dir")) == [s.ReportExited(A), s.Start(B, "launch 2")]


def test_adopted_running_tasks_hold_room() -> None:
    a = s.AgentState(cores=1)
    a.handle(s.Adopted(A, running=True))
    assert a.handle(launch(B)) == []
    assert starts(a.handle(s.ProcessExited(A, 0, 0))) == [B]


def test_events_for_a_queued_launch_other_than_a_kill_are_ignored() -> None:
    a = s.AgentState(cores=1)
    a.handle(launch(A))
    a.handle(launch(B))
    for event in (launch(B), s.ExitAcked(B), s.KillTimeout(B), s.RuntimeExceeded(B), s.MemoryExceeded(B),
                  s.ProcessExited(B, 0, 0), s.StartFailed(B, "x")):
        assert a.handle(event) == [], event
    assert a.tasks[B].phase is s.Phase.QUEUED and list(a.queue) == [B]
    assert a.tasks[B].launch == "launch 2"


def test_without_a_capacity_everything_starts_at_once() -> None:
    a = s.AgentState()
    for key in (A, B, C, D):
        assert a.handle(launch(key, cores=64, memory_mb=10**6)) == [s.Start(key, f"launch {key[0].task}")]
    assert not a.queue


KEYS = [k(n) for n in range(1, 5)]
EVENT = st_.tuples(st_.sampled_from(["launch", "exited", "failed", "kill", "acked"]), st_.integers(0, 3),
                   st_.integers(1, 3))


def make(name: str, key: s.Key, cores: int) -> s.Event:
    if name == "launch":
        return launch(key, cores=cores)
    if name == "exited":
        return s.ProcessExited(key, 0, 0)
    if name == "failed":
        return s.StartFailed(key, "x")
    return s.KillRequested(key) if name == "kill" else s.ExitAcked(key)


@settings(max_examples=400, deadline=None, derandomize=True)
@given(st_.lists(EVENT, max_size=30))
@example([("launch", 0, 1), ("launch", 3, 3), ("launch", 1, 1), ("kill", 3, 1)])  # a kill lets a later one start
def test_any_order_keeps_the_node_within_its_cores_and_starts_in_arrival_order(events: list) -> None:
    a = s.AgentState(cores=3)
    arrived: list[s.Key] = []  # queued launches, in order of arrival
    started: set[s.Key] = set()
    for name, i, cores in events:
        key = KEYS[i]
        event = make(name, key, cores)
        fresh = name == "launch" and key not in a.tasks
        out = a.handle(event)
        if fresh and a.tasks[key].phase is s.Phase.QUEUED:
            arrived.append(key)
        if any(isinstance(x, s.Forget) for x in out):
            started.discard(key)
        # A queued launch killed before it started leaves the queue without starting.
        starting = {x.key for x in out if isinstance(x, s.Start)}
        arrived = [q for q in arrived if q in starting or (q in a.tasks and a.tasks[q].phase is s.Phase.QUEUED)]
        for x in out:
            if isinstance(x, s.Start):
                assert x.key not in started, "started twice"
                started.add(x.key)
                if x.key in arrived:
                    assert arrived[0] == x.key, "a queued launch overtook an earlier one"
                    arrived.pop(0)
        arrived = [q for q in arrived if a.tasks.get(q) is not None and a.tasks[q].phase is s.Phase.QUEUED]
        assert list(a.queue) == arrived
        holding = [t for t in a.tasks.values() if t.phase in (s.Phase.RUNNING, s.Phase.KILLING)]
        used = sum(t.cores for t in holding)
        assert (a.holding, a.held_cores) == (len(holding), sum(max(1, t.cores) for t in holding)), "counts drifted"
        assert used <= 3 or len(holding) == 1, "over capacity with more than one task"
        if a.queue:
            assert holding, "queued launches wait for nothing"
            assert not a._fits(a.tasks[a.queue[0]]), "room freed but the queue's head not started"


def test_the_agent_reports_queued_launches_and_drops_them_on_stop(tmp_path) -> None:
    """The I/O shell: capacity from the node, the launch's own ask, QUEUED in the heartbeat."""
    import asyncio

    from common.clock import SystemClock
    from common.config import NodeConfig
    from common.resources import Resources
    from common.wire import task_ref
    from computenode.agent import Agent
    from shoal.v1 import common_pb2, nodes_pb2

    def launch_msg(key: s.Key, cores: int) -> nodes_pb2.HeadMessage:
        return nodes_pb2.HeadMessage(launch=nodes_pb2.LaunchTask(
            task=task_ref(key[0]), attempt=key[1], command_line="sleep 30",
            resources=common_pb2.Resources(cores=cores)))

    async def main() -> None:
        config = NodeConfig(name="n1", state_dir=tmp_path, kill_grace=0.2, stop_tasks_on_exit=True)
        agent = Agent(config, Resources(2, 1000), SystemClock(), fake_launch=True)
        for key, cores in ((A, 1), (B, 2), (C, 1)):
            agent._on_head_message(launch_msg(key, cores))
        phases = {(r.task.task_id, r.phase, r.stdout_bytes, r.stderr_bytes) for r in agent._reports()}
        assert phases == {(1, nodes_pb2.TASK_PHASE_RUNNING, 0, 0), (2, nodes_pb2.TASK_PHASE_QUEUED, 0, 0),
                          (3, nodes_pb2.TASK_PHASE_QUEUED, 0, 0)}
        assert agent.runner.started == 1  # type: ignore[union-attr]
        await agent._stop_tasks()
        assert agent.runner.started == 1, "queued launches are not started only to be stopped"  # type: ignore[union-attr]
        assert all(e.phase is s.Phase.REPORTED for e in agent.state.entries()), "all settled"
        assert agent.state.tasks[B].signal == agent.state.tasks[C].signal == signal.SIGKILL
        assert not agent.state.queue

    asyncio.run(main())
