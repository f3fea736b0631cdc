"""Which processes are each task's, without cgroups (isolation = "watch").

A task's processes are its wrapper's descendants; one that detaches (forks twice, or forks
and lets its parent end) would be re-parented to init and lost to the agent: not counted
against the task's memory, not killed at its end (issue 33: a daemon outlived its task, and a
detached grandchild allocated 600 MB past a 100 MB limit). So the agent makes itself the
subreaper of everything it starts (PR_SET_CHILD_SUBREAPER): what detaches becomes the agent's
own child. Each look (`scan`, every MEMORY_CHECK) then gives every such orphan to the task it
came from, by, in order: the task whose tree it was in at the previous look, or the run id
in its environment (SHOAL_RUN_ID, which every task's processes inherit). An orphan of no
running task (its task ended, or it both detached and cleared its environment within one
look) is killed: nothing but tasks' descendants is re-parented to the agent. Orphans that
end are reaped here; the tasks' own wrappers are the launcher's to reap.

A task's processes are then its wrapper's tree and its orphans' trees; their resident memory
is the task's, and `kill` ends them all. Reading every /proc/PID/stat once per look is the
cost: about 10 us a process here.

Processes detached before an agent restart went to init and are found only by their lease
(fence.py) when the task is stopped.
"""

from __future__ import annotations

import ctypes
import os
import signal
from collections.abc import Hashable, Mapping
from dataclasses import dataclass

from common import log
from computenode.fence import alive, environ_value

_log = log.get("tracking")
PR_SET_CHILD_SUBREAPER = 36
_PAGE = os.sysconf("SC_PAGE_SIZE")


def become_subreaper() -> bool:
    """Make this process the subreaper of its descendants; False where the kernel refuses."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


@dataclass(frozen=True, slots=True)
class Running:
    """A running task as the tracker needs it: its wrapper's pid and its run id."""

    leader: int
    run_id: str


Proc = tuple[int, int]  # (pid, start time in ticks): a pid alone may be reused


class Tracker:
    def __init__(self, me: int | None = None) -> None:
        self.me = me if me is not None else os.getpid()
        self.spare: set[int] = set()  # the agent's own children that are no task's (the watchdog)
        self._orphans: dict[Proc, Hashable] = {}  # orphans given to a task
        self._last: dict[Proc, Hashable] = {}  # every task's processes at the last look

    def scan(self, tasks: Mapping[Hashable, Running]) -> dict[Hashable, list[int]]:
        """Look at every process: give orphans to their tasks, kill those of none, reap the
        ended; returns each task's processes (pids)."""
        table = _table()
        children: dict[int, list[int]] = {}
        for pid, (ppid, _, _) in table.items():
            children.setdefault(ppid, []).append(pid)
        leaders = {t.leader for t in tasks.values()}
        by_run = {t.run_id: key for key, t in tasks.items()}
        roots: dict[Hashable, list[int]] = {key: [t.leader] for key, t in tasks.items()}
        orphans: dict[Proc, Hashable] = {}
        for pid in children.get(self.me, ()):
            _, state, start = table[pid]
            if pid in leaders or pid in self.spare:
                continue
            if state == "Z":
                _reap(pid)
                continue
            proc = (pid, start)
            key = self._orphans.get(proc) or self._last.get(proc)
            if key is None:
                key = by_run.get(environ_value(pid, "SHOAL_RUN_ID"))
            if key is None or key not in tasks:
                _kill(pid, "no running task's")
                continue
            orphans[proc] = key
            roots[key].append(pid)
        self._orphans = orphans
        trees: dict[Hashable, list[int]] = {}
        last: dict[Proc, Hashable] = {}
        for key, starts in roots.items():
            seen: list[int] = []
            stack = list(starts)
            while stack:
                pid = stack.pop()
                if pid not in table or (pid != tasks[key].leader and pid in leaders):
                    continue
                seen.append(pid)
                last[(pid, table[pid][2])] = key
                stack.extend(children.get(pid, ()))
            trees[key] = seen
        self._last = last
        return trees

    def kill(self, key: Hashable, sig: int = signal.SIGKILL) -> int:
        """Signal what the task had at the last look (its process group is the caller's);
        returns how many were signalled."""
        sent = 0
        for proc, owner in list(self._last.items()):
            if owner == key and alive(*proc):
                sent += _kill(proc[0], "", sig)
        return sent


def descendants(leaders: Mapping[Hashable, int]) -> dict[Hashable, list[int]]:
    """Each leader and its descendants, from one look at every process (where no subreaper
    could be had)."""
    table = _table()
    children: dict[int, list[int]] = {}
    for p, (ppid, _, _) in table.items():
        children.setdefault(ppid, []).append(p)
    out: dict[Hashable, list[int]] = {}
    for key, pid in leaders.items():
        tree, stack = out.setdefault(key, []), [pid]
        while stack:
            p = stack.pop()
            if p in table:
                tree.append(p)
                stack.extend(children.get(p, ()))
    return out


def resident_mb(pids: list[int]) -> int:
    """The resident memory of these processes, in MB."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/statm", "rb") as f:
                total += int(f.read().split()[1])
        except (OSError, IndexError, ValueError):
            continue
    return total * _PAGE // (1024 * 1024)


def _table() -> dict[int, tuple[int, str, int]]:
    """pid -> (parent pid, state, start time in ticks) of every process."""
    out: dict[int, tuple[int, str, int]] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                raw = f.read()
            fields = raw[raw.rindex(b")") + 2:].split()
            out[int(name)] = (int(fields[1]), fields[0].decode(), int(fields[19]))
        except (OSError, ValueError, IndexError):
            continue
    return out


def _kill(pid: int, why: str, sig: int = signal.SIGKILL) -> int:
    try:
        os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        return 0
    if why:
        _log.info("orphan_killed", pid=pid, reason=why)
    return 1


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass
