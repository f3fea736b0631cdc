"""Dispatch ahead (HPC Pack's Dispatching), pure: which queued tasks to send to nodes that
have no room for them yet, so that each node's agent starts the next one the moment one of
its tasks ends, without a round trip to the head.

A node gets room ahead (dispatch_ahead times its cores and memory) only if a task on it
ended within the last dispatch_ahead_wait seconds: a node running long tasks would only hold
what it was sent until the head took it back. The queue goes out in order, as a
first-come-first-served pass of the core over the nodes given that room, and stops at the
first task that may not go ahead: one asking for more than a share of one node (several
nodes, a whole node, generic resources, a range of cores, a gang start) or for more than the
smallest such node has, since its agent must be able to run it alone. The allocator commits
what this returns with the same fit check, against free resources plus the room.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import replace
from itertools import takewhile

from common.resources import ZERO, Resources, fits
from headnode.scheduling.core import Plan, schedule
from headnode.scheduling.policy import FCFS, Policy
from headnode.scheduling.snapshot import NodeView, Running, Snapshot, TaskRequest


def room(capacity: Resources, last_exit: float, now: float, policy: Policy) -> Resources:
    """What a schedulable node may be sent beyond its free resources (ZERO: nothing)."""
    if not policy.dispatch_ahead or now - last_exit > policy.dispatch_ahead_wait:
        return ZERO
    return Resources(math.ceil(capacity.cores * policy.dispatch_ahead), int(capacity.memory_mb * policy.dispatch_ahead))


def may_go_ahead(r: TaskRequest, smallest: Resources) -> bool:
    return not (r.nodes or r.exclusive or r.job_exclusive or r.gang or r.max_cores or r.resources.generic) \
        and fits(r.resources, smallest)


def plan(nodes: Iterable[NodeView], rooms: Mapping[str, Resources], queue: Iterable[TaskRequest],
         running: Iterable[Running], now: float, policy: Policy) -> Plan:
    """Placements ahead on the nodes named in `rooms` (each given its room on top of its
    capacity), for the queue in order up to the first task that may not go ahead. Its pending
    reasons are left empty: the allocator takes only the placements (a task's reason is the
    main pass's)."""
    views = [n for n in nodes if n.name in rooms]
    if not views:
        return Plan()
    smallest = Resources(min(n.capacity.cores for n in views), min(n.capacity.memory_mb for n in views))
    wider = tuple(replace(n, capacity=n.capacity + rooms[n.name]) for n in views)
    ahead = takewhile(lambda r: may_go_ahead(r, smallest), (r for r in queue if r.count > 0))
    return schedule(Snapshot(wider, ahead, running=running), now, replace(policy, name=FCFS), reasons=False)
