"""Node membership: agent sessions, what agents report, and node liveness.

The head decides (a task's state and its Allocation on a node); the agent observes (what
it runs and how it ended). Hello and every heartbeat carry the agent's full view; the pure
`headnode/domain/reconcile.py` decides what to do about each difference and this module
carries it out (send kills, forget stale exits, redeliver launches, fail lost tasks).
Reports about any attempt but the current one are ignored (fencing), so a late report
never overwrites a newer result.

Leases: every heartbeat is answered (HeartbeatAck), which renews the node's task lease
(computenode/lease.py); a node silent for node_lost_after has stopped its tasks by then (the
config checks node_lost_after >= lease + kill_grace + margin), so they may run elsewhere. Time
the head itself was not running never counts as a node's silence: after a gap in the liveness
loop (a stall, a SIGSTOP), at start-up and on taking the leader lease, every node gets a fresh
grace (`grace_all`). A task a node stopped because its lease lapsed reports itself fenced and
is requeued as for a lost node. A new agent on an emptied state dir cannot report what its
predecessor started; what it does not report is held, not requeued, until its lease has surely
lapsed (Allocation.doubtful_since).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field

from common import log
from common.clock import Clock
from common.config import HeadConfig
from common.constraints import check_token
from common.errors import AlreadyExists, InvalidArgument, Unavailable, quote
from common.ids import TaskId
from headnode.domain import lifecycle
from headnode.domain.cluster import Cluster
from headnode.domain.launch import resolve
from headnode.domain.lifecycle import Outcome
from headnode.domain.model import Instance
from headnode.domain.node import (
    AckExit,
    AgentEvent,
    Allocation,
    Exited,
    Heartbeat,
    HeartbeatAck,
    Hello,
    Instruction,
    Kill,
    Launch,
    Node,
    Output,
    Started,
    TaskReport,
)
from headnode.domain.reconcile import reconcile
from headnode.domain.states import NodeEvent, NodeState, TaskState, next_node_state
from headnode.services.effects import Effects
from headnode.services.metrics import NO_METRICS, Metrics
from headnode.services.output import OutputStore

_log = log.get("membership")
SEND_SOON = 0.02  # seconds an acknowledgement may wait for a launch to go with
# A liveness tick this much later than due means the head itself was not running (stalled,
# SIGSTOPped, its loop blocked): that time is no node's silence.
STALL_TOLERANCE = 1.0
MAX_NODE_NAME = 128  # a host's name: DNS labels are at most 63, names in practice far shorter
MAX_NODE_TAGS = 64  # groups or labels an agent declares


# Values, never changed once built; not frozen= (see headnode/scheduling/snapshot.py: 4-5x cheaper to build).
@dataclass(slots=True)
class Welcome:
    heartbeat_interval: float
    # (task, attempt, stdout offset, stderr offset) for each task the agent should go on sending.
    resume: tuple[tuple[TaskId, int, int, int], ...]
    node_token: str = ""  # the agent's own credential, when it joined with a join token
    task_lease: float = 0.0
    kill_grace: float = 0.0
    stall_grace: float = 0.0


@dataclass(eq=False)
class Session:
    """One open Connect stream. The servicer drains `outbox`; None there ends the stream."""

    node: str
    instance_id: str
    seq: int = 0
    closed: bool = False
    outbox: asyncio.Queue[tuple[int, Instruction | Welcome] | None] = field(default_factory=asyncio.Queue)
    # Messages that may wait a moment for company (see send_soon).
    later: list[Instruction] = field(default_factory=list)
    _timer: asyncio.TimerHandle | None = None

    def send(self, message: Instruction | Welcome) -> int:
        if self.later:
            self._flush_later()
        self.seq += 1
        self.outbox.put_nowait((self.seq, message))
        return self.seq

    def send_soon(self, message: Instruction) -> None:
        """Send with the next message, or after SEND_SOON seconds: for acknowledgements, which
        nothing waits on, so that a busy node gets its ack and its next launch in one write."""
        self.later.append(message)
        if self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(SEND_SOON, self._flush_later)

    def _flush_later(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        pending, self.later = self.later, []
        for message in pending:
            if not self.closed:
                self.send(message)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            if self._timer is not None:
                self._timer.cancel()
            self.outbox.put_nowait(None)


class Membership:
    def __init__(
        self,
        cluster: Cluster,
        effects: Effects,
        output: OutputStore,
        clock: Clock,
        config: HeadConfig,
        on_capacity: Callable[[], None],
        metrics: Metrics = NO_METRICS,
        may_renew: Callable[[], bool] = lambda: True,
    ) -> None:
        self.cluster = cluster
        self.metrics = metrics
        self.effects = effects
        self.output = output
        self.clock = clock
        self.config = config
        self._on_capacity = on_capacity
        # Whether this head may renew agents' task leases (headnode/services/lease.py holds()).
        self._may_renew = may_renew
        self.sessions: dict[str, Session] = {}
        # Nodes loaded from the store get the full grace period from start-up to reconnect.
        for node in cluster.nodes.values():
            node.seen_at = clock.monotonic()

    # -- sessions ------------------------------------------------------------------------

    async def open_session(self, hello: Hello, groups: tuple[str, ...] = (), node_token: str = "") -> Session:
        """`groups`: what a join token puts a new node in; `node_token`: its credential to hand back."""
        _validate_hello(hello)
        if not self._may_renew():
            raise Unavailable("this head node is not sure it still holds the leader lease; try the next one")
        old = self.sessions.get(hello.node_name)
        if old is not None and not old.closed:
            if old.instance_id != hello.instance_id:
                raise AlreadyExists(
                    f"node {hello.node_name!r} is already connected from another agent; "
                    f"stop that agent or start this one with a different --name"
                )
            old.close()  # the same agent reconnected before the old stream was noticed dead
        now = self.clock.now()
        node = self.cluster.nodes.get(hello.node_name)
        if node is None:
            node = Node(name=hello.node_name, capacity=hello.capacity, registered_at=now)
            self.cluster.nodes[node.name] = node
        same_agent = node.instance_id == hello.instance_id
        # Last heard of the attempts a new agent on an emptied state dir cannot report.
        doubtful_since = node.seen_at if hello.fresh_state and not same_agent else None
        if node.capacity != hello.capacity and node.registered_at != now:
            _log.info("node_capacity_changed", node=node.name, old=node.capacity.describe(),
                      new=hello.capacity.describe())
        node.capacity = hello.capacity
        node.hostname = hello.hostname
        node.agent_version = hello.agent_version
        node.instance_id = hello.instance_id
        node.agent_groups = hello.groups
        node.agent_labels = hello.labels
        self._set_condition(node, hello.condition)
        node.groups = node.groups | set(groups)
        node.connected = True
        node.last_heartbeat = now
        state = next_node_state(node.state, NodeEvent.RETURNED)
        if state is NodeState.ONLINE:
            node.set_state(state, "agent connected", now)
        node.seen_at = self.clock.monotonic()
        session = Session(node.name, hello.instance_id)
        self.sessions[node.name] = session
        resume = []
        for report in hello.tasks:
            alloc = node.allocations.get(report.task)
            if alloc is not None and alloc.attempt == report.attempt:
                resume.append((
                    report.task,
                    report.attempt,
                    self.output.size(report.task, "stdout"),
                    self.output.size(report.task, "stderr"),
                ))
        c = self.config
        session.send(Welcome(c.heartbeat_interval, tuple(resume), node_token, c.lease, c.kill_grace, c.stall_grace))
        _log.info("node_connected", node=node.name, hostname=node.hostname, cores=node.capacity.cores,
                  memory_mb=node.capacity.memory_mb, same_agent=same_agent, tasks=len(hello.tasks))
        await self._reconcile(node, session, hello.tasks, acked_seq=None, same_agent=same_agent,
                              persist_node=True, doubtful_since=doubtful_since)
        self._on_capacity()
        return session

    def close_session(self, session: Session) -> None:
        session.close()
        if self.sessions.get(session.node) is session:
            del self.sessions[session.node]
            node = self.cluster.nodes.get(session.node)
            if node is not None:
                node.connected = False
                _log.info("node_disconnected", node=node.name)

    def send(self, node_name: str, message: Instruction) -> int:
        """Queue a message to the node's open session; 0 when it has none."""
        session = self.sessions.get(node_name)
        if session is None or session.closed:
            return 0
        return session.send(message)

    # -- what agents report --------------------------------------------------------------

    async def handle(self, session: Session, event: AgentEvent) -> None:
        if session.closed:
            return
        node = self.cluster.nodes[session.node]
        node.seen_at = self.clock.monotonic()
        if isinstance(event, Output):
            alloc = node.allocations.get(event.task)
            if alloc is not None and alloc.attempt == event.attempt:
                self.output.write(event.task, event.stream, event.offset, event.data)
        elif isinstance(event, Heartbeat):
            if event.number and self._may_renew():
                session.send_soon(HeartbeatAck(event.number))  # renews the node's task lease
            node.last_heartbeat = self.clock.now()
            if event.condition != node.condition:
                self._set_condition(node, event.condition)
            node.heartbeats.append((node.last_heartbeat, sum(1 for r in event.tasks if r.running)))
            await self._reconcile(node, session, event.tasks, acked_seq=event.acked_seq, same_agent=True)
        elif isinstance(event, Started):
            alloc = node.allocations.get(event.task)
            if alloc is not None and alloc.attempt == event.attempt:
                alloc.started = True
        elif isinstance(event, Exited):
            await self._exited(node, session, event)

    def _set_condition(self, node: Node, condition: str) -> None:
        if condition != node.condition:
            (_log.warning if condition else _log.info)("node_condition", node=node.name,
                                                       condition=condition or "cleared")
            node.condition = condition
            if not condition:
                self._on_capacity()  # it takes work again

    async def _exited(self, node: Node, session: Session, event: Exited) -> None:
        alloc = node.allocations.get(event.task)
        if alloc is None or alloc.attempt != event.attempt:
            session.send(AckExit(event.task, event.attempt))  # stale: let the agent forget it
            return
        node.release(event.task)
        self.output.complete(event.task)
        ack = AckExit(event.task, event.attempt)
        found = self.cluster.find_instance(event.task)
        if found is not None and found[2].state is TaskState.RUNNING:
            node.last_exit = self.clock.now()  # a task that ran to its end: one taken back did not
        if found is not None:
            self.cluster.release_secondaries(event.task, event.attempt, found[2].hosts)
        await self.settle(node)
        if found is None or found[2].attempt != event.attempt or found[2].node != node.name:
            session.send(ack)
            self._on_capacity()
            return
        job, task, inst = found
        o = Outcome()
        # The head's clock stamps the head's history; an agent's clock may be skewed.
        if event.fenced:
            how = lifecycle.describe_exit(event.exit_code, event.signal, event.error)
            lifecycle.lost(job, task, inst, node.name, self.clock.now(), o,
                           f"fenced attempt {event.attempt}: its lease lapsed ({how})")
            _log.warning("task_fenced", job_id=job.id, task_id=str(inst.id), node=node.name, attempt=event.attempt)
        else:
            lifecycle.exited(job, task, inst, event.exit_code, event.signal, event.error, event.runtime_exceeded,
                             self.clock.now(), o, event.out_of_memory)
        self.metrics.run_ended(inst.state)
        _log.info("task_exited", job_id=job.id, task_id=str(inst.id), node=node.name,
                  exit_code=event.exit_code, signal=event.signal, state=inst.state.value)
        # The agent forgets the exit once acknowledged, so the ack waits until it is durable;
        # the stream is not held up meanwhile.
        self.effects.apply(o).add_done_callback(
            lambda f: None if f.cancelled() or f.exception() is not None or session.closed else session.send_soon(ack)
        )
        self._on_capacity()

    # -- reconciliation ------------------------------------------------------------------

    async def _reconcile(
        self,
        node: Node,
        session: Session,
        reports: tuple[TaskReport, ...],
        acked_seq: int | None,
        same_agent: bool,
        persist_node: bool = False,
        doubtful_since: float | None = None,
    ) -> None:
        """Carry out reconcile()'s decisions (see headnode/domain/reconcile.py). With
        `doubtful_since`, what would be lost at once is held instead (Allocation.doubtful_since)."""
        primary = {t: a for t, a in node.allocations.items() if not a.secondary and not a.doubtful_since}
        d = reconcile(primary, self._should_run, reports, acked_seq, same_agent)
        if doubtful_since is not None and d.lost:
            for task in d.lost:
                node.allocations[task].doubtful_since = doubtful_since or self.clock.monotonic()
            _log.warning("attempts_held", node=node.name, tasks=len(d.lost),
                         detail="a new agent on an emptied state dir: held until their lease has surely lapsed")
            d.lost = []
        for task, attempt, reason in d.kill:
            session.send(Kill(task, attempt, reason))
        for task, attempt in d.forget:
            session.send(AckExit(task, attempt))
        for task in d.confirmed:
            alloc = node.allocations[task]
            if alloc.launch_seq == 0:
                alloc.launch_seq = -1  # delivered in an earlier session
        for task in d.running:
            node.allocations[task].started = True
        dropped = [i for task in d.redeliver if (i := self._redeliver(node, session, node.allocations[task]))]
        lost = [node.allocations[task] for task in d.lost]
        for alloc in lost:
            if acked_seq is not None:
                _log.warning("task_vanished", node=node.name, task_id=str(alloc.task), attempt=alloc.attempt)
        if lost or dropped or persist_node:
            await self.lose(node, lost, dropped, persist_node)

    def _should_run(self, task_id: TaskId, attempt: int) -> bool:
        found = self.cluster.find_instance(task_id)
        return found is not None and found[2].state is TaskState.RUNNING and found[2].attempt == attempt

    def _redeliver(self, node: Node, session: Session, alloc: Allocation) -> Instance | None:
        """Send the launch again; returns the instance if instead its allocation was dropped."""
        found = self.cluster.find_instance(alloc.task)
        if found is None:
            node.release(alloc.task)
            return None
        job, task, inst = found
        if inst.state is TaskState.RUNNING and inst.attempt == alloc.attempt:
            alloc.launch_seq = session.send(Launch(inst.id, inst.attempt, resolve(job, task, inst)))
            return None
        # Stopped before it was ever delivered: nothing runs, so nothing to kill.
        node.release(alloc.task)
        self.cluster.release_secondaries(inst.id, inst.attempt, inst.hosts)
        inst.holding = False
        return inst

    async def lose(self, node: Node, allocs: list[Allocation], dropped: list[Instance], persist_node: bool,
                    what: str = "lost") -> None:
        """Release allocations whose processes are gone, fail or requeue their instances, persist."""
        o = Outcome()
        now = self.clock.now()
        for inst in dropped:
            job, task, _ = self.cluster.find_instance(inst.id) or (None, None, None)
            if job is not None:
                o.touch(job, task, inst)
            self.metrics.run_ended(inst.state)
        for alloc in allocs:
            node.release(alloc.task)
            found = self.cluster.find_instance(alloc.task)
            if found is None:
                continue
            job, task, inst = found
            if inst.attempt != alloc.attempt or not inst.holding:
                continue
            self.cluster.release_secondaries(inst.id, inst.attempt, inst.hosts)
            if alloc.secondary:
                # One node of a multi-node run is gone: stop the run where its process is.
                primary = self.cluster.nodes.get(inst.node)
                if primary is not None and primary.release(inst.id) is not None:
                    self.send(primary.name, Kill(inst.id, inst.attempt, f"node {node.name} of its allocation {what}"))
            lifecycle.lost(job, task, inst, node.name, now, o, what)
            self.metrics.run_ended(inst.state)
            _log.warning("task_lost", job_id=job.id, task_id=str(inst.id), node=node.name,
                         state=inst.state.value)
        await self.effects.apply(o, nodes=[node] if persist_node else [])
        if allocs or dropped:
            self._on_capacity()

    async def settle(self, node: Node) -> None:
        """A draining node whose last run ended is Offline."""
        if node.state is NodeState.DRAINING and not node.allocations and not node.reserved:
            node.set_state(next_node_state(node.state, NodeEvent.EMPTIED), f"drained ({node.reason})"
                           if not node.reason.startswith("drained") else node.reason, self.clock.now())
            _log.info("node_drained", node=node.name)
            await self.effects.apply(Outcome(), nodes=[node])

    # -- liveness ------------------------------------------------------------------------

    def grace_all(self, extra: float = 0.0) -> None:
        """Every node's silence counts from now (plus `extra`): the head was not running, or
        has just started or taken over."""
        at = self.clock.monotonic() + extra
        for node in self.cluster.nodes.values():
            node.seen_at = max(node.seen_at, at)
            for alloc in node.allocations.values():
                if alloc.doubtful_since:
                    alloc.doubtful_since = max(alloc.doubtful_since, at)

    async def run_liveness(self) -> None:
        """Declare nodes Unreachable after node_lost_after seconds of silence, never counting
        a stall of the head's own as their silence."""
        period = min(1.0, self.config.heartbeat_interval)
        last = self.clock.monotonic()
        while True:
            await self.clock.sleep(period)
            now = self.clock.monotonic()
            if now - last > period + STALL_TOLERANCE:
                _log.warning("head_stalled", seconds=round(now - last - period, 1),
                             detail="every node gets a fresh grace: the head's own stall is no node's silence")
                self.grace_all()
            last = now
            await self.check_liveness()

    async def check_liveness(self) -> None:
        mono = self.clock.monotonic()
        limit = self.config.node_lost_after
        for node in list(self.cluster.nodes.values()):
            held = [a for a in node.allocations.values() if a.doubtful_since and mono - a.doubtful_since > limit]
            if held:
                await self.lose(node, held, [], persist_node=False, what="restarted on an emptied state dir")
        for node in list(self.cluster.nodes.values()):
            if node.state not in (NodeState.ONLINE, NodeState.DRAINING) or mono - node.seen_at <= limit:
                continue
            session = self.sessions.get(node.name)
            if session is not None:
                self.close_session(session)
            node.set_state(next_node_state(node.state, NodeEvent.LOST), f"no heartbeat for {limit:g}s",
                           self.clock.now())
            _log.warning("node_unreachable", node=node.name, tasks=len(node.allocations))
            await self.lose(node, list(node.allocations.values()), [], persist_node=True)
        for node in list(self.cluster.nodes.values()):
            await self.settle(node)


def _validate_hello(hello: Hello) -> None:
    if not hello.node_name or len(hello.node_name) > MAX_NODE_NAME or not hello.node_name.isprintable() \
            or any(c.isspace() for c in hello.node_name):
        raise InvalidArgument(f"node name {quote(hello.node_name, 64)!r} must "
                              f"be 1 to {MAX_NODE_NAME} printable characters with no spaces")
    for what, items in (("group", hello.groups), ("label", hello.labels)):
        if len(items) > MAX_NODE_TAGS:
            raise InvalidArgument(f"the agent declares {len(items)} {what}s; at most {MAX_NODE_TAGS}")
        for item in items:
            if why := check_token(item, what):
                raise InvalidArgument(why)
    if not hello.instance_id:
        raise InvalidArgument("hello.instance_id is empty: the agent must send a random id per process")
    if hello.capacity.cores < 1:
        raise InvalidArgument(f"hello.capacity.cores must be at least 1, got {hello.capacity.cores}")
    if hello.capacity.memory_mb < 0:
        raise InvalidArgument(f"hello.capacity.memory_mb must be >= 0, got {hello.capacity.memory_mb}")
