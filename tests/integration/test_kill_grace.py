"""Kill grace everywhere: a task stopped by a cancel, by its runtime limit or by preemption
gets SIGTERM, then kill_grace seconds for its own TERM handler (here one that takes 1 s to
clean up, with children of its own), and only then SIGKILL for what is left."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from common.clock import perf_counter
from shoal.client import Client, task_spec
from shoal.local import LocalCluster
from shoal.v1 import jobs_pb2
from tests.conftest import eventually

pytestmark = pytest.mark.cluster

GRACE = 3.0


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    """One agent of 2 cores; kill grace 3 s; preemption on."""
    c = LocalCluster(tmp_path_factory.mktemp("grace"), nodes=1, cores=2,
                     head_args=["--kill-grace", str(GRACE), "--preemption"])
    with c:
        yield c


@pytest.fixture
def client(cluster: LocalCluster) -> Iterator[Client]:
    with Client(cluster.address) as c:
        yield c
        for job in c.list_jobs(states=(jobs_pb2.JOB_STATE_QUEUED, jobs_pb2.JOB_STATE_RUNNING)):
            c.cancel_job(job.id, "test teardown")
        eventually(lambda: all(n.running_tasks == 0 for n in c.list_nodes()), what="the node to be idle")


def _careful(tmp_path: Path) -> tuple[str, Path, Path]:
    """A task whose TERM handler takes 1 s (a child of its own, `sleep 1`) to clean up."""
    started, cleaned = tmp_path / "started", tmp_path / "cleaned"
    command = (f"trap 'sleep 1; echo cleaned >> {cleaned}; exit 0' TERM; touch {started}; "
               "while :; do sleep 0.1; done")
    return command, started, cleaned


def _cleaned_up(cleaned: Path, since: float) -> float:
    eventually(cleaned.exists, timeout=GRACE + 10, what="the task's TERM handler to finish its cleanup")
    took = perf_counter() - since
    assert cleaned.read_text() == "cleaned\n"
    return took


def test_a_cancelled_task_completes_its_term_handler(client: Client, tmp_path: Path) -> None:
    command, started, cleaned = _careful(tmp_path)
    job_id = client.submit(jobs_pb2.JobSpec(tasks=[task_spec(command)]))
    eventually(started.exists, what="the task to start")
    since = perf_counter()
    client.cancel_job(job_id, "enough")
    took = _cleaned_up(cleaned, since)
    assert took >= 0.9, "cleaned up before the 1 s its handler takes: was it signalled at all?"
    assert client.wait_job(job_id).state == jobs_pb2.JOB_STATE_CANCELLED


def test_a_task_past_its_runtime_limit_completes_its_term_handler(client: Client, tmp_path: Path) -> None:
    command, started, cleaned = _careful(tmp_path)
    job_id = client.submit(jobs_pb2.JobSpec(tasks=[task_spec(command, runtime_limit=1.0)]))
    eventually(started.exists, what="the task to start")
    _cleaned_up(cleaned, perf_counter())
    job = client.wait_job(job_id)
    assert job.state == jobs_pb2.JOB_STATE_FAILED and "runtime limit" in job.tasks[0].reason, job.tasks[0].reason


def test_a_preempted_task_completes_its_term_handler_and_runs_again(client: Client, tmp_path: Path) -> None:
    command, started, cleaned = _careful(tmp_path)
    low = client.submit(jobs_pb2.JobSpec(name="low", priority=jobs_pb2.PRIORITY_LOWEST,
                                         tasks=[task_spec(command, cores=2)]))
    eventually(started.exists, what="the low job to start")
    started.unlink()
    since = perf_counter()
    urgent = client.submit(jobs_pb2.JobSpec(name="urgent", priority=jobs_pb2.PRIORITY_HIGHEST,
                                            tasks=[task_spec("echo urgent", cores=2)]))
    took = _cleaned_up(cleaned, since)
    assert took >= 0.9
    assert client.wait_job(urgent).state == jobs_pb2.JOB_STATE_FINISHED
    eventually(started.exists, what="the preempted task to run again")
    reasons = [h.reason for h in client.get_job(low).tasks[0].history]
    assert any(r.startswith(f"preempted by job {urgent}") for r in reasons), reasons


def test_what_a_stopped_task_leaves_behind_gets_the_rest_of_the_grace_then_sigkill(
        client: Client, tmp_path: Path) -> None:
    """The task's main process ends at once on TERM; a background child that ignores TERM
    lives on through the grace and is SIGKILLed at its end, not before."""
    started, pid_file = tmp_path / "started", tmp_path / "child"
    command = (f"(trap '' TERM; exec sleep 300) & echo $! > {pid_file}; touch {started}; wait")
    job_id = client.submit(jobs_pb2.JobSpec(tasks=[task_spec(command)]))
    eventually(started.exists, what="the task to start")
    child = int(pid_file.read_text())
    since = perf_counter()
    client.cancel_job(job_id)
    eventually(lambda: not Path(f"/proc/{child}").exists() or _zombie(child), timeout=GRACE + 10,
               what="the leftover child to be killed")
    took = perf_counter() - since
    assert GRACE - 0.5 <= took <= GRACE + 3, f"the leftover was killed {took:.1f}s after the cancel"


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return True
