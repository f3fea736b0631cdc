"""schedule(snapshot, now) -> Plan: the pure scheduling core.

No I/O, no clock reads, no gRPC types: the same function drives the head node and can replay
a trace in simulated time. For each queued task, in queue order, and for each of its waiting
instances: filter the nodes (keeping why each was rejected), score those left, place on the
best (board.py keeps that fast). An instance gets its task's minimum cores, or more up to its
maximum when the node has them free; an exclusive one gets a whole free node; a multi-node
one gets several nodes at once (whole nodes when it asks for N nodes, else cores spread
over as few nodes as it can when it asks for more than any node has). The instances of a
multi-instance task start together or not at all. Tasks of a job with a reservation run
inside the job's own allocation (pools.py).

The queue comes in priority order (policy.py: level, then offset plus fair-share, then
submission). The first task that could run but does not fit right now is blocked: under
"fcfs" it stops the pass and everything behind it waits; under "easy" it gets a
reservation and the pass goes on, starting only what cannot delay it (backfill.py). Either
way a wide task is never starved by narrow ones behind it. A task that could never fit on
any available node does not block the queue; its reason says why, and the plan names it
(Plan.never) so the caller can set it aside until the nodes change. An owner over the
running-cores limit is skipped, not blocking (Plan.held: aside until one of its runs ends).
With preemption on, a blocked task of a higher level names lower-level runs to stop.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from common.ids import TaskId
from common.resources import CORES, ZERO, Resources, fits
from headnode.scheduling.backfill import Reservation, may_backfill, releases, reserve, runtime, victims
from headnode.scheduling.board import SINGLE, WHOLE_NODES, Board
from headnode.scheduling.feasibility import Rejection, Why, explain, never_fits
from headnode.scheduling.policy import EASY, LEVELS, Policy
from headnode.scheduling.pools import Grant, Pools
from headnode.scheduling.snapshot import Running, Snapshot, TaskRequest

DEFAULT = Policy()


@dataclass(slots=True)
class Placement:
    task: TaskId
    node: str
    resources: Resources  # what the instance is given on `node`
    # A multi-node instance's other nodes and what it holds on each.
    extra: tuple[tuple[str, Resources], ...] = ()
    # Inside its job's reservation: what is charged to the node beyond the reserved cores.
    charged: Resources | None = None


@dataclass
class Plan:
    placements: tuple[Placement, ...] = ()
    # Why each task the pass looked at and could not (fully) place is still waiting.
    pending: dict[TaskId, str] = field(default_factory=dict)
    # The task that stopped the pass; queued tasks behind it were not looked at.
    blocked_at: TaskId | None = None
    reserve: tuple[Grant, ...] = ()
    release: tuple[Grant, ...] = ()
    # Jobs that now hold their reservation's minimum for the first time (they turn Running).
    started: tuple[int, ...] = ()
    # Runs to stop and requeue so a higher priority level can start, with the reason.
    preempt: tuple[tuple[TaskId, str], ...] = ()
    # EASY: the blocked task's reservation (task, earliest start).
    reserved: tuple[TaskId, float] | None = None
    # Why every queued task not in `pending` waits, when that is the same for all: no node
    # takes work (_Pass.nowhere).
    everyone: str = ""
    # Tasks that could never start on the nodes as they are (each too small for them, ruled
    # out by their placement, or not taking work), whatever ends: the caller may set them
    # aside until a node joins or changes, so later passes do not look at them again.
    never: tuple[TaskId, ...] = ()
    # Tasks none of whose instances may start because their owner runs as many cores as the
    # limit allows, each with the cores it needs at once: the caller may set them aside until
    # one of the owner's runs ends. `room`: how many more cores each of their owners' limit
    # lets start once this plan's placements run.
    held: tuple[tuple[TaskId, int], ...] = ()
    room: dict[str, int] = field(default_factory=dict)


def schedule(snapshot: Snapshot, now: float, policy: Policy | str = DEFAULT, reasons: bool = True) -> Plan:
    """One pass. `policy` may be a placement name alone ("pack", "spread") for FCFS.
    `reasons=False`: the plan's pending reasons are left empty (its keys are the same), for a
    caller that reads none, such as the trace replay (their text was a tenth of its time);
    what the pass places, reserves and sets aside is the same either way."""
    if isinstance(policy, str):
        policy = Policy(placement=policy)
    return _Pass(snapshot, now, policy, reasons).run()


class _Pass:
    def __init__(self, snapshot: Snapshot, now: float, policy: Policy, reasons: bool = True) -> None:
        self.snapshot, self.now, self.policy, self.reasons = snapshot, now, policy, reasons
        self.board = Board(tuple(snapshot.nodes), policy.placement)
        self.pools = Pools(self.board, dict(snapshot.pools))
        self.placements: list[Placement] = []
        self.pending: dict[TaskId, str] = {}
        self.blocked_at: TaskId | None = None
        self.reservation: Reservation | None = None
        self.preempt: dict[TaskId, str] = {}
        self.never: list[TaskId] = []
        self.held: list[tuple[TaskId, int]] = []
        self._held_owners: set[str] = set()
        self.made: list[tuple[float, str, Resources]] = []  # releases of this pass's placements
        self._running: list[Running] | None = None
        self._owner_cores: dict[str, int] | None = None
        self._refused: str | None = None  # the pending reason of what backfill refuses

    @property
    def running(self) -> list[Running]:
        if self._running is None:
            self._running = list(self.snapshot.running)
        return self._running

    def run(self) -> Plan:
        looked = 0
        board, pooled, pending = self.board, self.pools.pools, self.pending
        if not pooled and all(n.unavailable for n in board.nodes):
            return self.nowhere()
        unlimited = not self.policy.max_running_cores
        depth = self.policy.backfill_depth
        for request in self.snapshot.queue:
            if self.reservation is not None:
                looked += 1
                free = board.free_cores
                if looked > depth or free <= 0:
                    break
                if unlimited and request.resources.cores > free and (not pooled or request.id.job not in pooled):
                    # Most of a long backfill scan on a busy cluster asks for more cores than
                    # are free in all: settled here as _backfill would settle it (_refuse), with
                    # no node search (which was a third of a trace replay's time).
                    pending.setdefault(request.id, self._refusal())
                    continue
            if self._step(request):
                break
        release = self.pools.shrink()
        return Plan(tuple(self.placements), self.pending, self.blocked_at, tuple(self.pools.reserve),
                    tuple(release), tuple(self.pools.started), tuple(self.preempt.items()),
                    (self.reservation.request.id, self.reservation.at) if self.reservation else None,
                    never=tuple(self.never), held=tuple(self.held), room=self._room())

    def nowhere(self) -> Plan:
        """No node takes work (none has registered, or each is drained, down or disconnected):
        nothing can be placed and every queued task waits for the same reason. The pass
        gives that reason to all (Plan.everyone) and looks no further than the first task,
        so it costs what a pass over one task does: each of them used to be looked at in turn
        (none blocks the queue when no node could take it), 21 ms of the head's CPU per
        submission with 2,000 jobs queued. Nothing blocks: no task holds the others up."""
        first = next(iter(self.snapshot.queue), None)
        if first is None:
            return Plan()
        nodes = self.board.nodes
        reason = explain(first.resources, [Rejection(n.name, Why.UNAVAILABLE, n.unavailable) for n in nodes],
                         nodes) if self.reasons else ""
        return Plan(pending={first.id: reason}, everyone=reason)

    def _step(self, request: TaskRequest) -> bool:
        """Look at one queued task; True stops the pass."""
        if request.job in self.pools:
            out = self.pools.place(request)
            self.placements += [Placement(request.id, n, g, charged=c) for n, g, c in out.placed]
            if len(out.placed) < request.count:
                self.pending[request.id] = out.reason if self.reasons else ""
            if out.block and self.reservation is None:
                self.blocked_at = request.id
                return True
            return False
        count = self._within_limit(request)
        if count is None:
            self.never.append(request.id)
            return False
        if count == 0:
            self.held.append((request.id, _at_once(request)))
            self._held_owners.add(request.owner)
            return False
        if self.reservation is not None:
            self._backfill(request, count)
            return False
        if request.gang:
            self.board.mark()
            placed = _place(self.board, request, count)
            if len(placed) == count:
                self.board.commit()
                self._record(request, placed)
                return False
            if self.reasons:
                reason = _reason(self.board, request, self.board.rejections(request))
                self.pending[request.id] = f"its {count} instances must start together: {reason}"
            else:
                self.pending[request.id] = ""
            self.board.rollback()
            if not _could_ever(self.board, request, count):
                self.never.append(request.id)
                return False  # could not start together even on an empty cluster: do not block
            return self._blocked(request)
        placed = _place(self.board, request, count)
        self._record(request, placed)
        if len(placed) == request.count:
            return False
        if len(placed) == count:
            return False  # the rest is held back by the owner's limit (its reason says so)
        rejections = self.board.rejections(request)
        self.pending[request.id] = _reason(self.board, request, rejections) if self.reasons else ""
        if never_fits(rejections) or not _could_ever(self.board, request, 1):
            if not placed:
                self.never.append(request.id)
            return False
        return self._blocked(request)

    def _blocked(self, request: TaskRequest) -> bool:
        """The first task that could run but does not fit now: preempt for it, reserve for it
        (EASY: the pass goes on, backfilling), or stop the pass (FCFS)."""
        self.blocked_at = request.id
        if self.policy.preemption:
            chosen = victims(self.board, request, self.running)
            for r in chosen or ():
                self.preempt[r.task] = f"preempted by job {request.job} ({LEVELS[request.level]} priority)"
            if chosen and self.reasons:
                self.pending[request.id] += f"; preempting {len(chosen)} lower-priority task(s)"
        if self.policy.name != EASY:
            return True
        self.reservation = reserve(self.board, request, releases(self.running, self.now) + self.made, self.now)
        if self.reservation is None:
            return True
        if self.reasons:
            self.pending[request.id] += f"; reserved to start in {_seconds(self.reservation.at - self.now)}"
        return False

    def _backfill(self, request: TaskRequest, count: int) -> None:
        """Start what cannot delay the reservation (EASY)."""
        res = self.reservation
        assert res is not None
        placed = self._fill(request, count, res) if request.resources.cores <= self.board.free_cores else []
        self._record(request, placed)
        self._refuse(request, placed)

    def _refuse(self, request: TaskRequest, placed: list[Placement]) -> None:
        """The pending reason of what backfill could not start (all or some of)."""
        if len(placed) < request.count and request.id not in self.pending:
            self.pending[request.id] = self._refusal()

    def _refusal(self) -> str:
        """The reason for all that backfill refuses in this pass, made once."""
        if self._refused is None:
            res = self.reservation
            assert res is not None
            self._refused = (f"waiting for resources: starting it now would delay job {res.request.job}, "
                             f"reserved to start in {_seconds(res.at - self.now)}") if self.reasons else ""
        return self._refused

    def _fill(self, request: TaskRequest, count: int, res: Reservation) -> list[Placement]:
        ends = self.now + runtime(request, self.policy.default_runtime)
        if ends > res.at and request.resources.cores > res.spare_cores:
            # Most of a long backfill scan: it would outlast the reservation's start, and no
            # node has that many cores spare beyond it (84% of the _fill calls of a trace replay).
            return []
        board = self.board
        placed: list[Placement] = []
        mode = board.klass(request).mode
        if mode == SINGLE and not request.gang:
            for _ in range(count):
                if ends <= res.at:
                    name = board.best(request)
                    given = board.given(request, name) if name else None
                else:
                    name = board.best(request, lambda n: fits(_unit(board, request, n), res.extra.get(n, ZERO)))
                    given = _unit(board, request, name) if name else None
                if name is None or given is None or not may_backfill(res, [(name, given)], ends):
                    break
                board.take(name, given, request.job, request.job_exclusive)
                placed.append(Placement(request.id, name, given))
        elif ends <= res.at:  # a gang or a multi-node task: only when it ends before the reservation
            board.mark()
            placed = _place(board, request, count)
            if len(placed) == count:
                board.commit()
            else:
                board.rollback()
                placed = []
        return placed

    def _record(self, request: TaskRequest, placed: list[Placement]) -> None:
        self.placements += placed
        if not placed:
            return
        ends = self.now + runtime(request, self.policy.default_runtime)
        cores = 0
        for p in placed:
            for node, given in ((p.node, p.resources), *p.extra):
                self.made.append((ends, node, given))
                cores += given.cores
        if self._owner_cores is not None:
            self._owner_cores[request.owner] = self._owner_cores.get(request.owner, 0) + cores

    def _room(self) -> dict[str, int]:
        owners, limit = self._owner_cores or {}, self.policy.max_running_cores
        return {o: max(0, limit - owners.get(o, 0)) for o in sorted(self._held_owners)}

    def _within_limit(self, request: TaskRequest) -> int | None:
        """How many of the request's instances its owner's running-cores limit lets start;
        None: never any (one instance, or a gang's all, needs more cores than the limit)."""
        limit = self.policy.max_running_cores
        if not limit:
            return request.count
        at_once = _at_once(request)
        if at_once > limit:
            self.pending[request.id] = (f"needs {at_once} cores at once, more than the owner limit of {limit} "
                                        f"(max_running_cores_per_owner)") if self.reasons else ""
            return None
        if self._owner_cores is None:
            self._owner_cores = {}
            for r in self.running:
                if not r.dying:
                    self._owner_cores[r.owner] = self._owner_cores.get(r.owner, 0) + sum(g.cores for _, g in r.parts)
        used = self._owner_cores.get(request.owner, 0)
        each = request.resources.cores * max(1, request.nodes)
        allowed = max(0, (limit - used) // max(1, each))
        if allowed >= request.count:
            return request.count
        if request.gang and allowed < request.count:
            allowed = 0
        self.pending[request.id] = (f"held back by the owner limit: {request.owner} runs {used} of at most "
                                    f"{limit} cores") if self.reasons else ""
        return allowed


def _at_once(request: TaskRequest) -> int:
    """The cores of the request's owner limit one instance (a gang: all of them) takes."""
    return request.resources.cores * max(1, request.nodes) * (request.count if request.gang else 1)


def _unit(board: Board, request: TaskRequest, node: str) -> Resources:
    """What one instance takes on `node` at the least (a whole node when exclusive)."""
    return board.view[node].capacity if request.exclusive else request.resources


def _seconds(s: float) -> str:
    s = max(0.0, s)
    if s < 120:
        return f"{s:.0f}s"
    if s < 7200:
        return f"{s / 60:.0f}m"
    return f"{s / 3600:.1f}h"


def _place(board: Board, request: TaskRequest, count: int) -> list[Placement]:
    """Place up to `count` instances; stops at the first that fits nowhere."""
    placed: list[Placement] = []
    mode = board.klass(request).mode
    for _ in range(count):
        if mode == SINGLE:
            name = board.best(request)
            if name is None:
                break
            given = board.given(request, name)
            board.take(name, given, request.job, request.job_exclusive)
            placed.append(Placement(request.id, name, given))
            continue
        parts = board.multi(request)
        if parts is None:
            break
        for name, given in parts:
            board.take(name, given, request.job, request.job_exclusive)
        placed.append(Placement(request.id, parts[0][0], parts[0][1], tuple(parts[1:])))
    return placed


def _reason(board: Board, request: TaskRequest, rejections: list[Rejection]) -> str:
    text = explain(request.resources, rejections, board.nodes)
    k = board.klass(request)
    if k.mode != SINGLE:
        what = f"{request.nodes} whole nodes" if request.nodes else f"{request.resources.cores} cores over several nodes"
        if k.mode == WHOLE_NODES and 0 < len(k.candidates) < request.nodes:
            text = f"only {len(k.candidates)} of the {len(board.nodes)} nodes can take it"
        return f"needs {what} at once: {text}"
    if never_fits(rejections) and any(r.why is Why.TOO_SMALL and r.shortfall and r.shortfall.dimension == CORES
                                      for r in rejections):
        span = [n for n in board.nodes if not n.unavailable]
        total = sum(n.capacity.cores for n in span)
        text += f", and all online nodes together have {total}"
    return text


def _could_ever(board: Board, request: TaskRequest, count: int) -> bool:
    """Whether `count` instances would fit at once on the empty nodes that pass the filters
    (for multi-node ones: whether there are enough such nodes, or cores on them)."""
    k = board.klass(request)
    if k.mode == WHOLE_NODES:
        return len(k.candidates) >= request.nodes * count
    if k.mode != SINGLE:
        return sum(board.view[n].capacity.cores for n in k.candidates) >= request.resources.cores * count
    need = request.resources
    room = 0
    for name in k.candidates:
        capacity = board.view[name].capacity
        if request.exclusive:
            room += 1
            continue
        n = capacity.cores // max(1, need.cores)
        if need.memory_mb:
            n = min(n, capacity.memory_mb // need.memory_mb)
        for dim, value in need.generic:
            n = min(n, capacity.get(dim) // value)
        room += n if fits(need, capacity) else 0
    return room >= count
