"""Riding out a head node's absence (a restart, or a failover to a standby), for the SDK's
followers: `wait_job`, `watch_job`, `watch_jobs` and `read_output(follow=True)` of
shoal.client.Client and shoal.aio.AsyncClient, and the CLI commands built on them
(`shoal job submit --wait`, `job wait`, `job watch`, `task output --follow`).

This module owns what they share, with no I/O of its own:

- `Outage`: how long to wait for a head node to answer again (RECONNECT_FOR, 120 s, from the
  first failed try of one absence) and how long to wait between tries (jittered exponential
  backoff, common.retry.Backoff, 0.05 s doubling to 1 s). Only HeadUnreachable (UNAVAILABLE,
  DEADLINE_EXCEEDED: no head node answered) is waited out; any other error (NOT_FOUND,
  PERMISSION_DENIED, ...) ends the follower at once.
- Where each kind of follower has got to, so that when a head node answers again it carries on
  from there with nothing lost or repeated:
  * output: the byte offset delivered so far (the next chunk's `offset` plus its length);
    ReadOutput is asked again from it.
  * one job's watch (WatchJob): every watch replays the job's history before its live
    changes, each event numbered by `seq` (its position in the job's history); a resumed
    watch drops events at or below the last `seq` delivered (`ended` says when it is over).
  * every job's watch (WatchJobs): `JobsCursor`, below.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

import grpc

from common.retry import Backoff
from shoal.errors import HeadUnreachable
from shoal.v1 import common_pb2, jobs_pb2

# How long a follower waits for a head node to answer again before it gives up.
RECONNECT_FOR = 120.0
ENDED_JOB_STATES = (jobs_pb2.JOB_STATE_FINISHED, jobs_pb2.JOB_STATE_FAILED, jobs_pb2.JOB_STATE_CANCELLED)


class Outage:
    """The wait for a head node to answer again, for one follower. `delay(error)` after each
    failed try gives the seconds to wait before the next, or raises HeadUnreachable once
    `budget` seconds have passed since the first failure of this absence (at once with a
    budget of 0); `answered()` when a head node answers ends the absence."""

    def __init__(self, address: str, what: str, budget: float = RECONNECT_FOR,
                 clock: Callable[[], float] = time.monotonic, backoff: Backoff | None = None) -> None:
        self.address, self.what, self.budget = address, what, budget
        self._clock = clock
        self._backoff = backoff or Backoff(initial=0.05, maximum=1.0)
        self._since: float | None = None

    def delay(self, error: HeadUnreachable) -> float:
        if self.budget <= 0:
            raise error
        now = self._clock()
        if self._since is None:
            self._since = now
        left = self._since + self.budget - now
        if left <= 0:
            raise HeadUnreachable(grpc.StatusCode.UNAVAILABLE, f"no head node at {self.address} answered for "
                                  f"{self.budget:g}s while {self.what}") from None
        return min(self._backoff.next_delay(), left)

    def answered(self) -> None:
        if self._since is not None:
            self._since = None
            self._backoff.reset()


def ended(event: jobs_pb2.JobEvent) -> bool:
    """The job's own change into an end state: the last event of a watch of one job."""
    return not event.HasField("task") and event.job_state in ENDED_JOB_STATES


def _ns(t: object) -> int:
    return t.seconds * 1_000_000_000 + t.nanos  # type: ignore[attr-defined]


class JobsCursor:
    """Where a watch of every job (WatchJobs) has got to, and what it missed while no head
    node answered.

    WatchJobs has no resume token: it sends changes from the moment it starts. So a resumed
    watch subscribes again (changes from then on arrive on the new stream) and then re-reads
    the jobs' current state: `changed(ListJobs)` names the jobs that may have changed since the
    last event delivered, and `missed(GetJob full view)` rebuilds from each one's stored history
    the changes this watch has not delivered, as events with their real `seq`. Every event
    delivered, re-read or live, goes through `admit`: per job, only a `seq` above the last one
    delivered passes, so a change both re-read and on the new stream is shown once.

    What has not been delivered: for a job this watch has had events of, what comes after its
    last `seq`; for a job it has not, what happened at or after `since`, the head node's time of
    the newest event delivered (the client's clock when the watch began, before any event: a
    clock apart from the head's by more than the outage can show a change from before the
    watch, or lose one). A job is re-read if its state is not the one last seen, if one of its
    times (created, submitted, started, ended) is at or after `since`, or (when the watch shows
    tasks' changes) if it has not ended; with `ends_only`, only jobs that have ended.

    Not rebuilt: the instances' changes of sweeps and multi-instance tasks (the full view has
    tasks' own histories, not their instances'; the last re-read event of a job carries its
    counts now, as the head's own replay does), and a job's changes that left its state and
    times as they were (held, released, modified) unless it was re-read for another reason."""

    def __init__(self, since: float = 0.0, job_events_only: bool = False, ends_only: bool = False) -> None:
        self.since = int(since * 1e9)
        self.tasks = not (job_events_only or ends_only)
        self.ends_only = ends_only
        self.last: dict[int, tuple[int, int]] = {}  # job id -> (seq, job state) of the last event delivered

    def admit(self, event: jobs_pb2.JobEvent) -> bool:
        """Whether `event` is new to this watch (and if so, it is recorded as delivered)."""
        seen = self.last.get(event.job_id)
        if seen is not None and event.seq <= seen[0]:
            return False
        self.last[event.job_id] = (event.seq, event.job_state)
        at = _ns(event.time)
        if at > self.since:
            self.since = at
        return True

    def changed(self, jobs: Iterable[jobs_pb2.Job]) -> list[int]:
        """The ids of the jobs (summaries, from ListJobs) to re-read."""
        out = []
        for job in jobs:
            done = job.state in ENDED_JOB_STATES
            if self.ends_only and not done:
                continue
            seen = self.last.get(job.id)
            if ((seen is not None and seen[1] != job.state) or (self.tasks and not done)
                    or max(_ns(job.create_time), _ns(job.submit_time), _ns(job.start_time),
                           _ns(job.end_time)) >= self.since):
                out.append(job.id)
        return out

    def missed(self, job: jobs_pb2.Job) -> list[jobs_pb2.JobEvent]:
        """The changes in `job`'s stored history (its full view) not yet delivered, as events,
        oldest first (not recorded as delivered: `admit` does that)."""
        records: list[tuple[int, object, int]] = [(u.seq, u, 0) for u in job.history]
        if self.tasks:
            records += [(u.seq, u, t.ref.task_id) for t in job.tasks for u in t.history]
        records.sort(key=lambda r: r[0])
        seen = self.last.get(job.id)
        state = jobs_pb2.JOB_STATE_CONFIGURING
        out: list[jobs_pb2.JobEvent] = []
        for seq, update, task in records:
            if not task:
                state = update.state  # type: ignore[attr-defined]
            if (seq <= seen[0]) if seen is not None else (_ns(update.time) < self.since):  # type: ignore[attr-defined]
                continue
            if self.ends_only and (task or state not in ENDED_JOB_STATES):
                continue
            event = jobs_pb2.JobEvent(time=update.time, job_id=job.id, job_state=state,  # type: ignore[attr-defined]
                                      reason=update.reason, seq=seq)  # type: ignore[attr-defined]
            if task:
                event.task.CopyFrom(common_pb2.TaskRef(job_id=job.id, task_id=task,
                                                       instance_id=update.instance_id))  # type: ignore[attr-defined]
                event.task_state = update.state  # type: ignore[attr-defined]
            out.append(event)
        if out:
            out[-1].task_counts.CopyFrom(job.task_counts)
        return out


def in_order(events: Iterable[jobs_pb2.JobEvent]) -> list[jobs_pb2.JobEvent]:
    """Re-read events of several jobs in the order they happened."""
    return sorted(events, key=lambda e: (_ns(e.time), e.job_id, e.seq))
