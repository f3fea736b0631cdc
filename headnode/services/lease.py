"""Leadership among head nodes that share one PostgreSQL database: one active, the others
standing by.

The lease is one row: who holds it, its epoch, and when it expires, all judged by the
database's clock (so the heads' clocks may disagree). A standby polls until the lease has
expired and takes it, bumping the epoch. The leader renews it every third of its time to live;
if a renewal fails, it has lost the lease and stops at once.

Fencing: every write the leader makes runs, inside its transaction, a check that it still
holds the lease at its epoch (`fence_check`, FOR SHARE). A deposed leader's writes fail
instead of landing, and the row lock makes a takeover wait for a write in flight, so two
leaders never both write. On a clean stop the leader lets the lease go at once.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable

import psycopg

from common import log
from common.clock import Clock
from headnode.store.postgres import split_url

_log = log.get("lease")

SETUP = """
CREATE TABLE IF NOT EXISTS shoal_leader (
    id INTEGER PRIMARY KEY CHECK (id = 1), holder TEXT NOT NULL, epoch BIGINT NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL, address TEXT NOT NULL
);
INSERT INTO shoal_leader VALUES (1, '', 0, 'epoch', '') ON CONFLICT DO NOTHING
"""
ACQUIRE = """
UPDATE shoal_leader SET holder = %(me)s, epoch = epoch + 1, address = %(address)s,
    expires_at = now() + %(ttl)s * interval '1 second'
WHERE id = 1 AND expires_at < now() RETURNING epoch
"""
RENEW = """
UPDATE shoal_leader SET expires_at = now() + %(ttl)s * interval '1 second'
WHERE id = 1 AND holder = %(me)s AND epoch = %(epoch)s AND expires_at > now() RETURNING 1
"""
RELEASE = "UPDATE shoal_leader SET expires_at = now() WHERE id = 1 AND holder = %(me)s AND epoch = %(epoch)s"
FENCE = "SELECT 1 FROM shoal_leader WHERE id = 1 AND holder = %s AND epoch = %s AND expires_at > now() FOR SHARE"


class Fenced(Exception):
    """This head no longer holds the lease: its write must not land."""


class Lease:
    def __init__(self, url: str, ttl: float, clock: Clock, address: str) -> None:
        self.url, self.schema = split_url(url)
        self.ttl = ttl
        self.clock = clock
        self.address = address
        self.holder = uuid.uuid4().hex
        self.epoch = 0
        # Monotonic time until which the lease is surely this head's: a ttl from when its last
        # acquisition or renewal began (the database's expiry is later still).
        self.valid_until = 0.0
        self._db: psycopg.AsyncConnection | None = None

    async def _connect(self) -> psycopg.AsyncConnection:
        if self._db is None or self._db.closed:
            self._db = await psycopg.AsyncConnection.connect(self.url, autocommit=True)
            try:
                await self._db.execute(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"')
                await self._db.execute(f'SET search_path TO "{self.schema}"')
                for statement in SETUP.split(";"):
                    await self._db.execute(statement)
            except (psycopg.errors.UniqueViolation, psycopg.errors.DuplicateTable):
                await self._db.close()  # another head created it at the same moment: try again
                raise psycopg.OperationalError("the lease table was being created by another head node") from None
        return self._db

    async def acquire(self) -> int:
        """Wait until this head holds the lease; returns its epoch."""
        waiting_logged = False
        while True:
            began = self.clock.monotonic()
            try:
                db = await self._connect()
                row = await (await db.execute(ACQUIRE, {"me": self.holder, "address": self.address,
                                                        "ttl": self.ttl})).fetchone()
                if row is not None:
                    self.epoch = row[0]
                    self.valid_until = began + self.ttl
                    _log.info("lease_acquired", epoch=self.epoch, ttl=self.ttl)
                    return self.epoch
                if not waiting_logged:
                    _log.info("standing_by", ttl=self.ttl)
                    waiting_logged = True
            except psycopg.OperationalError as e:
                _log.warning("lease_database_unreachable", error=" ".join(str(e).split()))
                self._db = None
            await self.clock.sleep(min(1.0, self.ttl / 3))

    async def keep(self, on_lost: Callable[[str], None]) -> None:
        """Renew until the lease is lost (then call on_lost once and return). A leader that
        cannot renew stops once a ttl has passed since its last renewal began, by its own
        clock: the lease may have expired by then, a standby may hold it, and this head must
        no longer answer agents' heartbeats, which renew their task leases."""
        while True:
            await self.clock.sleep(self.ttl / 3)
            began = self.clock.monotonic()
            try:
                db = await self._connect()
                row = await asyncio.wait_for(self._renew(db), self.ttl / 2)
            except (psycopg.OperationalError, TimeoutError) as e:
                _log.warning("lease_renewal_failed", error=" ".join(str(e).split()) or "timed out")
                if self._db is not None:
                    await self._db.close()
                self._db = None
                if not self.holds():
                    on_lost(f"could not renew the leader lease (epoch {self.epoch}) for {self.ttl:g}s")
                    return
                continue  # the fence stops our writes once it expires; keep trying till then
            if row is None:
                on_lost(f"lost the leader lease (epoch {self.epoch}): another head node took over")
                return
            self.valid_until = began + self.ttl

    async def _renew(self, db: psycopg.AsyncConnection) -> object:
        return await (await db.execute(RENEW, {"me": self.holder, "epoch": self.epoch, "ttl": self.ttl})).fetchone()

    def holds(self) -> bool:
        """The lease is surely still this head's. Only then may it renew agents' task leases:
        a head that woke from a freeze may have been replaced meanwhile."""
        return self.clock.monotonic() < self.valid_until

    async def release(self) -> None:
        if self._db is not None and not self._db.closed and self.epoch:
            try:
                await self._db.execute(RELEASE, {"me": self.holder, "epoch": self.epoch})
                _log.info("lease_released", epoch=self.epoch)
            except psycopg.Error:
                pass
            await self._db.close()

    def fence_check(self) -> Callable[[psycopg.Cursor], None]:
        """The check a write transaction runs first (in the journal's thread)."""
        holder, epoch = self.holder, self.epoch

        def check(cur: psycopg.Cursor) -> None:
            if cur.execute(FENCE, (holder, epoch)).fetchone() is None:
                raise Fenced(f"this head node no longer holds the leader lease (epoch {epoch})")

        return check

