"""glibc malloc settings for the daemons (`shoal head`, `shoal node`), set once at start-up,
and for `shoal task output`, which receives what they send.

Output moves through the head node and the agents in 256 KiB chunks, and each chunk is
copied into a new buffer three or four times on the way (read, protobuf, gRPC). glibc
serves a block that large with mmap at first and raises that threshold as blocks are freed,
and it gives the top of the heap back to the kernel once 2x the threshold of it is free: so
a stream of chunks keeps taking fresh pages from the kernel, and on a virtual machine a
first touch of a page is dear (here writing 1 GiB into new pages cost 3-5 s of system time,
over pages already there about 0.1 s). With blocks up to 4 MiB served from the heap and
32 MiB of free heap kept before trimming, a 1 GiB stdout reached a live follower at 181 MB/s
against 129 (`bench/scale.py output --runs 5 --gib 1`, one after the other) and at 210-226
against 135-166 in alternating runs, and the agent spent a third less CPU on it. The cost:
up to 32 MiB more resident after a burst. `shoal task output` of a finished 1 GiB stdout
ran at 798-889 MB/s against 696-789 with its malloc left alone (alternating runs).

An operator's own MALLOC_MMAP_THRESHOLD_ or MALLOC_TRIM_THRESHOLD_ wins; so does a libc
without mallopt (musl), where nothing is changed. Tasks are exec'd programs and keep their
own defaults.
"""

from __future__ import annotations

import ctypes
import gc
import os

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 4 << 20
TRIM_THRESHOLD = 32 << 20


def tune(environ: dict[str, str] | None = None) -> bool:
    """Apply the settings above; False when they were left alone (and why is in the docstring)."""
    env = os.environ if environ is None else environ
    if "MALLOC_MMAP_THRESHOLD_" in env or "MALLOC_TRIM_THRESHOLD_" in env:
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))


# Python's cycle collector runs its youngest generation every 700 net allocations of container
# objects. A busy head makes many short-lived ones per job (dataclasses, protobuf wrappers,
# dicts of log events), which reference counting frees; collecting every 700 walks the ones
# caught alive at that moment, over and over (4% of a head's GIL-holding samples taking
# separate jobs, py-spy; too little to sample at 20,000). Shoal's own state has few cycles.
GC_YOUNGEST = 20_000


def tune_gc() -> None:
    """Once start-up is done: what was imported or built so far moves out of the collector's
    sight for good (gc.freeze), and the youngest generation is collected less often."""
    gc.freeze()
    gc.set_threshold(GC_YOUNGEST, *gc.get_threshold()[1:])


# A request of several MiB (a big submission, or a hostile one) leaves the head's heap with
# that much and more free in the middle of it: the receive buffers, the parsed message and
# what was made of it, spread over gRPC's threads' arenas. glibc gives back only the top of
# each arena (past TRIM_THRESHOLD), so each such request raised the head's RSS for good (a
# loop of oversized requests from anonymous callers and a User: 75 MiB to ~470 MiB, issue 33).
# malloc_trim(0) returns every free page of every arena to the kernel; it costs ~1 ms, so it
# runs only after a large request, and at most once a loop turn.
TRIM_AFTER = 1 << 20  # bytes of a request after which the heap is trimmed
_trim_pending = False


def _malloc_trim() -> None:
    global _trim_pending
    _trim_pending = False
    # First what only the cycle collector frees: a failed call's exception, its traceback
    # and the frames holding the request (young objects, so the youngest generation's pass
    # finds them; it walks at most GC_YOUNGEST objects).
    gc.collect(0)
    try:
        trim = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):  # not glibc
        return
    trim.argtypes = [ctypes.c_size_t]
    trim(0)


def trim_soon() -> None:
    """Trim the heap once what the current step of the event loop freed is free (the next turn)."""
    global _trim_pending
    if _trim_pending:
        return
    import asyncio

    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        _malloc_trim()
        return
    _trim_pending = True
    loop.call_soon(_malloc_trim)
