"""Time, from one place.

This is the only module that reads the wall clock or sleeps. Pure code takes `now` as an
argument; services take a Clock. SystemClock is the real one; FakeClock lets unit tests and
the simulator move time by hand.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections.abc import Callable
from typing import Protocol, TypeVar

T = TypeVar("T")


class Clock(Protocol):
    def now(self) -> float:
        """Seconds since the epoch (wall time, for timestamps people read)."""

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back (for timeouts and intervals)."""

    def boottime(self) -> float:
        """Seconds since boot, suspend included, the same in every process of the host: the
        clock of task leases (computenode/lease.py), which the agent and its watchdog share."""

    async def sleep(self, seconds: float) -> None: ...


class SystemClock:
    def now(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()

    def boottime(self) -> float:
        return boot_clock()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


def boot_clock() -> float:
    """CLOCK_BOOTTIME: for the watchdog process (computenode/fence.py), which has no Clock."""
    return time.clock_gettime(time.CLOCK_BOOTTIME)


def pause(seconds: float) -> None:
    """Block this thread (the watchdog's loop and fencing, which run no event loop)."""
    time.sleep(seconds)


def wall_time() -> float:
    """Seconds since the epoch, for the time on log lines (common/log.py)."""
    return time.time()


def perf_counter() -> float:
    """High-resolution interval timer, for benchmarks and durations in logs."""
    return time.perf_counter()


def wait_until(predicate: Callable[[], T], timeout: float, interval: float = 0.02) -> T:
    """Poll `predicate` (synchronously) until it returns something truthy or `timeout`
    seconds pass; returns its last value. For supervisors and tests waiting on another
    process, where there is no event to wait on. The predicate may raise to give up early."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(interval)


class FakeClock:
    """A clock that moves only when told to. Sleepers wake when advance() passes their time."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self._now = start
        self._start = start
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()

    def now(self) -> float:
        return self._now

    def monotonic(self) -> float:
        return self._now - self._start

    def boottime(self) -> float:
        return self._now - self._start

    async def sleep(self, seconds: float) -> None:
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self._now + max(0.0, seconds), next(self._seq), fut))
        await fut

    def advance(self, seconds: float) -> None:
        self._now += seconds
        while self._sleepers and self._sleepers[0][0] <= self._now:
            _, _, fut = heapq.heappop(self._sleepers)
            if not fut.done():
                fut.set_result(None)
