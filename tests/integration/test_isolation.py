"""Memory and CPU limits on real agents: one in the default mode (a per-task cgroup where this
machine allows, as it does when the tests run as root), one told to watch memory use instead.
Both must report a task that grows past its memory as OUT_OF_MEMORY, not "killed by signal 9"."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from common.ids import TaskId
from computenode import cgroups
from shoal.client import Client, task_spec
from shoal.local import LocalCluster
from shoal.v1 import jobs_pb2
from tests.conftest import eventually

pytestmark = pytest.mark.cluster
FINISHED, FAILED = jobs_pb2.JOB_STATE_FINISHED, jobs_pb2.JOB_STATE_FAILED
HOG = "python3 -c \"import time; x = b'x' * (300 * 1024 * 1024); time.sleep(60)\""
PROBE = cgroups.detect("auto", "probe")  # what an agent here picks by default
PROBE.close()
MODE = PROBE.mode


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    c = LocalCluster(tmp_path_factory.mktemp("isolation"), nodes=0, cores=2)
    with c:
        c.start_node("auto")
        c.start_node("watcher", extra=["--isolation", "watch"])
        c.wait_nodes(["auto", "watcher"], 30)
        yield c


@pytest.fixture
def client(cluster: LocalCluster) -> Iterator[Client]:
    with Client(cluster.address) as c:
        yield c


def on(node: str, command: str, **kw: object) -> jobs_pb2.JobSpec:
    spec = task_spec(command, **kw)  # type: ignore[arg-type]
    spec.placement.nodes.append(node)
    return jobs_pb2.JobSpec(tasks=[spec])


@pytest.mark.parametrize("node", ["auto", "watcher"])
def test_a_task_past_its_memory_limit_is_killed_and_reported_out_of_memory(client: Client, node: str) -> None:
    job = client.wait_job(client.submit(on(node, HOG, memory_mb=100)))
    assert job.state == FAILED
    assert job.tasks[0].reason == "OUT_OF_MEMORY: killed for using more than its 100 MB of memory"
    within = client.wait_job(client.submit(on(node, "python3 -c \"x = b'x' * (10 * 1024 * 1024)\"", memory_mb=100)))
    assert within.state == FINISHED, "within its limit it runs to the end"


@pytest.mark.skipif(MODE == "watch", reason=f"no writable cgroups here: {PROBE.reason}")
def test_each_task_runs_in_its_own_cgroup_with_its_limits(client: Client) -> None:
    if MODE == "cgroup-v1":
        show = ('m=$(grep :memory: /proc/self/cgroup | cut -d: -f3); c=$(grep :cpu: /proc/self/cgroup | cut -d: -f3); '
                'echo "$m"; cat /sys/fs/cgroup/memory$m/memory.limit_in_bytes; '
                'cat /sys/fs/cgroup/cpu$c/cpu.cfs_quota_us /sys/fs/cgroup/cpu$c/cpu.cfs_period_us')
    else:
        show = 'echo "$SHOAL_CGROUP"; cat "$SHOAL_CGROUP/memory.max"; cat "$SHOAL_CGROUP/cpu.max" | tr " " "\\n"'
    job = client.wait_job(client.submit(on("auto", show, memory_mb=64, cores=2)))
    assert job.state == FINISHED, job.tasks[0].reason
    path, limit, quota, period = b"".join(client.read_output(TaskId(job.id, 1))).decode().split()
    assert path.endswith(f"{job.id}.1.0.1"), path
    assert int(limit) == 64 * 1024 * 1024
    assert int(quota) == 2 * int(period), "two cores' worth of CPU time per period"
    dirs = [Path(d) for d in (path, *_cpu_dir(path))]
    eventually(lambda: not any(_exists(d) for d in dirs), what="the task's cgroup to be removed after its exit")


def _cpu_dir(memory_path: str) -> list[str]:
    return [] if MODE != "cgroup-v1" else [f"/sys/fs/cgroup/cpu/shoal-auto/{Path(memory_path).name}"]


def _exists(path: Path) -> bool:
    full = path if str(path).startswith("/sys/") else Path("/sys/fs/cgroup/memory" + str(path))
    return full.is_dir()
