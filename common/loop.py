"""Which asyncio event loop the daemons run on (the `event_loop` key of head and node).

"uvloop" (the default where it is installed): libuv's loop, whose Cython callbacks, timers
and fd watches cost less than the standard loop's Python ones: with uvloop a trivial task
cost 6-11% less CPU across head and agents here (bench/cpu_per_task.py, alternating runs;
see the README's benchmark notes), while output throughput did not gain. grpc.aio runs on any
asyncio loop. "asyncio": the standard library's loop, the fallback where uvloop has no wheel
(it is Unix-only) and the way to rule the loop out when chasing a problem.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")
CHOICES = ("uvloop", "asyncio")


def run(main: Coroutine[Any, Any, T], kind: str = "uvloop") -> T:
    """asyncio.run(main) on the loop `kind` names; "uvloop" falls back to the standard loop
    when uvloop cannot be imported (the package is optional off Linux and macOS)."""
    if kind == "uvloop":
        try:
            import uvloop
        except ImportError:
            pass
        else:
            with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
                return runner.run(main)
    return asyncio.run(main)


def current() -> str:
    """The running loop's kind, for the start-up log line."""
    return "uvloop" if type(asyncio.get_running_loop()).__module__.startswith("uvloop") else "asyncio"
