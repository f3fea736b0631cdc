"""Scheduling policy: its settings, and the pure functions of fair-share (no I/O, no clock).

The policy is chosen in the head node's config and handed to `schedule()` whole:
  name             "easy" (EASY backfilling, the default) or "fcfs" (strict first come,
                   first served)
  placement        "pack" or "spread" (node scoring, ranking.py)
  default_runtime  seconds assumed for work without a runtime limit when backfilling
  backfill_depth   queued tasks looked at past the reservation in one pass (as Slurm's
                   bf_max_job_test: bounds a pass over a long queue)
  max_running_cores  per owner; 0: no limit (held-back work says so, and blocks nothing)
  preemption       a blocked task of a higher priority level may stop running work of a
                   lower level, which is requeued

Fair-share (Slurm's classic formula): each account (the job's project when it names one,
else its owner) has a usage in core-seconds that decays with a half-life; its factor is
F = 2^(-U/S), U its share of all usage and S its share of the machine (equal shares among
the accounts that have usage or work waiting). Within one priority level, a job's effective
priority is its offset (0..999) plus weight x F, so heavy users sink below light ones of the
same level but never below a lower level.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

FCFS, EASY = "fcfs", "easy"
POLICIES = (FCFS, EASY)
LEVELS = ("Lowest", "BelowNormal", "Normal", "AboveNormal", "Highest")


@dataclass(frozen=True, slots=True)
class Policy:
    name: str = FCFS
    placement: str = "pack"
    default_runtime: float = 3600.0
    backfill_depth: int = 1000
    max_running_cores: int = 0
    preemption: bool = False
    # Dispatch ahead (the allocator's, not the core's: see HeadConfig.dispatch_ahead). Off here,
    # so the core and the simulator place only on free resources.
    dispatch_ahead: float = 0.0
    dispatch_ahead_wait: float = 2.0
    dispatch_ahead_pass_interval: float = 0.0


def level_of(priority: int) -> int:
    """0 (Lowest) .. 4 (Highest) from the expanded priority level * 1000 + offset."""
    return max(0, min(4, priority // 1000))


def account(owner: str, project: str) -> str:
    return f"project:{project}" if project else f"owner:{owner}"


def decayed(usage: float, since: float, now: float, half_life: float) -> float:
    if half_life <= 0 or now <= since:
        return usage
    return usage * math.pow(0.5, (now - since) / half_life)


def factors(usage: Mapping[str, float], accounts: Iterable[str]) -> dict[str, float]:
    """Fair-share factor in (0, 1] of every account in `accounts` (and every one with usage)."""
    names = set(accounts) | {a for a, u in usage.items() if u > 0}
    total = sum(max(0.0, usage.get(a, 0.0)) for a in names)
    if not names:
        return {}
    if total <= 0:
        return dict.fromkeys(names, 1.0)
    share = 1.0 / len(names)
    return {a: math.pow(2.0, -(max(0.0, usage.get(a, 0.0)) / total) / share) for a in names}


MAX_WEIGHT = 100_000.0


def effective_priority(priority: int, factor: float, weight: float) -> float:
    """Level first, then offset plus the fair-share bonus (which never crosses a level:
    levels are MAX_WEIGHT + 1000 apart)."""
    level, offset = divmod(priority, 1000)
    return level * (MAX_WEIGHT + 1000) + offset + min(weight, MAX_WEIGHT) * factor
