"""Tasks outlive their agent: a restarted agent adopts them from its spool (real processes)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from common.ids import TaskId
from computenode.launcher import Launcher, find_by_run_id
from shoal.client import Client, task_spec
from shoal.local import LocalCluster
from shoal.v1 import jobs_pb2
from tests.conftest import eventually, kill_group

pytestmark = pytest.mark.cluster


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[LocalCluster]:
    c = LocalCluster(tmp_path / "c", nodes=1, cores=2, stop_tasks_on_exit=False,
                     head_args=["--heartbeat-interval", "0.2"])
    with c:
        yield c
        with Client(c.address) as client:  # leave nothing running behind the test
            for job in client.list_jobs(states=(jobs_pb2.JOB_STATE_QUEUED, jobs_pb2.JOB_STATE_RUNNING)):
                client.cancel_job(job.id)
            eventually(lambda: all(n.running_tasks == 0 for n in client.list_nodes()), what="tasks to stop")


def output(client: Client, job_id: int) -> bytes:
    return b"".join(client.read_output(TaskId(job_id, 1)))


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["sigkill", "sigterm"])
def test_a_task_that_ends_while_its_agent_is_down_is_reported_when_it_is_back(
        cluster: LocalCluster, tmp_path: Path, sig: int) -> None:
    go, done = tmp_path / "go", tmp_path / "done"
    with Client(cluster.address) as client:
        job_id = client.submit(jobs_pb2.JobSpec(tasks=[task_spec(
            f"echo before; while [ ! -e {go} ]; do sleep 0.02; done; echo after; echo err >&2; "
            f"touch {done}; exit 3")]))
        eventually(lambda: output(client, job_id) == b"before\n", what="the first line")
        cluster.kill_node("node1", sig)
        go.touch()  # the task goes on, and ends, with no agent
        eventually(done.exists, what="the task to end while its agent is down")
        assert client.get_job(job_id).state == jobs_pb2.JOB_STATE_RUNNING
        cluster.start_node("node1")
        job = client.wait_job(job_id)
        task = job.tasks[0]
        assert task.state == jobs_pb2.TASK_STATE_FAILED and task.reason == "exit code 3", task.reason
        assert task.attempt == 1, "it was not run again"
        assert output(client, job_id) == b"before\nafter\n"
        assert b"".join(client.read_output(TaskId(job_id, 1), stderr=True)) == b"err\n"


def test_a_running_task_is_adopted_then_followed_and_cancelled(cluster: LocalCluster, tmp_path: Path) -> None:
    go = tmp_path / "go"
    with Client(cluster.address) as client:
        job_id = client.submit(jobs_pb2.JobSpec(tasks=[task_spec(
            f"echo $$ > {tmp_path}/pid; echo one; while [ ! -e {go} ]; do sleep 0.02; done; echo two; "
            f"exec sleep 300", stdout_path="out.txt", working_directory=str(tmp_path))]))
        eventually(lambda: output(client, job_id) == b"one\n", what="the first line")
        pid = int((tmp_path / "pid").read_text())
        cluster.kill_node("node1")
        cluster.start_node("node1")
        cluster.wait_nodes(["node1"])
        go.touch()
        eventually(lambda: output(client, job_id) == b"one\ntwo\n", what="output written after the adoption")
        assert (tmp_path / "out.txt").read_text() == "one\ntwo\n", "the node-side copy goes on too"
        task = client.get_job(job_id).tasks[0]
        assert task.state == jobs_pb2.TASK_STATE_RUNNING and task.attempt == 1
        client.cancel_job(job_id)
        eventually(lambda: not os.path.exists(f"/proc/{pid}"), what="the adopted task to be killed")
        assert client.wait_job(job_id).tasks[0].state == jobs_pb2.TASK_STATE_CANCELLED


def test_a_task_process_is_found_by_its_run_id() -> None:
    run_id = uuid.uuid4().hex
    proc = subprocess.Popen(["/bin/sh", "-c", "sleep 60"], env=dict(os.environ, SHOAL_RUN_ID=run_id),
                            process_group=0)
    try:
        found = eventually(lambda: find_by_run_id(run_id), what="the process to be found")
        assert found[0] == proc.pid
        assert find_by_run_id(uuid.uuid4().hex) is None
    finally:
        kill_group(proc.pid)
        proc.wait()


def test_a_process_at_the_recorded_pid_is_adopted_only_if_it_carries_the_run_id() -> None:
    """A restarted agent tells its task from a process that reused the pid by the run id."""
    run_id = uuid.uuid4().hex
    proc = subprocess.Popen(["/bin/sh", "-c", "sleep 60"], env=dict(os.environ, SHOAL_RUN_ID=run_id),
                            process_group=0)
    other = subprocess.Popen(["sleep", "60"], process_group=0)  # led its group, no run id

    async def adopted() -> list[bool]:
        launcher = Launcher(lambda key, code: None)
        return [launcher.adopt("stranger", proc.pid, 0.0, uuid.uuid4().hex),
                launcher.adopt("no id", other.pid, 0.0, run_id),
                launcher.adopt("ours", proc.pid, 0.0, run_id)]

    try:
        eventually(lambda: find_by_run_id(run_id), what="the process to carry its run id")
        assert asyncio.run(adopted()) == [False, False, True]
    finally:
        for p in (proc, other):
            kill_group(p.pid)
            p.wait()
