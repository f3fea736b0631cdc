"""schedule(snapshot, now) -> Plan: the pure scheduling core.

No I/O, no clock reads, no gRPC types: the same function drives the head node and can replay
a trace in simulated time. For each queued task, in queue order, and for each of its waiting
instances: filter the nodes (keeping why each was rejected), score those left, place on the
best. An instance gets its task's minimum cores, or more up to its maximum when the node has
them free; an exclusive one gets a whole free node. The instances of a multi-instance task
start together or not at all.

Policy is strict first-come first-served (within priority order, which the queue already
has): the first task that could run but does not fit right now stops the pass, and
everything behind it waits (no backfill yet, so a wide task is never starved by narrow ones
behind it). A task that could never fit on any available node does not block the queue;
its reason says why.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from common.ids import TaskId
from common.resources import Resources
from headnode.scheduling.feasibility import Rejection, check, explain, never_fits
from headnode.scheduling.ranking import score
from headnode.scheduling.snapshot import NodeView, Snapshot, TaskRequest


@dataclass(frozen=True, slots=True)
class Placement:
    task: TaskId
    node: str
    resources: Resources  # what the instance is given


@dataclass(frozen=True)
class Plan:
    placements: tuple[Placement, ...] = ()
    # Why each task the pass looked at and could not (fully) place is still waiting.
    pending: dict[TaskId, str] = field(default_factory=dict)
    # The task that stopped the pass; queued tasks behind it were not looked at.
    blocked_at: TaskId | None = None


def schedule(snapshot: Snapshot, now: float, policy: str = "pack") -> Plan:
    del now  # part of the seam: time-aware policies (backfill, fair-share) use it
    free = {n.name: n.free for n in snapshot.nodes}
    placements: list[Placement] = []
    pending: dict[TaskId, str] = {}
    for request in snapshot.queue:
        if request.gang:
            trial = dict(free)
            placed, rejections = _place(snapshot.nodes, trial, request, request.count, policy)
            if len(placed) == request.count:
                free = trial
                placements += placed
                continue
            reason = explain(request.resources, rejections, snapshot.nodes)
            pending[request.id] = f"its {request.count} instances must start together: {reason}"
            empty = {n.name: n.capacity for n in snapshot.nodes}
            if len(_place(snapshot.nodes, empty, request, request.count, policy)[0]) < request.count:
                continue  # could not start together even on an empty cluster: do not block
            return Plan(tuple(placements), pending, blocked_at=request.id)
        placed, rejections = _place(snapshot.nodes, free, request, request.count, policy)
        placements += placed
        if len(placed) == request.count:
            continue
        pending[request.id] = explain(request.resources, rejections, snapshot.nodes)
        if not never_fits(rejections):
            return Plan(tuple(placements), pending, blocked_at=request.id)
    return Plan(tuple(placements), pending)


def _place(
    nodes: tuple[NodeView, ...], free: dict[str, Resources], request: TaskRequest, count: int, policy: str
) -> tuple[list[Placement], list[Rejection]]:
    """Place up to `count` instances, updating `free`; stops at the first that fits nowhere."""
    placed: list[Placement] = []
    for _ in range(count):
        best: tuple[float, str] | None = None
        rejections: list[Rejection] = []
        for node in nodes:
            rejection = check(node, free[node.name], request.resources, request.exclusive)
            if rejection is not None:
                rejections.append(rejection)
                continue
            s = score(node.capacity, free[node.name] - request.resources, policy)
            # Highest score wins; among equals, the first name in sort order.
            if best is None or s > best[0] or (s == best[0] and node.name < best[1]):
                best = (s, node.name)
        if best is None:
            return placed, rejections
        name = best[1]
        node_free = free[name]
        if request.exclusive:
            given = next(n.capacity for n in nodes if n.name == name)
        else:
            cores = min(max(request.max_cores, request.resources.cores), node_free.cores)
            given = Resources(cores, request.resources.memory_mb)
        free[name] = node_free - given
        placed.append(Placement(request.id, name, given))
    return placed, []
