"""Filters: can this node take this task, and if not, why not.

`check` returns a Rejection (kept, because it becomes the pending reason a user sees) or
None. It uses the one fit check, `common.resources.shortfall`. `explain` folds the
rejections of every node into one line: "no node has 64 cores; largest has 2".
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass

from common.resources import CORES, Resources, Shortfall, amount, shortfall
from headnode.scheduling.snapshot import NodeView


class Why(enum.Enum):
    UNAVAILABLE = "unavailable"  # node state or connection
    TOO_SMALL = "too_small"  # could never fit, even on the empty node
    BUSY = "busy"  # fits the node, not its free resources now


@dataclass(frozen=True, slots=True)
class Rejection:
    node: str
    why: Why
    detail: str = ""
    shortfall: Shortfall | None = None


def check(node: NodeView, free: Resources, request: Resources, exclusive: bool = False) -> Rejection | None:
    if node.unavailable:
        return Rejection(node.name, Why.UNAVAILABLE, node.unavailable)
    if (s := shortfall(request, node.capacity)) is not None:
        return Rejection(node.name, Why.TOO_SMALL, shortfall=s)
    if exclusive and free != node.capacity:
        return Rejection(node.name, Why.BUSY, "not a whole free node")
    if (s := shortfall(request, free)) is not None:
        return Rejection(node.name, Why.BUSY, shortfall=s)
    return None


def never_fits(rejections: Sequence[Rejection]) -> bool:
    """True when no available node could take the task even if it were empty."""
    return not any(r.why is Why.BUSY for r in rejections) and any(r.why is Why.TOO_SMALL for r in rejections)


def explain(request: Resources, rejections: Sequence[Rejection], nodes: Sequence[NodeView]) -> str:
    if not nodes:
        return "no compute node has registered yet"
    available = [n for n in nodes if not n.unavailable]
    if not available:
        listing = ", ".join(f"{r.node}: {r.detail}" for r in rejections[:5])
        more = f" and {len(rejections) - 5} more" if len(rejections) > 5 else ""
        return f"no node is online ({listing}{more})"
    busy = [r for r in rejections if r.why is Why.BUSY]
    if busy and all(r.shortfall is None for r in busy):
        return "waiting for a whole free node (exclusive)"
    busy = [r for r in busy if r.shortfall is not None]
    if busy:
        dim = busy[0].shortfall.dimension if busy[0].shortfall else CORES
        most = max(_amount_of(n.free, dim) for n in available)
        return (
            f"waiting for resources: needs {amount(dim, _amount_of(request, dim))}; "
            f"the most free on any node is {amount(dim, most)}"
        )
    small = [r for r in rejections if r.why is Why.TOO_SMALL and r.shortfall]
    dims = {r.shortfall.dimension for r in small if r.shortfall}
    if len(dims) == 1:
        dim = dims.pop()
        largest = max(_amount_of(n.capacity, dim) for n in available)
        largest_text = str(largest) if dim == CORES else f"{largest} MB"
        return f"no node has {amount(dim, _amount_of(request, dim))}; largest has {largest_text}"
    sizes = ", ".join(f"{n.name}: {n.capacity.describe()}" for n in available[:5])
    return f"no node has {request.describe()} ({sizes})"


def _amount_of(resources: Resources, dimension: str) -> int:
    return resources.cores if dimension == CORES else resources.memory_mb
