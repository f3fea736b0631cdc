"""The Store contract: every backend must pass this same suite."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from headnode.store.base import (
    HistoryRecord,
    InstanceRecord,
    JobRecord,
    NodeRecord,
    Store,
    TaskRecord,
    TemplateRecord,
    UsageQuery,
    UsageRecord,
    WriteBatch,
)
from headnode.store.postgres import PostgresStore
from headnode.store.sqlite import SqliteStore
from tests.conftest import drop_schema, postgres_url


@pytest.fixture(params=["sqlite", "postgres"])
def open_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[], Store]]:
    """Each backend, fresh for each test: a new SQLite file, or a new PostgreSQL schema."""
    opened: list[Store] = []
    if request.param == "sqlite":
        make: Callable[[], Store] = lambda: SqliteStore(tmp_path / "shoal.db")  # noqa: E731
    else:
        url = postgres_url()
        schema = f"contract_{uuid.uuid4().hex[:12]}"
        make = lambda: PostgresStore(f"{url}?schema={schema}")  # noqa: E731

    def factory() -> Store:
        store = make()
        opened.append(store)
        return store

    yield factory
    for store in opened:
        store.close()
    if request.param == "postgres":
        drop_schema(schema)


def job(i: int, state: str = "Queued") -> JobRecord:
    return JobRecord(i, "alice", state, "", 100.0 + i, 101.0 + i, None, None, "", 3, '{"name":"x"}')


def task(job_id: int, n: int, state: str = "Queued", spec: str | None = '{"command_line":"true"}') -> TaskRecord:
    return TaskRecord(job_id, n, state, "", "Queued", 0, 0, "[]", None, None, spec)


def instance(job_id: int, n: int, i: int, state: str = "Running") -> InstanceRecord:
    return InstanceRecord(job_id, n, i, state, "started on n1", 1, "n1", True, None, 0, 5.0, None, 0, 2, 512)


def node(name: str) -> NodeRecord:
    return NodeRecord(name, "Online", "agent connected", 4, 8192, "host", "0.1.0", "abc", 1.0, 2.0)


def test_new_store_is_empty(open_store) -> None:
    loaded = open_store().load()
    assert (loaded.jobs, loaded.tasks, loaded.instances, loaded.nodes, loaded.templates, loaded.meta) == \
        ([], [], [], [], [], {})


def test_write_then_load_round_trips_every_record(open_store) -> None:
    store = open_store()
    batch = WriteBatch()
    batch.jobs = {2: job(2), 1: job(1)}
    batch.tasks = {(2, 1): task(2, 1), (1, 2): task(1, 2), (1, 1): task(1, 1)}
    batch.instances = {(1, 2, 3): instance(1, 2, 3), (1, 1, 0): instance(1, 1, 0)}
    batch.nodes = {"n1": node("n1")}
    batch.templates = {"t": TemplateRecord("t", "alice", 9.0, '{"name":"t"}')}
    batch.meta = {"next_job_id": "3"}
    batch.history = [HistoryRecord(1, 0, 1.5, "Queued", "submitted by alice", 1)]
    store.write(batch)
    loaded = store.load()
    assert loaded.jobs == [job(1), job(2)]
    assert [(t.job_id, t.task_id) for t in loaded.tasks] == [(1, 1), (1, 2), (2, 1)]
    assert loaded.tasks[0] == task(1, 1)
    assert loaded.instances == [instance(1, 1, 0), instance(1, 2, 3)]
    assert loaded.nodes == [node("n1")]
    assert loaded.templates == [TemplateRecord("t", "alice", 9.0, '{"name":"t"}')]
    assert loaded.meta == {"next_job_id": "3"}


def test_updates_without_a_spec_keep_the_stored_spec(open_store) -> None:
    store = open_store()
    store.write(WriteBatch(jobs={1: job(1)}, tasks={(1, 1): task(1, 1)}))
    running = replace(task(1, 1, "Running", spec=None), cursor=3, ahead=1, requeued="[2]", started_at=5.0)
    store.write(WriteBatch(tasks={(1, 1): running}))
    (loaded,) = store.load().tasks
    assert loaded == replace(running, spec='{"command_line":"true"}')


def test_a_merged_batch_keeps_the_spec_of_a_task_created_in_it() -> None:
    first = WriteBatch(tasks={(1, 1): task(1, 1)})
    first.merge(WriteBatch(tasks={(1, 1): task(1, 1, "Running", spec=None)}))
    assert first.tasks[(1, 1)].spec == '{"command_line":"true"}'
    assert first.tasks[(1, 1)].state == "Running"


def test_history_in_sequence_order_and_filtered(open_store) -> None:
    store = open_store()
    store.write(WriteBatch(history=[HistoryRecord(1, 0, 3.0, "Queued", "a", 1),
                                    HistoryRecord(2, 0, 1.0, "Queued", "x", 1)]))
    store.write(WriteBatch(history=[HistoryRecord(1, 1, 2.0, "Running", "b", 2),
                                    HistoryRecord(1, 1, 2.5, "Running", "c", 3, instance_id=7)]))
    assert [h.reason for h in store.history(1)] == ["a", "b", "c"]
    assert [h.reason for h in store.history(1, task_id=1)] == ["b", "c"]
    assert [h.reason for h in store.history(1, instance_id=0)] == ["a", "b"]
    assert [h.reason for h in store.history(1, task_id=1, instance_id=7)] == ["c"]
    assert store.history(3) == []


def test_deleting_a_job_removes_everything_of_it(open_store) -> None:
    store = open_store()
    store.write(WriteBatch(jobs={1: job(1), 2: job(2)}, tasks={(1, 1): task(1, 1), (2, 1): task(2, 1)},
                           instances={(1, 1, 0): instance(1, 1, 0)},
                           history=[HistoryRecord(1, 0, 1.0, "Queued", "", 1), HistoryRecord(2, 0, 1.0, "Queued", "", 1)]))
    store.write(WriteBatch(deleted_jobs={1}))
    loaded = store.load()
    assert [j.id for j in loaded.jobs] == [2] and [t.job_id for t in loaded.tasks] == [2]
    assert loaded.instances == [] and store.history(1) == [] and len(store.history(2)) == 1


def test_templates_are_replaced_and_deleted(open_store) -> None:
    store = open_store()
    store.write(WriteBatch(templates={"t": TemplateRecord("t", "alice", 1.0, "{}")}))
    store.write(WriteBatch(templates={"t": TemplateRecord("t", "bob", 2.0, '{"x":1}')}))
    assert store.load().templates == [TemplateRecord("t", "bob", 2.0, '{"x":1}')]
    store.write(WriteBatch(templates={"t": None}))
    assert store.load().templates == []


def test_a_failing_batch_stores_nothing_of_itself(open_store) -> None:
    store = open_store()
    store.write(WriteBatch(jobs={1: job(1)}))
    broken = WriteBatch(jobs={2: job(2)}, nodes={"n1": replace(node("n1"), state=None)})  # type: ignore[arg-type]
    with pytest.raises(Exception) as failure:  # each backend raises its own driver's error
        store.write(broken)
    assert "null" in str(failure.value).lower()
    assert [j.id for j in store.load().jobs] == [1]
    store.write(WriteBatch(jobs={3: job(3)}))  # and the store still works
    assert [j.id for j in store.load().jobs] == [1, 3]


def test_everything_survives_reopening(open_store) -> None:
    store = open_store()
    store.write(WriteBatch(jobs={1: job(1, "Running")}, tasks={(1, 1): task(1, 1)}, meta={"next_job_id": "2"}))
    store.close()
    reopened = open_store().load()
    assert reopened.jobs == [job(1, "Running")] and reopened.meta == {"next_job_id": "2"}


def test_details_round_trip_and_nodes_can_be_deleted(open_store) -> None:
    store = open_store()
    detail = '{"generic":{"gpu":2},"groups":["gpu"],"labels":["avx512"],"state_at":3.0,"history":[]}'
    run = replace(instance(1, 1, 0), detail='{"generic":{"gpu":1},"hosts":[["n2",4]]}')
    store.write(WriteBatch(jobs={1: job(1)}, tasks={(1, 1): task(1, 1)}, instances={(1, 1, 0): run},
                           nodes={"n1": replace(node("n1"), detail=detail), "n2": node("n2")}))
    loaded = store.load()
    assert loaded.instances == [run]
    assert loaded.nodes == [replace(node("n1"), detail=detail), node("n2")]
    store.write(WriteBatch(deleted_nodes={"n2"}))
    assert [n.name for n in store.load().nodes] == ["n1"]
    # A later write of the node in the same merged batch brings it back; a later delete wins.
    batch = WriteBatch(deleted_nodes={"n1"})
    batch.merge(WriteBatch(nodes={"n1": node("n1")}))
    store.write(batch)
    assert [n.name for n in store.load().nodes] == ["n1"]
    batch = WriteBatch(nodes={"n1": node("n1")})
    batch.merge(WriteBatch(deleted_nodes={"n1"}))
    store.write(batch)
    assert store.load().nodes == []


def usage(job_id: int, owner: str = "alice", project: str = "", ended_at: float = 200.0,
          core_seconds: float = 60.0) -> UsageRecord:
    return UsageRecord(job_id, owner, project, f"job{job_id}", "Finished", 100.0, 110.0, ended_at, 2, 3, 1,
                       core_seconds, ended_at - 110.0, 512 * job_id, 1, "0,1")


def test_usage_is_written_with_its_job_and_outlives_the_job(open_store) -> None:
    store = open_store()
    store.write(WriteBatch(jobs={1: job(1, "Finished"), 2: job(2, "Failed")},
                           usage={1: usage(1), 2: usage(2, "bob", "p1", ended_at=300.0)}))
    store.write(WriteBatch(deleted_jobs={1, 2}))
    assert store.load().jobs == []
    report = store.usage_report(UsageQuery(by="job"))
    assert [r.record for r in report.rows] == [usage(1), usage(2, "bob", "p1", ended_at=300.0)]
    assert not report.truncated
    # A job that ends again replaces its record: it is counted once.
    store.write(WriteBatch(usage={1: usage(1, core_seconds=90.0)}))
    by_owner = store.usage_report(UsageQuery(by="owner"))
    assert [(r.key, r.jobs, r.units, r.failed, r.core_seconds, r.max_memory_mb, r.nonzero_exits)
            for r in by_owner.rows] == [("alice", 1, 3, 1, 90.0, 512, 1), ("bob", 1, 3, 1, 60.0, 1024, 1)]
    total = by_owner.total
    assert (total.jobs, total.core_seconds, total.wall_seconds) == (2, 150.0, 280.0)
    assert [r.key for r in store.usage_report(UsageQuery(by="project")).rows] == ["", "p1"]


def test_usage_reports_filter_by_end_time_owner_and_project_and_truncate(open_store) -> None:
    store = open_store()
    store.write(WriteBatch(usage={i: usage(i, "alice" if i % 2 else "bob", f"p{i % 3}", ended_at=100.0 * i)
                                  for i in range(1, 7)}))

    def ids(**query: object) -> list[str]:
        return [r.key for r in store.usage_report(UsageQuery(by="job", **query)).rows]  # type: ignore[arg-type]

    assert ids(since=200.0, until=500.0) == ["2", "3", "4"]  # since inclusive, until exclusive
    assert ids(owner="alice") == ["1", "3", "5"]
    assert ids(project="p0", until=600.5) == ["3", "6"]
    first = store.usage_report(UsageQuery(by="job", limit=2))
    assert [r.key for r in first.rows] == ["1", "2"] and first.truncated and first.total.jobs == 6
    empty = store.usage_report(UsageQuery(by="owner", since=10_000.0))
    assert empty.rows == [] and empty.total.jobs == 0 and empty.total.core_seconds == 0.0
    with pytest.raises(ValueError):
        store.usage_report(UsageQuery(by="name; DROP TABLE usage"))


def test_a_failing_batch_stores_no_usage(open_store) -> None:
    store = open_store()
    broken = WriteBatch(usage={1: usage(1)},
                        nodes={"n1": replace(node("n1"), state=None)})  # type: ignore[arg-type]
    with pytest.raises(Exception):  # noqa: B017 - each backend raises its own driver's error
        store.write(broken)
    assert store.usage_report(UsageQuery(by="job")).rows == []


def test_an_older_database_is_migrated_to_keep_usage(open_store, monkeypatch: pytest.MonkeyPatch) -> None:
    from headnode.store import postgres, sqlite

    for module in (sqlite, postgres):  # a database made before the usage table existed
        monkeypatch.setattr(module, "MIGRATIONS", module.MIGRATIONS[:2])
    old = open_store()
    old.write(WriteBatch(jobs={1: job(1, "Finished")}))
    old.close()
    monkeypatch.undo()
    store = open_store()
    assert store.load().jobs == [job(1, "Finished")]
    store.write(WriteBatch(usage={1: usage(1)}))
    assert [r.record for r in store.usage_report(UsageQuery(by="job")).rows] == [usage(1)]
