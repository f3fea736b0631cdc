"""shoal.resume without a cluster: the wait-for-a-head budget, and what a watch of every job
re-reads and shows after a head node's absence (each change once, none lost)."""

from __future__ import annotations

import random

import grpc
import pytest

from common.retry import Backoff
from shoal.errors import HeadUnreachable, RequestFailed
from shoal.resume import JobsCursor, Outage, ended, in_order
from shoal.v1 import common_pb2, jobs_pb2

GONE = HeadUnreachable(grpc.StatusCode.UNAVAILABLE, "cannot reach the head node at h:1 (connection refused)")
T0 = 1_700_000_000


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_an_outage_backs_off_then_gives_up_once_its_budget_is_spent() -> None:
    clock = Clock()
    outage = Outage("h:1", "following the output of task 3.1", budget=10, clock=clock,
                    backoff=Backoff(initial=0.05, maximum=1.0, rng=random.Random(7)))
    delays = []
    while clock.now < 10:
        delays.append(outage.delay(GONE))
        clock.now += delays[-1]
    assert 0.025 <= delays[0] <= 0.05 and all(d <= 1.0 for d in delays) and max(delays) > 0.5
    assert sum(delays) == pytest.approx(10)  # the last wait is cut to what is left
    with pytest.raises(HeadUnreachable, match=r"^no head node at h:1 answered for 10s while following the "
                                              r"output of task 3\.1$"):
        outage.delay(GONE)


def test_an_answer_ends_the_absence_so_the_next_one_gets_the_whole_budget() -> None:
    clock = Clock()
    outage = Outage("h:1", "watching jobs", budget=10, clock=clock)
    outage.delay(GONE)
    clock.now = 9.5
    outage.answered()
    clock.now = 100
    assert outage.delay(GONE) <= 0.05  # the backoff starts over too
    clock.now = 109
    assert outage.delay(GONE) > 0
    clock.now = 110
    with pytest.raises(HeadUnreachable):
        outage.delay(GONE)


def test_without_a_budget_the_error_itself_is_raised_at_once() -> None:
    with pytest.raises(HeadUnreachable) as e:
        Outage("h:1", "reading", budget=0).delay(GONE)
    assert e.value is GONE


def _event(job: int, seq: int, state: int, at: float, task: int = 0) -> jobs_pb2.JobEvent:
    e = jobs_pb2.JobEvent(job_id=job, seq=seq, job_state=state)
    e.time.FromNanoseconds(int((T0 + at) * 1e9))
    if task:
        e.task.CopyFrom(common_pb2.TaskRef(job_id=job, task_id=task))
        e.task_state = jobs_pb2.TASK_STATE_RUNNING
    return e


def _job(job: int, state: int, history: list[tuple[int, int, float]], tasks: dict[int, list[tuple[int, int, float]]]
         | None = None, created: float = 0.0, ended_at: float = 0.0) -> jobs_pb2.Job:
    """A full view: the job's own history and its tasks', as (seq, state, time) each."""
    j = jobs_pb2.Job(id=job, state=state, task_counts=jobs_pb2.TaskCounts(finished=1))
    j.create_time.FromNanoseconds(int((T0 + created) * 1e9))
    if ended_at:
        j.end_time.FromNanoseconds(int((T0 + ended_at) * 1e9))
    for seq, s, at in history:
        u = j.history.add(seq=seq, state=s, reason=f"r{seq}")
        u.time.FromNanoseconds(int((T0 + at) * 1e9))
    for number, updates in (tasks or {}).items():
        t = j.tasks.add(ref=common_pb2.TaskRef(job_id=job, task_id=number))
        for seq, s, at in updates:
            u = t.history.add(seq=seq, state=s)
            u.time.FromNanoseconds(int((T0 + at) * 1e9))
    return j


Q, R, F = jobs_pb2.JOB_STATE_QUEUED, jobs_pb2.JOB_STATE_RUNNING, jobs_pb2.JOB_STATE_FINISHED


def test_admit_passes_each_jobs_events_once_in_seq_order() -> None:
    cursor = JobsCursor(T0)
    assert cursor.admit(_event(1, 3, R, 1))
    assert not cursor.admit(_event(1, 3, R, 1)) and not cursor.admit(_event(1, 2, R, 1))
    assert cursor.admit(_event(2, 1, Q, 2)) and cursor.admit(_event(1, 4, F, 3))
    assert cursor.last == {1: (4, F), 2: (1, Q)}


def test_a_job_that_ended_while_the_head_was_away_is_reread_and_its_end_shown_once() -> None:
    cursor = JobsCursor(T0, job_events_only=True)
    cursor.admit(_event(1, 1, Q, 1))
    cursor.admit(_event(1, 3, R, 2))
    quiet = _job(2, R, [(1, Q, -50), (2, R, -40)], created=-50)  # running since before the watch
    job = _job(1, F, [(1, Q, 1), (3, R, 2), (9, F, 5)], ended_at=5)
    assert cursor.changed([job, quiet]) == [1]
    missed = cursor.missed(job)
    assert [(e.seq, e.job_state, e.reason) for e in missed] == [(9, F, "r9")]
    assert missed[-1].task_counts.finished == 1 and ended(missed[-1])
    assert [cursor.admit(e) for e in missed] == [True]
    # The same end also arrives on the new stream (it was committed after the subscription):
    assert not cursor.admit(_event(1, 9, F, 5))
    assert cursor.missed(job) == []  # a later re-read finds nothing new in it


def test_a_job_not_seen_before_shows_only_what_happened_since_the_newest_event() -> None:
    cursor = JobsCursor(T0)
    cursor.admit(_event(1, 5, R, 10))
    new = _job(7, R, [(1, Q, 4), (2, R, 12)], tasks={1: [(3, jobs_pb2.TASK_STATE_RUNNING, 12),
                                                         (4, jobs_pb2.TASK_STATE_FINISHED, 13)]}, created=4)
    assert cursor.changed([new]) == [7]  # not ended, and the watch shows tasks' changes
    missed = cursor.missed(new)
    assert [(e.seq, e.HasField("task"), e.job_state) for e in missed] == [(2, False, R), (3, True, R), (4, True, R)]
    assert missed[1].task.task_id == 1 and missed[2].task_state == jobs_pb2.TASK_STATE_FINISHED


def test_ends_only_rereads_only_ended_jobs_and_shows_only_their_ends() -> None:
    cursor = JobsCursor(T0 + 1, ends_only=True)
    running = _job(1, R, [(1, Q, 2), (2, R, 3)], created=2)
    done = _job(2, F, [(1, Q, 2), (2, R, 3), (5, F, 4)], tasks={1: [(3, 3, 3), (4, 4, 4)]}, created=2, ended_at=4)
    before = _job(3, F, [(1, Q, 0), (2, F, 0.5)], created=0, ended_at=0.5)  # ended before the watch began
    assert cursor.changed([running, done, before]) == [2]
    assert [(e.job_id, e.seq, e.job_state) for e in cursor.missed(done)] == [(2, 5, F)]
    assert cursor.missed(before) == []


def test_rereads_of_several_jobs_come_out_in_the_order_they_happened() -> None:
    events = [_event(2, 4, F, 3), _event(1, 9, F, 2), _event(1, 8, R, 2)]
    assert [(e.job_id, e.seq) for e in in_order(events)] == [(1, 8), (1, 9), (2, 4)]


def test_a_refusal_is_not_an_outage() -> None:
    assert not isinstance(RequestFailed(grpc.StatusCode.NOT_FOUND, "job 9 does not exist"), HeadUnreachable)
