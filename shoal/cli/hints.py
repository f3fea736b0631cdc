"""What to do next: the one-line hints `shoal` prints after a command that leaves a job or a
node needing a follow-up, and the hint added to a refusal (FAILED_PRECONDITION) that names
the command that would work.

Hints go to stderr, so standard output stays what scripts parse, and never with --json."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import grpc

from shoal.client import Client, HeadUnreachable, RequestFailed
from shoal.v1 import jobs_pb2


def hint(args: argparse.Namespace, text: str) -> None:
    if text and not getattr(args, "json", False):
        print(text, file=sys.stderr)


def created(job: int) -> str:
    return (f"job {job} is Configuring: add tasks with `shoal job add {job} -- CMD`, "
            f"then submit it with `shoal job submit {job}`")


def added(job: int) -> str:
    return f"when all its tasks are added, submit job {job} with `shoal job submit {job}`"


def configuring(job: int, copy_of: int = 0) -> str:
    what = f"a Configuring copy of job {copy_of}" if copy_of else "Configuring"
    return (f"job {job} is {what}: change it with `shoal job modify {job}` or "
            f"`shoal task modify {job}.TASK`, then submit it with `shoal job submit {job}`")


def held(job: int) -> str:
    return f"job {job} is held: release it with `shoal job release {job}`"


def ended_badly(job: jobs_pb2.Job) -> str:
    """After `--wait` or `shoal job wait` saw the job end Failed or Cancelled."""
    j = job.id
    if job.state == jobs_pb2.JOB_STATE_CANCELLED:
        return (f"see what happened with `shoal job view {j}`; run what did not finish with "
                f"`shoal job requeue {j}`")
    look = ""
    failed = [t for t in job.tasks if t.state == jobs_pb2.TASK_STATE_FAILED]
    if failed:
        t = failed[0].ref.task_id
        look = (f" and `shoal task list {j} --task {t} --instances --state Failed`"
                if failed[0].instance_count > 1 else f" and `shoal task output {j}.{t} --stderr`")
    return f"see why with `shoal job view {j}`{look}; re-run what failed with `shoal job requeue {j}`"


def drained(node: str) -> str:
    return (f"node {node} takes no new work and goes Offline when its tasks end; "
            f"bring it back with `shoal node online {node}`")


def offline(node: str) -> str:
    return (f"bring node {node} back with `shoal node online {node}`, or stop its agent and forget it "
            f"with `shoal node remove {node}`")


def template_saved(name: str) -> str:
    return f"submit jobs from it with `shoal job submit --template {name} -- CMD`"


def refusal(command: str, job: int, state: int) -> str:
    """The next step when `command` was refused because job `job` is in `state`."""
    s = jobs_pb2
    if state == s.JOB_STATE_CONFIGURING:
        return "" if command == "submit" else f"it is not submitted: submit it with `shoal job submit {job}`"
    if state in (s.JOB_STATE_QUEUED, s.JOB_STATE_RUNNING):
        if command == "submit":
            return f"it is already submitted: follow it with `shoal job wait {job}`"
        if command in ("add", "modify", "task modify"):
            return f"to change it, cancel it with `shoal job cancel {job}`, then `shoal job configure {job}`"
        if command in ("requeue", "configure"):
            return (f"it has not ended: wait with `shoal job wait {job}`, or cancel it with "
                    f"`shoal job cancel {job}`")
        return ""
    if state == s.JOB_STATE_FINISHED:
        return f"to run it again, copy it with `shoal job clone {job}` and submit the copy"
    if state in (s.JOB_STATE_FAILED, s.JOB_STATE_CANCELLED):
        return (f"re-run what did not finish with `shoal job requeue {job}`, or change it after "
                f"`shoal job configure {job}`")
    return ""


@contextmanager
def explained(client: Client, command: str, job: int) -> Iterator[None]:
    """Add the next step to a FAILED_PRECONDITION refusal of `command` on job `job` (still
    one line: the head's reason, then the hint in parentheses)."""
    try:
        yield
    except HeadUnreachable:
        raise
    except RequestFailed as e:
        if e.code != grpc.StatusCode.FAILED_PRECONDITION:
            raise
        try:
            state = client.get_job(job, full=False).state
        except RequestFailed:
            raise e from None
        text = refusal(command, job, state)
        if not text:
            raise
        raise RequestFailed(e.code, f"{e.message} ({text})") from None
