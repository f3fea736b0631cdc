"""Text formats shared by the CLI, job files and the head; parametric substitution; why a
task waits (eligibility)."""

from __future__ import annotations

import pytest

from common.errors import InvalidArgument
from common.formats import (
    format_exit_codes,
    format_priority,
    parse_duration,
    parse_exit_codes,
    parse_priority,
    parse_sweep,
)
from headnode.domain import eligibility, lifecycle, operations
from headnode.domain.launch import resolve, substitute
from headnode.domain.lifecycle import Outcome
from headnode.domain.model import DependencyKind, JobDependency, JobSpec, Sweep, TaskSpec

NOW = 1_700_000_000.0


def test_exit_codes() -> None:
    assert parse_exit_codes("0, 3,10-20, 30..32") == ((0, 0), (3, 3), (10, 20), (30, 32))
    assert parse_exit_codes("") == ()
    assert format_exit_codes(((0, 0), (10, 20))) == "0,10-20"
    for bad in ("x", "5-3", "1-"):
        with pytest.raises(InvalidArgument, match="exit codes"):
            parse_exit_codes(bad)


@pytest.mark.parametrize("text, seconds", [
    ("90s", 90), ("15m", 900), ("2h", 7200), ("1d", 86400), ("30", 1800), ("05:30", 330),
    ("01:00:05", 3605), ("2-01:00:00", 176400), ("infinite", 0), ("1.5h", 5400),
])
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


def test_bad_duration_says_what_works() -> None:
    with pytest.raises(InvalidArgument, match="use e.g. 90s, 15m"):
        parse_duration("soon")


def test_priorities() -> None:
    assert parse_priority("Normal") == 2000 and parse_priority("highest+5") == 4005
    assert parse_priority("AboveNormal") == 3000 and parse_priority("1234") == 1234
    assert format_priority(3005) == "AboveNormal+5" and format_priority(2000) == "Normal"
    for bad in ("Urgent", "Normal+1000", "5000"):
        with pytest.raises(InvalidArgument):
            parse_priority(bad)


def test_sweep_ranges() -> None:
    assert parse_sweep("1-1000:7") == (1, 1000, 7) and parse_sweep("-5--1") == (-5, -1, 1)
    with pytest.raises(InvalidArgument):
        parse_sweep("10-1")


def test_asterisk_runs_are_replaced_and_padded() -> None:
    assert substitute("run *", 7) == "run 7"
    assert substitute("in_***.dat > out_*", 7) == "in_007.dat > out_7"
    assert substitute("x***", 12345) == "x12345"  # padding never truncates
    assert substitute("*", -3) == "-3"


def test_resolve_substitutes_only_sweeps_and_sets_instance_variables() -> None:
    o = Outcome()
    job = operations.create_job(4, "alice", JobSpec(name="sweep", tasks=(
        TaskSpec("echo * > out_**", sweep=Sweep(5, 50, 5), working_directory="/tmp/case_*", stdout_path="o_***"),
        TaskSpec("ls *.txt"),
    )), NOW, o)
    operations.submit_job(job, "alice", NOW, o)
    task = job.tasks[1]
    lifecycle.take_pending(task)
    iid = lifecycle.take_pending(task)
    inst = lifecycle.place(job, task, iid, "n1", 2, 0, NOW, o)
    run = resolve(job, task, inst)
    assert run.command_line == "echo 10 > out_10" and run.working_directory == "/tmp/case_10"
    assert run.stdout_path == "o_010" and run.resources.cores == 2
    assert run.environment["SHOAL_TASK_INSTANCE"] == "2" and run.environment["SHOAL_PARAMETRIC_VALUE"] == "10"
    assert run.environment["SHOAL_TASK"] == "4.1.2" and run.environment["SHOAL_TASK_INSTANCE_COUNT"] == "10"
    plain = lifecycle.place(job, job.tasks[2], lifecycle.take_pending(job.tasks[2]), "n1", 1, 0, NOW, o)
    assert resolve(job, job.tasks[2], plain).command_line == "ls *.txt", "a plain task's * is a shell glob"


def test_pending_reasons_for_held_dependencies_and_dag() -> None:
    o = Outcome()
    parent = operations.create_job(1, "alice", JobSpec(tasks=(TaskSpec("a"),)), NOW, o)
    operations.submit_job(parent, "alice", NOW, o)
    child = operations.create_job(2, "alice", JobSpec(
        tasks=(TaskSpec("a", name="a"), TaskSpec("b", name="b", depends_on=("a",))),
        dependencies=(JobDependency(DependencyKind.AFTER_OK, 1),)), NOW, o)
    operations.submit_job(child, "alice", NOW, o)
    jobs = {1: parent, 2: child}
    assert eligibility.task_blocked(jobs, child, child.tasks[1]) == "waiting for job 1 (after-ok; it is Queued)"
    operations.hold_job(child, "bob", "", NOW, o)
    assert eligibility.task_blocked(jobs, child, child.tasks[1]) == "held by bob"
    operations.release_job(child, "bob", NOW, o)
    operations.cancel_job(parent, "cancelled", NOW, o)
    assert eligibility.never_satisfiable(jobs, child) == \
        "dependency can never be satisfied: job 1 Cancelled (after-ok)"
    child.spec = JobSpec(tasks=(), dependencies=(JobDependency(DependencyKind.AFTER_NOT_OK, 1),))
    assert eligibility.task_blocked(jobs, child, child.tasks[1]) is None
    assert eligibility.task_blocked(jobs, child, child.tasks[2]) == "waiting for task 2.1 (a) to finish; it is Queued"


def test_a_job_specs_stored_json_follows_the_spec_it_is_given() -> None:
    """records.py caches each spec's JSON by identity: a spec replaced by ModifyJob (a new
    object) must be written as itself, not as the one cached before it."""
    from headnode.store.records import job_spec_from_json, job_spec_to_json

    old = JobSpec(name="before", priority=1000)
    assert job_spec_from_json(job_spec_to_json(old)).name == "before"
    new = JobSpec(name="after", priority=3000, hold=True)
    got = job_spec_from_json(job_spec_to_json(new))
    assert (got.name, got.priority, got.hold) == ("after", 3000, True)
    assert job_spec_to_json(old) == job_spec_to_json(JobSpec(name="before", priority=1000))
