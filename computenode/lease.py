"""The agent's task lease, pure: until when its tasks may run if the head says nothing more.

Every running attempt on a node holds the node's lease; the head renews it by answering the
agent's heartbeats (and its Hello). Times are on the lease clock (Clock.boottime: one clock for
every process of the host, so the watchdog beside the agent reads the same deadline, and one
that runs on through a suspend, so a host that slept finds its leases lapsed).

- renew(sent): the head answered what the agent sent at `sent`: deadline = sent + lease. The
  send time, not the time the answer came: the head counts a node's silence from when it
  heard it, which is later, so the node's deadline always falls first.
- extend(at): a probe at `at` found the head's host answering but the head not (stalled,
  SIGSTOPped, restarting; computenode/probe.py). A head in that state declares no node lost,
  and one that runs again gives every node a fresh grace (headnode/services/membership.py),
  so the lease may run on: to at + lease, but never past the last renewal + lease +
  stall_grace, which bounds what a head taking over from a frozen leader has to wait.
- lapsed(now): past the deadline. The agent stops its tasks then, and so does the watchdog
  (computenode/fence.py), which runs while the agent is frozen or dead.

The head requeues a silent node's attempts only after node_lost_after, which the head's
config checks is at least lease + kill_grace + LEASE_MARGIN: by then the node has stopped them.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Lease:
    lease: float = 0.0  # seconds; 0 until a head has said
    stall_grace: float = 0.0
    anchor: float = 0.0  # when the agent sent the last message the head answered
    deadline: float = 0.0  # 0: no lease yet (the agent has never been answered)

    def configure(self, lease: float, stall_grace: float) -> None:
        if lease > 0:
            self.lease, self.stall_grace = lease, stall_grace

    def renew(self, sent: float) -> bool:
        """The head answered a message sent at `sent`; True if the deadline moved."""
        if self.lease <= 0:
            return False
        self.anchor = max(self.anchor, sent)
        return self._move(sent + self.lease)

    def extend(self, at: float) -> bool:
        """A probe at `at` found the head stalled or restarting; True if the deadline moved."""
        if self.lease <= 0 or self.deadline <= 0:
            return False
        return self._move(min(at + self.lease, self.anchor + self.lease + self.stall_grace))

    def lapsed(self, now: float) -> bool:
        return self.deadline > 0 and now >= self.deadline

    def left(self, now: float) -> float:
        """Seconds until it lapses (inf with no lease yet)."""
        return self.deadline - now if self.deadline > 0 else float("inf")

    def wants_probe(self, now: float) -> bool:
        """Unrenewed for over half its length: time to find out whether the head is stalled."""
        return self.deadline > 0 and not self.lapsed(now) and self.left(now) < self.lease / 2

    def _move(self, deadline: float) -> bool:
        if deadline > self.deadline:
            self.deadline = deadline
            return True
        return False
