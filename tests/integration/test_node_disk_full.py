"""A node whose spool disk fills up: a node condition the head sees (no new work goes there, and
a queued task says why), a clear failure for a task that could not even be recorded, and no
reconnect storm; once space is freed, work goes there again. The agent's state dir is a small
tmpfs (needs root and mount; skipped with the reason otherwise)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from common.clock import SystemClock
from common.config import NodeConfig
from common.ids import TaskId
from computenode import state as st
from computenode.runner import MIN_FREE_MB, TaskRunner
from computenode.spool import Spool
from shoal.client import Client, task_spec
from shoal.local import LocalCluster
from shoal.v1 import jobs_pb2, nodes_pb2
from tests.conftest import eventually, tmpfs

pytestmark = pytest.mark.cluster


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    with tmpfs(tmp_path / "disk", "48m", "the agent's state dir") as where:
        yield where


def _fill(where: Path, leave_mb: int) -> Path:
    """Fill the file system but for about `leave_mb` MB."""
    fs = os.statvfs(where)
    free = fs.f_bavail * fs.f_frsize
    filler = where / "filler"
    with open(filler, "wb") as f:
        f.write(b"\0" * max(0, free - leave_mb * 1024 * 1024))
    return filler


def test_a_full_spool_disk_is_a_node_condition_and_clears(small_disk: Path, tmp_path: Path) -> None:
    cluster = LocalCluster(tmp_path / "c", nodes=0, cores=1, head_args=["--heartbeat-interval", "0.5"])
    with cluster, Client(cluster.address) as client:
        cluster.start_node("node1", extra=["--state-dir", str(small_disk / "node1")])
        cluster.wait_nodes(["node1"])
        assert client.wait_job(client.submit(jobs_pb2.JobSpec(tasks=[task_spec("echo ok")]))).state == \
            jobs_pb2.JOB_STATE_FINISHED
        filler = _fill(small_disk, MIN_FREE_MB // 2)
        eventually(lambda: "spool disk full" in client.list_nodes()[0].reason, what="the node's condition")
        job_id = client.submit(jobs_pb2.JobSpec(tasks=[task_spec("echo after")]))
        eventually(lambda: "spool disk full" in client.get_job(job_id).tasks[0].pending_reason,
                   what="the queued task to say why it waits")
        filler.unlink()
        assert client.wait_job(job_id).state == jobs_pb2.JOB_STATE_FINISHED, "work goes there again"
        assert "spool disk full" not in client.list_nodes()[0].reason
        log = (cluster.log_dir / "node1.log").read_text()
        assert log.count('"reconnecting"') == 0, "the full disk made the agent reconnect"
        assert '"node_condition"' in log


def test_a_task_that_cannot_be_recorded_fails_saying_the_disk_is_full(small_disk: Path) -> None:
    _fill(small_disk, 0)
    spool_dir = small_disk / "spool"
    if not spool_dir.exists():
        try:
            spool_dir.mkdir()
        except OSError:
            pytest.skip("the tmpfs filled before the spool's directory could be made")
    fed: list[st.Event] = []

    async def main() -> None:
        runner = TaskRunner(NodeConfig(name="n1", state_dir=small_disk, plaintext=True), SystemClock(),
                            Spool(spool_dir), fed.append, lambda key: None)
        runner.begin()
        launch = nodes_pb2.LaunchTask(command_line="true", attempt=1)
        launch.task.job_id, launch.task.task_id, launch.task.instance_id = 1, 1, 0
        runner.start((TaskId(1, 1), 1), launch, "n1")
        assert runner.condition().startswith("spool disk full")

    asyncio.run(main())
    assert [type(e) for e in fed] == [st.StartFailed], fed
    assert "the node's spool disk is full" in fed[0].error  # type: ignore[union-attr]
