"""The leader lease and its fencing, against the real PostgreSQL."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator

import psycopg
import pytest

from common.clock import SystemClock
from headnode.services.lease import Fenced, Lease
from headnode.store.base import JobRecord, WriteBatch
from headnode.store.postgres import PostgresStore
from tests.conftest import drop_schema, postgres_url


@pytest.fixture
def url() -> Iterator[str]:
    schema = f"lease_{uuid.uuid4().hex[:12]}"
    yield f"{postgres_url()}?schema={schema}"
    drop_schema(schema)


def job(i: int) -> JobRecord:
    return JobRecord(i, "alice", "Queued", "", 1.0, 1.0, None, None, "", 1, "{}")


def test_one_leader_at_a_time_and_a_deposed_one_cannot_write(url: str) -> None:
    async def scenario() -> None:
        clock = SystemClock()
        first, second = Lease(url, 1.0, clock, "a:1"), Lease(url, 1.0, clock, "b:2")
        assert await first.acquire() == 1
        store = PostgresStore(url)
        store.guard = first.fence_check()
        store.write(WriteBatch(jobs={1: job(1)}))  # the leader writes
        # The standby waits while the lease is held, and gets it once it has expired.
        taken = asyncio.create_task(second.acquire())
        await asyncio.sleep(0.3)
        assert not taken.done(), "a standby took a lease that had not expired"
        assert await asyncio.wait_for(taken, 5) == 2
        with pytest.raises(Fenced, match="no longer holds the leader lease"):
            store.write(WriteBatch(jobs={2: job(2)}))
        assert [j.id for j in store.load().jobs] == [1], "the fenced write stored nothing"
        lost: list[str] = []
        await asyncio.wait_for(first.keep(lost.append), 5)
        assert lost and "another head node took over" in lost[0]
        await second.release()
        third = Lease(url, 5.0, clock, "c:3")
        assert await asyncio.wait_for(third.acquire(), 3) == 3, "a released lease is free at once"
        await third.release()
        await first.release()
        store.close()

    asyncio.run(scenario())


def test_the_lease_table_lives_in_the_configured_schema(url: str) -> None:
    async def scenario() -> None:
        lease = Lease(url, 2.0, SystemClock(), "a:1")
        await lease.acquire()
        schema = url.rsplit("schema=", 1)[1]
        with psycopg.connect(postgres_url()) as db:
            row = db.execute(f'SELECT holder FROM "{schema}".shoal_leader').fetchone()
        assert row == (lease.holder,)
        await lease.release()

    asyncio.run(scenario())
