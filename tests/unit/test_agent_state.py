"""The agent's pure task state machine: events in, instructions out."""

from __future__ import annotations

import signal

from hypothesis import given, settings
from hypothesis import strategies as st_

from common.ids import TaskId
from computenode import state as s

KEY = (TaskId(3, 1), 1)


def test_normal_run_reports_the_exit_then_forgets() -> None:
    a = s.AgentState()
    assert a.handle(s.LaunchRequested(KEY, "launch")) == [s.Start(KEY, "launch")]
    assert a.handle(s.ProcessStarted(KEY, 42)) == [s.ReportStarted(KEY, 42)]
    assert a.handle(s.ProcessExited(KEY, 3, 0)) == [s.Signal(KEY, signal.SIGKILL), s.ReportExited(KEY)]
    assert a.tasks[KEY].phase is s.Phase.REPORTED and a.tasks[KEY].exit_code == 3
    assert a.handle(s.ExitAcked(KEY)) == [s.Forget(KEY)]
    assert KEY not in a.tasks


def test_kill_sends_term_then_kill_after_grace_and_persists_it() -> None:
    a = s.AgentState()
    a.handle(s.LaunchRequested(KEY, None))
    assert a.handle(s.KillRequested(KEY)) == [s.Persist(KEY), s.Signal(KEY, signal.SIGTERM), s.StartKillTimer(KEY)]
    assert a.handle(s.KillRequested(KEY)) == []  # repeated kills are harmless
    assert a.handle(s.KillTimeout(KEY)) == [s.Signal(KEY, signal.SIGKILL)]


def test_start_failure_is_reported_at_once() -> None:
    a = s.AgentState()
    a.handle(s.LaunchRequested(KEY, None))
    assert a.handle(s.StartFailed(KEY, "no such dir")) == [s.ReportExited(KEY)]
    assert a.tasks[KEY].error == "no such dir"


def test_duplicate_launch_and_stray_events_are_ignored() -> None:
    a = s.AgentState()
    a.handle(s.LaunchRequested(KEY, None))
    assert a.handle(s.LaunchRequested(KEY, None)) == []
    assert a.handle(s.KillRequested((TaskId(3, 1), 2))) == []
    assert a.handle(s.ExitAcked(KEY)) == []  # not reported yet: an ack cannot forget it


def test_runtime_limit_kills_and_the_exit_says_so() -> None:
    a = s.AgentState()
    a.handle(s.LaunchRequested(KEY, None, 5.0))
    assert a.handle(s.ProcessStarted(KEY, 7)) == [s.ReportStarted(KEY, 7), s.StartRuntimeTimer(KEY, 5.0)]
    assert a.handle(s.RuntimeExceeded(KEY)) == [s.Persist(KEY), s.Signal(KEY, signal.SIGTERM), s.StartKillTimer(KEY)]
    assert a.tasks[KEY].runtime_exceeded
    assert a.handle(s.RuntimeExceeded(KEY)) == []  # already being stopped


def test_adoption_resumes_where_the_last_agent_left_off() -> None:
    a = s.AgentState()
    assert a.handle(s.Adopted(KEY, running=True, runtime_left=2.5)) == [s.StartRuntimeTimer(KEY, 2.5)]
    other = (TaskId(3, 2), 1)
    assert a.handle(s.Adopted(other, running=True, killing=True)) == [s.Signal(other, signal.SIGKILL)]
    ended = (TaskId(3, 3), 1)
    assert a.handle(s.Adopted(ended, running=False, exit_code=4)) == [s.ReportExited(ended)]
    assert a.tasks[ended].exit_code == 4 and a.tasks[other].phase is s.Phase.KILLING
    assert a.handle(s.Adopted(KEY, running=True)) == [], "a task already known is not adopted twice"


EVENTS = st_.sampled_from(["launch", "started", "failed", "kill", "timeout", "runtime", "exited", "acked"])


@settings(max_examples=400, deadline=None)
@given(st_.lists(EVENTS, max_size=20))
def test_any_event_order_reports_each_exit_once_per_launch(names: list[str]) -> None:
    a = s.AgentState()
    make = {
        "launch": lambda: s.LaunchRequested(KEY, None, 1.0), "started": lambda: s.ProcessStarted(KEY, 1),
        "failed": lambda: s.StartFailed(KEY, "x"), "kill": lambda: s.KillRequested(KEY),
        "timeout": lambda: s.KillTimeout(KEY), "runtime": lambda: s.RuntimeExceeded(KEY),
        "exited": lambda: s.ProcessExited(KEY, 0, 0), "acked": lambda: s.ExitAcked(KEY),
    }
    reports = 0
    for name in names:
        out = a.handle(make[name]())
        if any(isinstance(i, s.ReportExited) for i in out):
            reports += 1
            assert a.tasks[KEY].phase is s.Phase.REPORTED
        if any(isinstance(i, s.Forget) for i in out):
            assert KEY not in a.tasks
            reports = 0
        if any(isinstance(i, s.Signal) for i in out):
            assert KEY in a.tasks and a.tasks[KEY].phase is not s.Phase.REPORTED or \
                any(isinstance(i, s.ReportExited) for i in out)
        assert reports <= 1, "an exit reported twice without a new launch"


def test_memory_exceeded_kills_at_once_and_is_remembered_across_adoption() -> None:
    a = s.AgentState()
    a.handle(s.LaunchRequested(KEY, None))
    a.handle(s.ProcessStarted(KEY, 42))
    assert a.handle(s.MemoryExceeded(KEY)) == [s.Persist(KEY), s.Signal(KEY, signal.SIGKILL)]
    assert a.tasks[KEY].out_of_memory and a.tasks[KEY].phase is s.Phase.KILLING
    assert a.handle(s.MemoryExceeded(KEY)) == [], "once is enough"
    a.handle(s.ProcessExited(KEY, 0, signal.SIGKILL))
    assert a.tasks[KEY].out_of_memory, "the report says why it died"
    b = s.AgentState()
    b.handle(s.Adopted(KEY, running=False, signal=signal.SIGKILL, out_of_memory=True))
    assert b.tasks[KEY].out_of_memory


def test_fake_launches_run_for_what_sleep_asks() -> None:
    from computenode.fake import fake_runtime

    assert fake_runtime("sleep 2.5") == 2.5
    assert fake_runtime("/bin/sleep 3") == 3.0
    assert fake_runtime("true") == 0.0
    assert fake_runtime("sleep forever") == 0.0
    assert fake_runtime("sleep 1; echo hi") == 0.0


def test_an_exit_the_watchdog_caused_is_fenced_one_of_its_own_is_not() -> None:
    a = s.AgentState()
    other = (TaskId(3, 2), 1)
    for key in (KEY, other):
        a.handle(s.LaunchRequested(key, None))
    a.handle(s.ProcessExited(KEY, 0, 0))  # ended by itself before the lease lapsed
    a.handle(s.ProcessExited(other, 0, signal.SIGTERM, fenced=True))  # stopped by the watchdog
    assert not a.tasks[KEY].fenced and a.tasks[other].fenced
    assert a.fence() == []  # nothing left running to stop
    assert not a.tasks[KEY].fenced
