"""The allocator loop: snapshot -> schedule -> commit -> dispatch.

Event-driven: anything that may let a task start (a submission, a task's end, a node
joining) calls `kick()`, and kicks that arrive during a pass fold into the next one. A pass
commits its placements to the store before sending a single launch, so a head-node crash
can never leave an agent running a task the store does not know was placed. Each placement
is checked again with the same fit check the scheduler used before it is committed.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from common import log
from common.clock import Clock
from common.ids import TaskId
from common.resources import fits
from headnode.domain import lifecycle
from headnode.domain.cluster import Cluster
from headnode.domain.model import Change, Job, Task
from headnode.domain.node import Allocation, Launch, Node
from headnode.domain.states import TaskState
from headnode.scheduling.core import Plan, schedule
from headnode.scheduling.snapshot import NodeView, Snapshot, TaskRequest
from headnode.services.journal import Journal
from headnode.services.membership import Membership
from headnode.services.output import OutputStore

_log = log.get("allocator")

WAITING_FOR_SCHEDULER = "waiting for the scheduler"


def take_snapshot(cluster: Cluster) -> Snapshot:
    nodes = tuple(
        NodeView(n.name, n.capacity, n.used, n.unavailable_reason())
        for n in sorted(cluster.nodes.values(), key=lambda n: n.name)
    )
    queue = tuple(TaskRequest(t.id, t.spec.resources) for t in cluster.queued())
    return Snapshot(nodes, queue)


@dataclass
class _Placed:
    job: Job
    task: Task
    node: Node
    attempt: int


class Allocator:
    def __init__(
        self,
        cluster: Cluster,
        journal: Journal,
        membership: Membership,
        output: OutputStore,
        clock: Clock,
        policy: str,
    ) -> None:
        self.cluster = cluster
        self.journal = journal
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
        placed: list[_Placed] = []
        jobs: dict[int, Job] = {}
        changes: list[Change] = []
        for p in plan.placements:
            found = self.cluster.find_task(p.task)
            node = self.cluster.nodes.get(p.node)
            if found is None or node is None:
                continue
            job, task = found
            if task.state is not TaskState.QUEUED or not node.schedulable or not fits(p.resources, node.free):
                continue
            changes += lifecycle.place_task(job, task, node.name, now)
            self.cluster.sync_queue(task)
            node.allocate(Allocation(task.id, task.attempt, p.resources))
            self.output.reset(task.id)
            jobs[job.id] = job
            placed.append(_Placed(job, task, node, task.attempt))
        if not placed:
            return
        await self.journal.record(jobs=jobs.values(), tasks=[p.task for p in placed], changes=changes)
        for p in placed:
            alloc = p.node.allocations.get(p.task.id)
            if alloc is None or alloc.attempt != p.attempt:
                continue  # cancelled while the placement was being committed
            alloc.launch_seq = self.membership.send(
                p.node.name, Launch(p.task.id, p.attempt, p.task.spec, p.job.owner)
            )
            _log.info("task_placed", job_id=p.job.id, task_id=str(p.task.id), node=p.node.name,
                      attempt=p.attempt, sent=alloc.launch_seq > 0)

    def pending_reason(self, task: Task) -> str:
        """Why a queued task is not running, from the last pass."""
        if task.state is not TaskState.QUEUED:
            return ""
        reason = self._last.pending.get(task.id)
        if reason is not None:
            return reason
        blocker = self._last.blocked_at
        if blocker is not None and _queue_key(task.id) > _queue_key(blocker):
            if blocker.job == task.id.job:
                return self._last.pending.get(blocker, WAITING_FOR_SCHEDULER)
            return f"waiting behind job {blocker.job}, first in the queue (first come, first served)"
        return WAITING_FOR_SCHEDULER


def _queue_key(task: TaskId) -> tuple[int, int, int]:
    return (task.job, task.task, task.instance)
