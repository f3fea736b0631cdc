"""Issue 33, item 2: one user's task cannot reach another's, with cgroups and without.

A TLS cluster as the README's "A real cluster" sets it up, with two root agents that run
each task as its owner's Unix user: one in the default mode (a cgroup per task here, as
root) and one told `isolation = "watch"`. Each attack runs on both: a detached daemon of
alice's keeps her task's output open while bob's task runs after it (theft and injection), a
detached grandchild allocates past its task's memory, a daemon tries to outlive its task, a
fork bomb, and a symbolic link planted where a job's output goes. Each is refused or made
harmless, and what bob's job stored is his alone.
"""

from __future__ import annotations

import os
import pwd
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from common.ids import TaskId
from computenode import cgroups
from shoal.client import Client, task_spec
from shoal.local import LocalCluster
from shoal.v1 import jobs_pb2
from tests.conftest import eventually, unix_user

pytestmark = [pytest.mark.cluster,
              pytest.mark.skipif(os.geteuid() != 0, reason="tasks run as their owners only under a root agent")]
ALICE, BOB = "shoalalice", "shoalbob"
MAX_PROCESSES = 64
PROBE = cgroups.detect("auto", "probe")
PROBE.close()
NODES = ["watcher", *(["cgroup"] if PROBE.cgroups else [])]  # the second where this machine has cgroups


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    unix_user(ALICE)
    unix_user(BOB)
    c = LocalCluster(tmp_path_factory.mktemp("isolation-users"), nodes=0, cores=2, secure=True, run_as="owner",
                     node_args=["--kill-grace", "1", "--max-processes", str(MAX_PROCESSES)])
    with c:
        c.start_node("watcher", extra=["--isolation", "watch"])
        if "cgroup" in NODES:
            c.start_node("cgroup", extra=["--isolation", "cgroup"])
        c.wait_nodes(NODES, 30)
        yield c


def client(cluster: LocalCluster, user: str) -> Client:
    return Client(cluster.address, tls=cluster.user_tls(user))  # type: ignore[arg-type]


def on(node: str, spec: jobs_pb2.TaskSpec) -> jobs_pb2.JobSpec:
    spec.placement.nodes.append(node)
    return jobs_pb2.JobSpec(tasks=[spec])


def output(c: Client, job_id: int) -> str:
    return b"".join(c.read_output(TaskId(job_id, 1))).decode()


def processes_with(marker: str) -> list[int]:
    """Live processes whose command line holds `marker`."""
    found = []
    for pid in (p for p in os.listdir("/proc") if p.isdigit()):
        try:
            if marker.encode() in Path(f"/proc/{pid}/cmdline").read_bytes():
                state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
                if state != "Z":
                    found.append(int(pid))
        except (OSError, IndexError):
            continue
    return found


@pytest.mark.parametrize("node", NODES)
def test_a_process_left_by_one_users_task_never_reads_nor_writes_the_next_users_output(
        cluster: LocalCluster, node: str) -> None:
    home = Path(pwd.getpwnam(ALICE).pw_dir)
    stolen = home / f"stolen-{uuid.uuid4().hex[:8]}"
    marker = f"{3000 + len(node)}.{uuid.uuid4().int % 1000:03d}"
    # Detached (setsid, its parent gone), it keeps the task's stdout as fd 3; later it writes
    # into it and copies whatever the file holds by then. It may linger past alice's task.
    spy = (f"(setsid sh -c 'exec 3>&1; sleep {marker}; echo injected >&3; cat </proc/$$/fd/3 > {stolen}' "
           f">/dev/null 2>&1 &); echo alice-done")
    with client(cluster, ALICE) as alice, client(cluster, BOB) as bob:
        first = alice.wait_job(alice.submit(on(node, task_spec(spy))))
        assert first.state == jobs_pb2.JOB_STATE_FINISHED, first.tasks[0].reason
        secret = f"secret-{uuid.uuid4().hex}"
        job = bob.wait_job(bob.submit(on(node, task_spec('echo "$SECRET"; sleep 1.5; echo bob-done',
                                                         environment={"SECRET": secret}))))
        assert job.state == jobs_pb2.JOB_STATE_FINISHED, job.tasks[0].reason
        assert output(bob, job.id) == f"{secret}\nbob-done\n", "bob's output is his alone"
        assert output(alice, first.id) == "alice-done\n"
    eventually(lambda: not processes_with(f"sleep {marker}"), 10, "alice's detached process to be gone")
    assert not stolen.exists() or secret not in stolen.read_text(), "alice read bob's output"


@pytest.mark.parametrize("node", NODES)
def test_a_detached_grandchild_counts_against_its_tasks_memory(cluster: LocalCluster, node: str) -> None:
    marker = f"hog{uuid.uuid4().hex[:8]}"
    hog = (f"(setsid python3 -c \"import time; {marker} = b'x' * (300 * 1024 * 1024); time.sleep(60)\" "
           f">/dev/null 2>&1 &); sleep 8")
    with client(cluster, ALICE) as alice:
        job = alice.wait_job(alice.submit(on(node, task_spec(hog, memory_mb=100))))
    assert job.state == jobs_pb2.JOB_STATE_FAILED, job.tasks[0].reason
    assert "OUT_OF_MEMORY" in job.tasks[0].reason, job.tasks[0].reason
    eventually(lambda: not processes_with(marker), 10, "the hog to be gone")


@pytest.mark.parametrize("node", NODES)
def test_nothing_a_task_started_outlives_it(cluster: LocalCluster, node: str) -> None:
    a, b = (f"{4000 + i}.{uuid.uuid4().int % 1000:03d}" for i in (1, 2))
    # A double-forked daemon, and one that also drops its environment on the way.
    daemons = f"(setsid sleep {a} >/dev/null 2>&1 &); (setsid env -i sleep {b} >/dev/null 2>&1 &); sleep 1"
    with client(cluster, ALICE) as alice:
        job = alice.wait_job(alice.submit(on(node, task_spec(daemons))))
    assert job.state == jobs_pb2.JOB_STATE_FINISHED, job.tasks[0].reason
    eventually(lambda: not processes_with(f"sleep {a}") and not processes_with(f"sleep {b}"), 10,
               "the task's daemons to be gone")


@pytest.mark.parametrize("node", NODES)
def test_a_fork_bomb_stops_at_max_processes(cluster: LocalCluster, node: str) -> None:
    bomb = ("python3 -c \"\nimport os, time\nn = 0\nwhile n < 500:\n    try:\n        pid = os.fork()\n"
            "    except OSError:\n        break\n    if pid == 0:\n        time.sleep(30)\n        os._exit(0)\n"
            "    n += 1\nprint(n)\"")
    with client(cluster, ALICE) as alice:
        job = alice.wait_job(alice.submit(on(node, task_spec(bomb))))
        assert job.state == jobs_pb2.JOB_STATE_FINISHED, job.tasks[0].reason
        forked = int(output(alice, job.id).split()[-1])
    assert 8 <= forked < MAX_PROCESSES, f"{forked} processes forked with max_processes = {MAX_PROCESSES}"
    uid = pwd.getpwnam(ALICE).pw_uid

    def alice_processes() -> int:
        return sum(1 for p in os.listdir("/proc") if p.isdigit() and _owner(p) == uid)

    eventually(lambda: alice_processes() == 0, 15, "the forked processes to be killed with their task")


def _owner(pid: str) -> int:
    try:
        return os.stat(f"/proc/{pid}").st_uid
    except OSError:
        return -1


def test_output_never_follows_a_planted_symbolic_link(cluster: LocalCluster) -> None:
    alice_home = Path(pwd.getpwnam(ALICE).pw_dir)
    precious = alice_home / f"precious-{uuid.uuid4().hex[:8]}"
    precious.write_text("alice's own\n")
    uid, gid = pwd.getpwnam(ALICE).pw_uid, pwd.getpwnam(ALICE).pw_gid
    os.chown(precious, uid, gid)
    os.chmod(precious, 0o600)
    shared = Path(tempfile.mkdtemp(prefix="shoal-shared-", dir="/tmp"))
    os.chmod(shared, 0o1777)  # a world-writable directory, as /tmp is
    link = shared / "out.txt"
    os.symlink(precious, link)  # planted by someone else (protected_symlinks may be off)
    os.lchown(link, pwd.getpwnam(BOB).pw_uid, pwd.getpwnam(BOB).pw_gid)
    with client(cluster, ALICE) as alice:
        job = alice.wait_job(alice.submit(on(NODES[0], task_spec("echo overwritten", working_directory=str(shared),
                                                                  stdout_path="out.txt"))))
    assert job.state == jobs_pb2.JOB_STATE_FAILED
    assert "it is a symbolic link, which is not followed" in job.tasks[0].reason, job.tasks[0].reason
    assert precious.read_text() == "alice's own\n"
    shutil.rmtree(shared)
