"""schedule(snapshot, now) -> Plan: the pure scheduling core.

No I/O, no clock reads, no gRPC types: the same function drives the head node and can replay
a trace in simulated time. For each queued task, in queue order: filter the nodes (keeping
why each was rejected), score those left, place on the best.

Policy in v0 is strict first-come first-served: the first task that could run on some node
but does not fit anywhere right now stops the pass, and everything behind it waits (no
backfill yet, so a wide task is never starved by narrow ones behind it). A task that could
never fit on any available node does not block the queue; its reason says why.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from common.ids import TaskId
from common.resources import Resources
from headnode.scheduling.feasibility import Rejection, check, explain, never_fits
from headnode.scheduling.ranking import score
from headnode.scheduling.snapshot import Snapshot


@dataclass(frozen=True, slots=True)
class Placement:
    task: TaskId
    node: str
    resources: Resources


@dataclass(frozen=True)
class Plan:
    placements: tuple[Placement, ...] = ()
    # Why each task the pass looked at and did not place is still waiting.
    pending: dict[TaskId, str] = field(default_factory=dict)
    # The task that stopped the pass; queued tasks behind it were not looked at.
    blocked_at: TaskId | None = None


def schedule(snapshot: Snapshot, now: float, policy: str = "pack") -> Plan:
    del now  # part of the seam: time-aware policies (backfill, fair-share) use it
    free = {n.name: n.free for n in snapshot.nodes}
    placements: list[Placement] = []
    pending: dict[TaskId, str] = {}
    for request in snapshot.queue:
        best: tuple[float, str] | None = None
        rejections: list[Rejection] = []
        for node in snapshot.nodes:
            rejection = check(node, free[node.name], request.resources)
            if rejection is not None:
                rejections.append(rejection)
                continue
            s = score(node.capacity, free[node.name] - request.resources, policy)
            # Highest score wins; among equals, the first name in sort order.
            if best is None or s > best[0] or (s == best[0] and node.name < best[1]):
                best = (s, node.name)
        if best is not None:
            node_name = best[1]
            free[node_name] = free[node_name] - request.resources
            placements.append(Placement(request.id, node_name, request.resources))
            continue
        pending[request.id] = explain(request.resources, rejections, snapshot.nodes)
        if not never_fits(rejections):
            return Plan(tuple(placements), pending, blocked_at=request.id)
    return Plan(tuple(placements), pending)
