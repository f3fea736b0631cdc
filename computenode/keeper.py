"""The I/O half of the agent's task lease: the lease file, the watchdog, and probes of a silent head.

The pure arithmetic is lease.py's; the watchdog that enforces a lapsed lease while the agent
cannot is fence.py's. This module ties them to a running agent:

- at start-up (`open`): the state dir's lease file is read or made. A lease file already there
  means the state dir is the one the earlier agent used, and its tasks (adopted from the spool)
  go on under the same lease, with the same deadline. None means a new state dir (`fresh`): a
  new lease, registered by state dir and node name, and whatever an earlier agent of either
  left running is stopped before any work is taken (`stop_orphans`).
- every renewal writes the new deadline (one pwrite); the watchdog reads it.
- `run()`: while the lease is unrenewed for longer than the head's heartbeats explain, probe
  the head that last renewed it (probe.py) and extend the lease while its host answers and it
  does not; when the lease lapses, call `on_lapse` once per deadline; respawn the watchdog if
  it died.
- `close()`: a clean stop with no task left closes the lease, and the watchdog leaves.

Fake agents (the swarm's, fake.py) keep the lease in memory only: no file, no watchdog.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from common import log
from common.clock import Clock
from computenode import fence, probe
from computenode.lease import Lease

_log = log.get("lease")
CHECK = 1.0  # seconds between looks at the watchdog and the lease when nothing is due


class LeaseKeeper:
    def __init__(self, state_dir: Path, node: str, head: str, clock: Clock, enforce: bool = True) -> None:
        self.state_dir = state_dir
        self.node = node
        self.head = head
        self.clock = clock
        self.enforce = enforce  # a real agent: lease file and watchdog
        self.lease = Lease()
        self.lease_id = fence.new_lease_id()
        self.grace = 5.0
        self.fresh = True
        self.fenced_runs: set[str] = set()
        self._file: fence.LeaseFile | None = None
        self._handled = 0.0  # the deadline on_lapse was last called for
        self._extending = False
        self._watchdog = 0  # the pid of the watchdog this agent started
        self._prober = probe.Prober()

    def open(self, grace: float) -> None:
        self.grace = grace
        if not self.enforce:
            return
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self._file, old = fence.LeaseFile.open(self.state_dir)
        if old is not None and old.deadline != fence.CLOSED:
            self.fresh = False
            self.lease_id = old.lease_id
            self.lease.deadline = max(0.0, old.deadline)
        else:
            if old is not None:
                self.fresh = False  # closed cleanly with nothing left: the spool is complete
                self.lease_id = old.lease_id
            fence.register(self.lease_id, self.state_dir, self.node, self.head)
        self.reload_fenced()
        self._write()
        self.ensure_watchdog()

    def adopted(self) -> None:
        """The spool's records have taken in the fence record: it may start afresh."""
        if self.enforce and self.fenced_runs:
            (self.state_dir / fence.FENCED_FILE).write_text("")
            self.fenced_runs.clear()  # in place: the runner holds this set

    def reload_fenced(self) -> None:
        """Take in the runs the watchdog has recorded (it writes them before it signals any)."""
        if not self.enforce:
            return
        try:
            self.fenced_runs.update((self.state_dir / fence.FENCED_FILE).read_text().split())
        except FileNotFoundError:
            pass

    def stop_orphans(self) -> int:
        """A fresh state dir: stop what earlier agents of this state dir or node name left."""
        if not (self.enforce and self.fresh):
            return 0
        return fence.stop_orphans(self.state_dir, self.node, self.head, self.lease_id, self.grace)

    @property
    def watchdog_pid(self) -> int:
        """The watchdog this agent started, if any (its child, but no task's)."""
        return self._watchdog

    def ensure_watchdog(self) -> None:
        """Start the watchdog unless one runs (this agent's child, or an earlier agent's)."""
        if not self.enforce:
            return
        if self._watchdog:
            try:
                if os.waitpid(self._watchdog, os.WNOHANG)[0] == 0:
                    return  # still running (it may not hold its lock yet)
            except ChildProcessError:
                pass
            _log.info("watchdog_exited", node=self.node, pid=self._watchdog)
            self._watchdog = 0
        if pid := fence.ensure_watchdog(self.state_dir, dict(os.environ)):
            self._watchdog = pid
            _log.info("watchdog_started", node=self.node, pid=pid)

    def configure(self, lease: float, stall_grace: float, grace: float) -> None:
        self.lease.configure(lease, stall_grace)
        self.grace = grace
        self._write()

    def renew(self, sent: float) -> None:
        if self.lease.renew(sent):
            if self._extending:
                _log.info("lease_renewed", node=self.node)
                self._extending = False
            self._write()

    def lapsed(self) -> bool:
        """Past the deadline and not yet handled (on_lapse called) for this deadline."""
        return self.lease.lapsed(self.clock.boottime()) and self._handled != self.lease.deadline

    def handled(self) -> None:
        self._handled = self.lease.deadline

    async def run(self, on_lapse: Callable[[], None], busy: Callable[[], bool], renewer: Callable[[], str],
                  silent_after: Callable[[], float]) -> None:
        """`busy()`: tasks to protect; `renewer()`: the head address that last renewed the
        lease; `silent_after()`: seconds without renewal that heartbeats do not explain."""
        while True:
            now = self.clock.boottime()
            if self.lapsed():
                _log.warning("lease_lapsed", node=self.node, lapsed_seconds_ago=round(now - self.lease.deadline, 2))
                on_lapse()
            pause = CHECK
            unrenewed = now - self.lease.anchor if self.lease.anchor else 0.0
            if not self.lease.lapsed(now) and self.lease.deadline and busy() and unrenewed > silent_after() \
                    and (address := renewer()):
                found = await self._prober.probe(address, timeout=min(1.0, max(0.2, self.lease.lease / 4)))
                if found in (probe.STALLED, probe.DOWN) and self.lease.extend(now):
                    if not self._extending:
                        _log.warning("head_unresponsive_lease_extended", node=self.node, head=address, probe=found,
                                     until_at_most=round(self.lease.anchor + self.lease.lease + self.lease.stall_grace
                                                         - now, 1))
                        self._extending = True
                    self._write()
                # Each look extends it by a whole lease: a third of one apart is plenty.
                pause = min(1.0, self.lease.lease / 3, max(0.01, self.lease.left(self.clock.boottime())))
            else:
                self._prober.close()
                if self.lease.deadline > 0 and not self.lease.lapsed(now):
                    pause = min(CHECK, max(0.01, self.lease.left(now)))
                    wake = self.lease.anchor + silent_after() - now if self.lease.anchor else 0.0
                    if wake > 0 and busy():
                        # Awake when the silence begins to need a probe, not a second later:
                        # with a short lease the probe would otherwise come after its end.
                        pause = min(pause, wake + 0.01)
            self.ensure_watchdog()
            await self.clock.sleep(pause)

    def close(self, tasks_left: bool) -> None:
        if self._file is None:
            return
        if not tasks_left:
            self._write(fence.CLOSED)
            fence.unregister(self.lease_id)
        self._file.close()
        self._file = None

    def _write(self, deadline: float | None = None) -> None:
        if self._file is not None:
            self._file.write(fence.LeaseState(self.lease.deadline if deadline is None else deadline, self.grace,
                                              self.lease_id, os.getpid(), fence.start_ticks(os.getpid())))
