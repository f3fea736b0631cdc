"""Scores for the nodes that passed the filters: 0..100, higher is better.

"pack" prefers the node that will be fullest after placement (best fit: keeps whole nodes
free for wide tasks), "spread" the emptiest. Ties go to the node name, so placement is
deterministic for a given snapshot.
"""

from __future__ import annotations

from common.resources import Resources

POLICIES = ("pack", "spread")


def score(capacity: Resources, free_after: Resources, policy: str) -> float:
    fractions = []
    if capacity.cores > 0:
        fractions.append(free_after.cores / capacity.cores)
    if capacity.memory_mb > 0:
        fractions.append(free_after.memory_mb / capacity.memory_mb)
    emptiness = sum(fractions) / len(fractions) if fractions else 0.0
    return 100.0 * (emptiness if policy == "spread" else 1.0 - emptiness)
