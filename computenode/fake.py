"""A runner that pretends to run tasks, for benchmarks of the head with many agents.

`FakeRunner` stands in for TaskRunner (runner.py) behind the same instructions: the agent,
its state machine, its stream and heartbeats are the real ones; only the process is missing.
A task "runs" for the seconds its command line asks for when it is `sleep N` (else it ends at
once, exit code 0), so a benchmark can keep a thousand agents busy without a thousand processes.
It writes no output and keeps no spool records, so nothing is adopted after a restart.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable

from computenode import state as st

_pids = itertools.count(1_000_000)


def fake_runtime(command_line: str) -> float:
    """`sleep 2.5` runs 2.5 s; anything else ends at once."""
    words = command_line.split()
    if len(words) == 2 and words[0] in ("sleep", "/bin/sleep"):
        try:
            return max(0.0, float(words[1]))
        except ValueError:
            return 0.0
    return 0.0


class FakeRunner:
    def __init__(self, feed: Callable[[st.Event], None]) -> None:
        self._feed = feed
        self._exits: dict[st.Key, asyncio.TimerHandle] = {}
        self._timers: dict[st.Key, asyncio.TimerHandle] = {}
        self.started = 0

    def begin(self) -> None:
        pass

    def adopt_all(self) -> int:
        return 0

    def start(self, key: st.Key, launch: object, node: str) -> None:
        self.started += 1
        self._feed(st.ProcessStarted(key, next(_pids)))
        seconds = fake_runtime(launch.command_line)  # type: ignore[attr-defined]
        self._exits[key] = asyncio.get_running_loop().call_later(seconds, self._exit, key, 0)

    def _exit(self, key: st.Key, sig: int) -> None:
        if self._exits.pop(key, None) is not None:
            self._feed(st.ProcessExited(key, 0, sig))

    def signal(self, key: st.Key, sig: int) -> None:
        handle = self._exits.get(key)
        if handle is not None:
            handle.cancel()
            self._exits[key] = asyncio.get_running_loop().call_soon(self._exit, key, sig)

    def timer(self, key: st.Key, seconds: float, fire: Callable[[], None]) -> None:
        self.cancel_timer(key)
        self._timers[key] = asyncio.get_running_loop().call_later(seconds, self._fire, key, fire)

    def _fire(self, key: st.Key, fire: Callable[[], None]) -> None:
        self._timers.pop(key, None)
        fire()

    def cancel_timer(self, key: st.Key) -> None:
        if (handle := self._timers.pop(key, None)) is not None:
            handle.cancel()

    def persist(self, key: st.Key, killing: bool, runtime_exceeded: bool, out_of_memory: bool = False,
                fenced: bool = False) -> None:
        pass

    def kill_leftovers(self, key: st.Key, grace: float) -> None:
        pass

    def ended_unseen(self) -> list[st.Key]:
        return []

    def deliver(self, keys: list[st.Key]) -> None:
        pass

    def was_fenced(self, key: st.Key) -> bool:
        return False

    def condition(self) -> str:
        return ""

    def forget(self, key: st.Key) -> None:
        self.cancel_timer(key)
        if (handle := self._exits.pop(key, None)) is not None:
            handle.cancel()
