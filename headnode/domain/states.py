"""Job, task and node states and their transition tables (HPC Pack's names).

Every state change goes through a `next_*_state` lookup, so a transition that is not in a
table is an error (FailedPrecondition naming the current state and the states that allow
it), never a silent corruption. The end states (Finished, Failed, Cancelled) accept no
reports: the only ways out are a user's explicit requeue or configure, and Finished jobs
have none at all.
"""

from __future__ import annotations

import enum
from typing import Any, TypeVar

from common.errors import FailedPrecondition


class JobState(enum.Enum):
    CONFIGURING = "Configuring"
    QUEUED = "Queued"
    RUNNING = "Running"
    FINISHED = "Finished"
    FAILED = "Failed"
    CANCELLED = "Cancelled"

    @property
    def terminal(self) -> bool:
        return self in _TERMINAL_JOB


class TaskState(enum.Enum):
    CONFIGURING = "Configuring"
    QUEUED = "Queued"
    RUNNING = "Running"
    FINISHED = "Finished"
    FAILED = "Failed"
    CANCELLED = "Cancelled"

    @property
    def terminal(self) -> bool:
        return self in _TERMINAL_TASK


class NodeState(enum.Enum):
    ONLINE = "Online"
    DRAINING = "Draining"
    OFFLINE = "Offline"
    UNREACHABLE = "Unreachable"


_TERMINAL_JOB = frozenset({JobState.FINISHED, JobState.FAILED, JobState.CANCELLED})
_TERMINAL_TASK = frozenset({TaskState.FINISHED, TaskState.FAILED, TaskState.CANCELLED})


class TaskEvent(enum.Enum):
    """Events of one instance (the run unit; a plain task's instance is the task)."""

    SUBMIT = "submit"  # its job was queued
    PLACE = "place"  # resources allocated on a node (HPC Pack: the task is Running from here)
    EXIT_OK = "exit_ok"
    EXIT_FAIL = "exit_fail"  # non-zero exit, signal, runtime limit, or could not start
    LOST = "lost"  # its node was lost while it ran, no retries left
    RETRY = "retry"  # its node was lost while it ran; queued again
    PREEMPT = "preempt"  # stopped for higher-priority work; queued again once its process is gone
    CANCEL = "cancel"
    REQUEUE = "requeue"  # put back in the queue by a user
    CONFIGURE = "configure"  # its job went back to Configuring


class JobEvent(enum.Enum):
    SUBMIT = "submit"
    START = "start"  # a first task got resources
    ALL_FINISHED = "all_finished"
    SOME_FAILED = "some_failed"  # every task ended, not all of them Finished
    ALL_CANCELLED = "all_cancelled"  # every task was cancelled, one by one
    FAIL = "fail"  # failed as a whole: a task failed with fail_on_task_failure, runtime limit
    CANCEL = "cancel"
    REQUEUE = "requeue"
    CONFIGURE = "configure"


class NodeEvent(enum.Enum):
    LOST = "lost"  # no heartbeat within the grace period
    RETURNED = "returned"  # the agent connected again
    DRAIN = "drain"  # an admin: no new work
    ONLINE = "online"  # an admin: take work again
    OFFLINE = "offline"  # an admin: no work at all
    EMPTIED = "emptied"  # the last run on a draining node ended


T, E = TaskState, TaskEvent
TASK_TRANSITIONS: dict[tuple[TaskState, TaskEvent], TaskState] = {
    (T.CONFIGURING, E.SUBMIT): T.QUEUED,
    (T.CONFIGURING, E.CANCEL): T.CANCELLED,
    (T.QUEUED, E.PLACE): T.RUNNING,
    (T.QUEUED, E.CANCEL): T.CANCELLED,
    (T.RUNNING, E.EXIT_OK): T.FINISHED,
    (T.RUNNING, E.EXIT_FAIL): T.FAILED,
    (T.RUNNING, E.LOST): T.FAILED,
    (T.RUNNING, E.RETRY): T.QUEUED,
    (T.RUNNING, E.PREEMPT): T.QUEUED,
    (T.RUNNING, E.CANCEL): T.CANCELLED,
    # Out of the end states only by a user's explicit requeue or configure.
    (T.FAILED, E.REQUEUE): T.QUEUED,
    (T.CANCELLED, E.REQUEUE): T.QUEUED,
    (T.FINISHED, E.REQUEUE): T.QUEUED,  # only when chosen by name (requeue --task)
    (T.FAILED, E.CONFIGURE): T.CONFIGURING,
    (T.CANCELLED, E.CONFIGURE): T.CONFIGURING,
    (T.QUEUED, E.CONFIGURE): T.CONFIGURING,
}

J, JE = JobState, JobEvent
JOB_TRANSITIONS: dict[tuple[JobState, JobEvent], JobState] = {
    (J.CONFIGURING, JE.SUBMIT): J.QUEUED,
    (J.CONFIGURING, JE.CANCEL): J.CANCELLED,
    (J.QUEUED, JE.START): J.RUNNING,
    # A queued job can end without ever running when all its tasks are cancelled or failed.
    (J.QUEUED, JE.SOME_FAILED): J.FAILED,
    (J.QUEUED, JE.ALL_CANCELLED): J.CANCELLED,
    (J.QUEUED, JE.FAIL): J.FAILED,
    (J.QUEUED, JE.CANCEL): J.CANCELLED,
    (J.RUNNING, JE.ALL_FINISHED): J.FINISHED,
    (J.RUNNING, JE.SOME_FAILED): J.FAILED,
    (J.RUNNING, JE.ALL_CANCELLED): J.CANCELLED,
    (J.RUNNING, JE.FAIL): J.FAILED,
    (J.RUNNING, JE.CANCEL): J.CANCELLED,
    # Finished is final; Failed and Cancelled jobs may be requeued or reconfigured (HPC Pack).
    (J.FAILED, JE.REQUEUE): J.QUEUED,
    (J.CANCELLED, JE.REQUEUE): J.QUEUED,
    (J.FAILED, JE.CONFIGURE): J.CONFIGURING,
    (J.CANCELLED, JE.CONFIGURE): J.CONFIGURING,
}

N, NE = NodeState, NodeEvent
NODE_TRANSITIONS: dict[tuple[NodeState, NodeEvent], NodeState] = {
    (N.ONLINE, NE.LOST): N.UNREACHABLE,
    # A draining node that goes silent loses its runs (requeued) and so has drained.
    (N.DRAINING, NE.LOST): N.OFFLINE,
    (N.UNREACHABLE, NE.RETURNED): N.ONLINE,
    (N.ONLINE, NE.RETURNED): N.ONLINE,
    (N.DRAINING, NE.RETURNED): N.DRAINING,
    (N.OFFLINE, NE.RETURNED): N.OFFLINE,
    (N.ONLINE, NE.DRAIN): N.DRAINING,
    (N.DRAINING, NE.DRAIN): N.DRAINING,
    (N.UNREACHABLE, NE.DRAIN): N.OFFLINE,  # nothing runs there any more
    (N.DRAINING, NE.EMPTIED): N.OFFLINE,
    (N.ONLINE, NE.ONLINE): N.ONLINE,
    (N.DRAINING, NE.ONLINE): N.ONLINE,
    (N.OFFLINE, NE.ONLINE): N.ONLINE,
    (N.ONLINE, NE.OFFLINE): N.OFFLINE,
    (N.DRAINING, NE.OFFLINE): N.OFFLINE,
    (N.UNREACHABLE, NE.OFFLINE): N.OFFLINE,
    (N.OFFLINE, NE.OFFLINE): N.OFFLINE,
}
del T, E, J, JE, N, NE


S = TypeVar("S", TaskState, JobState, NodeState)


def _next(table: dict[tuple[S, Any], S], state: S, event: enum.Enum, what: str) -> S:
    try:
        return table[(state, event)]
    except KeyError:
        allowed = [s.value for (s, e) in table if e is event]
        listing = ", ".join(allowed[:-1]) + (" or " if len(allowed) > 1 else "") + allowed[-1]
        raise FailedPrecondition(
            f"{what} is {state.value}; {event.value} is allowed only when it is {listing}"
        ) from None


def next_task_state(state: TaskState, event: TaskEvent, what: str = "task") -> TaskState:
    return _next(TASK_TRANSITIONS, state, event, what)


def next_job_state(state: JobState, event: JobEvent, what: str = "job") -> JobState:
    return _next(JOB_TRANSITIONS, state, event, what)


def next_node_state(state: NodeState, event: NodeEvent, what: str = "node") -> NodeState:
    return _next(NODE_TRANSITIONS, state, event, what)
