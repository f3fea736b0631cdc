"""Tasks that record their own ticks, and the check that no two attempts of a task overlap.

Each tick is a line "TASK ATTEMPT TIME" appended by the task itself (its id, $SHOAL_ATTEMPT, the
wall clock), so the record holds what really ran, whatever the head or agents believe. Two
attempts of one task overlap when one ticked between the other's first and last tick.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

# Ticks every 0.1 s until `until` exists (then a last one), or for `count` ticks.
TICK = 'echo "$SHOAL_TASK $SHOAL_ATTEMPT $(date +%s.%N)" >> {path}'


def ticker(path: Path, until: Path | None = None, count: int = 0, trap: str = "") -> str:
    tick = TICK.format(path=path)
    if until is not None:
        loop = f"while [ ! -e {until} ]; do {tick}; sleep 0.1; done; {tick}"
    else:
        loop = f"for i in $(seq 1 {count}); do {tick}; sleep 0.1; done"
    return f"{trap}{loop}"


Spans = dict[str, dict[int, tuple[float, float]]]


def spans(path: Path) -> Spans:
    """task -> attempt -> (first tick, last tick)."""
    out: dict[str, dict[int, list[float]]] = defaultdict(dict)
    try:
        lines = path.read_text().splitlines()
    except FileNotFoundError:
        return {}
    for line in lines:
        parts = line.split()
        if len(parts) != 3:
            continue  # a line cut short by SIGKILL
        task, attempt, at = parts[0], int(parts[1]), float(parts[2])
        first_last = out[task].setdefault(attempt, [at, at])
        first_last[0], first_last[1] = min(first_last[0], at), max(first_last[1], at)
    return {t: {a: (fl[0], fl[1]) for a, fl in by.items()} for t, by in out.items()}


def overlaps(found: Spans) -> list[str]:
    """Each pair of attempts of one task whose tick spans overlap, described."""
    bad = []
    for task, by in sorted(found.items()):
        attempts = sorted(by.items())
        for i, (a, (s1, e1)) in enumerate(attempts):
            for b, (s2, e2) in attempts[i + 1:]:
                if s1 <= e2 and s2 <= e1:
                    bad.append(f"task {task}: attempt {a} ticked {s1:.2f}-{e1:.2f}, attempt {b} {s2:.2f}-{e2:.2f}")
    return bad


def overlap_seconds(found: Spans) -> float:
    total = 0.0
    for by in found.values():
        attempts = sorted(by.values())
        for i, (s1, e1) in enumerate(attempts):
            for s2, e2 in attempts[i + 1:]:
                total += max(0.0, min(e1, e2) - max(s1, s2))
    return total
