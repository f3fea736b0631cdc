"""Countable resources (cores, memory) and the one fit check.

`shortfall(request, free)` is used both when the scheduler plans and when the allocator
commits a plan: two different checks are a classic cause of endless re-plan loops.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Resources:
    cores: int = 0
    memory_mb: int = 0

    def __add__(self, other: Resources) -> Resources:
        return Resources(self.cores + other.cores, self.memory_mb + other.memory_mb)

    def __sub__(self, other: Resources) -> Resources:
        return Resources(self.cores - other.cores, self.memory_mb - other.memory_mb)

    def describe(self) -> str:
        parts = [plural(self.cores, "core")]
        if self.memory_mb:
            parts.append(f"{self.memory_mb} MB")
        return ", ".join(parts)


ZERO = Resources()

# Dimension names used in shortfall reports and pending reasons.
CORES = "cores"
MEMORY = "memory"


@dataclass(frozen=True, slots=True)
class Shortfall:
    """The first dimension in which `free` cannot cover `request`."""

    dimension: str
    requested: int
    available: int


def shortfall(request: Resources, free: Resources) -> Shortfall | None:
    """None when `request` fits in `free`; else the first dimension that does not fit."""
    if request.cores > free.cores:
        return Shortfall(CORES, request.cores, free.cores)
    if request.memory_mb > free.memory_mb:
        return Shortfall(MEMORY, request.memory_mb, free.memory_mb)
    return None


def fits(request: Resources, free: Resources) -> bool:
    return shortfall(request, free) is None


def amount(dimension: str, value: int) -> str:
    """'4 cores', '1 core', '2048 MB of memory'."""
    if dimension == CORES:
        return plural(value, "core")
    return f"{value} MB of memory"


def plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"
