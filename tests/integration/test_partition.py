"""A network partition between the head node and an agent, then healing, with real network
namespaces: the agent runs in its own namespace, joined to the head's by a veth pair whose
link the test takes down and brings up. Needs root and iproute2; skipped otherwise."""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from common.ids import TaskId
from shoal.client import Client, task_spec
from shoal.local import LocalCluster
from shoal.v1 import admin_pb2, jobs_pb2
from tests.conftest import eventually
from tests.fault.ticks import overlaps, spans, ticker

pytestmark = pytest.mark.cluster


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True)


@dataclass
class Netns:
    name: str
    host_if: str
    host_ip: str

    def cut(self) -> None:
        _ip("link", "set", self.host_if, "down")

    def heal(self) -> None:
        _ip("link", "set", self.host_if, "up")


@pytest.fixture
def netns() -> Iterator[Netns]:
    if os.geteuid() != 0:
        pytest.skip("network namespaces need root")
    tag = uuid.uuid4().hex[:6]
    octet = int(tag[:2], 16) % 200 + 20
    ns = Netns(f"shoal-{tag}", f"sh{tag}h", f"10.{octet}.{int(tag[2:4], 16)}.1")
    node_ip = ns.host_ip.rsplit(".", 1)[0] + ".2"
    try:
        _ip("netns", "add", ns.name)
    except (subprocess.CalledProcessError, FileNotFoundError) as e:
        pytest.skip(f"cannot create a network namespace here: {getattr(e, 'stderr', e)}")
    try:
        _ip("link", "add", ns.host_if, "type", "veth", "peer", "name", f"sh{tag}n")
        _ip("link", "set", f"sh{tag}n", "netns", ns.name)
        _ip("addr", "add", f"{ns.host_ip}/24", "dev", ns.host_if)
        _ip("link", "set", ns.host_if, "up")
        _ip("-n", ns.name, "addr", "add", f"{node_ip}/24", "dev", f"sh{tag}n")
        _ip("-n", ns.name, "link", "set", f"sh{tag}n", "up")
        _ip("-n", ns.name, "link", "set", "lo", "up")
        yield ns
    finally:
        subprocess.run(["ip", "link", "del", ns.host_if], capture_output=True)
        subprocess.run(["ip", "netns", "del", ns.name], capture_output=True)


@pytest.fixture
def split(netns: Netns, tmp_path: Path) -> Iterator[tuple[LocalCluster, Netns]]:
    """A head node on all addresses and node1 in the namespace; tests start node2, beside the head,
    once their job is on node1, which makes the placement deterministic."""
    cluster = LocalCluster(tmp_path / "c", nodes=0, cores=1, listen="0.0.0.0:0", stop_tasks_on_exit=False,
                           head_args=["--heartbeat-interval", "0.5", "--node-lost-after", "3", "--kill-grace", "0.5"])
    with cluster:
        port = cluster.address.rsplit(":", 1)[1]
        cluster.start_node("node1", head=f"{netns.host_ip}:{port}", prefix=["ip", "netns", "exec", netns.name])
        cluster.wait_nodes(["node1"])
        yield cluster, netns
        netns.heal()
        with Client(cluster.address) as client:
            for job in client.list_jobs(states=(jobs_pb2.JOB_STATE_QUEUED, jobs_pb2.JOB_STATE_RUNNING)):
                client.cancel_job(job.id)


def node_state(client: Client, name: str) -> int:
    return {n.name: n for n in client.list_nodes()}[name].state


def run_on_node1(client: Client, command: str) -> int:
    job_id = client.submit(jobs_pb2.JobSpec(tasks=[task_spec(command)]))
    eventually(lambda: client.get_job(job_id).tasks[0].node == "node1", what="the job to run on node1")
    return job_id


def test_a_short_partition_loses_nothing(split: tuple[LocalCluster, Netns], tmp_path: Path) -> None:
    cluster, net = split
    go, done = tmp_path / "go", tmp_path / "done"
    with Client(cluster.address) as client:
        job_id = run_on_node1(client, f"echo before; while [ ! -e {go} ]; do sleep 0.05; done; "
                                      f"echo during; touch {done}")
        eventually(lambda: b"".join(client.read_output(TaskId(job_id, 1))) == b"before\n", what="output")
        net.cut()
        go.touch()  # the task goes on, prints and ends on the far side of the cut
        eventually(done.exists, what="the task to end during the partition")
        net.heal()
        job = client.wait_job(job_id)
        assert job.state == jobs_pb2.JOB_STATE_FINISHED and job.tasks[0].attempt == 1
        assert b"".join(client.read_output(TaskId(job_id, 1))) == b"before\nduring\n"


def test_a_long_partition_stops_the_cut_off_copy_before_the_task_runs_elsewhere(
        split: tuple[LocalCluster, Netns], tmp_path: Path) -> None:
    """Cut off past node_lost_after: the agent, alive but unanswered, stops its copy when its
    lease lapses, before the head gives the task to node2; no two attempts tick at once."""
    cluster, net = split
    ticks, go = tmp_path / "ticks", tmp_path / "go"
    with Client(cluster.address) as client:
        job_id = run_on_node1(client, ticker(ticks, until=go))
        eventually(lambda: ticks.exists(), what="the first attempt to tick")
        cluster.start_node("node2")
        cluster.wait_nodes(["node1", "node2"])
        net.cut()
        eventually(lambda: node_state(client, "node1") == admin_pb2.NODE_STATE_UNREACHABLE, timeout=15,
                   what="node1 to be declared Unreachable")
        eventually(lambda: 2 in spans(ticks).get(f"{job_id}.1", {}), timeout=15,
                   what="the task to run again on node2")
        go.touch()
        job = client.wait_job(job_id)
        task = job.tasks[0]
        assert job.state == jobs_pb2.JOB_STATE_FINISHED and task.attempt == 2 and task.node == "node2"
        assert not overlaps(spans(ticks)), f"two live attempts: {overlaps(spans(ticks))}"
        net.heal()
        eventually(lambda: node_state(client, "node1") == admin_pb2.NODE_STATE_ONLINE, timeout=30,
                   what="node1 to come back")
        after = client.get_job(job_id).tasks[0]
        assert (after.attempt, after.node, after.state) == (2, "node2", jobs_pb2.TASK_STATE_FINISHED), \
            "the late report of the fenced copy changed nothing"
