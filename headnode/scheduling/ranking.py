"""Scores for the nodes that passed the filters: 0..100, higher is better.

"pack" prefers the node that will be fullest after placement (best fit: keeps whole nodes
free for wide tasks), "spread" the emptiest. Every dimension the node has counts equally
(cores, memory, each named resource). Ties go to the node name, so placement is
deterministic for a given snapshot.
"""

from __future__ import annotations

from common.resources import Resources

POLICIES = ("pack", "spread")


def score(capacity: Resources, free_after: Resources, policy: str) -> float:
    total = 0.0
    n = 0
    if capacity.cores > 0:
        total += free_after.cores / capacity.cores
        n += 1
    if capacity.memory_mb > 0:
        total += free_after.memory_mb / capacity.memory_mb
        n += 1
    for name, value in capacity.generic:
        if value > 0:
            total += free_after.get(name) / value
            n += 1
    emptiness = total / n if n else 0.0
    return 100.0 * (emptiness if policy == "spread" else 1.0 - emptiness)
