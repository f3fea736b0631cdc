"""Placement rules and node management on a real cluster: agents of different sizes, groups,
labels and GPUs (declared by flag), a head node, real processes.

    big    4 cores, 8 GB, gpu=2, group gpu, label avx512
    mid    2 cores, 4 GB,        group cpu, label slow
    small  2 cores, 4 GB,        group cpu, label ssd

Tasks that must overlap wait on a barrier file the test creates once it has seen what it
wanted, never on a sleep.
"""

from __future__ import annotations

import getpass
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from common.ids import TaskId
from shoal.client import Client, RequestFailed, task_spec
from shoal.local import LocalCluster
from shoal.v1 import admin_pb2, common_pb2, jobs_pb2
from tests.conftest import eventually, run_cli

pytestmark = pytest.mark.cluster

FINISHED = jobs_pb2.JOB_STATE_FINISHED
RUNNING = jobs_pb2.TASK_STATE_RUNNING
NODES = {
    "big": ["--cores", "4", "--memory-mb", "8192", "--resource", "gpu=2", "--group", "gpu", "--label", "avx512"],
    "mid": ["--cores", "2", "--memory-mb", "4096", "--group", "cpu", "--label", "slow"],
    "small": ["--cores", "2", "--memory-mb", "4096", "--group", "cpu", "--label", "ssd"],
}
ADMIN = getpass.getuser()  # the CLI sends the OS user


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    c = LocalCluster(tmp_path_factory.mktemp("placement"), nodes=0, node_args=["--kill-grace", "1"],
                     head_args=["--admin", ADMIN, "--heartbeat-interval", "0.5", "--node-lost-after", "5", "--kill-grace", "1"])
    with c:
        for name, flags in NODES.items():
            c.start_node(name, flags)
        c.wait_nodes(list(NODES))
        yield c


@pytest.fixture
def client(cluster: LocalCluster) -> Iterator[Client]:
    with Client(cluster.address, user=ADMIN) as c:
        yield c
        for job in c.list_jobs(states=(jobs_pb2.JOB_STATE_QUEUED, jobs_pb2.JOB_STATE_RUNNING)):
            c.cancel_job(job.id, "test teardown")
        for name in NODES:
            if c.get_node(name).state != admin_pb2.NODE_STATE_ONLINE:
                c.set_node_online(name)
        eventually(lambda: all(n.running_tasks == 0 and n.allocated.cores == 0 for n in c.list_nodes()),
                   what="nodes to be idle after the test")


def barrier(tmp_path: Path, name: str = "go") -> tuple[Path, str]:
    path = tmp_path / name
    return path, f"while [ ! -e {path} ]; do sleep 0.02; done"


def submit(client: Client, *tasks: jobs_pb2.TaskSpec, **job: object) -> int:
    return client.submit(jobs_pb2.JobSpec(name="placement", tasks=list(tasks), **job))


def spec(command: str, **kwargs: object) -> jobs_pb2.TaskSpec:
    placement = kwargs.pop("placement", None)
    gpus = kwargs.pop("gpus", 0)
    nodes = kwargs.pop("nodes", 0)
    t = task_spec(command, **kwargs)
    if placement is not None:
        t.placement.CopyFrom(placement)
    if gpus:
        t.resources.generic["gpu"] = gpus
    t.nodes = nodes
    return t


def out(client: Client, job_id: int, task: int = 1) -> str:
    return b"".join(client.read_output(TaskId(job_id, task))).decode()


def task_states(client: Client, job_id: int) -> list[int]:
    return [t.state for t in client.get_job(job_id).tasks]


def pending(client: Client, job_id: int, task: int = 0) -> str:
    return client.get_job(job_id).tasks[task].pending_reason


# -- placement ------------------------------------------------------------------------------


def test_groups_labels_and_named_nodes_decide_where_a_task_runs(client: Client) -> None:
    P = common_pb2.PlacementConstraints
    cases = {
        "gpu group": (P(groups=["gpu"]), {"big"}),
        "cpu group": (P(groups=["cpu"]), {"mid", "small"}),
        "label": (P(require_labels=["ssd"]), {"small"}),
        "avoid": (P(groups=["cpu"], avoid_labels=["slow"]), {"small"}),
        "named": (P(nodes=["mid"]), {"mid"}),
    }
    jobs = {what: submit(client, spec("echo $SHOAL_NODE", placement=p)) for what, (p, _) in cases.items()}
    for what, job_id in jobs.items():
        job = client.wait_job(job_id)
        assert job.state == FINISHED, what
        assert job.tasks[0].node in cases[what][1], what
        assert out(client, job_id).strip() == job.tasks[0].node


def test_a_task_that_can_never_fit_names_the_rule(client: Client) -> None:
    P = common_pb2.PlacementConstraints
    group = submit(client, spec("true", placement=P(groups=["bigmem"])))
    gpus = submit(client, spec("true", gpus=8))
    label = submit(client, spec("true", placement=P(groups=["gpu"], avoid_labels=["avx512"])))
    eventually(lambda: pending(client, group) and pending(client, gpus) and pending(client, label),
               what="pending reasons")
    assert pending(client, group) == ("no node satisfies its placement constraints (big: not in group bigmem; "
                                      "mid: not in group bigmem; small: not in group bigmem)")
    assert pending(client, gpus) == "no node has gpu=8; largest has gpu=2"
    assert "big: has avoided label avx512" in pending(client, label)
    # None of them holds up work that fits.
    assert client.wait_job(submit(client, spec("true"))).state == FINISHED
    view = run_cli("job", "view", str(gpus), head=client.address)
    assert "no node has gpu=8" in view.stdout


def test_gpu_tasks_get_distinct_devices_on_the_gpu_node(client: Client, tmp_path: Path) -> None:
    go, wait = barrier(tmp_path)
    job_id = submit(client, *(spec(f"echo $SHOAL_NODE $CUDA_VISIBLE_DEVICES; {wait}", gpus=1) for _ in range(3)))
    eventually(lambda: task_states(client, job_id).count(RUNNING) == 2, what="two GPU tasks running")
    assert pending(client, job_id, 2).startswith("waiting for resources: needs gpu=1")
    node = client.get_node("big")
    assert node.allocated.generic["gpu"] == 2 and node.capacity.generic["gpu"] == 2
    table = run_cli("node", "list", head=client.address).stdout
    assert "2/2" in next(line for line in table.splitlines() if line.startswith("big"))
    go.touch()
    assert client.wait_job(job_id).state == FINISHED
    lines = sorted(out(client, job_id, t).split()[1] for t in (1, 2, 3))
    assert all(out(client, job_id, t).split()[0] == "big" for t in (1, 2, 3))
    assert set(lines) == {"0", "1"}, "each running task saw its own device"


def test_a_multi_node_task_gets_whole_nodes_and_its_allocation_in_the_environment(client: Client) -> None:
    P = common_pb2.PlacementConstraints
    job_id = submit(client, spec('echo "$SHOAL_NODES|$SHOAL_NODE|$SHOAL_CORES"; cat "$SHOAL_HOSTFILE"', nodes=2,
                                 placement=P(groups=["cpu"])))
    job = client.wait_job(job_id)
    assert job.state == FINISHED
    first, *hostfile = out(client, job_id).splitlines()
    assert first == "mid 2 small 2|mid|4"
    assert hostfile == ["mid slots=2", "small slots=2"]
    assert job.tasks[0].node == "mid" and list(job.tasks[0].other_nodes) == ["small"]


def test_a_task_wider_than_any_node_spans_nodes_all_at_once(client: Client, tmp_path: Path) -> None:
    go, wait = barrier(tmp_path)
    blocker = submit(client, spec(wait, placement=common_pb2.PlacementConstraints(nodes=["small"])))
    eventually(lambda: task_states(client, blocker) == [RUNNING], what="small to be busy")
    wide = submit(client, spec('echo "$SHOAL_NODES"', cores=8))
    eventually(lambda: pending(client, wide).startswith("needs 8 cores over several nodes at once"),
               what="the wide task to wait for cores on several nodes")
    assert task_states(client, wide) == [jobs_pb2.TASK_STATE_QUEUED], "never started on part of its nodes"
    go.touch()
    assert client.wait_job(wide).state == FINISHED
    assert out(client, wide).strip() == "big 4 mid 2 small 2"


def test_an_exclusive_job_keeps_other_work_off_its_nodes(client: Client, tmp_path: Path) -> None:
    go, wait = barrier(tmp_path)
    exclusive = submit(client, spec(wait), exclusive=True)
    eventually(lambda: task_states(client, exclusive) == [RUNNING], what="the exclusive job to run")
    node = client.get_job(exclusive).tasks[0].node
    # Two cores' worth of single-core tasks would pack onto its free cores; none lands there.
    anywhere = client.wait_job(submit(client, *(spec("true") for _ in range(4))))
    assert node not in {t.node for t in anywhere.tasks}
    other = submit(client, spec("echo $SHOAL_NODE", placement=common_pb2.PlacementConstraints(nodes=[node])))
    eventually(lambda: pending(client, other).startswith(f"waiting for a node: {node}: held exclusively by job {exclusive}"),
               what="the other job to wait for the exclusive node")
    go.touch()
    assert client.wait_job(other).state == FINISHED and out(client, other).strip() == node


def test_a_job_reservation_grows_from_its_minimum_to_its_maximum(client: Client, tmp_path: Path) -> None:
    hold, wait_hold = barrier(tmp_path, "hold")
    go, wait = barrier(tmp_path, "go")
    on_big = common_pb2.PlacementConstraints(nodes=["big"])
    blocker = submit(client, spec(wait_hold, cores=3, placement=on_big))
    eventually(lambda: task_states(client, blocker) == [RUNNING], what="3 of big's cores to be busy")
    job_id = submit(client, *(spec(wait) for _ in range(5)), placement=on_big,
                    reservation=jobs_pb2.JobReservation(unit=jobs_pb2.RESERVATION_UNIT_CORES, min=1, max=3))
    eventually(lambda: client.get_job(job_id).state == jobs_pb2.JOB_STATE_RUNNING, what="the job to hold its minimum")
    job = client.get_job(job_id)
    assert job.reason == "allocated big (1 core)"
    assert task_states(client, job_id).count(RUNNING) == 1
    assert "maximum" not in pending(client, job_id, 1) and pending(client, job_id, 1)
    hold.touch()
    eventually(lambda: task_states(client, job_id).count(RUNNING) == 3, what="the job to grow to 3 cores")
    assert pending(client, job_id, 4) == "the job's allocation is at its maximum (3 cores) and in use"
    assert client.get_node("big").allocated.cores == 3
    job = client.get_job(job_id)
    assert job.allocated.cores == 3 and list(job.allocated_nodes) == ["big"]
    assert "reserves   1-3 cores; holds 3 cores on big" in run_cli("job", "view", str(job_id),
                                                                   head=client.address).stdout
    go.touch()
    assert client.wait_job(job_id).state == FINISHED
    eventually(lambda: client.get_node("big").allocated.cores == 0, what="the reservation to be given back")


# -- nodes ----------------------------------------------------------------------------------


def test_drain_lets_the_running_task_finish_and_takes_no_new_work(client: Client, tmp_path: Path) -> None:
    go, wait = barrier(tmp_path)
    on_mid = common_pb2.PlacementConstraints(nodes=["mid"])
    running = submit(client, spec(wait, placement=on_mid))
    eventually(lambda: task_states(client, running) == [RUNNING], what="a task on mid")
    result = run_cli("node", "drain", "mid", "--reason", "disk swap", head=client.address)
    assert result.returncode == 0, result.stderr
    node = client.get_node("mid")
    assert node.state == admin_pb2.NODE_STATE_DRAINING and node.reason == f"drained by {ADMIN}: disk swap"
    later = submit(client, spec("echo $SHOAL_NODE", placement=on_mid))
    eventually(lambda: pending(client, later) == "no node it may use is online (mid: Draining)",
               what="new work to stay off the draining node")
    go.touch()
    assert client.wait_job(running).state == FINISHED
    eventually(lambda: client.get_node("mid").state == admin_pb2.NODE_STATE_OFFLINE, what="mid to turn Offline")
    assert task_states(client, later) == [jobs_pb2.TASK_STATE_QUEUED]
    history = [admin_pb2.NodeState.Name(h.state) for h in client.get_node("mid").history]
    assert history[-2:] == ["NODE_STATE_DRAINING", "NODE_STATE_OFFLINE"]
    view = run_cli("node", "view", "mid", head=client.address)
    assert "Offline" in view.stdout and "disk swap" in view.stdout
    client.set_node_online("mid")
    assert client.wait_job(later).state == FINISHED and out(client, later).strip() == "mid"


def test_offline_refuses_a_busy_node_unless_forced_and_force_requeues(client: Client, tmp_path: Path) -> None:
    go, wait = barrier(tmp_path)
    job_id = submit(client, spec(f"echo $SHOAL_NODE; {wait}", placement=common_pb2.PlacementConstraints(
        groups=["cpu"], avoid_labels=["slow"])))
    eventually(lambda: task_states(client, job_id) == [RUNNING], what="a task on small")
    refused = run_cli("node", "offline", "small", head=client.address)
    assert refused.returncode == 1 and "has 1 running task(s); drain it" in refused.stderr
    forced = run_cli("node", "offline", "small", "--force", head=client.address)
    assert forced.returncode == 0, forced.stderr
    eventually(lambda: "node small taken offline; requeued (retry 1 of 3)" in
               [h.reason for h in client.get_job(job_id).tasks[0].history], what="the task to be requeued")
    client.set_node_online("small")
    go.touch()
    assert client.wait_job(job_id).state == FINISHED


def test_groups_and_labels_set_by_an_admin_are_kept_and_used(client: Client) -> None:
    nodes = client.node_group("bigmem", ["mid"])
    assert "bigmem" in nodes[0].groups
    node = client.label_node("mid", add=["rack=3"])
    assert set(node.labels) == {"slow", "rack=3"}
    job = client.wait_job(submit(client, spec("true", placement=common_pb2.PlacementConstraints(
        groups=["bigmem"], require_labels=["rack=3"]))))
    assert job.tasks[0].node == "mid"
    with pytest.raises(RequestFailed) as e:
        client.label_node("mid", remove=["slow"])
    assert e.value.code == grpc.StatusCode.FAILED_PRECONDITION and "agent's config" in e.value.message
    client.node_group("bigmem", ["mid"], add=False)
    client.label_node("mid", remove=["rack=3"])
    assert set(client.get_node("mid").groups) == {"cpu"}


def test_tasks_no_node_could_ever_run_wait_aside_and_run_once_a_node_changes_to_take_them(client: Client) -> None:
    # The allocator parks them (out of every pass) and puts them back when a node changes:
    # here an admin gives a node the group they ask for.
    picky = [submit(client, spec("echo $SHOAL_NODE", placement=common_pb2.PlacementConstraints(groups=["bigmem"])))
             for _ in range(3)]
    huge = submit(client, spec("true", cores=64))
    eventually(lambda: all(client.get_job(j).pending_reason.startswith("no node satisfies its placement")
                           for j in picky), what="the reason of the tasks no node could run")
    assert client.get_job(huge).pending_reason.startswith("no node has 64 cores"), client.get_job(huge).pending_reason
    assert client.wait_job(submit(client, spec("true"))).state == FINISHED, "the rest of the queue goes on"
    client.node_group("bigmem", ["mid"])
    try:
        for job_id in picky:
            assert client.wait_job(job_id).state == FINISHED and out(client, job_id).strip() == "mid"
        assert client.get_job(huge).pending_reason.startswith("no node has 64 cores"), "parked again"
    finally:
        client.node_group("bigmem", ["mid"], add=False)


def test_only_admins_manage_nodes(cluster: LocalCluster, client: Client) -> None:
    with Client(cluster.address, user="mallory") as other:
        assert len(other.list_nodes()) == 3, "anyone may look"
        with pytest.raises(RequestFailed) as e:
            other.drain_node("big")
    assert e.value.code == grpc.StatusCode.PERMISSION_DENIED
    assert e.value.message == "mallory may not drain node big: that needs the Admin role"
    assert client.get_node("big").state == admin_pb2.NODE_STATE_ONLINE
    with pytest.raises(RequestFailed) as e:
        client.drain_node("nosuch")
    assert e.value.code == grpc.StatusCode.NOT_FOUND


def test_a_restarted_agent_registers_its_new_size(cluster: LocalCluster, client: Client) -> None:
    cluster.kill_node("small")
    cluster.start_node("small", [*NODES["small"], "--cores", "3"])
    eventually(lambda: client.get_node("small").connected and client.get_node("small").capacity.cores == 3,
               what="small to come back with 3 cores")
    cluster.kill_node("small")
    cluster.start_node("small", NODES["small"])
    eventually(lambda: client.get_node("small").connected and client.get_node("small").capacity.cores == 2,
               what="small to come back with 2 cores")


def test_remove_forgets_an_offline_node_whose_agent_is_stopped(cluster: LocalCluster, client: Client) -> None:
    refused = run_cli("node", "remove", "small", head=client.address)
    assert refused.returncode == 1 and "take it offline first" in refused.stderr
    client.set_node_offline("small", "retiring")
    with pytest.raises(RequestFailed) as e:
        client.remove_node("small")
    assert e.value.code == grpc.StatusCode.FAILED_PRECONDITION and "stop the agent" in e.value.message
    cluster.kill_node("small")
    eventually(lambda: not client.get_node("small").connected, what="small's agent to be gone")
    result = run_cli("node", "remove", "small", head=client.address)
    assert result.returncode == 0 and "node small removed" in result.stdout
    assert [n.name for n in client.list_nodes()] == ["big", "mid"]
    cluster.start_node("small", NODES["small"])
    eventually(lambda: "small" in [n.name for n in client.list_nodes()] and client.get_node("small").connected,
               what="small to register again")
    assert client.get_node("small").state == admin_pb2.NODE_STATE_ONLINE
