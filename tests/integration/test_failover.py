"""Two head nodes on one PostgreSQL database: kill the active one mid-workload, the standby
takes over, and nothing is lost or run twice."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from common.clock import perf_counter
from shoal.client import Client, RequestFailed, task_spec
from shoal.local import LocalCluster
from shoal.v1 import jobs_pb2
from tests.conftest import drop_schema, eventually, postgres_url, run_cli

pytestmark = pytest.mark.cluster


@pytest.fixture
def ha(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[LocalCluster]:
    """Two head nodes on one fresh PostgreSQL schema, lease ttl 2 s and heartbeats every 0.5 s
    (or the test's param: a ttl, or a pair (ttl, heartbeat interval))."""
    param = getattr(request, "param", 2)
    ttl, heartbeat = param if isinstance(param, tuple) else (param, 0.5)
    schema = f"failover_{uuid.uuid4().hex[:12]}"
    cluster = LocalCluster(tmp_path / "ha", nodes=2, cores=2, heads=2,
                           database=f"{postgres_url()}?schema={schema}",
                           head_args=["--lease-ttl", str(ttl), "--heartbeat-interval", str(heartbeat),
                                      "--node-lost-after", "20" if heartbeat < 5 else "30"])
    try:
        with cluster:
            yield cluster
    finally:
        drop_schema(schema)


def test_the_standby_takes_over_and_the_workload_completes(ha: LocalCluster, tmp_path: Path) -> None:
    ids = tmp_path / "ids"
    tasks = 60
    first = ha.active_head()
    assert first is not None and ha.head_procs.keys() == {0, 1}
    go = tmp_path / "go"
    # A user waiting on a job through the failover: the CLI rides it out.
    waiting = subprocess.Popen(
        [sys.executable, "-m", "shoal", "job", "submit", "--wait", "--",
         f"touch {tmp_path}/started; while [ ! -e {go} ]; do sleep 0.05; done"],
        env=dict(os.environ, SHOAL_HEAD=ha.address), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    with Client(ha.address) as client:
        job_ids = [client.submit(jobs_pb2.JobSpec(name=f"j{i}", tasks=[task_spec(
            f"sleep 0.1; echo {i} >> {ids}")])) for i in range(tasks)]
        eventually(lambda: ids.exists() and len(ids.read_text().split()) >= 5, what="work to be under way")
        eventually((tmp_path / "started").exists, what="the waited-on job to start")
        killed = perf_counter()
        ha.kill_head()
        eventually(lambda: ha.active_head() is not None, timeout=20, what="the standby to take over")
        took_over = perf_counter() - killed
        assert ha.active_head() != first
        go.touch()
        out, err = waiting.communicate(timeout=60)
        assert waiting.returncode == 0, err
        assert "Finished" in err
        # The same client, with both addresses, follows the new active head.
        for job_id in job_ids:
            assert client.wait_job(job_id).state == jobs_pb2.JOB_STATE_FINISHED
        more = client.submit(jobs_pb2.JobSpec(tasks=[task_spec("echo after the takeover")]))
        assert client.wait_job(more).state == jobs_pb2.JOB_STATE_FINISHED
    runs = Counter(ids.read_text().split())
    assert sorted(runs) == sorted(str(i) for i in range(tasks)), "every task ran"
    assert max(runs.values()) == 1, f"tasks ran twice: {[k for k, v in runs.items() if v > 1]}"
    assert took_over < 10, f"takeover took {took_over:.1f}s"
    listed = run_cli("job", "list", "--state", "Finished", "--json", head=ha.address)
    assert listed.returncode == 0, listed.stderr
    assert set(job_ids) <= {int(j["id"]) for j in json.loads(listed.stdout)["jobs"]}, "the CLI follows it too"


def test_a_killed_head_comes_back_as_a_standby(ha: LocalCluster) -> None:
    first = ha.kill_head()
    eventually(lambda: ha.active_head() is not None, timeout=20, what="the standby to take over")
    second = ha.active_head()
    ha.start_head(first, wait=False)
    with Client(ha.address) as client:
        assert client.wait_job(client.submit(jobs_pb2.JobSpec(tasks=[task_spec("true")]))).state == \
            jobs_pb2.JOB_STATE_FINISHED
    eventually(lambda: "standing_by" in ha.log_tail(ha.head_name(first)), what="the restarted head to stand by")
    assert ha.active_head() == second, "the restarted head stands by while the other is active"


@pytest.mark.parametrize("ha", [60], indirect=True)
def test_sigterm_hands_over_at_once_and_running_tasks_run_on(ha: LocalCluster, tmp_path: Path) -> None:
    """With a 60 s lease, only its release on a clean stop lets the standby take over at once."""
    with Client(ha.address) as client:
        running = client.submit(jobs_pb2.JobSpec(tasks=[task_spec(
            f"echo $SHOAL_ATTEMPT >> {tmp_path}/runs; while [ ! -e {tmp_path}/go ]; do sleep 0.05; done")]))
        eventually(lambda: (tmp_path / "runs").exists(), what="the task to start")
        queued = client.submit(jobs_pb2.JobSpec(tasks=[task_spec("echo queued last")]))
        first = ha.kill_head(sig=signal.SIGTERM)
        assert ha.head_procs.keys() == {1 - first}
        eventually(lambda: ha.active_head() is not None, timeout=20, what="the standby to take over")
        assert client.get_job(running).tasks[0].state == jobs_pb2.TASK_STATE_RUNNING
        (tmp_path / "go").touch()
        assert client.wait_job(running).state == jobs_pb2.JOB_STATE_FINISHED
        assert client.wait_job(queued).state == jobs_pb2.JOB_STATE_FINISHED
    assert (tmp_path / "runs").read_text() == "1\n", "the running task ran on, once"
    assert "lease_released" in ha.log_tail(ha.head_name(first))


@pytest.mark.parametrize("ha", [2, (6, 5.0)], indirect=True, ids=["fast", "default timings"])
def test_a_frozen_leader_is_left_fast_and_its_running_tasks_are_adopted_not_restarted(
        ha: LocalCluster, tmp_path: Path) -> None:
    """The leader SIGSTOPped: the standby takes the lease, the agents leave the frozen one for
    it within 15 s, and every running task runs on (attempt 1, never stopped). Woken, the old
    leader finds its lease gone and stops."""
    from tests.fault.ticks import overlaps, spans, ticker

    ticks, go = tmp_path / "ticks", tmp_path / "go"
    with Client(ha.address) as client:
        job_id = client.submit(jobs_pb2.JobSpec(tasks=[task_spec(ticker(ticks, until=go), instances=4)]))
        eventually(lambda: len(spans(ticks)) == 4, what="every instance to tick")
        old = ha.active_head()
        assert old is not None
        new = 1 - old
        frozen = ha.head_procs[old]
        os.kill(frozen.pid, signal.SIGSTOP)
        stopped = perf_counter()
        try:
            new_address = ha._listen[new]

            def on_new_leader() -> bool:
                try:
                    with Client(new_address, timeout=2.0) as direct:
                        nodes = {n.name: n for n in direct.list_nodes()}
                except Exception:  # not serving yet (standing by): no listener
                    return False
                return all(name in nodes and nodes[name].connected for name in ha.node_names)

            eventually(on_new_leader, timeout=30, what="both agents to connect to the new leader")
            moved = perf_counter() - stopped

            def answered() -> bool:  # the client made before the freeze, given both addresses
                try:
                    return client.get_job(job_id, full=False).state == jobs_pb2.JOB_STATE_RUNNING
                except RequestFailed:
                    return False

            eventually(answered, timeout=30, what="the long-lived client to reach the new leader")
            followed = perf_counter() - stopped
        finally:
            os.kill(frozen.pid, signal.SIGCONT)
        assert moved < 15, f"the agents took {moved:.1f}s to reach the new leader"
        try:
            frozen.wait(20)  # woken, it has lost the lease and stops
        except subprocess.TimeoutExpired:
            pytest.fail("the woken old leader went on serving")
        go.touch()
        job = client.wait_job(job_id)
    found = spans(ticks)
    assert job.state == jobs_pb2.JOB_STATE_FINISHED
    assert not overlaps(found)
    assert all(list(by) == [1] for by in found.values()), f"a running task was restarted: {found}"
    assert followed < 20, f"the client took {followed:.1f}s to reach the new leader"
    print(json.dumps({"agents_on_new_leader_s": round(moved, 2), "client_on_new_leader_s": round(followed, 2)}))
