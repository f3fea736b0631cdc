"""The allocator loop: snapshot -> schedule -> commit -> dispatch.

Event-driven: anything that may let a task start (a submission, an instance's end, a node
joining) calls `kick()`, and kicks that arrive during a pass fold into the next one. A pass
commits its placements to the store before sending a single launch, so a head-node crash
can never leave an agent running an instance the store does not know was placed. Each
placement is checked again with the same fit check the scheduler used before it is
committed.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from common import log
from common.clock import Clock
from common.resources import fits
from headnode.domain import lifecycle
from headnode.domain.cluster import Cluster
from headnode.domain.launch import resolve
from headnode.domain.lifecycle import Outcome
from headnode.domain.model import Instance, Job, Task
from headnode.domain.node import Allocation, Launch, Node
from headnode.scheduling.core import Plan, schedule
from headnode.scheduling.snapshot import NodeView, Snapshot, TaskRequest
from headnode.services.effects import Effects
from headnode.services.membership import Membership
from headnode.services.output import OutputStore

_log = log.get("allocator")

WAITING_FOR_SCHEDULER = "waiting for the scheduler"


def take_snapshot(cluster: Cluster) -> Snapshot:
    nodes = tuple(
        NodeView(n.name, n.capacity, n.used, n.unavailable_reason())
        for n in sorted(cluster.nodes.values(), key=lambda n: n.name)
    )
    queue = tuple(
        TaskRequest(
            t.id, t.spec.resources, count=t.pending, max_cores=t.spec.max_cores, exclusive=t.spec.exclusive,
            # A multi-instance task starts all its instances together the first time.
            gang=t.spec.multi and not t.instances,
        )
        for t in cluster.queued()
    )
    return Snapshot(nodes, queue)


@dataclass
class _Placed:
    job: Job
    task: Task
    inst: Instance
    node: Node
    attempt: int


class Allocator:
    def __init__(
        self,
        cluster: Cluster,
        effects: Effects,
        membership: Membership,
        output: OutputStore,
        clock: Clock,
        policy: str,
    ) -> None:
        self.cluster = cluster
        self.effects = effects
        self.membership = membership
        self.output = output
        self.clock = clock
        self.policy = policy
        self._kicked = asyncio.Event()
        self._last = Plan()
        self.passes = 0

    def kick(self) -> None:
        self._kicked.set()

    async def run(self) -> None:
        while True:
            await self._kicked.wait()
            self._kicked.clear()
            try:
                await self.pass_once()
            except Exception:  # a bug in one pass must not stop scheduling for good
                _log.exception("scheduling_pass_failed")

    async def pass_once(self) -> None:
        self.passes += 1
        if not self.cluster.queue:
            self._last = Plan()
            return
        now = self.clock.now()
        plan = schedule(take_snapshot(self.cluster), now, self.policy)
        self._last = plan
        if not plan.placements:
            return
        o = Outcome()
        placed: list[_Placed] = []
        for p in plan.placements:
            job = self.cluster.jobs.get(p.task.job)
            task = job.tasks.get(p.task.task) if job else None
            node = self.cluster.nodes.get(p.node)
            if job is None or task is None or node is None:
                continue
            if not task.pending or not node.schedulable or not fits(p.resources, node.free):
                continue
            iid = lifecycle.take_pending(task)
            if iid is None:
                continue
            inst = lifecycle.place(job, task, iid, node.name, p.resources.cores, p.resources.memory_mb, now, o)
            node.allocate(Allocation(inst.id, inst.attempt, p.resources))
            self.output.reset(inst.id)
            placed.append(_Placed(job, task, inst, node, inst.attempt))
        if not placed:
            return
        await self.effects.apply(o)
        for p in placed:
            alloc = p.node.allocations.get(p.inst.id)
            if alloc is None or alloc.attempt != p.attempt:
                continue  # cancelled while the placement was being committed
            alloc.launch_seq = self.membership.send(
                p.node.name, Launch(p.inst.id, p.attempt, resolve(p.job, p.task, p.inst))
            )
            _log.info("task_placed", job_id=p.job.id, task_id=str(p.inst.id), node=p.node.name,
                      attempt=p.attempt, cores=p.inst.cores, sent=alloc.launch_seq > 0)

    def pending_reason(self, job: Job, task: Task) -> str:
        """Why a task with waiting instances is not running them (empty if it has none)."""
        if not task.pending or task.state.terminal:
            return ""
        if task.queue_key is None:
            return self.cluster.blocked_reason(job, task) or WAITING_FOR_SCHEDULER
        reason = self._last.pending.get(task.id)
        if reason is not None:
            return reason
        blocker = self._last.blocked_at
        blocker_job = self.cluster.jobs.get(blocker.job) if blocker else None
        blocker_task = blocker_job.tasks.get(blocker.task) if blocker_job else None
        if blocker_task is not None and blocker_task.queue_key is not None and task.queue_key > blocker_task.queue_key:
            if blocker.job == job.id:
                return self._last.pending.get(blocker, WAITING_FOR_SCHEDULER)
            return f"waiting behind job {blocker.job}, ahead in the queue (first come, first served)"
        return WAITING_FOR_SCHEDULER
