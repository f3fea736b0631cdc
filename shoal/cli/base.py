"""What every `shoal` command shares: exit codes, turning head-node errors into one line,
the current time for rendering, and task-id parsing."""

from __future__ import annotations

import argparse
import functools
import sys
from collections.abc import Callable

from common.clock import SystemClock
from common.errors import InvalidArgument
from common.ids import TaskId

EXIT_OK, EXIT_REFUSED, EXIT_USAGE, EXIT_UNREACHABLE, EXIT_JOB_FAILED = 0, 1, 2, 3, 4

Command = Callable[[argparse.Namespace, str], int]


def talks_to_head(fn: Command) -> Command:
    @functools.wraps(fn)
    def wrapper(args: argparse.Namespace, head: str) -> int:
        from shoal.client import HeadUnreachable, RequestFailed

        try:
            return fn(args, head)
        except HeadUnreachable as e:
            print(f"shoal: {e.message}", file=sys.stderr)
            return EXIT_UNREACHABLE
        except RequestFailed as e:
            print(f"shoal: {e.message}", file=sys.stderr)
            return EXIT_REFUSED

    wrapper.talks_to_head = True  # type: ignore[attr-defined]  # main() may skip finalization
    return wrapper


def usage(message: str) -> int:
    print(f"shoal: {message}", file=sys.stderr)
    return EXIT_USAGE


def now() -> float:
    return SystemClock().now()


def task_ids(values: list[str], job_id: int) -> list[TaskId]:
    ids = [TaskId.parse(v) for v in values]
    for task_id in ids:
        if task_id.job != job_id:
            raise InvalidArgument(f"--task {task_id}: not a task of job {job_id} (write it as {job_id}.TASK)")
    return ids
