"""Task leases and fencing, with real processes and real faults: an agent frozen (SIGSTOP) past
node_lost_after and within it, an agent restarted on an emptied state dir, the head frozen.

Every task records its own ticks (tests/fault/ticks.py), so what is checked is what really
ran: no two attempts of one task ever tick at the same time, and every job finishes. A frozen
head kills nothing: no task is stopped or run again.
"""

from __future__ import annotations

import os
import shutil
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from common.clock import boot_clock, perf_counter, wait_until
from common.ids import TaskId
from computenode import fence
from shoal.client import Client, task_spec
from shoal.local import LocalCluster
from shoal.v1 import admin_pb2, jobs_pb2
from tests.conftest import eventually
from tests.fault.ticks import overlaps, spans, ticker

pytestmark = pytest.mark.cluster

LOST_AFTER, LEASE, GRACE = 6.0, 1.5, 1.0


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    """Two agents of 2 cores; heartbeats every 0.5 s, a task lease of 1.5 s, a node lost after 6 s."""
    c = LocalCluster(tmp_path_factory.mktemp("fencing"), nodes=2, cores=2, stop_tasks_on_exit=False,
                     head_args=["--heartbeat-interval", "0.5", "--node-lost-after", str(LOST_AFTER),
                                "--task-lease", str(LEASE), "--kill-grace", str(GRACE)])
    with c:
        yield c


@pytest.fixture
def client(cluster: LocalCluster) -> Iterator[Client]:
    with Client(cluster.address) as c:
        yield c
        for job in c.list_jobs(states=(jobs_pb2.JOB_STATE_QUEUED, jobs_pb2.JOB_STATE_RUNNING)):
            c.cancel_job(job.id, "test teardown")
        for name in cluster.node_names:
            if name not in cluster.agents or cluster.agents[name].poll() is not None:
                cluster.agents.pop(name, None)
                cluster.start_node(name)
        cluster.wait_nodes(cluster.node_names)
        eventually(lambda: all(n.running_tasks == 0 for n in c.list_nodes() if n.name in cluster.node_names),
                   what="nodes to be idle after teardown")


def _ticking_job(client: Client, ticks: Path, go: Path, count: int = 4) -> int:
    """`count` instances that tick until `go` exists, all started."""
    job_id = client.submit(jobs_pb2.JobSpec(tasks=[task_spec(ticker(ticks, until=go), instances=count)]))
    eventually(lambda: len(spans(ticks)) == count, what="every instance to tick")
    return job_id


def _watchdog(state_dir: Path) -> int | None:
    """The pid of the watchdog of an agent's state dir (computenode/fence.py)."""
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                cmd = Path(f"/proc/{name}/cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if b"computenode.fence" in cmd and str(state_dir).encode() in cmd:
                return int(name)
    return None


def _check(ticks: Path, job: jobs_pb2.Job, client: Client) -> dict[str, dict[int, tuple[float, float]]]:
    found = spans(ticks)
    assert not overlaps(found), f"two live attempts: {overlaps(found)}"
    assert job.state == jobs_pb2.JOB_STATE_FINISHED, \
        f"the job ended {jobs_pb2.JobState.Name(job.state)}: {[i.reason for i in client.list_instances(job.id)]}"
    return found


def test_a_frozen_agent_stops_its_tasks_before_they_run_elsewhere(cluster: LocalCluster, client: Client,
                                                                   tmp_path: Path) -> None:
    ticks, go = tmp_path / "ticks", tmp_path / "go"
    job_id = _ticking_job(client, ticks, go)
    frozen = cluster.agents["node1"]
    os.kill(frozen.pid, signal.SIGSTOP)
    try:
        eventually(lambda: {n.name: n for n in client.list_nodes()}["node1"].state == admin_pb2.NODE_STATE_UNREACHABLE,
                   timeout=LOST_AFTER + 10, what="node1 to be declared lost")
    finally:
        os.kill(frozen.pid, signal.SIGCONT)
    eventually(lambda: any(2 in by for by in spans(ticks).values()), timeout=30,
               what="a second attempt of node1's tasks")
    go.touch()
    found = _check(ticks, client.wait_job(job_id), client)
    assert any(len(by) > 1 for by in found.values()), "the freeze moved no task: the test proved nothing"


def test_an_agent_frozen_past_its_lease_reports_its_tasks_fenced(cluster: LocalCluster, client: Client,
                                                                 tmp_path: Path) -> None:
    """Frozen longer than the lease but shorter than node_lost_after: the watchdog stops the
    tasks, the agent wakes and says so, and the head requeues them, saying why."""
    ticks, go = tmp_path / "ticks", tmp_path / "go"
    job_id = _ticking_job(client, ticks, go)
    frozen = cluster.agents["node1"]
    os.kill(frozen.pid, signal.SIGSTOP)
    stopped = perf_counter()
    try:
        # The watchdog stops node1's tasks within the lease and grace, the agent still frozen.
        eventually(lambda: _stalled(ticks, since=1.0), timeout=LEASE + GRACE + 2, what="node1's tasks to stop")
        assert perf_counter() - stopped < LOST_AFTER - 1, "too slow to tell fencing from a lost node"
    finally:
        os.kill(frozen.pid, signal.SIGCONT)
    go.touch()
    job = client.wait_job(job_id)
    _check(ticks, job, client)
    reasons = [u.reason for i in range(1, 5) for u in client.get_task(TaskId(job_id, 1, i)).history]
    assert any(r.startswith("node node1 fenced attempt 1: its lease lapsed") for r in reasons), reasons
    assert {n.name: n for n in client.list_nodes()}["node1"].state == admin_pb2.NODE_STATE_ONLINE


def test_tasks_that_ended_within_the_lease_keep_their_result_when_the_agent_wakes_past_it(
        cluster: LocalCluster, client: Client, tmp_path: Path) -> None:
    """The agent frozen past its lease (within node_lost_after) while its tasks end by
    themselves within the lease: it wakes to a lapsed lease and a backlog of exits, and those
    exits count (nothing was fenced, nothing runs again)."""
    ticks, go = tmp_path / "ticks", tmp_path / "go"
    job_id = _ticking_job(client, ticks, go)
    on_node1 = [i.ref.instance_id for i in client.list_instances(job_id) if i.node == "node1"]
    assert on_node1, "no instance on node1: the test would prove nothing"
    lease = fence.LeaseFile(cluster.state_dir / "node1" / fence.LEASE_FILE,
                            os.open(cluster.state_dir / "node1" / fence.LEASE_FILE, os.O_RDONLY))
    frozen = cluster.agents["node1"]
    os.kill(frozen.pid, signal.SIGSTOP)
    try:
        go.touch()
        ended = time.time()
        eventually(lambda: all(spans(ticks)[f"{job_id}.1.{i}"][1][1] >= ended for i in on_node1),
                   timeout=LEASE, what="node1's tasks to end by themselves, within the lease")
        state = lease.read()
        assert state is not None and boot_clock() < state.deadline, "they ended after the lease: too slow to test"
        eventually(lambda: boot_clock() > state.deadline + GRACE, timeout=LEASE + GRACE + 2,
                   what="node1's lease to lapse, the agent still frozen")
    finally:
        os.kill(frozen.pid, signal.SIGCONT)
        lease.close()
    job = client.wait_job(job_id)
    found = _check(ticks, job, client)
    for i in on_node1:
        task = client.get_task(TaskId(job_id, 1, i))
        assert task.attempt == 1 and task.exit_code == 0, \
            f"instance {i} ran again or lost its result: {[u.reason for u in task.history]}"
        assert len(found[f"{job_id}.1.{i}"]) == 1
    assert {n.name: n for n in client.list_nodes()}["node1"].state == admin_pb2.NODE_STATE_ONLINE


def _stalled(ticks: Path, since: float) -> bool:
    """Some task of attempt 1 has not ticked for `since` seconds (it was stopped)."""
    import time

    now = time.time()
    return any(1 in by and len(by) == 1 and now - by[1][1] > since for by in spans(ticks).values())


@pytest.mark.parametrize("rename", [False, True], ids=["same name, its watchdog killed too", "new name"])
def test_an_agent_restarted_on_an_emptied_state_dir_leaves_no_second_copy(
        cluster: LocalCluster, client: Client, tmp_path: Path, rename: bool) -> None:
    ticks, go = tmp_path / "ticks", tmp_path / "go"
    job_id = _ticking_job(client, ticks, go)
    state_dir = cluster.state_dir / "node1"
    watchdog = _watchdog(state_dir)
    assert watchdog is not None, "node1 has no watchdog"
    cluster.kill_node("node1")
    if not rename:
        os.kill(watchdog, signal.SIGKILL)  # nothing of the old agent is left to stop its tasks
    shutil.rmtree(state_dir)
    name = "node3" if rename else "node1"
    cluster.start_node(name, extra=["--state-dir", str(state_dir)] if rename else [])
    try:
        cluster.wait_nodes([name])
        eventually(lambda: any(2 in by for by in spans(ticks).values()), timeout=LOST_AFTER + 20,
                   what="node1's tasks to run again")
        go.touch()
        _check(ticks, client.wait_job(job_id), client)
    finally:
        if rename:
            cluster.kill_node("node3")


def test_a_frozen_head_kills_nothing(cluster: LocalCluster, client: Client, tmp_path: Path) -> None:
    ticks, go = tmp_path / "ticks", tmp_path / "go"
    job_id = _ticking_job(client, ticks, go)
    head = cluster.head
    assert head is not None
    os.kill(head.pid, signal.SIGSTOP)
    try:
        import time

        frozen_until = perf_counter() + 45
        while perf_counter() < frozen_until:  # the point of the test is a 45 s freeze
            assert all(p.poll() is None for p in cluster.agents.values()), "an agent died"
            time.sleep(0.5)
    finally:
        os.kill(head.pid, signal.SIGCONT)
    cluster.wait_nodes(cluster.node_names, timeout=30)
    before = spans(ticks)
    eventually(lambda: all(by[1][1] > max(e for b in before.values() for _, e in b.values())
                           for by in spans(ticks).values()), what="every task to tick after the freeze")
    go.touch()
    job = client.wait_job(job_id)
    found = _check(ticks, job, client)
    assert all(list(by) == [1] for by in found.values()), f"a task was restarted: {found}"
    gaps = [_longest_gap(ticks, task) for task in found]
    assert max(gaps) < 5, f"a task stopped ticking for {max(gaps):.1f}s: it was stopped"
    nodes = {n.name: n for n in client.list_nodes()}
    assert all(nodes[n].state == admin_pb2.NODE_STATE_ONLINE for n in cluster.node_names)


def _longest_gap(ticks: Path, task: str) -> float:
    times = sorted(float(line.split()[2]) for line in ticks.read_text().splitlines()
                   if len(line.split()) == 3 and line.split()[0] == task)
    return max((b - a for a, b in zip(times, times[1:])), default=0.0)


def test_the_watchdog_spares_a_run_begun_under_its_lease_while_it_stops_the_old_ones(tmp_path: Path) -> None:
    """An agent woken and renewed may start new attempts under the same lease id while the
    watchdog is still within the grace of stopping the old runs: its final SIGKILL takes the
    old runs (and what their TERM handlers started), never the new one."""
    import subprocess
    import threading

    lease = fence.new_lease_id()
    started = tmp_path / "old-started"

    def run(run_id: str, script: str) -> subprocess.Popen[bytes]:
        env = {**os.environ, fence.ENV: lease, "SHOAL_RUN_ID": run_id}
        return subprocess.Popen(["sh", "-c", script], env=env, start_new_session=True)

    # The old run's TERM handler starts a child (it carries the run id) and outlives the grace;
    # the new run starts once the old one has its SIGTERM, so after the watchdog's first look.
    termed = tmp_path / "old-termed"
    old = run("old", f"trap 'touch {termed}; sleep 30 & sleep 30' TERM; touch {started}; "
                     "while :; do sleep 0.05; done")
    eventually(started.exists, what="the old run to start")
    new: list[subprocess.Popen[bytes]] = []

    def start_new() -> None:
        if wait_until(termed.exists, 5.0, interval=0.01):
            new.append(run("new", "sleep 30"))

    timer = threading.Thread(target=start_new)
    timer.start()
    try:
        assert fence.stop([lease], grace=1.0, log=False) >= 1
        timer.join()
        old.wait(timeout=5)
        assert new and new[0].poll() is None, "the watchdog killed a run begun after it started stopping"
        # SIGKILLed by then; gone as soon as the kernel has run each of them once more.
        eventually(lambda: not [v for v in fence.find([lease]).values() if v.run_id == "old"], timeout=5,
                   what="every process of the old run to be gone")
        assert new[0].poll() is None, "the watchdog killed a run begun after it started stopping"
    finally:
        timer.join()
        for p in new:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
