"""Countable resources (cores, memory, named ones such as gpu) and the one fit check.

`shortfall(request, free)` is used both when the scheduler plans and when the allocator
commits a plan: two different checks are a classic cause of endless re-plan loops.

Named resources ("generic", Slurm's GRES and licenses) are whatever countable things a
node advertises: `gpu=4`, `license_matlab=10`. They are kept as a sorted tuple of
(name, amount) pairs without zeros, so two equal amounts compare and hash equal and the
common case (no named resources) costs nothing.

Resources is a NamedTuple, so hashing and comparing one (the scheduler keys its request
classes by it) is done in C, and building one (every addition and subtraction does) costs
less than half what a frozen dataclass's does. Tuple behaviour comes with it (it unpacks and
orders as (cores, memory_mb, generic)); `+` and `-` add and subtract amounts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import NamedTuple

GPU = "gpu"
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,31}$")

Generic = tuple[tuple[str, int], ...]


def _merge(a: Generic, b: Generic, sign: int) -> Generic:
    if not b:
        return a
    out = dict(a)
    for name, value in b:
        out[name] = out.get(name, 0) + sign * value
    return tuple(sorted((k, v) for k, v in out.items() if v))


class Resources(NamedTuple):
    cores: int = 0
    memory_mb: int = 0
    generic: Generic = ()

    def __add__(self, other: Resources) -> Resources:
        if not self.generic and not other.generic:
            return Resources(self.cores + other.cores, self.memory_mb + other.memory_mb)
        return Resources(self.cores + other.cores, self.memory_mb + other.memory_mb,
                         _merge(self.generic, other.generic, 1))

    def __sub__(self, other: Resources) -> Resources:
        if not self.generic and not other.generic:
            return Resources(self.cores - other.cores, self.memory_mb - other.memory_mb)
        return Resources(self.cores - other.cores, self.memory_mb - other.memory_mb,
                         _merge(self.generic, other.generic, -1))

    def get(self, name: str) -> int:
        for key, value in self.generic:
            if key == name:
                return value
        return 0

    def with_cores(self, cores: int) -> Resources:
        return Resources(cores, self.memory_mb, self.generic)

    def describe(self) -> str:
        parts = [plural(self.cores, "core")]
        if self.memory_mb:
            parts.append(f"{self.memory_mb} MB")
        parts += [f"{name}={value}" for name, value in self.generic]
        return ", ".join(parts)


def generic_of(mapping: dict[str, int] | None) -> Generic:
    return tuple(sorted((k, int(v)) for k, v in (mapping or {}).items() if v))


def check_name(name: str) -> str | None:
    """Why `name` is not a valid resource name, or None."""
    if not _NAME.match(name):
        return (f"resource name {name!r} must be lower case letters, digits and '_', "
                f"starting with a letter (for example gpu or license_matlab)")
    if name in (CORES, MEMORY):
        return f"{name} is not a named resource: use the {name} field"
    return None


def parse_generic(items: list[str] | tuple[str, ...]) -> Generic:
    """['gpu=2', 'license_matlab=1'] -> generic; ValueError says what is wrong."""
    out: dict[str, int] = {}
    for item in items:
        name, sep, value = item.partition("=")
        name = name.strip()
        if not sep or not value.strip().isdigit():
            raise ValueError(f"resource {item!r} is not NAME=COUNT (for example gpu=2)")
        if why := check_name(name):
            raise ValueError(why)
        out[name] = int(value)
    return generic_of(out)


ZERO = Resources()

# Dimension names used in shortfall reports and pending reasons; other names are generic.
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
    for name, value in request.generic:
        have = free.get(name)
        if value > have:
            return Shortfall(name, value, have)
    return None


def fits(request: Resources, free: Resources) -> bool:
    """`shortfall(request, free) is None`, without building the Shortfall it would not use
    (the scheduler asks this over and over of nodes that are full)."""
    if request.cores > free.cores or request.memory_mb > free.memory_mb:
        return False
    return not request.generic or shortfall(request, free) is None


def amount_of(resources: Resources, dimension: str) -> int:
    if dimension == CORES:
        return resources.cores
    if dimension == MEMORY:
        return resources.memory_mb
    return resources.get(dimension)


def amount(dimension: str, value: int) -> str:
    """'4 cores', '1 core', '2048 MB of memory', 'gpu=2'."""
    if dimension == CORES:
        return plural(value, "core")
    if dimension == MEMORY:
        return f"{value} MB of memory"
    return f"{dimension}={value}"


def plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"
