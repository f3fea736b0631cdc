"""Shared test harness: real clusters of real processes on loopback, and deadline polling.

No test sleeps to hide a race: each waits for a condition with `eventually`, which fails
with a message saying what never happened.
"""

from __future__ import annotations

import os

os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")  # before anything imports grpc

import contextlib
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest

from common.clock import wait_until

T = TypeVar("T")
REPO = Path(__file__).resolve().parent.parent


def unix_user(name: str):  # type: ignore[no-untyped-def]
    """A local Unix account `name` (made with useradd if missing: the tests run as root), for
    tasks that run as their owner."""
    import pwd

    try:
        return pwd.getpwnam(name)
    except KeyError:
        subprocess.run(["useradd", "--create-home", "--shell", "/bin/sh", name], check=True, capture_output=True)
        return pwd.getpwnam(name)


def eventually(predicate: Callable[[], T], timeout: float = 15.0, what: str = "condition") -> T:
    value = wait_until(predicate, timeout)
    assert value, f"timed out after {timeout:g}s waiting for {what}"
    return value


def run_cli(*args: str, head: str | None = None, timeout: float = 60.0, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run the real `shoal` command in a subprocess."""
    env = dict(os.environ)
    if head:
        env["SHOAL_HEAD"] = head
    return subprocess.run(
        [sys.executable, "-m", "shoal", *args],
        capture_output=True, text=True, timeout=timeout, env=env, cwd=cwd,
    )


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """A head node and two agents (2 cores each) shared by a test module."""
    from shoal.local import LocalCluster

    c = LocalCluster(tmp_path_factory.mktemp("cluster"), nodes=2, cores=2, node_args=["--kill-grace", "2"])
    with c:
        yield c


@pytest.fixture
def client(cluster: object) -> Iterator[object]:
    import grpc

    from shoal.client import Client, RequestFailed

    with Client(cluster.address) as c:  # type: ignore[attr-defined]
        yield c
        # Leave the cluster idle for the next test: cancel whatever this test left running.
        from shoal.v1 import jobs_pb2

        active = (jobs_pb2.JOB_STATE_QUEUED, jobs_pb2.JOB_STATE_RUNNING)
        for job in c.list_jobs(states=active):
            try:
                c.cancel_job(job.id, "test teardown")
            except RequestFailed as e:  # it ended meanwhile
                if e.code != grpc.StatusCode.FAILED_PRECONDITION:
                    raise
        eventually(lambda: all(n.running_tasks == 0 for n in c.list_nodes()), what="nodes to be idle after teardown")


@contextlib.contextmanager
def tmpfs(where: Path, size: str, what: str) -> Iterator[Path]:
    """A small tmpfs mounted at `where` for a full-disk test (needs root and mount: skipped,
    with the reason, otherwise); unmounted at the end."""
    where.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs for {what} (needs root): {mounted.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "--lazy", str(where)], check=False, capture_output=True)


def kill_group(pid: int) -> None:
    """Kill the process group of a task's process (its wrapper shell leads the group)."""
    import signal

    try:
        os.killpg(os.getpgid(pid), signal.SIGKILL)
    except ProcessLookupError:
        pass


POSTGRES_URL = os.environ.get("SHOAL_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")


def postgres_url() -> str:
    """The test PostgreSQL server, or skip (with the reason) when none is reachable."""
    import psycopg

    try:
        with psycopg.connect(POSTGRES_URL, connect_timeout=3):
            pass
    except psycopg.OperationalError as e:
        pytest.skip(f"no PostgreSQL reachable at {POSTGRES_URL} ({' '.join(str(e).split())[:120]})")
    return POSTGRES_URL


def drop_schema(schema: str) -> None:
    import psycopg

    with psycopg.connect(POSTGRES_URL, autocommit=True) as db:
        db.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
