"""Fair-share accounting: who has used how much, decayed, and the queue order it gives.

Every `fairshare_interval` seconds the usage of each account (a job's project when it names
one, else its owner) decays by the half-life and grows by the cores its running tasks held
over the interval (sampling, as Slurm's decay thread does: no hook on every task end). Then
the factors are recomputed (scheduling/policy.py, pure) and the queue is re-ordered by
effective priority: level first, then offset plus weight x factor. Usage lives in memory
only: a head-node restart or failover starts everyone even again.
"""

from __future__ import annotations

from collections.abc import Callable

from common import log
from common.clock import Clock
from common.config import HeadConfig
from headnode.domain.cluster import Cluster
from headnode.domain.model import Job
from headnode.scheduling import policy as pol

_log = log.get("fairshare")


class FairShare:
    def __init__(self, cluster: Cluster, clock: Clock, config: HeadConfig, kick: Callable[[], None]) -> None:
        self.cluster = cluster
        self.clock = clock
        self.config = config
        self._kick = kick
        self.usage: dict[str, float] = {}
        self.factor: dict[str, float] = {}
        self._at = clock.now()
        if config.fairshare_weight > 0:
            cluster.rank = self.rank

    def rank(self, job: Job) -> float:
        account = pol.account(job.owner, job.spec.project)
        return pol.effective_priority(job.spec.priority, self.factor.get(account, 1.0), self.config.fairshare_weight)

    def update(self) -> int:
        """Accrue and decay usage, recompute factors, re-order the queue; returns tasks moved."""
        now = self.clock.now()
        elapsed, self._at = max(0.0, now - self._at), now
        half_life = self.config.fairshare_half_life
        self.usage = {a: u for a, u in ((a, pol.decayed(u, now - elapsed, now, half_life))
                                        for a, u in self.usage.items()) if u > 1e-6}
        for node in self.cluster.nodes.values():
            for alloc in node.allocations.values():
                job = self.cluster.jobs.get(alloc.task.job)
                if job is not None:
                    account = pol.account(job.owner, job.spec.project)
                    self.usage[account] = self.usage.get(account, 0.0) + alloc.resources.cores * elapsed
        waiting = {pol.account(j.owner, j.spec.project) for j in (self.cluster.jobs[t.id.job] for t in
                                                                   self.cluster.queue.values())}
        self.factor = pol.factors(self.usage, waiting)
        moved = self.cluster.rekey()
        if moved:
            _log.info("queue_reordered", moved=moved, accounts=len(self.factor))
            self._kick()
        return moved

    async def run(self) -> None:
        while True:
            await self.clock.sleep(self.config.fairshare_interval)
            self.update()
