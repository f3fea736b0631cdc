"""Fencing: the watchdog that stops a node's tasks when their lease lapses, frozen agent or not.

A frozen (SIGSTOPped, paused) or dead agent cannot stop its tasks, and the tasks are separate
processes that run on regardless. So beside each agent runs a watchdog: a small process in its
own session (a signal to the agent's process group does not reach it), started by the agent
(`ensure_watchdog`) and kept by it, one per state dir (it holds <state_dir>/fence.lock). It
reads the lease deadline the agent writes to <state_dir>/lease (lease.py says how it moves)
five times a second, and once the deadline passes it stops every task of that lease: SIGTERM
to each task's process group and to every process that carries the lease in its environment
(SHOAL_LEASE, which each task inherits), kill_grace seconds for their TERM handlers, then
SIGKILL to what is left, its cgroups included. Each run it stopped is appended to
<state_dir>/fenced, by run id, before any signal, so the agent (when it wakes, or the next one)
reports those attempts as fenced rather than as ordinary exits.

Processes are known by their start time as well as their pid, so a pid the kernel hands to
someone else after a task ends is never signalled; a process group only while its leader is
still the task's (alive, or a zombie the frozen agent has not reaped).

The watchdog leaves when the agent closes the lease (it stopped with no tasks left), or when
the agent is gone, the lease has lapsed and no process of it is left. A successor agent on the
same state dir keeps the lease and the watchdog. One started on an empty state dir makes a new
lease, and stops the tasks an earlier agent of its state dir, or of its name at its head, left
(`stop_orphans`: their leases are in a registry outside any state dir, `registry_dir()`, and
their processes carry them) before it takes work.

Kept to the standard library: it starts once per agent, and the lighter the faster.
"""

from __future__ import annotations

import fcntl
import json
import os
import secrets
import signal
import struct
import sys
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from common.clock import boot_clock, pause

LEASE_FILE, LOCK_FILE, FENCED_FILE, LOG_FILE = "lease", "fence.lock", "fenced", "watchdog.log"
POLL = 0.2  # seconds between the watchdog's looks at the deadline (in LEASE_MARGIN)
ENV = "SHOAL_LEASE"  # the variable every task carries: its lease's id
_FORMAT = struct.Struct("<8sdd32siQ")  # magic, deadline, kill grace, lease id, agent pid, its start
_MAGIC = b"SHLEASE1"
CLOSED = -1.0  # the deadline of a lease the agent closed: no task left, the watchdog may go
_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass
class LeaseState:
    deadline: float  # lease clock (boottime); 0: none yet; CLOSED
    grace: float
    lease_id: str
    agent_pid: int
    agent_start: int  # clock ticks since boot, /proc/PID/stat field 22


class LeaseFile:
    """The lease the agent writes and the watchdog reads: one fixed record, written in one
    pwrite and checked by a CRC, so a reader never takes half of one write for a deadline."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path, self.fd = path, fd

    @classmethod
    def open(cls, state_dir: Path) -> tuple[LeaseFile, LeaseState | None]:
        """Open (making it if need be) the state dir's lease; returns what it held, None if it
        is new (or unreadable, which counts as new)."""
        path = state_dir / LEASE_FILE
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        lease = cls(path, fd)
        return lease, lease.read()

    def read(self) -> LeaseState | None:
        data = os.pread(self.fd, _FORMAT.size + 4, 0)
        if len(data) < _FORMAT.size + 4:
            return None
        body, (crc,) = data[:_FORMAT.size], struct.unpack("<I", data[_FORMAT.size:])
        if zlib.crc32(body) != crc:
            return None
        magic, deadline, grace, lease_id, pid, start = _FORMAT.unpack(body)
        if magic != _MAGIC:
            return None
        return LeaseState(deadline, grace, lease_id.decode(), pid, start)

    def write(self, state: LeaseState) -> None:
        body = _FORMAT.pack(_MAGIC, state.deadline, state.grace, state.lease_id.encode(), state.agent_pid,
                            state.agent_start)
        os.pwrite(self.fd, body + struct.pack("<I", zlib.crc32(body)), 0)

    def close(self) -> None:
        os.close(self.fd)


def new_lease_id() -> str:
    return secrets.token_hex(16)


# -- processes -----------------------------------------------------------------------------


def _stat(pid: int) -> tuple[str, int, int] | None:
    """(state, process group, start time in ticks), or None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            raw = f.read()
    except OSError:
        return None
    fields = raw[raw.rindex(b")") + 2:].split()
    return fields[0].decode(), int(fields[2]), int(fields[19])


def start_ticks(pid: int) -> int:
    found = _stat(pid)
    return found[2] if found else 0


def alive(pid: int, start: int) -> bool:
    """The process `pid` that started at `start` still runs (a zombie has ended)."""
    found = _stat(pid)
    return found is not None and found[2] == start and found[0] != "Z"


def _environ(pid: int) -> bytes:
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            return b"\0" + f.read()
    except OSError:
        return b""


def _pids() -> Iterator[int]:
    for name in os.listdir("/proc"):
        if name.isdigit():
            yield int(name)


def _value(env: bytes, name: bytes) -> bytes | None:
    at = env.find(b"\0" + name + b"=")
    if at < 0:
        return None
    start = at + len(name) + 2
    end = env.find(b"\0", start)
    return env[start:] if end < 0 else env[start:end]


def environ_value(pid: int, name: str) -> str:
    """A variable of the environment process `pid` started with ("" when absent or unreadable)."""
    return (_value(_environ(pid), name.encode()) or b"").decode(errors="replace")


@dataclass(frozen=True)
class Victim:
    pid: int
    start: int
    pgid: int
    run_id: str


def find(leases: Iterable[str]) -> dict[int, Victim]:
    """Live processes of tasks carrying one of `leases`."""
    wanted = {lease.encode() for lease in leases}
    out: dict[int, Victim] = {}
    me = os.getpid()
    for pid in _pids():
        if pid == me:
            continue
        env = _environ(pid)
        lease = _value(env, ENV.encode())
        if lease is None:
            continue
        if lease not in wanted:
            continue
        found = _stat(pid)
        if found is None or found[0] == "Z":
            continue
        out[pid] = Victim(pid, found[2], found[1], (_value(env, b"SHOAL_RUN_ID") or b"").decode())
    return out


def _spool_victims(state_dir: Path, leases: list[str]) -> tuple[dict[int, Victim], list[str]]:
    """Tasks of the spool's records (an agent's before leases had ids in the environment: a
    record's pid, if it still carries its run id and no other lease) and their cgroups."""
    victims: dict[int, Victim] = {}
    cgroups: list[str] = []
    try:
        names = [n for n in os.listdir(state_dir / "spool") if n.endswith(".meta")]
    except OSError:
        return victims, cgroups
    for name in names:
        try:
            meta = json.loads((state_dir / "spool" / name).read_bytes())
        except (OSError, ValueError):
            continue  # blank (a free slot) or being written
        if not isinstance(meta, dict):
            continue
        pid, run_id = meta.get("pid") or 0, meta.get("run_id") or ""
        found = _stat(pid) if pid else None
        env = _environ(pid) if found else b""
        lease = _value(env, ENV.encode())
        if lease is not None and lease.decode() not in leases:
            continue  # another agent's, on a state dir that was emptied under this one
        cgroups.extend(str(d) for d in meta.get("cgroups") or ())
        if found and found[0] != "Z" and _value(env, b"SHOAL_RUN_ID") == run_id.encode():
            victims[pid] = Victim(pid, found[2], found[1], run_id)
    return victims, cgroups


def _cgroup_pids(dirs: Iterable[str]) -> set[int]:
    out: set[int] = set()
    for d in dirs:
        try:
            out.update(int(p) for p in Path(d, "cgroup.procs").read_text().split())
        except (OSError, ValueError):
            continue
    return out


def _send(victims: dict[int, Victim], groups: dict[int, int], sig: int) -> None:
    """`sig` to each process group whose leader is still the task's (alive, or a zombie its
    frozen agent has not reaped, which keeps the group's id from being reused), then to each
    victim still alive (those that left their group)."""
    for pgid, start in groups.items():
        found = _stat(pgid)
        if found is not None and found[2] == start:
            try:
                os.killpg(pgid, sig)
            except (ProcessLookupError, PermissionError):
                pass
    for v in victims.values():
        if alive(v.pid, v.start):
            try:
                os.kill(v.pid, sig)
            except (ProcessLookupError, PermissionError):
                pass


def _signal_cgroups(dirs: list[str], sig: int) -> None:
    if sig == signal.SIGKILL:
        for d in dirs:
            try:
                Path(d, "cgroup.kill").write_text("1")  # v2: every process, atomically
            except OSError:
                pass
    for pid in _cgroup_pids(dirs):
        try:
            os.kill(pid, sig)
        except (ProcessLookupError, PermissionError):
            pass


def stop(leases: Iterable[str], grace: float, state_dir: Path | None = None, log: bool = True) -> int:
    """Stop the tasks of `leases`: SIGTERM, up to `grace` seconds, SIGKILL. Their run ids go
    to the state dir's fence record first. Returns how many processes were stopped."""
    leases = list(leases)
    if not leases:
        return 0
    victims = find(leases)
    cgroups: list[str] = []
    if state_dir is not None:
        spooled, cgroups = _spool_victims(state_dir, leases)
        for pid, v in spooled.items():
            victims.setdefault(pid, v)
        runs = sorted({v.run_id for v in victims.values() if v.run_id})
        if runs:
            try:
                with open(state_dir / FENCED_FILE, "a") as f:
                    f.write("".join(f"{r}\n" for r in runs))
            except OSError as e:  # a full disk: they are stopped all the same, reported as killed
                _say(f"cannot record the fenced runs in {state_dir}: {e.strerror}")
    if not victims and not _cgroup_pids(cgroups):
        return 0
    if log:
        _say(f"stopping {len(victims)} task process(es) of lease(s) {', '.join(x[:8] for x in leases)}: SIGTERM, then SIGKILL after {grace:g}s; "
             f"runs {' '.join(sorted({v.run_id[:8] for v in victims.values()}))}, "
             f"pids {' '.join(str(p) for p in sorted(victims))}, cgroups {len(cgroups)}")
    groups = {v.pgid: v.start for v in victims.values() if v.pid == v.pgid}
    _send(victims, groups, signal.SIGTERM)
    _signal_cgroups(cgroups, signal.SIGTERM)
    deadline = boot_clock() + grace
    while boot_clock() < deadline:
        if not any(alive(v.pid, v.start) for v in victims.values()) and not _cgroup_pids(cgroups):
            break
        pause(0.05)
    # Whatever is left, and what those runs started since (a TERM handler's own children carry
    # its run id), but never a run begun since: the agent, woken and renewed meanwhile, may have
    # started new attempts under the same lease id.
    stopping = {v.run_id for v in victims.values()}
    for pid, v in find(leases).items():
        if v.run_id not in stopping:
            continue
        victims.setdefault(pid, v)
        if v.pid == v.pgid:
            groups.setdefault(v.pgid, v.start)
    _send(victims, groups, signal.SIGKILL)
    _signal_cgroups(cgroups, signal.SIGKILL)
    return len(victims)


# -- the watchdog process -----------------------------------------------------------------


def _say(line: str) -> None:
    import time

    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()) + f".{int(time.time() * 1000) % 1000:03d}Z"
    print(f"{stamp} shoal-watchdog[{os.getpid()}]: {line}", file=sys.stderr, flush=True)


def registry_dir() -> Path:
    """Where leases are registered by state dir and by node name and head address, outside
    every state dir, so an agent started on an emptied one finds what its predecessor left
    (/run/shoal/leases as root, else under XDG_RUNTIME_DIR or /tmp). By name only together
    with the head: agents of other clusters on this host (local ones, tests) may share names."""
    if os.geteuid() == 0:
        return Path("/run/shoal/leases")
    base = os.environ.get("XDG_RUNTIME_DIR") or f"/tmp/shoal-{os.geteuid()}"
    return Path(base) / "shoal-leases"


def register(lease_id: str, state_dir: Path, node: str, head: str) -> None:
    d = registry_dir()
    try:
        d.mkdir(parents=True, exist_ok=True, mode=0o700)
        (d / lease_id).write_text(json.dumps({"state_dir": str(state_dir.resolve()), "node": node, "head": head}))
    except OSError as e:
        _say(f"cannot register lease {lease_id[:8]} in {d}: {e.strerror} (a successor on an emptied state dir "
             "will not find its tasks; their watchdog still stops them when their lease lapses)")


def unregister(lease_id: str) -> None:
    try:
        (registry_dir() / lease_id).unlink()
    except OSError:
        pass


def predecessors(state_dir: Path, node: str, head: str, mine: str) -> list[str]:
    """Registered leases of this state dir, or of this node name at this head, but `mine`."""
    out = []
    d = registry_dir()
    try:
        entries = list(d.iterdir())
    except OSError:
        return out
    where = str(state_dir.resolve())
    for entry in entries:
        if entry.name == mine:
            continue
        try:
            info = json.loads(entry.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(info, dict) and (info.get("state_dir") == where
                                       or (info.get("node"), info.get("head")) == (node, head)):
            out.append(entry.name)
    return out


def stop_orphans(state_dir: Path, node: str, head: str, mine: str, grace: float) -> int:
    """An agent on an emptied state dir: stop what earlier agents of this state dir or node
    left running (their watchdogs would only at their leases' end), before taking work."""
    old = predecessors(state_dir, node, head, mine)
    stopped = stop(old, grace, None, log=False)
    for lease_id in old:
        unregister(lease_id)
    return stopped


def watchdog_running(state_dir: Path) -> bool:
    try:
        fd = os.open(state_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # closing drops the lock if this call took it
    return False


def ensure_watchdog(state_dir: Path, env: dict[str, str]) -> int:
    """Start the state dir's watchdog unless one runs; returns its pid (0: one was running)."""
    if watchdog_running(state_dir):
        return 0
    log = os.open(state_dir / LOG_FILE, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
    null = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
    try:
        # posix_spawn, not subprocess: no Python runs between fork and exec beside grpc.aio.
        return os.posix_spawn(
            sys.executable, [sys.executable, "-m", "computenode.fence", str(state_dir)], env,
            file_actions=[(os.POSIX_SPAWN_DUP2, null, 0), (os.POSIX_SPAWN_DUP2, log, 1),
                          (os.POSIX_SPAWN_DUP2, log, 2)],
            setsid=True, setsigmask=(), setsigdef=(signal.SIGPIPE, signal.SIGXFSZ, signal.SIGHUP, signal.SIGINT),
        )
    finally:
        os.close(log)
        os.close(null)


def _same_file(lease: LeaseFile) -> bool:
    try:
        st, mine = os.stat(lease.path), os.fstat(lease.fd)
    except OSError:
        return False
    return (st.st_dev, st.st_ino) == (mine.st_dev, mine.st_ino)


def watch(state_dir: Path) -> int:
    """The watchdog's loop (see the module's docstring)."""
    lock = os.open(state_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return 0  # another one watches this state dir
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    fd = os.open(state_dir / LEASE_FILE, os.O_RDONLY | os.O_CLOEXEC)
    lease = LeaseFile(state_dir / LEASE_FILE, fd)
    fenced_at = 0.0
    state: LeaseState | None = None
    _say(f"watching {state_dir}")
    while True:
        state = lease.read() or state
        if state is not None:
            if state.deadline == CLOSED:
                break
            agent_alive = alive(state.agent_pid, state.agent_start)
            if state.deadline > 0 and boot_clock() >= state.deadline:
                if fenced_at != state.deadline:
                    fenced_at = state.deadline
                    # Its spool only while the state dir is still this lease's (not emptied and
                    # taken by another agent).
                    stop([state.lease_id], state.grace, state_dir if _same_file(lease) else None)
                if not agent_alive and not find([state.lease_id]):
                    break
            elif not agent_alive and state.deadline <= 0:
                break  # its agent died before any lease: nothing ran under one
        pause(POLL)
    if state is not None:
        unregister(state.lease_id)
    _say("done")
    return 0


if __name__ == "__main__":
    sys.exit(watch(Path(sys.argv[1])))
