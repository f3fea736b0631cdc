"""Per-task cgroups: memory and CPU limits the kernel enforces, and the OOM kills it counts.

The agent's `isolation` setting picks how limits are enforced:

- "auto" (default): a cgroup mode where one is available and writable, else "watch".
- "cgroup": a cgroup mode or the agent refuses to start (for clusters that rely on it).
- "watch": no cgroups; the runner sums each task's resident memory every half second and
  kills it past its limit, its detached processes included (tracking.py). CPU is not
  limited. This is the fallback, and what an agent that is not root gets.

A task's processes are limited to `max_processes` (default 4,096) by the pids controller
where the task's cgroup has one (pids.max); without it, by RLIMIT_NPROC, which the kernel
counts per user: an agent sets it on itself at start-up for every task to inherit, so a
task's owner has at most that many processes on the node (main.py).

Cgroup modes, tried in this order:

- **v2** (unified hierarchy, e.g. a Debian 12 host, or a systemd unit with `Delegate=yes`): the
  agent's own cgroup must offer the memory and cpu controllers. The agent moves itself into a
  leaf `<own>/agent` (a v2 cgroup with children may hold no processes), enables the
  controllers for its children (and pids where offered), and runs each task in
  `<own>/task-<id>`: memory.max, memory.swap.max = 0, cpu.max = cores x period, pids.max;
  an OOM kill shows in memory.events.
- **v1** (legacy or hybrid hierarchy with writable memory and cpu controllers, as on this
  machine kind): each task gets `<own>/shoal-<node>/<id>` in the memory hierarchy
  (memory.limit_in_bytes and memsw, OOM kills counted in memory.oom_control) and in the cpu
  hierarchy (cpu.cfs_quota_us = cores x cpu.cfs_period_us), and in the pids hierarchy where
  it is mounted and writable (pids.max).

A task joins its cgroup before it runs anything: it is started behind a tiny shell that writes
its own pid into the cgroup and then execs the rest (setpriv, the wrapper), so not one byte is
allocated outside the limit. The mode and why it was chosen are logged at start-up
(`isolation` event, with the mode and the reason).
"""

from __future__ import annotations

import os
import signal
from dataclasses import dataclass, field
from pathlib import Path

from common import log

_log = log.get("cgroups")
MODES = ("auto", "cgroup", "watch")
PERIOD_US = 100_000
# "$@" = procs files, "--", then the command: join every hierarchy, then become the command.
JOIN = 'while [ "$1" != -- ]; do echo $$ > "$1" || exit 125; shift; done; shift; exec "$@"'


class IsolationError(Exception):
    """`isolation = "cgroup"` was asked for and no cgroup mode is available here."""


@dataclass
class TaskGroup:
    """One task's cgroup: a directory per hierarchy (one under v2, memory and cpu under v1)."""

    version: int
    dirs: list[str]

    def prefix(self) -> list[str]:
        procs = [os.path.join(d, "cgroup.procs") for d in self.dirs]
        return ["/bin/sh", "-c", JOIN, "shoal-cgroup", *procs, "--"]

    def oom_killed(self) -> bool:
        """Whether the kernel killed a process of this task for exceeding its memory."""
        name = "memory.events" if self.version == 2 else "memory.oom_control"
        for d in self.dirs:
            try:
                text = Path(d, name).read_text()
            except OSError:
                continue
            for line in text.splitlines():
                key, _, value = line.partition(" ")
                if key == "oom_kill" and value.strip().isdigit() and int(value) > 0:
                    return True
        return False

    def pids(self) -> list[int]:
        # A task joins every hierarchy at once, so the first one lists all its processes.
        try:
            return sorted(int(p) for p in Path(self.dirs[0], "cgroup.procs").read_text().split())
        except (OSError, ValueError):
            return []

    def kill_all(self) -> None:
        """Kill whatever is left in the cgroup, including processes that left the task's
        process group (a double-forked daemon cannot outlive its task)."""
        if self.version == 2:
            try:
                Path(self.dirs[0], "cgroup.kill").write_text("1")
                return
            except OSError:
                pass
        for pid in self.pids():
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                continue

    def remove(self) -> bool:
        """Remove the directories; False while processes are still leaving them."""
        done = True
        for d in self.dirs:
            try:
                os.rmdir(d)
            except FileNotFoundError:
                continue
            except OSError:
                done = False
        return done


@dataclass
class Isolation:
    """How this agent enforces limits; `create` gives a task its cgroup (None in watch mode)."""

    mode: str  # "cgroup-v2" | "cgroup-v1" | "watch"
    reason: str
    parents: dict[str, str] = field(default_factory=dict)  # v1: controller -> dir; v2: "" -> dir
    period_us: int = PERIOD_US  # v1: the CFS period new cgroups inherit (read once, not per task)
    _stale: list[TaskGroup] = field(default_factory=list)

    pids_v2: bool = False  # v2: the pids controller is enabled for tasks

    @property
    def cgroups(self) -> bool:
        return self.mode != "watch"

    @property
    def limits_processes(self) -> bool:
        """Each task's cgroup has the pids controller (else RLIMIT_NPROC limits its owner)."""
        return self.pids_v2 or "pids" in self.parents

    def create(self, name: str, memory_mb: int, cores: int, max_processes: int = 0) -> TaskGroup | None:
        if not self.cgroups:
            return None
        self._retry_stale()
        if self.mode == "cgroup-v2":
            group = TaskGroup(2, [os.path.join(self.parents[""], f"task-{name}")])
            d = group.dirs[0]
            _fresh_dir(d)
            if memory_mb:
                _write(d, "memory.max", str(memory_mb * 1024 * 1024))
                _write(d, "memory.swap.max", "0", optional=True)
            if cores:
                _write(d, "cpu.max", f"{cores * PERIOD_US} {PERIOD_US}")
            if max_processes and self.pids_v2:
                _write(d, "pids.max", str(max_processes))
            return group
        mem = os.path.join(self.parents["memory"], name)
        cpu = os.path.join(self.parents["cpu"], name)
        group = TaskGroup(1, [mem, cpu])
        _fresh_dir(mem)
        _fresh_dir(cpu)
        if "pids" in self.parents:
            pids = os.path.join(self.parents["pids"], name)
            group.dirs.append(pids)
            _fresh_dir(pids)
            _write(pids, "pids.max", str(max_processes) if max_processes else "max")
        if memory_mb:
            limit = str(memory_mb * 1024 * 1024)
            _write(mem, "memory.limit_in_bytes", limit)
            # Without swap accounting this file is absent; with it, swap counts toward the limit.
            _write(mem, "memory.memsw.limit_in_bytes", limit, optional=True)
        if cores:
            _write(cpu, "cpu.cfs_quota_us", str(cores * self.period_us))
        return group

    def adopt(self, dirs: list[str]) -> TaskGroup | None:
        """The cgroup of a task an earlier agent started (its directories are in the spool)."""
        if not dirs:
            return None
        return TaskGroup(2 if self.mode == "cgroup-v2" else 1, list(dirs))

    def release(self, group: TaskGroup) -> None:
        group.kill_all()
        if not group.remove():
            self._stale.append(group)  # its last processes are still exiting

    def sweep(self, keep: list[list[str]]) -> int:
        """Remove empty task cgroups an earlier agent of this name left (it was killed before
        it could), except those of tasks being adopted; returns how many went."""
        if not self.cgroups:
            return 0
        kept = {d for dirs in keep for d in dirs}
        removed = 0
        for parent in self.parents.values():
            try:
                children = [e.path for e in os.scandir(parent) if e.is_dir()]
            except OSError:
                continue
            for d in children:
                if d in kept or (self.mode == "cgroup-v2" and not os.path.basename(d).startswith("task-")):
                    continue
                try:
                    os.rmdir(d)  # fails while processes are in it: those stay
                    removed += 1
                except OSError:
                    pass
        return removed

    def close(self) -> None:
        """Remove the v1 parent directories if no task is left in them (tasks that outlive
        the agent keep theirs, for the next agent to adopt)."""
        self._retry_stale()
        if self.mode == "cgroup-v1":
            for parent in self.parents.values():
                try:
                    os.rmdir(parent)
                except OSError:
                    pass

    def _retry_stale(self) -> None:
        self._stale = [g for g in self._stale if not g.remove()]


def detect(setting: str, node: str, proc: str = "/proc") -> Isolation:
    """Pick the isolation mode for `setting` ("auto", "cgroup" or "watch")."""
    if setting == "watch":
        return Isolation("watch", "isolation = \"watch\" in the agent's config")
    why: list[str] = []
    if os.geteuid() != 0:
        why.append("the agent is not root")
    else:
        mounts, own = _mounts(proc), _own_cgroups(proc)
        for attempt in (_try_v2, _try_v1):
            found = attempt(mounts, own, node, why)
            if found is not None:
                return found
    reason = "; ".join(why) or "no cgroup hierarchy found"
    if setting == "cgroup":
        raise IsolationError(f"isolation = \"cgroup\" but no cgroup can be used here: {reason}")
    return Isolation("watch", reason)


def _try_v2(mounts: dict[str, str], own: dict[str, str], node: str, why: list[str]) -> Isolation | None:
    root = mounts.get("cgroup2")
    if root is None or "" not in own:
        why.append("no cgroup v2 hierarchy")
        return None
    base = os.path.join(root, own[""].lstrip("/"))
    offered = _read(base, "cgroup.controllers").split()
    if not {"memory", "cpu"} <= set(offered):
        why.append(f"cgroup v2 {base} does not offer the memory and cpu controllers (offers: "
                   f"{' '.join(offered) or 'none'})")
        return None
    others = set(_read(base, "cgroup.procs").split()) - {str(os.getpid())}
    if others:
        why.append(f"cgroup v2 {base} holds other processes too (run the agent alone in its own cgroup, "
                   "e.g. a systemd unit with Delegate=yes)")
        return None
    try:
        leaf = os.path.join(base, "agent")
        os.makedirs(leaf, exist_ok=True)
        Path(leaf, "cgroup.procs").write_text(str(os.getpid()))
    except OSError as e:
        why.append(f"cannot delegate cgroup v2 {base} to tasks: {e.strerror} (run the agent alone in "
                   "its own cgroup, e.g. a systemd unit with Delegate=yes)")
        return None
    pids = False
    for wanted in (("+memory +cpu +pids",) if "pids" in offered else ()) + ("+memory +cpu",):
        try:
            Path(base, "cgroup.subtree_control").write_text(wanted)
        except OSError as e:
            error = e
            continue
        pids = "pids" in wanted
        break
    else:
        why.append(f"cannot delegate cgroup v2 {base} to tasks: {error.strerror} (run the agent alone in "
                   "its own cgroup, e.g. a systemd unit with Delegate=yes)")
        return None
    return Isolation("cgroup-v2", f"cgroup v2 at {base}" + ("" if pids else " (no pids controller)"), {"": base},
                     pids_v2=pids)


def _try_v1(mounts: dict[str, str], own: dict[str, str], node: str, why: list[str]) -> Isolation | None:
    parents: dict[str, str] = {}
    for controller in ("memory", "cpu"):
        root = mounts.get(controller)
        if root is None:
            why.append(f"no cgroup v1 {controller} hierarchy")
            return None
        parent = os.path.join(root, own.get(controller, "/").lstrip("/"), f"shoal-{node}")
        try:
            os.makedirs(parent, exist_ok=True)
            probe = os.path.join(parent, ".probe")
            _fresh_dir(probe)
            os.rmdir(probe)
        except OSError as e:
            why.append(f"cgroup v1 {parent} is not writable: {e.strerror}")
            return None
        parents[controller] = parent
    # The pids hierarchy is optional: without it, RLIMIT_NPROC limits processes (main.py).
    if (root := mounts.get("pids")) is not None:
        parent = os.path.join(root, own.get("pids", "/").lstrip("/"), f"shoal-{node}")
        try:
            os.makedirs(parent, exist_ok=True)
            parents["pids"] = parent
        except OSError:
            pass
    where = " and ".join(parents[c] for c in ("memory", "cpu", "pids") if c in parents)
    return Isolation("cgroup-v1", f"cgroup v1 at {where}", parents,
                     _read_int(parents["cpu"], "cpu.cfs_period_us") or PERIOD_US)


def _mounts(proc: str) -> dict[str, str]:
    """Where each v1 controller and the v2 hierarchy are mounted ("cgroup2" for v2)."""
    found: dict[str, str] = {}
    for line in _read(proc, "self/mounts").splitlines():
        parts = line.split()
        if len(parts) < 4:
            continue
        if parts[2] == "cgroup2":
            found.setdefault("cgroup2", parts[1])
        elif parts[2] == "cgroup":
            for opt in parts[3].split(","):
                found.setdefault(opt, parts[1])
    return found


def _own_cgroups(proc: str) -> dict[str, str]:
    """This process's cgroup in each hierarchy ("" for v2)."""
    own: dict[str, str] = {}
    for line in _read(proc, "self/cgroup").splitlines():
        _, controllers, path = line.split(":", 2)
        for c in controllers.split(",") if controllers else [""]:
            own[c] = path
    return own


def _fresh_dir(d: str) -> None:
    try:
        os.mkdir(d)
    except FileExistsError:
        pass  # left by an attempt whose agent died; its limits are written again
    except FileNotFoundError:
        # The parent went: an agent of the same name (another cluster on this host) closed.
        os.makedirs(os.path.dirname(d), exist_ok=True)
        os.makedirs(d, exist_ok=True)


def _write(d: str, name: str, value: str, optional: bool = False) -> None:
    try:
        Path(d, name).write_text(value)
    except OSError as e:
        if not optional:
            raise OSError(e.errno, f"cannot set {name} in {d}: {e.strerror}") from None


def _read(d: str, name: str) -> str:
    try:
        return Path(d, name).read_text()
    except OSError:
        return ""


def _read_int(d: str, name: str) -> int:
    text = _read(d, name).strip()
    return int(text) if text.isdigit() else 0
