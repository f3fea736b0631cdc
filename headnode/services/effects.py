"""Carrying out a domain Outcome: the one place every service hands its changes to.

In order: follow jobs that ended to the jobs that depend on them (which may cancel those,
when a dependency can never be met and they asked for that); put every touched task in its
right place in the queue; release at once the resources of instances that must stop but
were never sent to an agent; write everything through the journal; and once that is
durable, tell agents to kill what must stop. Then wake the allocator.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable

from common import log
from common.clock import Clock
from headnode.domain import eligibility, lifecycle, operations
from headnode.domain.cluster import Cluster
from headnode.domain.lifecycle import Outcome
from headnode.domain.model import Instance
from headnode.domain.node import Kill, Node
from headnode.domain.states import TaskState
from headnode.services.journal import Journal
from headnode.services.metrics import NO_METRICS, Metrics

_log = log.get("effects")


class Effects:
    def __init__(
        self,
        cluster: Cluster,
        journal: Journal,
        clock: Clock,
        send_kill: Callable[[str, Kill], int],
        kick: Callable[[], None],
        metrics: Metrics = NO_METRICS,
    ) -> None:
        self.cluster = cluster
        self.metrics = metrics
        self.journal = journal
        self.clock = clock
        self._send_kill = send_kill
        self._kick = kick

    def apply(self, o: Outcome, nodes: Iterable[Node] = (), meta: dict[str, str] | None = None,
              kick: bool = True) -> asyncio.Future[None]:
        """Record the outcome and carry out its kills. `kick=False` (the allocator's own
        placements, which only shrink what is pending) skips asking for another pass because
        tasks were touched; kills and ended jobs still ask."""
        self._follow_ended_jobs(o)
        to_kill = [inst for inst in o.kill if not self._release_undelivered(inst, o)]
        for task in o.resync.values():
            job = self.cluster.jobs.get(task.id.job)
            if job is not None:
                self.cluster.sync(job, task)
        unparked = self._unpark_owners(o) if self.cluster.held else 0
        future = self.journal.record_outcome(o, nodes, meta)
        if to_kill:
            future.add_done_callback(lambda f: None if f.cancelled() or f.exception() else self._kill(to_kill))
        if (o.resync and kick) or o.kill or o.ended or unparked:
            self._kick()
        return future

    def _unpark_owners(self, o: Outcome) -> int:
        """A run that stops running (ended, requeued, being stopped) frees some of its owner's
        limit: as many of its held tasks as that could start go back in the queue."""
        count = 0
        for inst in o.instances.values():
            if inst.state is not TaskState.RUNNING:
                job = self.cluster.jobs.get(inst.id.job)
                if job is not None and job.owner in self.cluster.held:
                    count += self.cluster.freed(job.owner, inst.cores + sum(c for _, c in inst.hosts))
        return count

    def _follow_ended_jobs(self, o: Outcome) -> None:
        i = 0
        while i < len(o.ended):  # cancelling a dependent job may end more jobs
            parent = o.ended[i]
            i += 1
            for child_id in sorted(self.cluster.dependents.get(parent.id, ())):
                child = self.cluster.jobs.get(child_id)
                if child is None:
                    continue
                for task in child.tasks.values():
                    o.resync[task.id] = task
                if child.spec.cancel_on_unsatisfiable_dependency and not child.state.terminal:
                    if why := eligibility.never_satisfiable(self.cluster.jobs, child):
                        operations.cancel_job(child, why, self.clock.now(), o)
                        _log.info("job_cancelled", job_id=child.id, reason=why)

    def _release_undelivered(self, inst: Instance, o: Outcome) -> bool:
        """An instance whose launch was never sent runs nowhere: free its resources now."""
        holding = inst.holding
        node = self.cluster.nodes.get(inst.node)
        alloc = node.allocations.get(inst.id) if node else None
        if node is None or alloc is None or alloc.attempt != inst.attempt:
            inst.holding = False
        elif alloc.launch_seq == 0 and not alloc.started:
            node.release(inst.id)
            self.cluster.release_secondaries(inst.id, inst.attempt, inst.hosts)
            inst.holding = False
        else:
            return False
        if holding:
            self.metrics.run_ended(inst.state)
        found = self.cluster.find_instance(inst.id)
        if found is not None:
            lifecycle.released(found[1], inst, o)
        return True

    def _kill(self, instances: list[Instance]) -> None:
        for inst in instances:
            if inst.holding:
                self._send_kill(inst.node, Kill(inst.id, inst.attempt, inst.reason))
