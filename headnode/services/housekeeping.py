"""Time-driven upkeep: jobs past their runtime limit, completed jobs past their TTL, and
tasks held back by their owner's limit.

A running job whose runtime limit has passed is failed as a whole ("runtime limit 1h
exceeded"), its tasks cancelled and their processes stopped. A job that ended more than
`completed_job_ttl` ago is purged from memory, the store and the output spool (HPC Pack's
TTLCompletedJobs), unless a job that has not ended yet still depends on it. Every
RECHECK_HELD seconds the tasks set aside by their owner's running-cores limit all go back in
the queue for the next pass (domain/cluster.py says why a few may wait on a low count).
"""

from __future__ import annotations

from collections.abc import Callable

from common import log
from common.clock import Clock
from headnode.domain import lifecycle
from headnode.domain.cluster import Cluster
from headnode.domain.lifecycle import Outcome
from headnode.domain.states import JobState
from headnode.services.effects import Effects
from headnode.services.journal import Journal
from headnode.services.output import OutputStore

_log = log.get("housekeeping")
PURGE_EVERY = 60.0
RECHECK_HELD = 10.0


class Housekeeping:
    def __init__(
        self, cluster: Cluster, effects: Effects, journal: Journal, output: OutputStore, clock: Clock, ttl: float,
        period: float = 1.0, kick: Callable[[], None] = lambda: None,
    ) -> None:
        self.kick = kick
        self.cluster = cluster
        self.effects = effects
        self.journal = journal
        self.output = output
        self.clock = clock
        self.ttl = ttl
        self.period = period

    async def run(self) -> None:
        since_purge, since_recheck = PURGE_EVERY, 0.0
        while True:
            await self.clock.sleep(self.period)
            try:
                await self.enforce_runtime_limits()
                since_recheck += self.period
                if since_recheck >= RECHECK_HELD:
                    since_recheck = 0.0
                    if self.cluster.unpark_held():
                        self.kick()
                since_purge += self.period
                if since_purge >= min(PURGE_EVERY, self.ttl):
                    since_purge = 0.0
                    await self.purge()
            except Exception:  # one bad round must not end upkeep for good
                _log.exception("housekeeping_failed")

    async def enforce_runtime_limits(self) -> None:
        now = self.clock.now()
        o = Outcome()
        for job_id in list(self.cluster.limited):
            job = self.cluster.jobs.get(job_id)
            if job is None or job.state is not JobState.RUNNING:
                self.cluster.limited.discard(job_id)  # put back by Cluster.sync if it runs again
                continue
            limit = job.spec.runtime_limit
            if job.started_at is not None and now - job.started_at > limit:
                lifecycle.fail_job(job, now, f"runtime limit {lifecycle.format_seconds(limit)} exceeded", o)
                _log.info("job_runtime_limit", job_id=job.id, limit=limit)
        if o.jobs:
            await self.effects.apply(o)

    async def purge(self) -> int:
        now = self.clock.now()
        expired = [
            job for job in self.cluster.jobs.values()
            if job.state.terminal and job.ended_at is not None and now - job.ended_at > self.ttl
            and not any(inst.holding for t in job.tasks.values() for inst in t.instances.values())
            and not any(
                (child := self.cluster.jobs.get(c)) is not None and not child.state.terminal
                for c in self.cluster.dependents.get(job.id, ())
            )
        ]
        if not expired:
            return 0
        for job in expired:
            self.cluster.remove_job(job)
        await self.journal.record(deleted_jobs=[j.id for j in expired])
        for job in expired:
            self.output.remove_job(job.id)
        _log.info("jobs_purged", count=len(expired), ttl=self.ttl)
        return len(expired)
