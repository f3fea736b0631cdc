"""Scheduling policy on a real cluster: EASY backfill around a wide job, fair-share order,
preemption, owner limits. Two agents of 2 cores; tasks that must overlap wait on barrier
files the test creates once it has seen what it wanted.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from shoal.client import Client, RequestFailed, task_spec
from shoal.local import LocalCluster
from shoal.v1 import common_pb2, jobs_pb2
from tests.conftest import eventually, run_cli

pytestmark = pytest.mark.cluster

RUNNING, QUEUED = jobs_pb2.TASK_STATE_RUNNING, jobs_pb2.TASK_STATE_QUEUED
FINISHED = jobs_pb2.JOB_STATE_FINISHED
CONFIG = """\
[head]
policy = "easy"
preemption = true
fairshare_interval = 0.2
"""
LIMITS = """\
[head]
max_running_cores_per_owner = 3
max_queued_jobs_per_owner = 3
rate_limit = 200
"""


def start(tmp_path_factory: pytest.TempPathFactory, config: str) -> LocalCluster:
    state = tmp_path_factory.mktemp("policy")
    (state / "shoal.toml").write_text(config)
    return LocalCluster(state, nodes=2, cores=2, node_args=["--kill-grace", "1"],
                        head_args=["--config", str(state / "shoal.toml")])


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    with start(tmp_path_factory, CONFIG) as c:
        yield c


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    with start(tmp_path_factory, LIMITS) as c:
        yield c


def _unthrottled(call):  # type: ignore[no-untyped-def]
    """(the call's result as a list,), or None while the caller is over its request rate (the
    rate-limit test leaves one caller's allowance spent)."""
    try:
        return ([*call()],)
    except RequestFailed as e:
        if e.code != grpc.StatusCode.RESOURCE_EXHAUSTED:
            raise
        return None


@pytest.fixture
def clients(request: pytest.FixtureRequest) -> Iterator[dict[str, Client]]:
    cluster = request.getfixturevalue("limited" if "limits" in request.node.name else "cluster")
    users = {u: Client(cluster.address, user=u) for u in ("alice", "bob", "carol")}
    yield users
    for c in users.values():
        (listing,) = eventually(lambda c=c: _unthrottled(lambda: c.list_jobs(  # type: ignore[misc]
            states=(jobs_pb2.JOB_STATE_QUEUED, jobs_pb2.JOB_STATE_RUNNING))), what="a listing")
        for job in listing:
            try:
                c.cancel_job(job.id, "test teardown")
            except RequestFailed as e:  # it ended meanwhile
                assert e.code == grpc.StatusCode.FAILED_PRECONDITION
    c = users["alice"]
    eventually(lambda: all(n.running_tasks == 0 for n in c.list_nodes()), what="idle nodes after the test")
    for c in users.values():
        c.close()


def barrier(tmp_path: Path, name: str) -> tuple[Path, str]:
    path = tmp_path / name
    return path, f"while [ ! -e {path} ]; do sleep 0.02; done"


def submit(client: Client, command: str, priority: int = 0, **task: object) -> int:
    return client.submit(jobs_pb2.JobSpec(name=command[:20], priority=priority, tasks=[task_spec(command, **task)]))


def state(client: Client, job_id: int) -> int:
    return client.get_job(job_id).tasks[0].state


def pending(client: Client, job_id: int) -> str:
    return client.get_job(job_id).tasks[0].pending_reason


def pin(spec_args: dict[str, object], node: str) -> jobs_pb2.TaskSpec:
    t = task_spec(**spec_args)  # type: ignore[arg-type]
    t.placement.CopyFrom(common_pb2.PlacementConstraints(nodes=[node]))
    return t


def test_short_jobs_backfill_around_a_wide_job_without_delaying_it(clients: dict[str, Client], tmp_path: Path) -> None:
    alice, bob = clients["alice"], clients["bob"]
    done, wait_long = barrier(tmp_path, "long")
    hold, wait_hold = barrier(tmp_path, "hold")
    long_job = alice.submit(jobs_pb2.JobSpec(name="long", tasks=[pin(
        {"command_line": wait_long, "cores": 2, "runtime_limit": 60.0}, "node1")]))
    eventually(lambda: state(alice, long_job) == RUNNING, what="the long job on node1")
    wide = bob.submit(jobs_pb2.JobSpec(name="wide", tasks=[task_spec("true", cores=4, runtime_limit=30.0)]))
    eventually(lambda: "reserved to start in" in pending(bob, wide), what="the wide job's reservation")
    # Ends (by its limit) long before the reservation: it starts now, on node2.
    short = alice.submit(jobs_pb2.JobSpec(name="short", tasks=[task_spec("true", runtime_limit=5.0)]))
    assert alice.wait_job(short).state == FINISHED
    assert alice.get_job(short).tasks[0].node == "node2"
    # Would still hold node2's core when the wide job is due: it waits.
    late = alice.submit(jobs_pb2.JobSpec(name="late", tasks=[task_spec(wait_hold, runtime_limit=600.0)]))
    eventually(lambda: pending(alice, late).startswith(
        f"waiting for resources: starting it now would delay job {wide}"), what="the long one to be refused")
    assert state(bob, wide) == QUEUED
    fcfs_view = run_cli("job", "view", str(late), head=alice.address).stdout
    assert f"would delay job {wide}" in fcfs_view
    done.touch()
    assert bob.wait_job(wide).state == FINISHED
    ended = alice.get_job(long_job).tasks[0].end_time.ToNanoseconds() / 1e9
    started = bob.get_job(wide).tasks[0].start_time.ToNanoseconds() / 1e9
    assert 0 <= started - ended < 5, "the wide job started as soon as the long one ended"
    assert alice.get_job(short).tasks[0].end_time.ToNanoseconds() / 1e9 < started
    hold.touch()
    assert alice.wait_job(late).state == FINISHED


def test_fair_share_puts_a_light_user_ahead_of_a_heavy_one(clients: dict[str, Client], tmp_path: Path) -> None:
    alice, bob = clients["alice"], clients["bob"]
    go, wait = barrier(tmp_path, "go")
    heavy = alice.submit(jobs_pb2.JobSpec(name="heavy", tasks=[task_spec(wait, cores=2) for _ in range(2)]))
    eventually(lambda: [t.state for t in alice.get_job(heavy).tasks] == [RUNNING, RUNNING], what="alice's usage")
    first = submit(alice, "true", cores=2, runtime_limit=10.0)
    second = submit(bob, "true", cores=2, runtime_limit=10.0)
    # Submitted after alice's, bob's job moves ahead of it once usage is counted.
    eventually(lambda: pending(alice, first) == f"waiting behind job {second}, ahead in the queue (it has the "
               f"reservation)", what="bob's job to move ahead of alice's")
    go.touch()
    a, b = alice.wait_job(first), bob.wait_job(second)
    assert b.tasks[0].start_time.ToNanoseconds() <= a.tasks[0].start_time.ToNanoseconds()


def test_a_higher_level_preempts_and_the_lower_level_is_requeued(clients: dict[str, Client], tmp_path: Path) -> None:
    carol, bob = clients["carol"], clients["bob"]
    go, wait = barrier(tmp_path, "go")
    low = carol.submit(jobs_pb2.JobSpec(name="low", priority=jobs_pb2.PRIORITY_LOWEST,
                                        tasks=[task_spec(wait, cores=2)]))
    eventually(lambda: state(carol, low) == RUNNING, what="the low job")
    filler = bob.submit(jobs_pb2.JobSpec(name="filler", priority=jobs_pb2.PRIORITY_NORMAL,
                                         tasks=[task_spec(wait, cores=2)]))
    eventually(lambda: state(bob, filler) == RUNNING, what="the cluster to be full")
    urgent = bob.submit(jobs_pb2.JobSpec(name="urgent", priority=jobs_pb2.PRIORITY_HIGHEST,
                                         tasks=[task_spec("echo urgent", cores=2)]))
    assert bob.wait_job(urgent).state == FINISHED
    reasons = [h.reason for h in carol.get_job(low).tasks[0].history]
    assert f"preempted by job {urgent} (Highest priority)" in reasons
    assert state(bob, filler) == RUNNING, "the Normal job was not touched"
    eventually(lambda: state(carol, low) == RUNNING and carol.get_job(low).tasks[0].attempt == 2,
               what="the preempted task to run again")
    go.touch()
    assert carol.wait_job(low).state == FINISHED and bob.wait_job(filler).state == FINISHED


def test_owner_limits(clients: dict[str, Client], tmp_path: Path) -> None:
    carol = clients["carol"]
    go, wait = barrier(tmp_path, "go")
    busy = carol.submit(jobs_pb2.JobSpec(name="four", tasks=[task_spec(wait) for _ in range(4)]))
    eventually(lambda: [t.state for t in carol.get_job(busy).tasks].count(RUNNING) == 3, what="3 of carol's tasks")
    held = [t for t in carol.get_job(busy).tasks if t.state == QUEUED]
    assert [t.pending_reason for t in held] == ["held back by the owner limit: carol runs 3 of at most 3 cores"]
    # Another owner is not held back by carol's limit.
    assert clients["bob"].wait_job(submit(clients["bob"], "true")).state == FINISHED
    more = [carol.submit(jobs_pb2.JobSpec(name="q", hold=True, tasks=[task_spec("true")])) for _ in range(3)]
    with pytest.raises(RequestFailed) as e:
        carol.submit(jobs_pb2.JobSpec(name="q", tasks=[task_spec("true")]))
    assert e.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert e.value.message.startswith("carol has 3 queued jobs, the most allowed (max_queued_jobs_per_owner = 3)")
    # A stream of jobs counts those it has not queued yet: one place left, two asked for.
    carol.cancel_job(more.pop())
    with pytest.raises(RequestFailed) as e:
        carol.submit_each([jobs_pb2.JobSpec(name="q", hold=True, tasks=[task_spec("true")])] * 2, window=2)
    assert e.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert e.value.message.startswith("request 2 of the stream: carol has 3 queued jobs, the most allowed")
    more += e.value.queued
    assert len(e.value.queued) == 1
    go.touch()
    assert carol.wait_job(busy).state == FINISHED
    for job_id in more:
        carol.cancel_job(job_id)


def test_work_held_back_by_the_owner_limit_goes_through_as_the_owners_runs_end(clients: dict[str, Client]) -> None:
    # Held tasks are set aside and put back a few at a time as carol's runs end
    # (Cluster.freed): every one must still run, tasks and a sweep's instances alike.
    carol = clients["carol"]
    tasks = carol.submit(jobs_pb2.JobSpec(name="many", tasks=[task_spec(f"echo {i}") for i in range(12)]))
    sweep = carol.submit(jobs_pb2.JobSpec(name="sweep", tasks=[task_spec("echo *", sweep=(1, 12, 1))]))
    for job_id in (tasks, sweep):
        assert carol.wait_job(job_id).state == FINISHED


def test_limits_on_the_request_rate(clients: dict[str, Client]) -> None:
    carol = clients["carol"]
    with pytest.raises(RequestFailed) as e:
        for _ in range(5000):  # bursts of 400, then 200 a second
            carol.list_nodes()
    assert e.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert e.value.message == "too many requests from carol: at most 200 per second; slow down and retry"
    assert clients["bob"].list_nodes(), "another caller has its own allowance"

    def allowed_again() -> bool:
        try:
            return bool(carol.list_nodes())
        except RequestFailed as e:
            assert e.code == grpc.StatusCode.RESOURCE_EXHAUSTED
            return False

    eventually(allowed_again, what="carol's allowance to refill")
