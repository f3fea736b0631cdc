"""Filters: can this node take this task, and if not, why not.

Two kinds of filter. Static ones (`static_check`) depend only on the node and the request:
the node is unavailable, fails the placement constraints, or is too small even when empty;
their verdict holds for the whole pass. Dynamic ones (`dynamic_check`) depend on what is
free right now and on who else is on the node (exclusive work). Both use the one fit check,
`common.resources.shortfall`. A Rejection is kept, because it becomes the pending reason a
user sees; `explain` folds the rejections of every node into one line ("no node has
gpu=8; largest has gpu=2", "no node satisfies its placement: n1: not in group bigmem").
"""

from __future__ import annotations

import enum
from collections.abc import Collection, Sequence
from dataclasses import dataclass

from common.constraints import why_not
from common.resources import CORES, MEMORY, Resources, Shortfall, amount, amount_of, shortfall
from headnode.scheduling.snapshot import NodeView, TaskRequest


class Why(enum.Enum):
    UNAVAILABLE = "unavailable"  # node state or connection
    CONSTRAINT = "constraint"  # group, label or node name rules out the node
    TOO_SMALL = "too_small"  # could never fit, even on the empty node
    BUSY = "busy"  # fits the node, not its free resources (or its other work) now


WHOLE = "not a whole free node"


@dataclass(slots=True)
class Rejection:
    node: str
    why: Why
    detail: str = ""
    shortfall: Shortfall | None = None


def static_check(node: NodeView, request: TaskRequest, spanning: bool = False) -> Rejection | None:
    """Rules that hold for the whole pass. `spanning`: the request's cores are spread over
    several nodes, so only its per-node needs (memory, named resources) must fit one."""
    if node.unavailable:
        return Rejection(node.name, Why.UNAVAILABLE, node.unavailable)
    if request.constraints and (why := why_not(request.constraints, node.name, node.groups, node.labels)):
        return Rejection(node.name, Why.CONSTRAINT, why)
    need = request.resources.with_cores(1) if spanning else request.resources
    if (s := shortfall(need, node.capacity)) is not None:
        return Rejection(node.name, Why.TOO_SMALL, shortfall=s)
    return None


def dynamic_check(
    node: NodeView, free: Resources, jobs: Collection[int], exclusive_job: int, request: TaskRequest,
    need: Resources | None = None,
) -> Rejection | None:
    """Given the node passed static_check: can it take one instance now?"""
    job = request.job
    if exclusive_job and exclusive_job != job:
        return Rejection(node.name, Why.BUSY, f"held exclusively by job {exclusive_job}")
    if request.job_exclusive and any(j != job for j in jobs):
        return Rejection(node.name, Why.BUSY, "running other jobs' work (this job is exclusive)")
    if request.exclusive and (jobs or free != node.capacity):
        return Rejection(node.name, Why.BUSY, WHOLE)
    if (s := shortfall(need or request.resources, free)) is not None:
        return Rejection(node.name, Why.BUSY, shortfall=s)
    return None


def never_fits(rejections: Sequence[Rejection]) -> bool:
    """True when no node could take the task now even if it were empty (each is too small,
    ruled out, or not taking work): waiting for busy nodes would not help, so the task does
    not hold up the queue behind it."""
    return not any(r.why is Why.BUSY for r in rejections)


def explain(request: Resources, rejections: Sequence[Rejection], nodes: Sequence[NodeView]) -> str:
    if not nodes:
        return "no compute node has registered yet"
    if all(r.why is Why.UNAVAILABLE for r in rejections):
        return f"no node is online ({_listing(rejections)})"
    busy = [r for r in rejections if r.why is Why.BUSY]
    if busy:
        short = [r for r in busy if r.shortfall is not None]
        if not short:
            if all(r.detail == WHOLE for r in busy):
                return "waiting for a whole free node (exclusive)"
            return f"waiting for a node: {_listing(busy)}"
        dim = short[0].shortfall.dimension if short[0].shortfall else CORES
        fit = {r.node for r in busy}
        most = max((amount_of(n.free, dim) for n in nodes if n.name in fit), default=0)
        return (f"waiting for resources: needs {amount(dim, amount_of(request, dim))}; "
                f"the most free on any node that could take it is {amount(dim, most)}")
    ruled = [r for r in rejections if r.why is Why.CONSTRAINT]
    small = [r for r in rejections if r.why is Why.TOO_SMALL]
    down = [r for r in rejections if r.why is Why.UNAVAILABLE]
    if down and not small:
        return f"no node it may use is online ({_listing(down)})"
    if ruled and not small:
        return f"no node satisfies its placement constraints ({_listing(ruled)})"
    dims = {r.shortfall.dimension for r in small if r.shortfall}
    sized = {r.node for r in small}
    if len(dims) == 1:
        dim = dims.pop()
        largest = max(amount_of(n.capacity, dim) for n in nodes if n.name in sized)
        largest_text = str(largest) if dim == CORES else f"{largest} MB" if dim == MEMORY else f"{dim}={largest}"
        text = f"no node has {amount(dim, amount_of(request, dim))}; largest has {largest_text}"
    else:
        sizes = ", ".join([f"{n.name}: {n.capacity.describe()}" for n in nodes if n.name in sized][:5])
        text = f"no node has {request.describe()} ({sizes})"
    if ruled:
        text += f"; others ruled out by its placement constraints ({_listing(ruled)})"
    return text


def _listing(rejections: Sequence[Rejection]) -> str:
    text = "; ".join(f"{r.node}: {r.detail}" for r in rejections[:5])
    return text + (f" and {len(rejections) - 5} more" if len(rejections) > 5 else "")
