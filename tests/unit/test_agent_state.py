"""The agent's pure task state machine: events in, instructions out."""

from __future__ import annotations

import signal

from hypothesis import given, settings
from hypothesis import strategies as st

from common.ids import TaskId
from computenode import state as s

KEY = (TaskId(3, 1), 1)


def test_normal_run_reports_after_exit_and_drain_then_forgets() -> None:
    a = s.AgentState()
    assert a.handle(s.LaunchRequested(KEY, "launch")) == [s.Start(KEY, "launch")]
    assert a.handle(s.ProcessStarted(KEY, 42)) == [s.ReportStarted(KEY, 42)]
    # Exit first: the output may still be in the pipes, so no report yet.
    assert a.handle(s.ProcessExited(KEY, 0, 0)) == [s.Signal(KEY, signal.SIGKILL)]
    assert a.tasks[KEY].phase is s.Phase.ENDED
    assert a.handle(s.OutputDrained(KEY)) == [s.ReportExited(KEY)]
    assert a.handle(s.ExitAcked(KEY)) == [s.Forget(KEY)]
    assert KEY not in a.tasks


def test_drain_before_exit_reports_on_exit() -> None:
    a = s.AgentState()
    a.handle(s.LaunchRequested(KEY, None))
    assert a.handle(s.OutputDrained(KEY)) == []
    assert a.handle(s.ProcessExited(KEY, 3, 0)) == [s.Signal(KEY, signal.SIGKILL), s.ReportExited(KEY)]
    assert a.tasks[KEY].exit_code == 3


def test_kill_sends_term_then_kill_after_grace() -> None:
    a = s.AgentState()
    a.handle(s.LaunchRequested(KEY, None))
    assert a.handle(s.KillRequested(KEY)) == [s.Signal(KEY, signal.SIGTERM), s.StartKillTimer(KEY)]
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
    other = (TaskId(3, 1), 2)
    assert a.handle(s.KillRequested(other)) == []
    assert a.handle(s.ExitAcked(KEY)) == []  # not reported yet: an ack cannot forget it


EVENTS = st.sampled_from(["launch", "started", "failed", "kill", "timeout", "exited", "drained", "acked"])


@settings(max_examples=400, deadline=None)
@given(st.lists(EVENTS, max_size=20))
def test_any_event_order_keeps_exit_reports_after_exit_and_drain(names: list[str]) -> None:
    a = s.AgentState()
    make = {
        "launch": lambda: s.LaunchRequested(KEY, None), "started": lambda: s.ProcessStarted(KEY, 1),
        "failed": lambda: s.StartFailed(KEY, "x"), "kill": lambda: s.KillRequested(KEY),
        "timeout": lambda: s.KillTimeout(KEY), "exited": lambda: s.ProcessExited(KEY, 0, 0),
        "drained": lambda: s.OutputDrained(KEY), "acked": lambda: s.ExitAcked(KEY),
    }
    reports = 0
    for name in names:
        out = a.handle(make[name]())
        if any(isinstance(i, s.ReportExited) for i in out):
            reports += 1
            entry = a.tasks[KEY]
            assert entry.phase is s.Phase.REPORTED and entry.drained
        if any(isinstance(i, s.Forget) for i in out):
            assert KEY not in a.tasks
            reports = 0
        assert reports <= 1, "an exit reported twice without a new launch"


def test_runtime_limit_kills_and_the_exit_says_so() -> None:
    a = s.AgentState()
    a.handle(s.LaunchRequested(KEY, None, 5.0))
    assert a.handle(s.ProcessStarted(KEY, 7)) == [s.ReportStarted(KEY, 7), s.StartRuntimeTimer(KEY, 5.0)]
    assert a.handle(s.RuntimeExceeded(KEY)) == [s.Signal(KEY, signal.SIGTERM), s.StartKillTimer(KEY)]
    assert a.tasks[KEY].runtime_exceeded
    assert a.handle(s.RuntimeExceeded(KEY)) == []  # already being stopped
