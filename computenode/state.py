"""The agent's task table as a pure state machine: AgentState.handle(event) -> [instructions].

No I/O, no clock: the agent shell (agent.py) feeds it events (what the head asked, what the
processes did, what an earlier run of the agent left in the spool) and carries out the
instructions it returns. Tasks are keyed by (task, attempt), so a new attempt of a task is a
new entry and never confused with an old one. The table is an explicit transition table: an
event that has no entry for a task's phase is ignored, which makes repeated kills, duplicate
launches and late acks harmless.

Phases: (QUEUED) -> RUNNING -> (KILLING) -> REPORTED (the exit is sent to the head and kept
until it acknowledges) -> forgotten. A task past its runtime limit is killed like a cancelled
one, and its exit says so. A task adopted after an agent restart enters in the phase it was
left in. Killing is SIGTERM to the task's processes, then SIGKILL after the kill grace; when
the task's main process ends within the grace, whatever it left behind still has the rest of
the grace before its SIGKILL (KillLeftovers), so every process's TERM handler gets its time.

When the node's task lease lapses (lease.py: the head stopped answering), fence() stops every
task at once, as a kill, and their exits say they were fenced; launches held in the queue are
dropped, reported killed and fenced, never started.

The head dispatches ahead: it may send a node more launches than it has free cores, so the next
task starts the moment one ends, without a round trip. The agent keeps the node within its
capacity: a launch starts when its cores and memory are free (RUNNING and KILLING tasks hold
theirs until their process is gone), else it is QUEUED, and queued launches start as room
frees, strictly first in first out, so the head's order holds. One larger than the whole node
starts at the queue's head once nothing else runs (the head is the judge of what fits). A kill
of a queued launch (the head taking it back) reports it killed (SIGKILL) without starting it.
Queued launches are not in the spool: a restarted agent has forgotten them.
"""

from __future__ import annotations

import enum
import signal as _signal
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from common.ids import TaskId

Key = tuple[TaskId, int]  # (task, attempt)


class Phase(enum.Enum):
    QUEUED = "queued"
    RUNNING = "running"
    KILLING = "killing"
    REPORTED = "reported"


# -- events ---------------------------------------------------------------------------------


# Values, never changed once built; not frozen= (see headnode/scheduling/snapshot.py: 4-5x cheaper to build).
@dataclass(slots=True)
class LaunchRequested:
    key: Key
    launch: Any  # the LaunchTask message, passed through to the Start instruction
    runtime_limit: float = 0.0  # seconds; 0: none
    cores: int = 0  # what it asks for (fewer than 1 counts as 1 on a node of limited capacity)
    memory_mb: int = 0


@dataclass(slots=True)
class KillRequested:
    key: Key


@dataclass(slots=True)
class KillTimeout:
    key: Key


@dataclass(slots=True)
class RuntimeExceeded:
    key: Key


@dataclass(slots=True)
class MemoryExceeded:
    """The task's processes use more memory than it was given."""

    key: Key


@dataclass(slots=True)
class ProcessStarted:
    key: Key
    pid: int


@dataclass(slots=True)
class StartFailed:
    key: Key
    error: str


@dataclass(slots=True)
class ProcessExited:
    key: Key
    exit_code: int
    signal: int
    error: str = ""  # set when how it ended is unknown
    fenced: bool = False  # the watchdog stopped it: its lease had lapsed


@dataclass(slots=True)
class ExitAcked:
    key: Key


@dataclass(slots=True)
class Adopted:
    """A task an earlier run of the agent left: still running, or ended (with how)."""

    key: Key
    running: bool
    killing: bool = False
    fenced: bool = False
    runtime_left: float = 0.0  # seconds; 0: no limit
    runtime_exceeded: bool = False
    exit_code: int = 0
    signal: int = 0
    error: str = ""
    out_of_memory: bool = False


Event = (
    LaunchRequested | KillRequested | KillTimeout | RuntimeExceeded | MemoryExceeded | ProcessStarted | StartFailed
    | ProcessExited | ExitAcked | Adopted
)


# -- instructions ---------------------------------------------------------------------------


@dataclass(slots=True)
class Start:
    key: Key
    launch: Any


@dataclass(slots=True)
class Signal:
    key: Key
    signal: int


@dataclass(slots=True)
class StartKillTimer:
    key: Key


@dataclass(slots=True)
class StartRuntimeTimer:
    key: Key
    seconds: float


@dataclass(slots=True)
class ReportStarted:
    key: Key
    pid: int


@dataclass(slots=True)
class ReportExited:
    key: Key


@dataclass(slots=True)
class KillLeftovers:
    """The task's process ended while it was being killed: SIGKILL what is left of it once
    the kill grace that began with its SIGTERM is over."""

    key: Key


@dataclass(slots=True)
class Forget:
    key: Key


@dataclass(slots=True)
class Persist:
    """The entry's kill or runtime state changed: write it down so an adoption sees it."""

    key: Key


Instruction = (Start | Signal | StartKillTimer | StartRuntimeTimer | ReportStarted | ReportExited | KillLeftovers
               | Forget | Persist)


@dataclass(slots=True)
class TaskEntry:
    key: Key
    phase: Phase = Phase.RUNNING
    pid: int = 0
    exit_code: int = 0
    signal: int = 0
    error: str = ""
    runtime_limit: float = 0.0
    runtime_exceeded: bool = False
    out_of_memory: bool = False
    fenced: bool = False  # stopped because the lease lapsed
    cores: int = 0  # what it holds while RUNNING or KILLING (adopted ones: 0, counted as 1)
    memory_mb: int = 0
    launch: Any = None  # the LaunchTask message, kept while QUEUED


class AgentState:
    def __init__(self, cores: int = 0, memory_mb: int = 0) -> None:
        """`cores`, `memory_mb`: the node's capacity offered to tasks; 0 cores: unlimited (every
        launch starts at once); 0 memory: memory not limited."""
        self.tasks: dict[Key, TaskEntry] = {}
        self.cores = cores
        self.memory_mb = memory_mb
        self.queue: deque[Key] = deque()  # the QUEUED entries, first to start first
        # What the RUNNING and KILLING entries hold: how many, their cores and memory. Kept as
        # they change phase rather than summed over the table at each launch and each exit.
        self.holding = self.held_cores = self.held_memory = 0

    def handle(self, event: Event) -> list[Instruction]:
        entry = self.tasks.get(event.key)
        phase = entry.phase if entry is not None else None
        handler = _TABLE.get((phase, type(event)))
        if handler is None:
            return []
        return handler(self, entry, event)

    def entries(self) -> list[TaskEntry]:
        return list(self.tasks.values())

    def fence(self) -> list[Instruction]:
        """The lease lapsed: drop what is queued, stop what runs (see the module's docstring)."""
        out: list[Instruction] = []
        for key in reversed(self.queue.copy()):
            t = self.tasks[key]
            t.fenced = True
            out += self._unqueue(t, KillRequested(key))
        for t in list(self.tasks.values()):
            if t.phase is Phase.RUNNING:
                t.fenced = True
                out += self._kill(t, KillRequested(t.key))
        return out

    # -- handlers (one per row of the table) --

    def _fits(self, t: TaskEntry) -> bool:
        """The node has room for `t` now (or runs nothing, so `t` is never held forever)."""
        if self.cores <= 0 or not self.holding:
            return True
        if self.held_cores + max(1, t.cores) > self.cores:
            return False
        return self.memory_mb <= 0 or self.held_memory + t.memory_mb <= self.memory_mb

    def _hold(self, t: TaskEntry, phase: Phase) -> None:
        """`t` enters a phase that holds its cores and memory (from one that does not)."""
        t.phase = phase
        self.holding += 1
        self.held_cores += max(1, t.cores)
        self.held_memory += t.memory_mb

    def _release(self, t: TaskEntry) -> None:
        """`t` leaves RUNNING or KILLING for REPORTED: its process is gone."""
        t.phase = Phase.REPORTED
        self.holding -= 1
        self.held_cores -= max(1, t.cores)
        self.held_memory -= t.memory_mb

    def _drain(self) -> list[Instruction]:
        """Start the queued launches that now fit, in order; the first that does not stops it."""
        out: list[Instruction] = []
        while self.queue:
            t = self.tasks[self.queue[0]]
            if not self._fits(t):
                break
            self.queue.popleft()
            launch, t.launch = t.launch, None
            self._hold(t, Phase.RUNNING)
            out.append(Start(t.key, launch))
        return out

    def _launch(self, _: None, e: LaunchRequested) -> list[Instruction]:
        t = TaskEntry(e.key, Phase.QUEUED, runtime_limit=e.runtime_limit, cores=e.cores, memory_mb=e.memory_mb)
        fits = not self.queue and self._fits(t)  # before it is in the table, holding nothing
        self.tasks[e.key] = t
        if fits:
            self._hold(t, Phase.RUNNING)
            return [Start(e.key, e.launch)]
        t.launch = e.launch
        self.queue.append(e.key)
        return []

    def _unqueue(self, t: TaskEntry, e: KillRequested) -> list[Instruction]:
        # Taken back by the head (or cancelled) before it started: reported as killed.
        self.queue.remove(e.key)
        t.phase, t.launch, t.signal, t.exit_code = Phase.REPORTED, None, _signal.SIGKILL, 0
        return [ReportExited(e.key), *self._drain()]

    def _adopted(self, _: None, e: Adopted) -> list[Instruction]:
        t = self.tasks[e.key] = TaskEntry(e.key, runtime_exceeded=e.runtime_exceeded, out_of_memory=e.out_of_memory,
                                          fenced=e.fenced)
        if not e.running:
            t.phase, t.exit_code, t.signal, t.error = Phase.REPORTED, e.exit_code, e.signal, e.error
            return [ReportExited(e.key)]
        self._hold(t, Phase.KILLING if e.killing else Phase.RUNNING)
        if e.killing:
            return [Signal(e.key, _signal.SIGKILL)]  # its grace passed while the agent was away
        return [StartRuntimeTimer(e.key, e.runtime_left)] if e.runtime_left > 0 else []

    def _started(self, t: TaskEntry, e: ProcessStarted) -> list[Instruction]:
        t.pid = e.pid
        out: list[Instruction] = [ReportStarted(e.key, e.pid)]
        if t.runtime_limit > 0 and t.phase is Phase.RUNNING:
            out.append(StartRuntimeTimer(e.key, t.runtime_limit))
        return out

    def _start_failed(self, t: TaskEntry, e: StartFailed) -> list[Instruction]:
        t.error = e.error
        self._release(t)
        return [ReportExited(e.key), *self._drain()]

    def _kill(self, t: TaskEntry, e: KillRequested | RuntimeExceeded) -> list[Instruction]:
        t.phase = Phase.KILLING
        return [Persist(e.key), Signal(e.key, _signal.SIGTERM), StartKillTimer(e.key)]

    def _runtime_exceeded(self, t: TaskEntry, e: RuntimeExceeded) -> list[Instruction]:
        t.runtime_exceeded = True
        return self._kill(t, e)

    def _memory_exceeded(self, t: TaskEntry, e: MemoryExceeded) -> list[Instruction]:
        # As the kernel's OOM killer would: at once, no grace.
        t.out_of_memory = True
        t.phase = Phase.KILLING
        return [Persist(e.key), Signal(e.key, _signal.SIGKILL)]

    def _kill_timeout(self, t: TaskEntry, e: KillTimeout) -> list[Instruction]:
        return [Signal(e.key, _signal.SIGKILL)]

    def _exited(self, t: TaskEntry, e: ProcessExited) -> list[Instruction]:
        killing = t.phase is Phase.KILLING
        t.exit_code, t.signal, t.error = e.exit_code, e.signal, e.error
        t.fenced = t.fenced or e.fenced
        self._release(t)
        # Whatever the task left behind in its process group goes with it (as Slurm does); a
        # task being killed leaves it the rest of its grace.
        last: Instruction = KillLeftovers(e.key) if killing else Signal(e.key, _signal.SIGKILL)
        return [last, ReportExited(e.key), *self._drain()]

    def _acked(self, t: TaskEntry, e: ExitAcked) -> list[Instruction]:
        del self.tasks[e.key]
        return [Forget(e.key)]


_Handler = Callable[[AgentState, Any, Any], list[Instruction]]
P = Phase
_TABLE: dict[tuple[Phase | None, type], _Handler] = {
    (None, LaunchRequested): AgentState._launch,
    (None, Adopted): AgentState._adopted,
    (P.QUEUED, KillRequested): AgentState._unqueue,
    (P.RUNNING, ProcessStarted): AgentState._started,
    (P.KILLING, ProcessStarted): AgentState._started,
    (P.RUNNING, StartFailed): AgentState._start_failed,
    (P.KILLING, StartFailed): AgentState._start_failed,
    (P.RUNNING, KillRequested): AgentState._kill,
    (P.RUNNING, RuntimeExceeded): AgentState._runtime_exceeded,
    (P.RUNNING, MemoryExceeded): AgentState._memory_exceeded,
    (P.KILLING, KillTimeout): AgentState._kill_timeout,
    (P.RUNNING, ProcessExited): AgentState._exited,
    (P.KILLING, ProcessExited): AgentState._exited,
    (P.REPORTED, ExitAcked): AgentState._acked,
}
del P
