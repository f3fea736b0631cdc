"""EASY backfilling and preemption choices (pure; used by core.py).

EASY (Lifka's Extensible Argonne Scheduling sYstem, Slurm's backfill with one reservation):
the first task in the queue that cannot start now gets a reservation: the earliest time
at which, from the runtime limits of what is running (or the policy's default limit for
work that has none), enough resources will be free for it, and the nodes it would use then.
Tasks behind it may start now only if they cannot delay it: they end (by their runtime
limit) before the reservation's time, or they use only resources the reservation will not
need (`extra`, what will be free at that time beyond what it takes).

Preemption: a blocked task of a higher priority level may stop runs of lower levels (the
lowest level first, then the latest to end) on the one node where the fewest must stop for
it to fit; runs already being stopped count as freed, so a pass never preempts twice for
the same task.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from operator import itemgetter

from common.resources import ZERO, Resources, fits
from headnode.scheduling.board import SINGLE, Board
from headnode.scheduling.snapshot import NodeView, Running, TaskRequest

Parts = list[tuple[str, Resources]]
_WHEN_WHERE = itemgetter(0, 1)  # a release's (time, node)


@dataclass
class Reservation:
    request: TaskRequest
    at: float
    parts: Parts
    extra: dict[str, Resources] = field(default_factory=dict)
    # The most cores `extra` had on any node when reserved: no more once backfill takes some,
    # so a run that ends after `at` and needs more than this cannot start (no node search).
    spare_cores: int = 0


def runtime(request: TaskRequest, default: float) -> float:
    return request.runtime if request.runtime > 0 else default


def releases(running: Iterable[Running], now: float) -> list[tuple[float, str, Resources]]:
    out = []
    append = out.append
    for r in running:
        end = now if r.dying or r.ends < now else r.ends
        for node, res in r.parts:
            append((end, node, res))
    return out


def reserve(board: Board, request: TaskRequest, freed: Sequence[tuple[float, str, Resources]], now: float
            ) -> Reservation | None:
    """When and where the blocked request could start, as running work ends; None: never."""
    k = board.klass(request)
    candidates = set(k.candidates)
    if not candidates:
        return None
    projected = dict(board.free)
    events = sorted(freed, key=_WHEN_WHERE)
    single = k.mode == SINGLE and not request.gang
    i = 0
    while i < len(events):
        at = events[i][0]
        touched = set()
        while i < len(events) and events[i][0] == at:
            _, node, res = events[i]
            if node in projected:
                projected[node] = projected[node] + res
                touched.add(node)
            i += 1
        if not touched & candidates:
            continue
        parts = _fit_single(board, request, projected, sorted(touched & candidates)) if single \
            else _fit_on(board, request, projected)
        if parts is not None:
            extra = dict(projected)
            for node, res in parts:
                extra[node] = extra[node] - res
            return Reservation(request, max(at, now), parts, extra, max((e.cores for e in extra.values()), default=0))
    return None


def _fit_single(board: Board, r: TaskRequest, projected: dict[str, Resources], nodes: list[str]) -> Parts | None:
    for name in nodes:
        capacity = board.view[name].capacity
        need = capacity if r.exclusive else r.resources
        if fits(need, projected[name]) and (not r.exclusive or projected[name] == capacity):
            return [(name, need)]
    return None


def _fit_on(board: Board, r: TaskRequest, projected: dict[str, Resources]) -> Parts | None:
    """Place one unit (all of a gang, or one multi-node instance) on the projected free state."""
    views = tuple(NodeView(n.name, n.capacity, n.capacity - projected[n.name], n.unavailable, n.groups, n.labels)
                  for n in board.nodes)
    trial = Board(views, board.policy)
    parts: Parts = []
    mode = trial.klass(r).mode
    for _ in range(r.count if r.gang else 1):
        if mode == SINGLE:
            name = trial.best(r)
            if name is None:
                return None
            given = trial.given(r, name)
            trial.take(name, given, r.job, False)
            parts.append((name, given))
        else:
            found = trial.multi(r)
            if found is None:
                return None
            for name, given in found:
                trial.take(name, given, r.job, False)
            parts += found
    return parts


def may_backfill(res: Reservation, parts: Parts, ends: float) -> bool:
    """Whether a run on `parts` ending by `ends` leaves the reservation's start intact; if it
    does only by using spare resources, they are taken from `extra`."""
    if ends <= res.at:
        return True
    if not all(fits(given, res.extra.get(node, ZERO)) for node, given in parts):
        return False
    for node, given in parts:
        res.extra[node] = res.extra[node] - given
    return True


def victims(board: Board, request: TaskRequest, running: Sequence[Running]) -> list[Running] | None:
    """Runs of lower priority levels to stop so that one instance of `request` fits on a
    node; [] when runs already stopping will make room; None when preempting cannot help."""
    k = board.klass(request)
    if k.mode != SINGLE or request.gang:
        return None
    by_node: dict[str, list[Running]] = {}
    dying: dict[str, Resources] = {}
    for r in running:
        node, res = r.parts[0]
        if len(r.parts) > 1:
            continue
        if r.dying:
            dying[node] = dying.get(node, ZERO) + res
        elif r.level < request.level:
            by_node.setdefault(node, []).append(r)
    best: tuple[tuple[int, int], str, list[Running]] | None = None
    for name in k.candidates:
        free = board.free[name] + dying.get(name, ZERO)
        need = board.view[name].capacity if request.exclusive else request.resources
        if fits(need, free):
            return []  # what is already stopping will do
        chosen: list[Running] = []
        for r in sorted(by_node.get(name, ()), key=lambda r: (r.level, -r.ends, str(r.task))):
            chosen.append(r)
            free = free + r.parts[0][1]
            if fits(need, free):
                cost = (len(chosen), sum(r.level for r in chosen))
                if best is None or (cost, name) < (best[0], best[1]):
                    best = (cost, name, chosen)
                break
    return best[2] if best else None
