"""Shared by the benchmarks: figures as JSON lines and a readable table.

A figure is {"name", "value" (the median), "unit", "runs", "median", "min", "max", "p90"}, plus
where there is one the same figure for Slurm measured in the same run ("slurm": {...}), the
median of the run-by-run ratios ("ratio", Shoal over Slurm for rates, Slurm over Shoal for
times: above 1 means Shoal is better), and the issue's target ("target", "met").
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Callable, Sequence
from typing import TypeVar

import psutil

from common.clock import perf_counter

T = TypeVar("T")


def timed(fn: Callable[[], T]) -> tuple[float, T]:
    """(seconds fn took, what it returned)."""
    start = perf_counter()
    value = fn()
    return perf_counter() - start, value


def cpu_seconds(proc: psutil.Process) -> float:
    """CPU time (user and system) a process has used so far."""
    t = proc.cpu_times()
    return t.user + t.system


def stat(name: str, values: Sequence[float], unit: str, **extra: object) -> dict[str, object]:
    v = sorted(values)
    med = statistics.median(v)
    return {
        "name": name, "value": round(med, 3), "unit": unit, "runs": len(v), **extra,
        "median": round(med, 3), "min": round(v[0], 3), "max": round(v[-1], 3),
        "p90": round(v[min(len(v) - 1, int(0.9 * len(v)))], 3),
    }


def figure(name: str, seconds: Sequence[float], **extra: object) -> dict[str, object]:
    """Times given in seconds, reported in milliseconds."""
    return stat(name, [s * 1000 for s in seconds], "ms", **extra)


def percentile(values: Sequence[float], q: float) -> float:
    v = sorted(values)
    return v[min(len(v) - 1, int(q * len(v)))]


def versus(name: str, shoal: Sequence[float], slurm: Sequence[float] | None, unit: str, higher_is_better: bool,
           target: float | None = None, note: str = "") -> dict[str, object]:
    """A Shoal figure with Slurm's from the same run (None: Slurm could not run), paired run by run."""
    extra: dict[str, object] = {}
    if note:
        extra["note"] = note
    f = stat(name, shoal, unit, **extra)
    if slurm:
        f["slurm"] = stat(name, slurm, unit)
        pairs = [(a / b if higher_is_better else b / a) for a, b in zip(shoal, slurm, strict=False) if a and b]
        if pairs:
            f["ratio"] = round(statistics.median(pairs), 2)
    if target is not None:
        f["target"] = target
        f["met"] = bool(f["median"] >= target if higher_is_better else f["median"] <= target)  # type: ignore[operator]
    return f


def report(figures: list[dict[str, object]], note: str) -> None:
    for f in figures:
        print(json.dumps(f), flush=True)
    print(table(figures, note), flush=True)


def table(figures: list[dict[str, object]], note: str = "") -> str:
    lines = [f"{'figure':<34} {'median':>10} {'min':>10} {'max':>10} {'unit':<8} {'slurm':>10} {'ratio':>7} "
             f"{'target':>8}" + (f"   ({note})" if note else "")]
    for f in figures:
        slurm = f.get("slurm")
        target = f.get("target")
        mark = "" if target is None else (" ok" if f.get("met") else " MISS")
        lines.append(
            f"{f['name']:<34} {_num(f['median']):>10} {_num(f['min']):>10} {_num(f['max']):>10} {f['unit']:<8} "
            f"{_num(slurm['median']) if isinstance(slurm, dict) else '-':>10} "
            f"{str(f.get('ratio', '-')):>7} {('-' if target is None else _num(target)):>8}{mark}")
    return "\n".join(lines)


def _num(x: object) -> str:
    if isinstance(x, float):
        return f"{x:,.1f}" if abs(x) < 1000 else f"{x:,.0f}"
    return str(x)
