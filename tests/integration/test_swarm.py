"""Many agents in one process with faked launches (computenode/swarm.py), as bench/nodes.py
uses them: they register as separate nodes over their own connections and take real work."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from shoal.client import Client, task_spec
from shoal.local import LocalCluster
from shoal.v1 import admin_pb2, jobs_pb2
from tests.conftest import eventually

AGENTS = 20


def test_a_swarm_of_agents_registers_and_runs_a_sweep(tmp_path: Path) -> None:
    with LocalCluster(tmp_path, nodes=0) as cluster, Client(cluster.address) as client:
        swarm = subprocess.Popen(
            [sys.executable, "-m", "computenode.swarm", "--head", cluster.address, "--count", str(AGENTS),
             "--cores", "2", "--state-dir", str(tmp_path / "swarm")],
            stdout=subprocess.PIPE, text=True, env=dict(os.environ, GRPC_ENABLE_FORK_SUPPORT="false"))
        try:
            assert swarm.stdout is not None
            assert swarm.stdout.readline().split() == ["ready", str(AGENTS)]
            nodes = client.list_nodes()
            assert len(nodes) == AGENTS
            assert all(n.connected and n.state == admin_pb2.NODE_STATE_ONLINE for n in nodes)
            assert all(n.capacity.cores == 2 for n in nodes)

            # 40 cores: sleeping tasks fill every one, on every node, at once.
            busy = client.submit(jobs_pb2.JobSpec(tasks=[task_spec("sleep 1000", cores=1, sweep=(1, 2 * AGENTS, 1))]))
            eventually(lambda: client.get_job(busy, full=False).task_counts.running == 2 * AGENTS,
                       what="every core busy")
            assert {n.name for n in client.list_nodes() if n.allocated.cores == 2} == {n.name for n in nodes}
            client.cancel_job(busy)
            quick = client.submit(jobs_pb2.JobSpec(tasks=[task_spec("true", cores=1, sweep=(1, 200, 1))]))
            job = client.wait_job(quick)
            assert job.state == jobs_pb2.JOB_STATE_FINISHED
            assert job.task_counts.finished == 200
            eventually(lambda: client.get_job(busy, full=False).task_counts.running == 0, what="cancelled tasks to stop")
        finally:
            swarm.terminate()
            assert swarm.wait(30) == 0
