"""Followers ride out a head node's restart: `shoal task output --follow`, `shoal job watch`
and the SDK's read_output(follow=True) and watches (sync and asyncio) carry on from where they
were when the head node is SIGKILLed and started again, or fails over to a standby, nothing lost
or shown twice; what does not exist still fails at once. One cluster for the module (each test
restarts its head node); the failover has two head nodes of its own."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from common.clock import wait_until
from common.ids import TaskId
from shoal.aio import AsyncClient
from shoal.client import Client, RequestFailed, task_spec
from shoal.local import LocalCluster, free_port
from shoal.v1 import jobs_pb2
from tests.conftest import drop_schema, eventually, postgres_url, run_cli

pytestmark = pytest.mark.cluster

LINES, GATE_AT = 30, 10
EXPECTED = "".join(f"line {i}\n" for i in range(1, LINES + 1))
FINISHED = jobs_pb2.JOB_STATE_FINISHED
ENDS = (FINISHED, jobs_pb2.JOB_STATE_FAILED, jobs_pb2.JOB_STATE_CANCELLED)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    """One node whose tasks outlive the head node's restarts (and the agent's)."""
    c = LocalCluster(tmp_path_factory.mktemp("follow"), nodes=1, stop_tasks_on_exit=False)
    with c:
        yield c


@pytest.fixture
def head(cluster: LocalCluster) -> str:
    """The head node's address, once its node is back online after an earlier test's restart."""
    cluster.wait_nodes(cluster.node_names)
    return cluster.address


def numbered(gate: Path) -> str:
    """A task printing "line 1" to "line 30" every 0.1 s, which waits at line 10 for `gate`:
    so it cannot end before the test has restarted the head node."""
    return (f"i=0; while [ $i -lt {LINES} ]; do i=$((i + 1)); echo line $i; "
            f"if [ $i -eq {GATE_AT} ]; then while [ ! -e {gate} ]; do sleep 0.02; done; fi; sleep 0.1; done")


def spawn(head: str, out: Path, *args: str) -> subprocess.Popen[bytes]:
    """The real `shoal` command in the background, its stdout to `out`."""
    with out.open("wb") as f:
        return subprocess.Popen([sys.executable, "-m", "shoal", *args], stdout=f, stderr=subprocess.PIPE,
                                env=dict(os.environ, SHOAL_HEAD=head))


def in_thread(errors: list[BaseException], fn: Callable[[], None]) -> threading.Thread:
    def run() -> None:
        try:
            fn()
        except BaseException as e:  # noqa: BLE001  # the test reports it
            errors.append(e)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def restart(cluster: LocalCluster) -> None:
    cluster.kill_head()  # SIGKILL: no goodbye to any follower
    cluster.start_head()


def test_task_output_follow_rides_out_a_head_restart(cluster: LocalCluster, head: str, tmp_path: Path) -> None:
    gate, out = tmp_path / "gate", tmp_path / "out"
    with Client(head) as client:
        job = client.submit(jobs_pb2.JobSpec(tasks=[task_spec(numbered(gate))]))
    follower = spawn(head, out, "task", "output", f"{job}.1", "--follow")
    try:
        eventually(lambda: out.read_text().count("\n") >= 3, what="the follower to print 3 lines")
        assert follower.poll() is None
        restart(cluster)  # lines 4 to 10 are written while no head node is there
        gate.touch()
        code = follower.wait(timeout=60)
        assert code == 0, follower.stderr.read()  # type: ignore[union-attr]
    finally:
        follower.kill()
    assert out.read_text() == EXPECTED


def test_sdk_read_output_follow_rides_out_a_head_restart(cluster: LocalCluster, head: str, tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    with Client(head) as client:
        task = TaskId(client.submit(jobs_pb2.JobSpec(tasks=[task_spec(numbered(gate))])), 1)
    got = {"sync": bytearray(), "asyncio": bytearray()}
    errors: list[BaseException] = []

    def sync() -> None:
        with Client(head) as c:
            for data in c.read_output(task, follow=True):
                got["sync"] += data

    async def aio() -> None:
        async with AsyncClient(head) as c:
            async for data in c.read_output(task, follow=True):
                got["asyncio"] += data

    threads = [in_thread(errors, sync), in_thread(errors, lambda: asyncio.run(aio()))]
    eventually(lambda: errors or all(b.count(b"\n") >= 3 for b in got.values()), what="both followers to get 3 lines")
    assert not errors
    restart(cluster)
    gate.touch()
    for t in threads:
        t.join(timeout=60)
        assert not t.is_alive(), "a follower did not end with the task"
    assert not errors, errors
    assert got == {"sync": EXPECTED.encode(), "asyncio": EXPECTED.encode()}


def _json_events(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _json_ended(e: dict[str, Any]) -> bool:
    return "task" not in e and e["job_state"] in ("JOB_STATE_FINISHED", "JOB_STATE_FAILED", "JOB_STATE_CANCELLED")


def ended(e: jobs_pb2.JobEvent) -> bool:
    return not e.HasField("task") and e.job_state in ENDS


def _ends_of(events: list[Any], job: int) -> int:
    """How many of the events (JobEvent messages or `--json` lines) are job `job`'s end."""
    return sum(1 for e in events if (int(e["job_id"]) == job and _json_ended(e) if isinstance(e, dict)
                                     else e.job_id == job and ended(e)))


def test_job_watch_sees_the_end_exactly_once_across_a_head_restart(cluster: LocalCluster, head: str,
                                                                   tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    client = Client(head)
    job = client.submit(jobs_pb2.JobSpec(tasks=[task_spec(f"while [ ! -e {gate} ]; do sleep 0.02; done; echo done")]))
    eventually(lambda: client.get_job(job).state == jobs_pb2.JOB_STATE_RUNNING, what="the job to run")
    one, ends = tmp_path / "one", tmp_path / "ends"
    watch_one = spawn(head, one, "job", "watch", str(job), "--json")
    watch_ends = spawn(head, ends, "job", "watch", "--ends-only", "--json")
    stop_after: list[int] = []  # the all-jobs watches end at the end of a job after this one
    errors: list[BaseException] = []
    sdk_one: list[jobs_pb2.JobEvent] = []
    sdk_ends: list[jobs_pb2.JobEvent] = []
    aio_jobs: list[jobs_pb2.JobEvent] = []

    def past(e: jobs_pb2.JobEvent) -> bool:
        return bool(stop_after) and e.job_id > stop_after[0] and ended(e)

    def sync_ends() -> None:
        with Client(head) as c:
            for e in c.watch_jobs(ends_only=True):
                sdk_ends.append(e)
                if past(e):
                    return

    async def aio_watch() -> None:
        async with AsyncClient(head) as c:
            async for e in await c.watch_jobs(job_events_only=True):
                aio_jobs.append(e)
                if past(e):
                    return

    threads = [in_thread(errors, lambda: sdk_one.extend(Client(head).watch_job(job))),
               in_thread(errors, sync_ends), in_thread(errors, lambda: asyncio.run(aio_watch()))]
    # Every watch is in place once it has seen the end of a job submitted after it started.
    probes: list[int] = []

    def in_place() -> bool:
        if errors:
            return True
        if not probes or client.get_job(probes[-1], full=False).state == FINISHED:
            probes.append(client.submit(jobs_pb2.JobSpec(tasks=[task_spec("true")])))
        return bool(sdk_one) and all(any(_ends_of(events, p) for p in probes)
                                     for events in (_json_events(ends), sdk_ends, aio_jobs))

    assert wait_until(in_place, 30, interval=0.1), "the watches were not in place within 30s"
    assert not errors
    stop_after.append(probes[-1])
    # The CLI's watch of every job's ends sleeps through the restart, so it learns of the job's
    # end only by re-reading the jobs when it finds its head node gone.
    os.kill(watch_ends.pid, signal.SIGSTOP)
    try:
        cluster.kill_head()
        gate.touch()  # the task ends while no head node is there: its end is recorded after the restart
        cluster.start_head()
        eventually(lambda: client.get_job(job).state == FINISHED, timeout=30, what="the job to finish")
    finally:
        os.kill(watch_ends.pid, signal.SIGCONT)
    marker = client.submit(jobs_pb2.JobSpec(tasks=[task_spec("true")]))
    try:
        eventually(lambda: _ends_of(_json_events(ends), marker), timeout=30, what="the CLI watch to see a later job end")
        for t in threads:
            t.join(timeout=30)
            assert not t.is_alive(), "an SDK watch did not see the later job end"
        assert watch_one.wait(timeout=30) == 0, watch_one.stderr.read()  # type: ignore[union-attr]
    finally:
        watch_one.kill()
        watch_ends.kill()
    assert not errors, errors
    history = [e.seq for e in client.watch_job(job)]
    client.close()
    # The watches of the job: its whole history, each change once, in order, the end last.
    assert [int(e["seq"]) for e in _json_events(one)] == history
    assert [e.seq for e in sdk_one] == history
    assert _ends_of(_json_events(one), job) == 1 and _ends_of(sdk_one, job) == 1
    # The watches of every job: the job's end exactly once (re-read by the CLI's, which slept).
    for events in (_json_events(ends), sdk_ends, aio_jobs):
        assert [_ends_of(events, j) for j in (job, marker)] == [1, 1]
        assert all(_ends_of(events, p) <= 1 for p in probes)
    assert len({int(e.seq) for e in aio_jobs if e.job_id == job}) == len([e for e in aio_jobs if e.job_id == job])


def test_a_follow_of_what_does_not_exist_still_fails_at_once(head: str) -> None:
    for args in (("task", "output", "999.1", "--follow"), ("job", "watch", "999", "--json")):
        r = run_cli(*args, head=head, timeout=30)
        assert (r.returncode, r.stderr) == (1, "shoal: job 999 does not exist\n"), args
    with Client(head) as client:
        for follow in (lambda: list(client.read_output(TaskId(999, 1), follow=True)),
                       lambda: list(client.watch_job(999)), lambda: client.wait_job(999)):
            with pytest.raises(RequestFailed) as e:
                follow()
            assert (e.value.code, e.value.message) == (grpc.StatusCode.NOT_FOUND, "job 999 does not exist")
    # No head node there at all: the command fails at once too, as every command does.
    nowhere = f"127.0.0.1:{free_port()}"
    for args in (("task", "output", "1.1", "--follow"), ("job", "watch", "--ends-only"), ("job", "watch", "1")):
        r = run_cli(*args, head=nowhere, timeout=30)
        assert r.returncode == 3 and r.stderr.startswith(f"shoal: cannot reach the head node at {nowhere}"), args


def test_output_follow_and_watch_ride_out_a_failover_to_the_standby(tmp_path: Path) -> None:
    """Two head nodes on PostgreSQL, the followers given both addresses: the active one is
    SIGKILLed and the standby takes over (skipped, with the reason, without PostgreSQL)."""
    schema = f"follow_{uuid.uuid4().hex[:12]}"
    ha = LocalCluster(tmp_path / "ha", nodes=1, heads=2, stop_tasks_on_exit=False,
                      database=f"{postgres_url()}?schema={schema}", head_args=["--lease-ttl", "2"])
    try:
        with ha, Client(ha.address) as client:
            gate, out, ends = tmp_path / "gate", tmp_path / "out", tmp_path / "ends"
            job = client.submit(jobs_pb2.JobSpec(tasks=[task_spec(numbered(gate))]))
            follower = spawn(ha.address, out, "task", "output", f"{job}.1", "--follow")
            watcher = spawn(ha.address, ends, "job", "watch", "--ends-only", "--json")
            try:
                eventually(lambda: out.read_text().count("\n") >= 3, what="the follower to print 3 lines")
                # The watcher is watching once it has seen a job end (before that, a loaded
                # machine may still be starting it when the head goes, and a watch that never
                # reached a head fails at once, as documented).
                probe = client.submit(jobs_pb2.JobSpec(tasks=[task_spec("true")]))
                eventually(lambda: _ends_of(_json_events(ends), probe), timeout=30, what="the watcher to be watching")
                ha.kill_head()
                eventually(lambda: ha.active_head() is not None, timeout=30, what="the standby to take over")
                gate.touch()
                assert follower.wait(timeout=60) == 0, follower.stderr.read()  # type: ignore[union-attr]
                eventually(lambda: _ends_of(_json_events(ends), job), timeout=30, what="the watch to see the end")
            finally:
                follower.kill()
                watcher.kill()
            assert out.read_text() == EXPECTED and _ends_of(_json_events(ends), job) == 1
    finally:
        drop_schema(schema)
