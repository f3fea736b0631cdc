"""Dispatch ahead on a real cluster: one agent of 1 core, sent queued tasks beyond its room,
runs them one at a time in queue order; one it cannot start in time is taken back, as is one
a higher-priority job arrives behind; those an agent held when it restarted are sent again.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from common.ids import TaskId
from shoal.client import Client, task_spec
from shoal.local import LocalCluster
from shoal.v1 import jobs_pb2
from tests.conftest import eventually

pytestmark = pytest.mark.cluster

CONFIG = """\
[head]
dispatch_ahead = 2.0
dispatch_ahead_wait = 3.0
"""


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    state = tmp_path_factory.mktemp("ahead")
    (state / "shoal.toml").write_text(CONFIG)
    with LocalCluster(state, nodes=1, cores=1, node_args=["--kill-grace", "1"],
                      head_args=["--config", str(state / "shoal.toml")]) as c:
        yield c


@pytest.fixture
def client(cluster: LocalCluster) -> Iterator[Client]:
    with Client(cluster.address) as c:
        yield c


def test_a_node_runs_what_it_was_sent_ahead_one_at_a_time(cluster: LocalCluster, client: Client,
                                                          tmp_path: Path) -> None:
    # Two instances running at once on the 1-core node would both find the lock taken by the
    # other (mkdir is atomic), and one would fail.
    lock = tmp_path / "lock"
    command = f"mkdir {lock} || exit 7; sleep 0.02; rmdir {lock}"
    job = client.submit(jobs_pb2.JobSpec(name="ahead", tasks=[task_spec(command, sweep=(1, 40, 1))]))
    done = client.wait_job(job)
    assert done.state == jobs_pb2.JOB_STATE_FINISHED, [i.exit_code for i in done.tasks]
    placed = [line for line in (cluster.log_dir / "head.log").read_text().splitlines() if "task_placed" in line]
    assert any('"ahead": true' in line for line in placed), "no task was dispatched ahead"


def test_a_task_sent_ahead_behind_a_long_one_is_taken_back(client: Client, tmp_path: Path) -> None:
    go = tmp_path / "go"
    first = client.submit(jobs_pb2.JobSpec(name="short", tasks=[task_spec("true")]))
    assert client.wait_job(first).state == jobs_pb2.JOB_STATE_FINISHED
    # The node ended a task just now, so what cannot start on it is sent ahead...
    long = client.submit(jobs_pb2.JobSpec(name="long", tasks=[task_spec(f"while [ ! -e {go} ]; do sleep 0.02; done")]))
    behind = client.submit(jobs_pb2.JobSpec(name="behind", tasks=[task_spec("echo ran")]))
    eventually(lambda: client.get_job(long).state == jobs_pb2.JOB_STATE_RUNNING, what="the long job to run")
    # ...and taken back once it has waited dispatch_ahead_wait there without starting.
    reason = "not started there within 3s; queued again"
    eventually(lambda: any(reason in h.reason for h in client.get_job(behind).tasks[0].history),
               timeout=30, what="the task sent ahead to be taken back")
    task = client.get_job(behind).tasks[0]
    assert task.state == jobs_pb2.TASK_STATE_QUEUED, task
    go.touch()
    assert client.wait_job(behind).state == jobs_pb2.JOB_STATE_FINISHED
    assert client.wait_job(long).state == jobs_pb2.JOB_STATE_FINISHED


def test_a_higher_priority_job_goes_before_what_was_sent_ahead_for_a_lower_one(client: Client,
                                                                                  tmp_path: Path) -> None:
    go, order = tmp_path / "go", tmp_path / "order"
    first = client.submit(jobs_pb2.JobSpec(name="short", tasks=[task_spec("true")]))
    assert client.wait_job(first).state == jobs_pb2.JOB_STATE_FINISHED
    long = client.submit(jobs_pb2.JobSpec(name="long", tasks=[task_spec(f"while [ ! -e {go} ]; do sleep 0.02; done")]))
    low = client.submit(jobs_pb2.JobSpec(name="low", priority=jobs_pb2.PRIORITY_LOWEST,
                                         tasks=[task_spec(f"echo low >> {order}")]))
    # The node ended a task just now: low is sent ahead, to wait behind long on the node...
    eventually(lambda: client.get_job(low).tasks[0].state == jobs_pb2.TASK_STATE_RUNNING, what="low to be sent ahead")
    high = client.submit(jobs_pb2.JobSpec(name="high", priority=jobs_pb2.PRIORITY_HIGHEST,
                                          tasks=[task_spec(f"echo high >> {order}")]))
    # ...and taken back for high (well within dispatch_ahead_wait, 3s, which would take it back too).
    reason = f"taken back for job {high}, of higher priority"
    eventually(lambda: any(reason in h.reason for h in client.get_job(low).tasks[0].history),
               what="low to be taken back for high")
    go.touch()
    assert client.wait_job(high).state == jobs_pb2.JOB_STATE_FINISHED
    assert client.wait_job(low).state == jobs_pb2.JOB_STATE_FINISHED
    assert order.read_text() == "high\nlow\n", "the node ran low first"
    assert client.wait_job(long).state == jobs_pb2.JOB_STATE_FINISHED


def test_launches_held_by_an_agent_that_restarts_are_sent_again(tmp_path: Path) -> None:
    state = tmp_path / "restart"
    state.mkdir()
    (state / "shoal.toml").write_text("[head]\ndispatch_ahead = 2.0\ndispatch_ahead_wait = 60.0\n")
    go = tmp_path / "go"
    with LocalCluster(state, nodes=1, cores=1, stop_tasks_on_exit=False,
                      head_args=["--config", str(state / "shoal.toml")]) as cluster, Client(cluster.address) as client:
        first = client.submit(jobs_pb2.JobSpec(name="short", tasks=[task_spec("true")]))
        assert client.wait_job(first).state == jobs_pb2.JOB_STATE_FINISHED
        long = client.submit(jobs_pb2.JobSpec(name="long", tasks=[task_spec(f"while [ ! -e {go} ]; do sleep 0.02; done")]))
        held = [client.submit(jobs_pb2.JobSpec(name="held", tasks=[task_spec("echo held")])) for _ in range(2)]
        eventually(lambda: all(client.get_job(j).state == jobs_pb2.JOB_STATE_RUNNING for j in (long, *held)),
                   what="the long job to run and the others to be sent ahead behind it")
        cluster.kill_node("node1")  # the new agent adopts the long task and knows nothing of the rest
        cluster.start_node("node1")
        go.touch()
        for job_id in held:
            job = client.wait_job(job_id)
            assert job.state == jobs_pb2.JOB_STATE_FINISHED and job.tasks[0].attempt == 1, job
            assert b"".join(client.read_output(TaskId(job_id, 1))) == b"held\n"
        assert client.wait_job(long).state == jobs_pb2.JOB_STATE_FINISHED
        placed = [line for line in (cluster.log_dir / "head.log").read_text().splitlines()
                  if "task_placed" in line and f'"job_id": {held[0]},' in line]
        assert placed and all('"ahead": true' in line for line in placed), placed


def test_passes_are_spaced_while_tasks_sent_ahead_wait_on_the_agents(tmp_path: Path) -> None:
    state = tmp_path / "spaced"
    state.mkdir()
    (state / "shoal.toml").write_text("[head]\ndispatch_ahead = 2.0\ndispatch_ahead_pass_interval = 0.25\n")
    with LocalCluster(state, nodes=1, cores=1, head_args=["--config", str(state / "shoal.toml")]) as cluster, \
            Client(cluster.address) as client:
        first = client.submit(jobs_pb2.JobSpec(name="short", tasks=[task_spec("true")]))
        assert client.wait_job(first).state == jobs_pb2.JOB_STATE_FINISHED
        sweep = client.submit(jobs_pb2.JobSpec(name="sweep", tasks=[task_spec("true", sweep=(1, 12, 1))]))
        assert client.wait_job(sweep).state == jobs_pb2.JOB_STATE_FINISHED
        placed = [json.loads(line) for line in (cluster.log_dir / "head.log").read_text().splitlines()
                  if "task_placed" in line and f'"job_id": {sweep},' in line]
    times = [datetime.datetime.fromisoformat(p["timestamp"]).timestamp() for p in placed]
    # A pass's placements are logged together, once committed: bursts a few ms long.
    bursts = [t for i, t in enumerate(times) if i == 0 or t - times[i - 1] > 0.1]
    ahead = next(i for i, p in enumerate(placed) if p.get("ahead"))
    later = [t for t in bursts if t > times[ahead]]
    assert len(later) >= 2, f"the 12 instances went out in {len(bursts)} bursts: {times}"
    # Each burst's commit may take a few ms more or less than the one before it.
    gaps = [b - a for a, b in zip(later, later[1:])]
    assert min(gaps) > 0.15, f"passes {gaps} apart while tasks sent ahead waited"
