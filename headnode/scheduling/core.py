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

Policy is strict first-come first-served (within priority order, which the queue already
has): the first task that could run but does not fit right now stops the pass, and
everything behind it waits (no backfill yet, so a wide task is never starved by narrow ones
behind it). A task that could never fit on any available node does not block the queue;
its reason says why.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from common.ids import TaskId
from common.resources import CORES, Resources, shortfall
from headnode.scheduling.board import SINGLE, WHOLE_NODES, Board
from headnode.scheduling.feasibility import Rejection, Why, explain, never_fits
from headnode.scheduling.pools import Grant, Pools
from headnode.scheduling.snapshot import Snapshot, TaskRequest


@dataclass(frozen=True, slots=True)
class Placement:
    task: TaskId
    node: str
    resources: Resources  # what the instance is given on `node`
    # A multi-node instance's other nodes and what it holds on each.
    extra: tuple[tuple[str, Resources], ...] = ()
    # Inside its job's reservation: what is charged to the node beyond the reserved cores.
    charged: Resources | None = None


@dataclass(frozen=True)
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


def schedule(snapshot: Snapshot, now: float, policy: str = "pack") -> Plan:
    del now  # part of the seam: time-aware policies (backfill, fair-share) use it
    board = Board(tuple(snapshot.nodes), policy)
    pools = Pools(board, dict(snapshot.pools))
    placements: list[Placement] = []
    pending: dict[TaskId, str] = {}
    blocked_at = None
    for request in snapshot.queue:
        if request.job in pools:
            out = pools.place(request)
            placements += [Placement(request.id, n, g, charged=c) for n, g, c in out.placed]
            if len(out.placed) < request.count:
                pending[request.id] = out.reason
            if out.block:
                blocked_at = request.id
                break
            continue
        if request.gang:
            board.mark()
            placed = _place(board, request, request.count)
            if len(placed) == request.count:
                board.commit()
                placements += placed
                continue
            reason = _reason(board, request, board.rejections(request))
            board.rollback()
            pending[request.id] = f"its {request.count} instances must start together: {reason}"
            if not _could_ever(board, request, request.count):
                continue  # could not start together even on an empty cluster: do not block
            blocked_at = request.id
            break
        placed = _place(board, request, request.count)
        placements += placed
        if len(placed) == request.count:
            continue
        rejections = board.rejections(request)
        pending[request.id] = _reason(board, request, rejections)
        if not never_fits(rejections) and _could_ever(board, request, 1):
            blocked_at = request.id
            break
    release = pools.shrink()
    return Plan(tuple(placements), pending, blocked_at, tuple(pools.reserve), tuple(release), tuple(pools.started))


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
        room += n if shortfall(need, capacity) is None else 0
    return room >= count
