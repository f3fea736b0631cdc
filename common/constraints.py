"""Placement constraints: node groups, labels, and named nodes (pure).

HPC Pack's node groups, Slurm's `--constraint` features and `--nodelist`, Tencent
BatchCompute's compute environments: a node qualifies when it is in every group the work
names, carries every required label and no avoided one, and is one of the named nodes when
any are named. A task's constraints add to its job's (`merge`).

Labels are opaque strings ("avx512", "rack=3"); a required "rack=3" matches only that exact
label. `why_not` gives the reason a node is rejected, worded for the pending reason a user
sees.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from common.errors import quote

_TOKEN = re.compile(r"^[A-Za-z0-9_.:=/+-]{1,64}$")


@dataclass(frozen=True, slots=True)
class Constraints:
    groups: frozenset[str] = frozenset()
    require: frozenset[str] = frozenset()
    avoid: frozenset[str] = frozenset()
    nodes: frozenset[str] = frozenset()  # empty: any node

    def __bool__(self) -> bool:
        return bool(self.groups or self.require or self.avoid or self.nodes)

    def describe(self) -> str:
        parts = []
        if self.groups:
            parts.append("groups " + ",".join(sorted(self.groups)))
        if self.require:
            parts.append("labels " + ",".join(sorted(self.require)))
        if self.avoid:
            parts.append("not " + ",".join(sorted(self.avoid)))
        if self.nodes:
            parts.append("nodes " + ",".join(sorted(self.nodes)))
        return "; ".join(parts)


NONE = Constraints()


def make(groups: Iterable[str] = (), require: Iterable[str] = (), avoid: Iterable[str] = (),
         nodes: Iterable[str] = ()) -> Constraints:
    return Constraints(frozenset(groups), frozenset(require), frozenset(avoid), frozenset(nodes))


def merge(job: Constraints, task: Constraints) -> Constraints:
    """Both must hold; named nodes narrow to those both name."""
    if not job:
        return task
    if not task:
        return job
    if job.nodes and task.nodes:
        nodes = job.nodes & task.nodes or frozenset({""})  # nothing qualifies; "" is never a node name
    else:
        nodes = job.nodes or task.nodes
    return Constraints(job.groups | task.groups, job.require | task.require, job.avoid | task.avoid, nodes)


def why_not(c: Constraints, name: str, groups: frozenset[str], labels: frozenset[str]) -> str:
    """Empty when the node qualifies; else which rule rejects it."""
    if c.nodes and name not in c.nodes:
        return "not one of the requested nodes"
    if missing := c.groups - groups:
        return f"not in group {', '.join(sorted(missing))}"
    if missing := c.require - labels:
        return f"lacks label {', '.join(sorted(missing))}"
    if present := c.avoid & labels:
        return f"has avoided label {', '.join(sorted(present))}"
    return ""


def check_token(text: str, what: str) -> str | None:
    """Why `text` cannot be a group or label, or None."""
    if not _TOKEN.match(text):
        return (f"{what} {quote(text, 64)!r} must be 1 to 64 letters, digits or . _ : = / + - "
                f"(no spaces or commas)")
    return None
