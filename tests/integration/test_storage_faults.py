"""Storage faults on the head node are loud, never silent (issue 32), with real processes:
an emptied or corrupted database is refused at start with one line; an old cluster's output
files never leak into a new job's output; a full state disk is answered RESOURCE_EXHAUSTED
while the head stays up, and once space is freed everything acknowledged is still there."""

from __future__ import annotations

import os
import random
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from common.ids import TaskId
from shoal.client import Client, RequestFailed, task_spec
from shoal.local import LocalCluster
from shoal.v1 import jobs_pb2
from tests.conftest import eventually, run_cli, tmpfs

pytestmark = pytest.mark.cluster


def _refusal(head_dir: Path) -> str:
    """Start `shoal head` on the state dir; it must refuse: exit non-zero with one line on
    stderr and no traceback. Returns that line."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "shoal", "head", "--plaintext", "--listen", "127.0.0.1:0", "--state-dir",
         str(head_dir)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        out, err = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        pytest.fail(f"the head node started instead of refusing the database:\n{out[-2000:]}")
    assert proc.returncode != 0, f"exit status 0:\n{out}\n{err}"
    assert "Traceback" not in err + out, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, f"not one line on stderr:\n{err}"
    return lines[0]


def _submit_some(cluster: LocalCluster, jobs: int, tasks: int = 1) -> list[int]:
    with Client(cluster.address) as client:
        specs = [jobs_pb2.JobSpec(name=f"j{i}", tasks=[task_spec(f"echo {i}.{t}") for t in range(tasks)])
                 for i in range(jobs)]
        return client.submit_many(specs)


def test_an_emptied_database_is_refused_at_start(tmp_path: Path) -> None:
    cluster = LocalCluster(tmp_path / "cluster", nodes=0)
    with cluster:
        assert _submit_some(cluster, 3) == [1, 2, 3]
    head_dir = cluster.state_dir / "head"
    db = head_dir / "shoal.db"
    os.truncate(db, 0)
    for _ in range(2):  # refused again: the refusal leaves the emptied file as it found it
        line = _refusal(head_dir)
        assert line.startswith(f"shoal: the database {db} is not this cluster's: it is empty (zero bytes) but "
                               f"{head_dir / 'cluster.id'} says it held cluster "), line
        assert line.endswith(f"restore it from a backup, or delete {head_dir / 'cluster.id'} to start a new "
                             "cluster deliberately"), line
        assert db.stat().st_size == 0
    # Deleting the id file is how to start a new cluster there on purpose.
    (head_dir / "cluster.id").unlink()
    with cluster, Client(cluster.address) as client:
        assert client.submit(jobs_pb2.JobSpec(tasks=[task_spec("true")])) == 1


def test_a_replaced_database_is_refused_at_start(tmp_path: Path) -> None:
    """Another cluster's database (its own id) in this cluster's state dir."""
    ours, theirs = LocalCluster(tmp_path / "ours", nodes=0), LocalCluster(tmp_path / "theirs", nodes=0)
    for cluster in (ours, theirs):
        with cluster:
            _submit_some(cluster, 1)
    head_dir = ours.state_dir / "head"
    (theirs.state_dir / "head" / "shoal.db").replace(head_dir / "shoal.db")
    line = _refusal(head_dir)
    ours_id = (head_dir / "cluster.id").read_text().strip()
    theirs_id = (theirs.state_dir / "head" / "cluster.id").read_text().strip()
    assert f"is not this cluster's: {head_dir / 'cluster.id'} says cluster {ours_id}" in line, line
    assert f"the database holds cluster {theirs_id}" in line


def test_a_corrupted_database_is_refused_at_start(tmp_path: Path) -> None:
    cluster = LocalCluster(tmp_path / "cluster", nodes=0)
    with cluster:
        assert len(_submit_some(cluster, 300, tasks=3)) == 300
    # Stopped cleanly: the WAL is checkpointed into the file, which now holds everything.
    db = cluster.state_dir / "head" / "shoal.db"
    size = db.stat().st_size
    assert size > 64 * 1024
    with open(db, "r+b") as f:
        f.seek(size // 2)
        f.write(random.Random(32).randbytes(8192))
    line = _refusal(cluster.state_dir / "head")
    assert line.startswith(f"shoal: the database {db} is corrupted (integrity_check: "), line
    assert line.endswith("restore it from a backup, or move it aside to start a new cluster"), line


def test_an_old_clusters_output_files_never_leak_into_a_new_jobs_output(tmp_path: Path) -> None:
    long_output = "seq 1 20000"  # 108,894 bytes
    cluster = LocalCluster(tmp_path / "cluster", nodes=1, cores=2)
    with cluster, Client(cluster.address) as client:
        for _ in range(2):
            job = client.wait_job(client.submit(jobs_pb2.JobSpec(tasks=[task_spec(long_output)])))
            assert job.state == jobs_pb2.JOB_STATE_FINISHED
        assert len(b"".join(client.read_output(TaskId(2, 1)))) == 108894
    # A new cluster, started deliberately on the same state dir, keeps the old output dir.
    head_dir = cluster.state_dir / "head"
    for name in ("shoal.db", "shoal.db-wal", "shoal.db-shm", "cluster.id"):
        (head_dir / name).unlink(missing_ok=True)
    assert (head_dir / "output" / "1").is_dir()
    with cluster, Client(cluster.address) as client:
        first = client.submit(jobs_pb2.JobSpec(tasks=[task_spec("echo short")]))
        assert first == 1
        assert client.wait_job(first).state == jobs_pb2.JOB_STATE_FINISHED
        assert b"".join(client.read_output(TaskId(1, 1))) == b"short\n"
        # Job 2 is made, never run: it has no output, not the old job 2's.
        second = client.create_job(jobs_pb2.JobSpec(tasks=[task_spec(long_output)]))
        assert second.id == 2
        assert b"".join(client.read_output(TaskId(2, 1))) == b""


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 2 MiB tmpfs as the head node's state dir (needs root and mount)."""
    with tmpfs(tmp_path / "cluster" / "head", "2m", "the head's state dir") as head_dir:
        yield head_dir


def _fill(directory: Path) -> Path:
    filler = directory / "filler"
    with open(filler, "wb", buffering=0) as f:
        try:
            while True:
                f.write(b"\0" * 65536)
        except OSError as e:
            assert e.errno == 28, e  # ENOSPC
    return filler


def test_a_full_state_disk_refuses_writes_keeps_serving_and_loses_nothing(small_disk: Path) -> None:
    cluster = LocalCluster(small_disk.parent, nodes=1, cores=2)
    with cluster, Client(cluster.address) as client:
        acknowledged = [client.submit(jobs_pb2.JobSpec(tasks=[task_spec(f"echo {i}")])) for i in range(5)]
        for job_id in acknowledged:
            assert client.wait_job(job_id).state == jobs_pb2.JOB_STATE_FINISHED
        filler = _fill(small_disk)

        # Submissions until one is refused: the first may still fit, or be the one whose write
        # fails (told at once, then written once there is room); then each is refused up front.
        def refused() -> str | None:
            r = run_cli("job", "submit", "--", "echo", "late", head=cluster.address)
            if r.returncode == 0:
                acknowledged.append(int(r.stdout.split()[0]))  # it prints the job id
                return None
            return r.stderr

        stderr = eventually(refused, 20, "a submission to be refused for want of space")
        assert "Traceback" not in stderr, stderr
        assert stderr.strip().count("\n") == 0, f"not one line:\n{stderr}"
        assert stderr.startswith(f"shoal: the head node's disk is full (state dir {small_disk})"), stderr
        with pytest.raises(RequestFailed) as e:
            client.submit(jobs_pb2.JobSpec(tasks=[task_spec("echo refused")]))
        assert e.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert e.value.message == f"the head node's disk is full (state dir {small_disk}); free space and retry"
        # The head is up and reads are answered, the job's history (read from the store) too.
        assert cluster.head is not None and cluster.head.poll() is None
        job = client.get_job(acknowledged[0])
        assert job.state == jobs_pb2.JOB_STATE_FINISHED and len(job.history) > 0
        assert len(list(client.list_jobs())) >= len(acknowledged)

        filler.unlink()

        def submitted() -> int:
            try:
                return client.submit(jobs_pb2.JobSpec(tasks=[task_spec("echo after")]))
            except RequestFailed as e:
                assert e.code == grpc.StatusCode.RESOURCE_EXHAUSTED, e
                return 0

        after = eventually(submitted, 20, "a submission to be taken once space is freed")
        assert client.wait_job(after).state == jobs_pb2.JOB_STATE_FINISHED
        assert b"".join(client.read_output(TaskId(after, 1))) == b"after\n"
        acknowledged.append(after)

    with cluster, Client(cluster.address) as client:  # started again, from what is on disk
        for job_id in acknowledged:
            assert client.get_job(job_id).state == jobs_pb2.JOB_STATE_FINISHED, job_id
