"""The Store contract: every backend must pass this same suite."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from headnode.store.base import HistoryRecord, JobRecord, NodeRecord, Store, TaskRecord, WriteBatch
from headnode.store.sqlite import SqliteStore


def sqlite_backend(tmp_path: Path) -> Callable[[], Store]:
    return lambda: SqliteStore(tmp_path / "shoal.db")


BACKENDS = {"sqlite": sqlite_backend}


@pytest.fixture(params=sorted(BACKENDS))
def open_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[], Store]]:
    opened: list[Store] = []

    def factory() -> Store:
        store = BACKENDS[request.param](tmp_path)()
        opened.append(store)
        return store

    yield factory
    for store in opened:
        store.close()


def job(i: int, state: str = "Queued") -> JobRecord:
    return JobRecord(i, "alice", f"job{i}", state, "", 100.0 + i, 101.0 + i, None, None, 3, '{"name":"x"}')


def task(job_id: int, n: int, state: str = "Queued", spec: str | None = '{"command_line":"true"}') -> TaskRecord:
    return TaskRecord(job_id, n, state, "", 0, "", False, None, 0, None, None, spec)


def node(name: str) -> NodeRecord:
    return NodeRecord(name, "Online", "agent connected", 4, 8192, "host", "0.1.0", "abc", 1.0, 2.0)


def test_new_store_is_empty(open_store) -> None:
    loaded = open_store().load()
    assert (loaded.jobs, loaded.tasks, loaded.nodes, loaded.meta) == ([], [], [], {})


def test_write_then_load_round_trips_every_record(open_store) -> None:
    store = open_store()
    batch = WriteBatch()
    batch.jobs = {2: job(2), 1: job(1)}
    batch.tasks = {(2, 1): task(2, 1), (1, 2): task(1, 2), (1, 1): task(1, 1)}
    batch.nodes = {"n1": node("n1")}
    batch.meta = {"next_job_id": "3"}
    batch.history = [HistoryRecord(1, 0, 1.5, "Queued", "submitted by alice", 1)]
    store.write(batch)
    loaded = store.load()
    assert loaded.jobs == [job(1), job(2)]
    assert [(t.job_id, t.task_id) for t in loaded.tasks] == [(1, 1), (1, 2), (2, 1)]
    assert loaded.tasks[0] == task(1, 1)
    assert loaded.nodes == [node("n1")]
    assert loaded.meta == {"next_job_id": "3"}


def test_updates_without_a_spec_keep_the_stored_spec(open_store) -> None:
    store = open_store()
    store.write(WriteBatch(jobs={1: job(1)}, tasks={(1, 1): task(1, 1)}))
    running = replace(task(1, 1, "Running", spec=None), attempt=1, node="n1", holding=True, started_at=5.0)
    store.write(WriteBatch(tasks={(1, 1): running}))
    (loaded,) = store.load().tasks
    assert loaded == replace(running, spec='{"command_line":"true"}')


def test_a_merged_batch_keeps_the_spec_of_a_task_created_in_it() -> None:
    first = WriteBatch(tasks={(1, 1): task(1, 1)})
    first.merge(WriteBatch(tasks={(1, 1): task(1, 1, "Running", spec=None)}))
    assert first.tasks[(1, 1)].spec == '{"command_line":"true"}'
    assert first.tasks[(1, 1)].state == "Running"


def test_history_is_per_job_in_sequence_order(open_store) -> None:
    store = open_store()
    store.write(WriteBatch(history=[HistoryRecord(1, 0, 3.0, "Queued", "a", 1), HistoryRecord(2, 0, 1.0, "Queued", "x", 1)]))
    store.write(WriteBatch(history=[HistoryRecord(1, 1, 2.0, "Running", "b", 2)]))
    assert store.history(1) == [HistoryRecord(1, 0, 3.0, "Queued", "a", 1), HistoryRecord(1, 1, 2.0, "Running", "b", 2)]
    assert store.history(3) == []


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
