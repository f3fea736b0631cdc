"""Accounting: a job's usage is written with its end state, counted once however often it
ends, reported by owner, project or job (`shoal report usage`), and kept after the job is
purged; users see only their own usage when the cluster shows users only their own jobs."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import grpc
import pytest

from common.clock import SystemClock
from common.resources import Resources
from headnode.domain import lifecycle, operations
from headnode.domain.lifecycle import Outcome
from headnode.domain.model import JobSpec, Sweep, TaskSpec
from headnode.domain.states import JobState
from headnode.services.events import EventBus
from headnode.services.journal import Journal
from headnode.store.base import UsageQuery
from headnode.store.sqlite import SqliteStore
from shoal.client import Client, RequestFailed, task_spec
from shoal.local import LocalCluster
from shoal.v1 import jobs_pb2
from tests.conftest import eventually, run_cli

NOW = 1_700_000_000.0


def test_usage_is_recorded_when_a_job_ends_and_replaced_when_it_ends_again(tmp_path: Path) -> None:
    async def scenario() -> None:
        store = SqliteStore(tmp_path / "shoal.db")
        fatal: list[BaseException] = []
        journal = Journal(store, EventBus(), fatal.append)
        journal.start()
        spec = JobSpec(name="sim", project="climate", tasks=(
            TaskSpec("prep", resources=Resources(2, 1024)),
            TaskSpec("run *", resources=Resources(1, 256), sweep=Sweep(1, 3))))
        o = Outcome()
        job = operations.create_job(1, "alice", spec, NOW, o)
        operations.submit_job(job, "alice", NOW, o)
        plain, sweep = job.tasks[1], job.tasks[2]
        lifecycle.place(job, plain, lifecycle.take_pending(plain), "n1", 2, 1024, NOW + 1, o)
        for _ in range(3):
            lifecycle.place(job, sweep, lifecycle.take_pending(sweep), "n2", 1, 256, NOW + 1, o)
        await journal.record_outcome(o)

        def reported() -> list:
            return [r.record for r in store.usage_report(UsageQuery(by="job")).rows]

        assert await journal.read(lambda s: reported()) == [], "a running job has no usage yet"
        o = Outcome()
        for iid, code in ((1, 0), (2, 3), (3, 0)):
            lifecycle.exited(job, sweep, sweep.instances[iid], code, 0, "", False, NOW + 6, o)
        lifecycle.exited(job, plain, plain.instances[0], 0, 0, "", False, NOW + 11, o)
        assert job.state is JobState.FAILED
        await journal.record_outcome(o)
        (first,) = await journal.read(lambda s: reported())
        assert (first.owner, first.project, first.name, first.state) == ("alice", "climate", "sim", "Failed")
        assert (first.tasks, first.units, first.failed) == (2, 4, 1)
        assert (first.nonzero_exits, first.exit_codes) == (1, "0,3")
        assert first.core_seconds == pytest.approx(2 * 10 + 3 * 5)
        assert (first.max_memory_mb, first.ended_at) == (1024, NOW + 11)
        assert first.wall_seconds == pytest.approx(10.0)

        # Requeued, the failed instance runs again and the job ends Finished: still one
        # record, with the instance's latest run in place of its first.
        o = Outcome()
        operations.requeue_job(job, "alice", None, NOW + 20, o)
        lifecycle.place(job, sweep, lifecycle.take_pending(sweep), "n2", 1, 256, NOW + 21, o)
        lifecycle.exited(job, sweep, sweep.instances[2], 0, 0, "", False, NOW + 31, o)
        assert job.state is JobState.FINISHED
        await journal.record_outcome(o)
        (again,) = await journal.read(lambda s: reported())
        assert (again.state, again.failed, again.nonzero_exits, again.exit_codes) == ("Finished", 0, 0, "0")
        assert again.core_seconds == pytest.approx(2 * 10 + 5 + 5 + 10)
        assert store.usage_report(UsageQuery(by="owner")).total.jobs == 1
        await journal.close()
        store.close()
        assert not fatal

    asyncio.run(scenario())


# -- a real cluster ------------------------------------------------------------------------------------


def _report(cluster: LocalCluster, *args: str) -> dict:
    done = run_cli("report", "usage", "--json", *args, head=cluster.address)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def _rows(report: dict) -> dict[str, dict]:
    return {row["key"]: row for row in report["rows"]}


@pytest.mark.cluster
def test_report_usage_by_owner_project_and_job(cluster: LocalCluster) -> None:
    since = datetime.fromtimestamp(SystemClock().now() - 1).isoformat(timespec="seconds")
    ids: dict[str, list[int]] = {"ada": [], "bo": []}
    runs = (("ada", "climate", "sleep 0.3", 1), ("ada", "climate", "exit 3", 1), ("bo", "", "sleep 0.3", 2))
    for owner, project, command, cores in runs:
        with Client(cluster.address, user=owner) as c:
            spec = jobs_pb2.JobSpec(name=f"{owner}-job", project=project,
                                    tasks=[task_spec(command, cores=cores)])
            ids[owner].append(c.submit(spec))
    with Client(cluster.address) as c:
        for job_id in ids["ada"] + ids["bo"]:
            c.wait_job(job_id)  # its end is published once committed, with its usage

    by_owner = _rows(_report(cluster, "--by", "owner", "--since", since))
    assert set(by_owner) == {"ada", "bo"}
    ada, bo = by_owner["ada"], by_owner["bo"]
    # int64 fields come as strings in protobuf's JSON
    assert [int(ada[k]) for k in ("jobs", "tasks", "failed", "nonzero_exits")] == [2, 2, 1, 1]
    assert (int(bo["jobs"]), int(bo["failed"])) == (1, 0)
    assert ada["core_seconds"] > 0 and bo["core_seconds"] > 0
    assert bo["core_seconds"] >= 2 * 0.3, "two cores held for the whole sleep"

    by_project = _rows(_report(cluster, "--by", "project", "--since", since))
    assert int(by_project["climate"]["jobs"]) == 2 and int(by_project[""]["jobs"]) == 1
    by_job = _report(cluster, "--by", "job", "--since", since, "--owner", "ada")
    ended = {int(r["key"]): (r["state"], r["exit_codes"]) for r in by_job["rows"]}
    assert ended == {ids["ada"][0]: ("JOB_STATE_FINISHED", "0"), ids["ada"][1]: ("JOB_STATE_FAILED", "3")}
    assert int(by_job["total"]["jobs"]) == 2
    assert _report(cluster, "--since", "2000-01-01", "--until", "2000-01-02")["rows"] == []

    table = run_cli("report", "usage", "--by", "owner", "--since", since, head=cluster.address)
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines[0].split()[:5] == ["OWNER", "JOBS", "TASKS", "FAILED", "CORE-HOURS"]
    assert [line.split()[:2] for line in lines[1:]] == [["ada", "2"], ["bo", "1"], ["TOTAL", "3"]]


@pytest.mark.cluster
def test_report_usage_refuses_bad_dates_with_a_clear_message(cluster: LocalCluster) -> None:
    for args, text in ((("--since", "last tuesday"), "--since 'last tuesday' is not a date"),
                       (("--until", "2026-13-01"), "--until '2026-13-01' is not a date"),
                       (("--since", "1d", "--until", "2d"), "is not before --until")):
        done = run_cli("report", "usage", *args, head=cluster.address)
        assert done.returncode == 2 and text in done.stderr, done.stderr


CONFIG = """\
[head]
admins = ["root-admin"]
users_list_others_jobs = false
"""


@pytest.fixture(scope="module")
def purging(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    """A cluster that purges ended jobs a second after they end, and shows users only their own."""
    state = tmp_path_factory.mktemp("purging")
    (state / "shoal.toml").write_text(CONFIG)
    with LocalCluster(state, nodes=1, cores=2, node_args=["--kill-grace", "1"],
                      head_args=["--config", str(state / "shoal.toml"), "--completed-job-ttl", "1"]) as c:
        yield c


@pytest.mark.cluster
def test_usage_survives_the_purge_of_the_job_and_users_see_only_their_own(purging: LocalCluster) -> None:
    jobs = {}
    for owner in ("cy", "di"):
        with Client(purging.address, user=owner) as c:
            jobs[owner] = c.submit(jobs_pb2.JobSpec(tasks=[task_spec("sleep 0.2", cores=2)]))
            c.wait_job(jobs[owner])

    def purged(job_id: int) -> bool:
        with Client(purging.address, user="root-admin") as c:
            try:
                c.get_job(job_id)
            except RequestFailed as e:
                if e.code == grpc.StatusCode.NOT_FOUND:
                    return True
                raise
        return False

    for job_id in jobs.values():
        eventually(lambda job_id=job_id: purged(job_id), timeout=20, what=f"job {job_id} to be purged")

    with Client(purging.address, user="root-admin") as admin:
        rows = {r.key: r for r in admin.usage_report("job").rows}
    assert set(rows) == {str(jobs["cy"]), str(jobs["di"])}
    assert all(r.core_seconds >= 2 * 0.2 and r.state == jobs_pb2.JOB_STATE_FINISHED for r in rows.values())

    with Client(purging.address, user="cy") as cy:
        assert [r.key for r in cy.usage_report("owner").rows] == ["cy"]
        with pytest.raises(RequestFailed) as refused:
            cy.usage_report("owner", owner="di")
        assert refused.value.code == grpc.StatusCode.PERMISSION_DENIED
        assert "may not see di's usage" in refused.value.message
        with pytest.raises(RequestFailed) as bad:
            cy.usage_report("owner", since=2.0, until=1.0)
        assert bad.value.code == grpc.StatusCode.INVALID_ARGUMENT
