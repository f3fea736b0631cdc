"""Head-node restarts and lost nodes, each on a cluster of its own (these tests kill daemons)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import grpc
import psutil
import pytest

from common.ids import TaskId
from shoal.client import Client, RequestFailed, task_spec
from shoal.local import LocalCluster
from shoal.v1 import admin_pb2, jobs_pb2
from tests.conftest import eventually, kill_group

pytestmark = pytest.mark.cluster


@pytest.fixture
def small_cluster(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[LocalCluster]:
    """Two one-core nodes with heartbeats every 0.2 s. A node is lost after 30 s of silence
    (agents back off while the head is down), or after `lost_after` when a test says so."""
    lost_after = getattr(request, "param", 30.0)
    cluster = LocalCluster(tmp_path / "cluster", nodes=2, cores=1,
                           head_args=["--heartbeat-interval", "0.2", "--node-lost-after", str(lost_after),
                                      "--kill-grace", "0.5"])
    with cluster:
        yield cluster


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_head_restart_keeps_a_queued_job_which_then_runs(small_cluster: LocalCluster, tmp_path: Path) -> None:
    with Client(small_cluster.address) as client:
        # Fill both one-core nodes, then queue a job behind them.
        blocker = client.submit(jobs_pb2.JobSpec(name="blocker", tasks=[
            task_spec(f"echo $$ > {tmp_path}/pid$SHOAL_TASK_ID; exec sleep 300") for _ in range(2)]))
        eventually(lambda: (tmp_path / "pid1").exists() and (tmp_path / "pid2").exists()
                   and (tmp_path / "pid2").read_text().strip(), what="the blocker to run")
        pids = [int((tmp_path / f"pid{i}").read_text()) for i in (1, 2)]
        queued = client.submit(jobs_pb2.JobSpec(name="queued", tasks=[task_spec("echo ran after the restart")]))
        eventually(lambda: client.get_job(queued).pending_reason.startswith("waiting for resources"),
                   what="the queued job's pending reason")

    small_cluster.kill_head()  # SIGKILL: no chance to flush anything
    small_cluster.start_head()
    small_cluster.wait_nodes(small_cluster.node_names)

    with Client(small_cluster.address) as client:
        job = client.get_job(queued)
        assert job.state == jobs_pb2.JOB_STATE_QUEUED and job.name == "queued"
        # The running tasks went on through the head's absence and were reconciled, not re-run.
        running = client.get_job(blocker)
        assert [t.state for t in running.tasks] == [jobs_pb2.TASK_STATE_RUNNING] * 2
        assert [t.attempt for t in running.tasks] == [1, 1]
        assert all(alive(p) for p in pids)
        client.cancel_job(blocker)
        done = client.wait_job(queued)
        assert done.state == jobs_pb2.JOB_STATE_FINISHED
        assert b"".join(client.read_output(TaskId(queued, 1))) == b"ran after the restart\n"
        eventually(lambda: not any(alive(p) for p in pids), what="the blocker's processes to be killed")
        # Job ids keep increasing across the restart.
        assert client.submit(jobs_pb2.JobSpec(tasks=[task_spec("true")])) > queued


def _kill_agent_running(cluster: LocalCluster, client: Client, job_id: int, pid_file: Path) -> tuple[str, int]:
    eventually(lambda: pid_file.exists() and pid_file.read_text().strip(), what="the task to start")
    pid = int(pid_file.read_text())
    node = client.get_job(job_id).tasks[0].node
    agent = cluster.agents.pop(node)
    agent.kill()  # the agent dies; its task's process group lives on, unsupervised
    agent.wait()
    return node, pid


def _unreachable(client: Client, node: str) -> bool:
    return {n.name: n for n in client.list_nodes()}[node].state == admin_pb2.NODE_STATE_UNREACHABLE


@pytest.mark.parametrize("small_cluster", [2.5], indirect=True)
def test_a_lost_node_fails_a_task_that_is_not_rerunnable(small_cluster: LocalCluster, tmp_path: Path) -> None:
    pid = 0
    with Client(small_cluster.address) as client:
        try:
            job_id = client.submit(jobs_pb2.JobSpec(tasks=[
                task_spec(f"echo $$ > {tmp_path}/pid; exec sleep 300", rerunnable=False)]))
            node, pid = _kill_agent_running(small_cluster, client, job_id, tmp_path / "pid")
            eventually(lambda: _unreachable(client, node), timeout=10, what=f"{node} to be declared Unreachable")
            job = client.get_job(job_id)
            assert job.state == jobs_pb2.JOB_STATE_FAILED
            assert job.tasks[0].state == jobs_pb2.TASK_STATE_FAILED and job.tasks[0].reason == f"node {node} lost"
            assert {n.name: n for n in client.list_nodes()}[node].running_tasks == 0
        finally:
            if pid and alive(pid):
                kill_group(pid)


@pytest.mark.parametrize("small_cluster", [2.5], indirect=True)
def test_a_lost_node_requeues_a_rerunnable_task_elsewhere(small_cluster: LocalCluster, tmp_path: Path) -> None:
    pids = []
    with Client(small_cluster.address) as client:
        try:
            job_id = client.submit(jobs_pb2.JobSpec(tasks=[
                task_spec(f"echo $$ >> {tmp_path}/pids; echo $$ > {tmp_path}/pid$SHOAL_ATTEMPT; exec sleep 300")]))
            node, first = _kill_agent_running(small_cluster, client, job_id, tmp_path / "pid1")
            pids.append(first)
            second_file = tmp_path / "pid2"
            eventually(lambda: second_file.exists() and second_file.read_text().strip(), timeout=15,
                       what="the task to run again on the other node")
            pids.append(int(second_file.read_text()))
            assert not alive(first), "the lost node's copy still runs beside the new one"
            task = client.get_job(job_id).tasks[0]
            assert task.state == jobs_pb2.TASK_STATE_RUNNING and task.attempt == 2 and task.node != node
            history = [u.reason for u in client.get_task(TaskId(job_id, 1)).history]
            assert f"node {node} lost; requeued (retry 1 of 3)" in history
        finally:
            for pid in pids:
                if alive(pid):
                    kill_group(pid)


def test_a_second_agent_with_a_taken_name_is_refused(small_cluster: LocalCluster) -> None:
    duplicate = small_cluster.start_node("node1-duplicate", extra=["--name", "node1"])
    small_cluster.agents.pop("node1-duplicate")
    assert duplicate.wait(timeout=20) == 1
    assert "already connected" in small_cluster.log_tail("node1-duplicate")


def test_an_agent_refused_for_its_name_takes_over_once_the_other_agent_is_gone(small_cluster: LocalCluster) -> None:
    """As when an agent is restarted before the head has seen its predecessor's stream end:
    the new one is refused for a while, then connects instead of giving up."""
    successor = small_cluster.start_node("node1-successor", extra=["--name", "node1"])
    eventually(lambda: "node_name_in_use" in small_cluster.log_tail("node1-successor"), what="the successor refused")
    small_cluster.kill_node("node1")
    eventually(lambda: '"event": "connected"' in small_cluster.log_tail("node1-successor"),
               what="the successor connected in node1's place")
    assert successor.poll() is None
    with Client(small_cluster.address) as client:
        node = client.get_node("node1")
        assert node.connected and node.state == admin_pb2.NODE_STATE_ONLINE


def test_completed_jobs_are_purged_after_their_ttl_and_survive_a_restart_until_then(tmp_path: Path) -> None:
    cluster = LocalCluster(tmp_path / "ttl", nodes=1, head_args=["--completed-job-ttl", "1"])
    with cluster, Client(cluster.address) as client:
        done = client.wait_job(client.submit(jobs_pb2.JobSpec(tasks=[task_spec("echo bye")])))
        waiting = client.submit(jobs_pb2.JobSpec(tasks=[task_spec("true")], hold=True))
        output_dir = cluster.state_dir / "head" / "output" / str(done.id)
        assert output_dir.exists()

        def purged() -> bool:
            try:
                client.get_job(done.id)
            except RequestFailed as e:
                return e.code == grpc.StatusCode.NOT_FOUND
            return False

        eventually(purged, timeout=20, what="the finished job to be purged")
        # Its output goes once the purge is durable (a crash in between leaves stray files,
        # never a job without its output).
        eventually(lambda: not output_dir.exists(), what="the purged job's output to be removed")
        assert client.get_job(waiting).state == jobs_pb2.JOB_STATE_QUEUED, "a job that has not ended stays"
        cluster.kill_head()
        cluster.start_head()
        with pytest.raises(RequestFailed):
            client.get_job(done.id)
        assert client.get_job(waiting).held


def test_output_and_exits_while_the_head_is_down_arrive_afterwards(small_cluster: LocalCluster, tmp_path: Path) -> None:
    go, done = tmp_path / "go", tmp_path / "done"
    with Client(small_cluster.address) as client:
        job_id = client.submit(jobs_pb2.JobSpec(tasks=[task_spec(
            f"echo first; while [ ! -e {go} ]; do sleep 0.02; done; seq 1 20000; touch {done}")]))
        eventually(lambda: b"".join(client.read_output(TaskId(job_id, 1))) == b"first\n", what="the first line")
    small_cluster.kill_head()
    go.touch()
    eventually(done.exists, what="the task to end while the head is down")
    small_cluster.start_head()
    with Client(small_cluster.address) as client:
        job = client.wait_job(job_id)
        assert job.state == jobs_pb2.JOB_STATE_FINISHED and job.tasks[0].attempt == 1
        expected = b"first\n" + b"".join(b"%d\n" % i for i in range(1, 20001))
        assert b"".join(client.read_output(TaskId(job_id, 1))) == expected
