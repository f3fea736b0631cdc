"""A real multi-host cluster on one machine (deploy/netns): the head node and two agents each in
its own network namespace with its own address, driven from the root namespace over the bridge.
Needs root and `ip netns`; skipped, with the reason, where the machine does not permit them."""

from __future__ import annotations

import ipaddress
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from common.ids import TaskId
from deploy.netns import network
from deploy.netns.cluster import NetnsCluster, netns_permitted, teardown, unused_subnet
from shoal.client import Client, task_spec
from shoal.v1 import admin_pb2, jobs_pb2
from tests.conftest import REPO, eventually

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(60)]

# Unique per test run, so runs in parallel (or a crashed one's leftovers) do not collide.
PREFIX = f"st{os.getpid() % 100000}"


def running(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def permitted() -> None:
    reason = netns_permitted()
    if reason:
        pytest.skip(f"network namespaces are not permitted here: {reason}")


@pytest.fixture(scope="module")
def netns_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NetnsCluster]:
    permitted()
    cluster = NetnsCluster(tmp_path_factory.mktemp("netns"), nodes=2, cores=1, prefix=PREFIX,
                           subnet=unused_subnet(start=os.getpid() % 256))
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


def test_a_sweep_runs_on_both_hosts_each_with_its_own_address(netns_cluster: NetnsCluster) -> None:
    cluster = netns_cluster
    head = ipaddress.ip_address(cluster.address.rsplit(":", 1)[0])
    assert head in cluster.layout.subnet and not head.is_loopback, "the head is reached over the bridge"
    with Client(cluster.address, timeout=10.0) as client:
        nodes = {n.name: n for n in client.list_nodes()}
        assert set(nodes) == {"host1", "host2"}
        assert all(n.state == admin_pb2.NODE_STATE_ONLINE and n.connected for n in nodes.values())
        # 4 instances of 1 core on two 1-core hosts: they cannot all run on one.
        spec = task_spec('echo "$SHOAL_NODE $(hostname -I)"', sweep=(1, 4, 1), cores=1)
        job_id = client.submit(jobs_pb2.JobSpec(name="netns", tasks=[spec]))
        job = client.wait_job(job_id)
        assert job.state == jobs_pb2.JOB_STATE_FINISHED, job.reason
        instances = list(client.list_instances(job_id))
        assert len(instances) == 4
        assert {i.node for i in instances} == {"host1", "host2"}
        for i in instances:
            out = b"".join(client.read_output(TaskId(job_id, i.ref.task_id, i.ref.instance_id))).decode()
            # The task saw only its own namespace's address: not the machine's, not the other host's.
            assert out.split() == [i.node, cluster.node_hosts[i.node]], f"{i.ref.instance_id}: {out!r}"


def test_a_disconnected_host_cannot_reach_the_head_until_reconnected(netns_cluster: NetnsCluster) -> None:
    cluster = netns_cluster
    host, port = cluster.address.rsplit(":", 1)
    probe = ("import socket, sys\n"
             "try: socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=1).close()\n"
             "except OSError as e: sys.exit(str(e))")

    def reaches() -> bool:
        return cluster.run("host1", sys.executable, "-c", probe, host, port).returncode == 0

    assert reaches()
    cluster.disconnect("host1")
    try:
        assert not reaches(), "host1's link is down"
    finally:
        cluster.reconnect("host1")
    eventually(reaches, timeout=10, what="host1 to reach the head again")
    cluster.wait_nodes(["host1"])


def test_the_command_line_brings_a_cluster_up_and_down_leaves_nothing(tmp_path: Path) -> None:
    permitted()
    prefix = f"{PREFIX}c"

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "deploy.netns.cluster", *args, "--prefix", prefix],
                              cwd=REPO, capture_output=True, text=True, timeout=45)

    try:
        subnet = unused_subnet(start=os.getpid() % 256 + 128)
        up = cli("up", "--nodes", "1", "--subnet", subnet, "--state-dir", str(tmp_path))
        assert up.returncode == 0, up.stderr
        assert "host1" in cli("status").stdout
        # `up` has exited: the daemons belong to no one, as after a crash; `down` finds them by prefix.
        daemons = [pid for ns in network.namespaces(prefix) for pid in network.pids(ns)]
        # The head, the agent and the agent's watchdog (computenode/fence.py).
        kinds = sorted(Path(f"/proc/{p}/cmdline").read_bytes().split(b"\0")[2].decode() for p in daemons)
        assert kinds == ["computenode.fence", "shoal", "shoal"], kinds
        # On the same subnet too: that the cluster is up is what to say, not that its subnet is taken.
        again = cli("up", "--nodes", "1", "--subnet", subnet, "--state-dir", str(tmp_path / "again"))
        assert again.returncode == 1 and "already exist" in again.stderr, "a running cluster is left alone"
        down = cli("down")
        assert down.returncode == 0, down.stderr
        assert not network.namespaces(prefix) and not network.links(prefix)
        assert not [p for p in daemons if running(p)], "down stopped the daemons"
        assert cli("down").returncode == 0, "down is idempotent"
    finally:
        teardown(prefix)
