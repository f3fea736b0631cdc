"""The SDK against a real cluster: the HPC Pack-shaped object model (shoal/scheduler.py), the
ported seed-002 example (examples/clone_job.py) and the asyncio client (shoal/aio.py)."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
from pathlib import Path

import grpc
import pytest

from common.ids import TaskId
from shoal.aio import AsyncClient
from shoal.client import Client, RequestFailed, task_spec
from shoal.scheduler import Scheduler
from shoal.v1 import jobs_pb2
from tests.conftest import REPO

pytestmark = pytest.mark.cluster

LISTING = re.compile(r"id\((\d+)\), instance\((\d+)\), job\((\d+)\)\n\tcommand: (.*)\n\tstdout: (.*)")


def _listings(text: str) -> list[tuple[int, list[tuple[int, int, int, str, str]]]]:
    """The example's output: per "Tasks for job N" block, its (task, instance, job, command,
    stdout) lines, as HPC Pack's PrintTasks writes them."""
    blocks = []
    for block in text.split("Tasks for job ")[1:]:
        head, _, body = block.partition("\n")
        rows = [(int(t), int(i), int(j), cmd, out) for t, i, j, cmd, out in LISTING.findall(body)]
        blocks.append((int(head), rows))
    return blocks


def test_the_ported_clone_job_example_prints_hpc_packs_task_listing(cluster, client: Client, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    run = subprocess.run([sys.executable, str(REPO / "examples" / "clone_job.py"), "--head", cluster.address,
                          "--out", str(out)], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    (first, rows1), (clone, rows2), (clone_again, rows3) = _listings(run.stdout)
    assert clone == clone_again != first
    # The original: five instances of the parametric task, then the plain task (instance 0).
    assert [(t, i, j, c) for t, i, j, c, _ in rows1] == [
        *((1, n, first, f"echo {n}") for n in range(1, 6)), (2, 0, first, "hostname")]
    # The clone is a copy with its own id ...
    assert [(t, i, c) for t, i, _, c, _ in rows2] == [(t, i, c) for t, i, _, c, _ in rows1]
    assert {j for _, _, j, _, _ in rows2} == {clone}
    # ... changed: the sweep starts at 3 with a stdout file per instance, and a new task 3.
    assert rows3 == [
        (1, 1, clone, "echo 3", f"{out}/echo_inst3.txt"),
        (1, 2, clone, "echo 4", f"{out}/echo_inst4.txt"),
        (1, 3, clone, "echo 5", f"{out}/echo_inst5.txt"),
        (2, 0, clone, "hostname", ""),
        (3, 0, clone, "echo 'new task'", f"{out}/new.txt"),
    ]
    # Both jobs were submitted and run to the end; the clone's files hold what it printed.
    for job_id in (first, clone):
        assert client.wait_job(job_id).state == jobs_pb2.JOB_STATE_FINISHED
    assert [(out / f"echo_inst{n}.txt").read_text() for n in (3, 4, 5)] == ["3\n", "4\n", "5\n"]
    assert (out / "new.txt").read_text() == "new task\n"


def test_a_job_built_here_is_sent_on_submit_and_its_tasks_change_on_commit(cluster) -> None:
    with Scheduler.connect(cluster.address) as scheduler:
        job = scheduler.create_job(name="sdk")
        task = job.create_task("echo $SHOAL_PARAMETRIC_VALUE")
        task.is_parametric, task.start_value, task.end_value, task.increment_value = True, 10, 30, 10
        job.add_task(task)
        assert job.id == 0 and job.state == "Configuring"
        scheduler.add_job(job)  # stored Configuring, not queued
        assert job.id and scheduler.open_job(job.id).state == "Configuring"

        opened = job.open_task(1)
        opened.end_value = 20
        opened.commit()
        job.add_task(job.create_task("echo last", name="last"))
        assert [(t.task_id.task, t.task_id.instance, t.command_line) for t in job.get_task_list()] == [
            (1, 1, "echo $SHOAL_PARAMETRIC_VALUE"), (1, 2, "echo $SHOAL_PARAMETRIC_VALUE"), (2, 0, "echo last")]

        scheduler.submit_job(job)
        done = scheduler.wait_job(job.id)
        assert done.state == "Finished"
        outputs = {str(t.task_id): t.output() for t in done.get_task_list()}
        assert outputs == {f"{job.id}.1.1": b"10\n", f"{job.id}.1.2": b"20\n", f"{job.id}.2": b"last\n"}


def test_sdk_errors_carry_the_grpc_status_and_the_head_nodes_message(cluster) -> None:
    with Scheduler.connect(cluster.address) as scheduler:
        with pytest.raises(RequestFailed) as missing:
            scheduler.open_job(987654)
        assert missing.value.code == grpc.StatusCode.NOT_FOUND
        assert "987654" in missing.value.message

        job = scheduler.create_job()
        job.add_task(job.create_task("true"))
        scheduler.submit_job(job)
        scheduler.wait_job(job.id)
        ended = job.open_task(1)
        ended.command_line = "false"
        with pytest.raises(RequestFailed) as refused:
            ended.commit()
        assert refused.value.code == grpc.StatusCode.FAILED_PRECONDITION


def test_the_async_client_submits_watches_and_follows_output(cluster) -> None:
    async def scenario() -> None:
        async with AsyncClient(cluster.address) as client:
            spec = jobs_pb2.JobSpec(name="aio", tasks=[task_spec("for i in 1 2 3; do echo line$i; done")])
            job_id = await client.submit(spec)
            states = [event.job_state async for event in client.watch_job(job_id)]
            assert states[-1] == jobs_pb2.JOB_STATE_FINISHED
            chunks = [c async for c in client.read_output(TaskId(job_id, 1))]
            assert b"".join(chunks) == b"line1\nline2\nline3\n"
            many = await client.submit_each([jobs_pb2.JobSpec(tasks=[task_spec("true")]) for _ in range(5)])
            assert len(set(many)) == 5
            ended = await asyncio.gather(*(client.wait_job(i) for i in many))
            assert {j.state for j in ended} == {jobs_pb2.JOB_STATE_FINISHED}
            assert [i.ref.instance_id async for i in client.list_instances(job_id)] == [0]
            try:
                await client.get_job(987654)
            except RequestFailed as e:
                assert e.code == grpc.StatusCode.NOT_FOUND
            else:
                raise AssertionError("get_job of a missing job did not raise")

    asyncio.run(asyncio.wait_for(scenario(), 60))


def test_the_async_watch_of_all_jobs_sees_a_new_job_end(cluster) -> None:
    async def scenario() -> None:
        async with AsyncClient(cluster.address) as client:
            events = await client.watch_jobs()
            job_id = await client.submit(jobs_pb2.JobSpec(tasks=[task_spec("true")]))
            seen = []
            async for event in events:
                seen.append(event)
                if event.job_id == job_id and event.job_state == jobs_pb2.JOB_STATE_FINISHED:
                    break
            await events.aclose()
            assert any(e.job_id == job_id for e in seen)

    asyncio.run(asyncio.wait_for(scenario(), 60))


def test_a_job_too_large_for_one_request_is_submitted_in_batches(cluster) -> None:
    """The head takes requests of at most 8 MiB; `submit` of a 10 MiB job makes it Configuring,
    adds its tasks in batches and queues it: one job, every task, in order."""
    with Client(cluster.address) as client:
        pad = "x" * 10_000
        tasks = [task_spec(f"true {i} {pad}", name=f"t{i}") for i in range(1_000)]
        spec = jobs_pb2.JobSpec(name="large", hold=True, tasks=tasks)
        assert spec.ByteSize() > 8 << 20
        job_id = client.submit(spec)
        assert client.get_job(job_id, full=False).state == jobs_pb2.JOB_STATE_QUEUED
        names = [t.spec.name for t in client.list_tasks(job_id, page_size=100)]  # a page under 4 MiB
        assert names == [f"t{i}" for i in range(1_000)]
        client.cancel_job(job_id)

    async def the_async_client() -> int:
        async with AsyncClient(cluster.address) as c:
            return await c.submit(spec)

    job_id = asyncio.run(the_async_client())
    with Client(cluster.address) as client:
        assert len(list(client.list_tasks(job_id, page_size=100))) == 1_000, "the async client's too"
        client.cancel_job(job_id)
