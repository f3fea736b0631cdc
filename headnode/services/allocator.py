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
import math
from collections.abc import Iterator
from dataclasses import dataclass

from common import log
from common.clock import Clock
from common.constraints import merge
from common.ids import TaskId
from common.resources import ZERO, Resources, fits
from headnode.domain import lifecycle
from headnode.domain.cluster import Cluster
from headnode.domain.launch import resolve
from headnode.domain.lifecycle import Outcome
from headnode.domain.model import RESERVE_NODES, Instance, Job, Task
from headnode.domain.node import Allocation, Launch, Node
from headnode.domain.states import JobState, TaskState
from headnode.scheduling import ahead
from headnode.scheduling.core import Placement, Plan, schedule
from headnode.scheduling.policy import FCFS, Policy, level_of
from headnode.scheduling.snapshot import NodeView, PoolView, Running, Snapshot, TaskRequest
from headnode.services.effects import Effects
from headnode.services.membership import Membership
from headnode.services.metrics import NO_METRICS, Metrics
from headnode.services.output import OutputStore

_log = log.get("allocator")

WAITING_FOR_SCHEDULER = "waiting for the scheduler"


def take_snapshot(cluster: Cluster, now: float, default_runtime: float) -> Snapshot:
    nodes = tuple(_node_view(cluster, n) for n in sorted(cluster.nodes.values(), key=lambda n: n.name))
    # Lazy: the core stops reading where the pass stops, so a long queue costs little, and
    # reads what runs only when the policy needs it (a reservation, limits, preemption).
    queue = (_request(cluster, t) for t in cluster.queued())
    pools = {j: v for j in sorted(cluster.reserving) if (v := _pool_view(cluster, j)) is not None}
    return Snapshot(nodes, queue, pools, running=_running(cluster, now, default_runtime))


def _runtime(job: Job, task: Task) -> float:
    """The task's runtime limit, or its job's when tighter; 0: none."""
    limits = [x for x in (task.spec.runtime_limit, job.spec.runtime_limit) if x > 0]
    return min(limits) if limits else 0.0


def _running(cluster: Cluster, now: float, default_runtime: float) -> Iterator[Running]:
    for node in cluster.nodes.values():
        for alloc in node.allocations.values():
            if alloc.secondary or alloc.pool:
                continue  # a multi-node run is reported by its first node; pooled cores go back to the pool
            found = cluster.find_instance(alloc.task)
            if found is None:
                continue
            job, task, inst = found
            limit = _runtime(job, task) or default_runtime
            parts = ((node.name, alloc.resources),
                     *((h, alloc.resources.with_cores(c)) for h, c in inst.hosts))
            yield Running(inst.id, parts, (inst.started_at or now) + limit, job.owner, level_of(job.spec.priority),
                          dying=inst.state is not TaskState.RUNNING or inst.attempt != alloc.attempt)


def _node_view(cluster: Cluster, n: Node) -> NodeView:
    jobs = frozenset(n.jobs()) if n.allocations or n.reserved else frozenset()
    exclusive = 0
    for j in jobs:
        job = cluster.jobs.get(j)
        if job is not None and job.spec.exclusive:
            exclusive = j
            break
    return NodeView(n.name, n.capacity, n.used, n.unavailable_reason(), n.all_groups, n.all_labels, jobs, exclusive)


def _request(cluster: Cluster, t: Task) -> TaskRequest:
    job = cluster.jobs[t.id.job]
    spec = t.spec
    return TaskRequest(
        t.id, spec.resources, count=t.pending, max_cores=spec.max_cores, exclusive=spec.exclusive,
        # A multi-instance task starts all its instances together the first time.
        gang=spec.multi and not t.instances,
        constraints=merge(job.spec.placement, spec.placement),
        job_exclusive=job.spec.exclusive,
        nodes=spec.nodes,
        runtime=_runtime(job, t),
        owner=job.owner,
        level=level_of(job.spec.priority),
    )


def _pool_view(cluster: Cluster, job_id: int) -> PoolView | None:
    job = cluster.jobs.get(job_id)
    r = job.spec.reservation if job is not None else None
    held: dict[str, Resources] = {}
    in_use: dict[str, Resources] = {}
    for node in cluster.nodes.values():
        if job_id in node.reserved:
            held[node.name] = node.reserved[job_id]
            use = ZERO
            for a in node.allocations.values():
                if a.pool == job_id:
                    use = use + (a.resources if r is not None and r.unit == RESERVE_NODES else Resources(a.resources.cores))
            in_use[node.name] = use
    if job is None or r is None:
        if not held:
            return None
        return PoolView(job_id, "cores", 0, 0, held, in_use, ended=True)
    return PoolView(
        job_id, r.unit, r.minimum, r.maximum, held, in_use,
        started=job.state is JobState.RUNNING,
        pending=job.counts[TaskState.QUEUED] > 0,
        ended=job.state.terminal,
        constraints=job.spec.placement,
        exclusive=job.spec.exclusive,
    )


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
        policy: Policy,
        metrics: Metrics = NO_METRICS,
    ) -> None:
        self.cluster = cluster
        self.metrics = metrics
        self.effects = effects
        self.membership = membership
        self.output = output
        self.clock = clock
        self.policy = policy
        self._kicked = asyncio.Event()
        self._last = Plan()
        self.passes = 0
        # Launches dispatched ahead and not yet seen started: instance -> (attempt, when sent,
        # its job's priority).
        self._ahead: dict[TaskId, tuple[int, float, int]] = {}
        # No entry of _ahead has a lower priority (entries that started linger until take_back
        # looks, so this bound, not a look at them all, is what each pass asks).
        self._lowest_ahead = math.inf
        # The nodes as they were when the parked tasks were found unable ever to run (_nodes).
        self._parked_on: tuple[int, int] = (-1, -1)

    def kick(self) -> None:
        self._kicked.set()

    async def run(self) -> None:
        last = -math.inf
        while True:
            await self._kicked.wait()
            # While launches sent ahead wait on the agents, their nodes have their next tasks
            # in hand: the pass waits out dispatch_ahead_pass_interval since the last one, and
            # places what several ends freed (HeadConfig.dispatch_ahead_pass_interval).
            interval = self.policy.dispatch_ahead_pass_interval
            if interval and self._ahead and (wait := last + interval - self.clock.monotonic()) > 0:
                await self.clock.sleep(wait)
            # Let what has already arrived (more ends, more submissions) in first, so one pass
            # places it all instead of one pass each.
            await asyncio.sleep(0)
            self._kicked.clear()
            last = self.clock.monotonic()
            try:
                self.pass_once()
            except Exception:  # a bug in one pass must not stop scheduling for good
                _log.exception("scheduling_pass_failed")

    def pass_once(self) -> None:
        """Plan, record and (once recorded) launch; returns without waiting for the store."""
        self.passes += 1
        if self.cluster.parked and self._nodes() != self._parked_on:
            _log.debug("tasks_unparked", count=self.cluster.unpark_all())
        if not self.cluster.queue and not self.cluster.reserving:
            self._last = Plan()
            return
        if self._full_behind_the_same_task():
            return
        now, began = self.clock.now(), self.clock.monotonic()
        plan = schedule(take_snapshot(self.cluster, now, self.policy.default_runtime), now, self.policy)
        self._last = plan
        if plan.never or plan.held:
            self._park(plan)
        _log.debug("scheduling_pass", ms=round((self.clock.monotonic() - began) * 1000, 2),
                   queued=len(self.cluster.queue), placed=len(plan.placements))
        o = Outcome()
        self._reservations(plan, now, o)
        self._preempt(plan, now, o)
        placed = [p for p in (self._commit(p, now, o) for p in plan.placements) if p is not None]
        failed = len(placed) < len(plan.placements)
        if self.policy.dispatch_ahead and (plan.pending or plan.blocked_at is not None):
            self._make_way(now, o)  # first: what this pass sends ahead goes behind what stays
            placed += self._dispatch_ahead(now, o)
        self.metrics.pass_done(self.clock.monotonic() - began)
        if not placed and not o.jobs:
            return
        # A pass that only placed needs no pass after it (one for nothing, a third of all
        # passes on a busy small cluster): what it left pending it has already looked at. One
        # whose placement failed its second fit check asks again, as every pass used to.
        only_placed = not failed and not (
            plan.started or plan.preempt or plan.reserve or plan.release)
        # The launches go out once the placements are durable; the next pass need not wait
        # for that (the cluster in memory already holds them), so a commit in flight does not
        # hold up placing what ends meanwhile. Commits, and so launches, keep their order.
        self.effects.apply(o, kick=not only_placed).add_done_callback(lambda f: self._dispatch(f, placed))

    def _nodes(self) -> tuple[int, int]:
        """Moves whenever what decides whether a task could ever run on a node changes (a
        removed node only changes the count)."""
        return Node.shape_changes, len(self.cluster.nodes)

    def _park(self, plan: Plan) -> None:
        """Set aside the tasks the pass found no node could ever run, until the nodes change
        (checked at the start of each pass, so no change is missed whichever way it came: a
        node joining, coming back online, or being given a group or label), and those held
        back by their owner's limit, until one of its runs ends (effects.py, Cluster.freed).
        A held task's reason keeps the owner's cores as they were when it was parked."""
        if not self.cluster.parked:
            self._parked_on = self._nodes()
        for task_id, need in (*((t, -1) for t in plan.never), *plan.held):
            job = self.cluster.jobs.get(task_id.job)
            task = job.tasks.get(task_id.task) if job is not None else None
            if job is not None and task is not None:
                reason = plan.pending.get(task_id, WAITING_FOR_SCHEDULER)
                if need < 0:
                    self.cluster.park(task, reason)
                else:
                    self.cluster.park(task, reason, job.owner, need, plan.room.get(job.owner, 0))

    def _full_behind_the_same_task(self) -> bool:
        """True when a pass would place nothing and find the reasons the last one found: no
        node has a free core, and the queue still starts with the task the last pass stopped
        at, so what arrived since queues behind it, where a pass on a full cluster does not
        look. On a busy cluster most passes that submissions ask for are of this kind. Not with
        preemption (a newcomer may displace running work) or job reservations (whose pools
        hold cores of their own)."""
        blocked = self._last.blocked_at
        if blocked is None or self.policy.preemption or self.cluster.reserving:
            return False
        if self.cluster.queue.peekitem(0)[1].id != blocked:
            return False
        if not self.policy.dispatch_ahead:  # every submission on a full cluster asks: kept cheap
            return not any(n.free.cores > 0 and n.schedulable for n in self.cluster.nodes.values())
        now = self.clock.now()
        return not any(n.free.cores + self._ahead_room(n, now).cores > 0 and n.schedulable
                       for n in self.cluster.nodes.values())

    # -- dispatch ahead ------------------------------------------------------------------

    def _ahead_room(self, node: Node, now: float) -> Resources:
        return ahead.room(node.capacity, node.last_exit, now, self.policy) if node.schedulable else ZERO

    def _dispatch_ahead(self, now: float, o: Outcome) -> list[_Placed]:
        """After a pass has placed what fits, send the queue's next tasks to nodes with room
        ahead (scheduling/ahead.py). Not with preemption or job reservations."""
        if self.policy.preemption or self.cluster.reserving or not self.cluster.queue:
            return []
        rooms = {n.name: r for n in self.cluster.nodes.values() if (r := self._ahead_room(n, now)).cores > 0}
        if not rooms:
            return []
        nodes = (_node_view(self.cluster, self.cluster.nodes[name]) for name in sorted(rooms))
        queue = (_request(self.cluster, t) for t in self.cluster.queued() if t.pending)
        plan = ahead.plan(nodes, rooms, queue, _running(self.cluster, now, self.policy.default_runtime), now,
                          self.policy)
        placed = [p for p in (self._commit(p, now, o, rooms) for p in plan.placements) if p is not None]
        for p in placed:
            self._ahead[p.inst.id] = (p.attempt, now, p.job.spec.priority)
            self._lowest_ahead = min(self._lowest_ahead, p.job.spec.priority)
        return placed

    def _make_way(self, now: float, o: Outcome) -> None:
        """Take back what was dispatched ahead, and has not started, for jobs of a lower
        priority than the queue's first task: a node starts what it holds before anything sent
        after, and HPC Pack gives the next free resources to the highest priority. Explicit
        priority only: a fair-share order among equal priorities does not undo what was sent."""
        if not self._ahead or not self.cluster.queue:
            return
        first = self.cluster.queue.peekitem(0)[1].id.job
        priority = self.cluster.jobs[first].spec.priority
        if self._lowest_ahead >= priority:  # what a pass mostly finds
            return
        for job, task, inst, _ in self._held():
            if job.spec.priority < priority:
                self._take_back(job, task, inst, f"dispatched ahead to node {inst.node} and taken back for job "
                                f"{first}, of higher priority; queued again", now, o)

    async def run_take_back(self) -> None:
        """Every half dispatch_ahead_wait, take back what was dispatched ahead and has not started."""
        while True:
            await self.clock.sleep(self.policy.dispatch_ahead_wait / 2)
            self.take_back()

    def take_back(self) -> None:
        """Requeue instances dispatched ahead that have not started within dispatch_ahead_wait
        (their node's tasks turned out long): as a preemption, so the agent drops the launch
        (or stops it, if it started just now) and the instance is placed again, elsewhere if
        there is room, without counting a retry."""
        now, wait = self.clock.now(), self.policy.dispatch_ahead_wait
        o = Outcome()
        for job, task, inst, sent in self._held():
            if now - sent >= wait:
                self._take_back(job, task, inst, f"dispatched ahead to node {inst.node} and not started there "
                                f"within {wait:g}s; queued again", now, o)
        if o.jobs or o.kill:
            self.effects.apply(o)

    def _held(self) -> Iterator[tuple[Job, Task, Instance, float]]:
        """What was dispatched ahead and has not started: (job, task, instance, when sent). What
        started, ended or was placed again since is forgotten on the way."""
        self._lowest_ahead = min((p for _, _, p in self._ahead.values()), default=math.inf)
        for task_id, (attempt, sent, _) in list(self._ahead.items()):
            found = self.cluster.find_instance(task_id)
            node = self.cluster.nodes.get(found[2].node) if found is not None else None
            alloc = node.allocations.get(task_id) if node is not None else None
            if found is None or alloc is None or alloc.attempt != attempt or alloc.started \
                    or found[2].attempt != attempt or found[2].state is not TaskState.RUNNING:
                del self._ahead[task_id]
                continue
            yield (*found, sent)

    def _take_back(self, job: Job, task: Task, inst: Instance, reason: str, now: float, o: Outcome) -> None:
        del self._ahead[inst.id]
        lifecycle.preempt(job, task, inst, reason, now, o)
        _log.info("task_taken_back", job_id=job.id, task_id=str(inst.id), node=inst.node, attempt=inst.attempt,
                  reason=reason)

    def _dispatch(self, committed: asyncio.Future[None], placed: list[_Placed]) -> None:
        if committed.cancelled() or committed.exception() is not None:
            return  # the store failed: the head is stopping, and sends nothing it did not record
        try:
            self._send(placed)
        except Exception:  # as a failed pass is: logged, and scheduling goes on
            _log.exception("dispatch_failed", placements=len(placed))

    def _send(self, placed: list[_Placed]) -> None:
        for p in placed:
            alloc = p.node.allocations.get(p.inst.id)
            if alloc is None or alloc.attempt != p.attempt:
                continue  # cancelled while the placement was being committed
            alloc.launch_seq = self.membership.send(
                p.node.name, Launch(p.inst.id, p.attempt, resolve(p.job, p.task, p.inst))
            )
            _log.info("task_placed", job_id=p.job.id, task_id=str(p.inst.id), node=p.node.name,
                      attempt=p.attempt, cores=p.inst.cores, hosts=len(p.inst.hosts), sent=alloc.launch_seq > 0,
                      ahead=alloc.ahead)

    def _preempt(self, plan: Plan, now: float, o: Outcome) -> None:
        for task_id, reason in plan.preempt:
            found = self.cluster.find_instance(task_id)
            if found is not None:
                job, task, inst = found
                lifecycle.preempt(job, task, inst, reason, now, o)
                _log.info("task_preempted", job_id=job.id, task_id=str(task_id), node=inst.node, reason=reason)

    def _reservations(self, plan: Plan, now: float, o: Outcome) -> None:
        """Carry out the plan's job-level reservations and releases."""
        for g in plan.reserve:
            node = self.cluster.nodes.get(g.node)
            if node is not None:
                node.reserve(g.job, g.resources)
        for g in plan.release:
            node = self.cluster.nodes.get(g.node)
            if node is not None:
                node.unreserve(g.job, g.resources)
        for job_id in plan.started:
            job = self.cluster.jobs.get(job_id)
            if job is not None:
                held = [f"{n.name} ({n.reserved[job_id].describe()})" for n in self.cluster.nodes.values()
                        if job_id in n.reserved]
                lifecycle.reserved(job, ", ".join(held) or "nothing", now, o)
                _log.info("job_reserved", job_id=job_id, nodes=len(held))
        for job_id in list(self.cluster.reserving):
            job = self.cluster.jobs.get(job_id)
            if (job is None or job.state.terminal) and not any(job_id in n.reserved for n in self.cluster.nodes.values()):
                self.cluster.reserving.discard(job_id)
        if plan.release:
            self.kick()  # what was given back may let the next task start

    def _commit(self, p: Placement, now: float, o: Outcome, rooms: dict[str, Resources] | None = None
                ) -> _Placed | None:
        """Check one placement again with the same fit check, then record it. `rooms`: the
        room each node has beyond its free resources (a placement dispatched ahead)."""
        job = self.cluster.jobs.get(p.task.job)
        task = job.tasks.get(p.task.task) if job else None
        parts = [(self.cluster.nodes.get(name), given) for name, given in ((p.node, p.resources), *p.extra)]
        if job is None or task is None or not task.pending:
            return None
        charged = p.charged if p.charged is not None else p.resources
        for i, (node, given) in enumerate(parts):
            if node is None or not node.schedulable:
                return None
            wanted = charged if i == 0 else given
            if rooms is None:
                if not fits(wanted, node.free):
                    return None
            elif not (fits(wanted, node.free + rooms.get(node.name, ZERO)) and fits(wanted, node.capacity)):
                return None
        iid = lifecycle.take_pending(task)
        if iid is None:
            return None
        node = parts[0][0]
        assert node is not None
        hosts = tuple((n.name, g.cores) for n, g in parts[1:] if n is not None)
        r = p.resources
        inst = lifecycle.place(job, task, iid, node.name, r.cores, r.memory_mb, now, o, r.generic, hosts)
        pool = job.id if p.charged is not None else 0
        node.allocate(Allocation(inst.id, inst.attempt, r, charge=p.charged, pool=pool, ahead=rooms is not None))
        for other, given in parts[1:]:
            assert other is not None
            other.allocate(Allocation(inst.id, inst.attempt, given, secondary=True))
        # Every attempt's output starts empty: a first attempt's files may be there too, from a
        # timeline a restored database no longer knows of (two unlinks of nothing cost ~3 us).
        self.output.reset(inst.id)
        self.metrics.run_started(job.submitted_at, inst.attempt, now)
        return _Placed(job, task, inst, node, inst.attempt)

    def pending_reason(self, job: Job, task: Task) -> str:
        """Why a task with waiting instances is not running them (empty if it has none)."""
        if not task.pending or task.state.terminal:
            return ""
        if task.queue_key is None:
            return self.cluster.blocked_reason(job, task) or WAITING_FOR_SCHEDULER
        reason = self._last.pending.get(task.id) or self.cluster.parked_reason(task)
        if reason is not None:
            return reason
        if self._last.everyone:
            return self._last.everyone
        blocker = self._last.blocked_at
        blocker_job = self.cluster.jobs.get(blocker.job) if blocker else None
        blocker_task = blocker_job.tasks.get(blocker.task) if blocker_job else None
        if blocker_task is not None and blocker_task.queue_key is not None and task.queue_key > blocker_task.queue_key:
            if blocker.job == job.id:
                return self._last.pending.get(blocker, WAITING_FOR_SCHEDULER)
            why = "first come, first served" if self.policy.name == FCFS else "it has the reservation"
            return f"waiting behind job {blocker.job}, ahead in the queue ({why})"
        return WAITING_FOR_SCHEDULER
