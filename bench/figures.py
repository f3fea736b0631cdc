"""Shared by the benchmarks: figures as JSON lines (name, unit, runs, median, min, max, p90)
and a readable table."""

from __future__ import annotations

import json
import statistics
from collections.abc import Sequence


def figure(name: str, seconds: Sequence[float], **extra: object) -> dict[str, object]:
    ms = sorted(s * 1000 for s in seconds)
    return {
        "name": name, "unit": "ms", "runs": len(ms), **extra,
        "median": round(statistics.median(ms), 2), "min": round(ms[0], 2), "max": round(ms[-1], 2),
        "p90": round(ms[min(len(ms) - 1, int(0.9 * len(ms)))], 2),
    }


def report(figures: list[dict[str, object]], note: str) -> None:
    for f in figures:
        print(json.dumps(f))
    print(f"\n{'figure':<30} {'median':>10} {'p90':>10} {'min':>10} {'max':>10}   (ms; {note})")
    for f in figures:
        print(f"{f['name']:<30} {f['median']:>10} {f['p90']:>10} {f['min']:>10} {f['max']:>10}")
