"""Reconciling a node's report with what the head decided (pure: decisions, no actions).

The head decided which (task, attempt) run on the node (its Allocations) and whether each
should still be running (the task's state). The agent reports what it has. Every
difference gets exactly one decision:

  reported, not allocated here (unknown task or older attempt)
      running -> kill it;  exited -> let the agent forget it
  reported running, allocated, but the task should no longer run (cancelled) -> kill it
      (reported queued, dispatched ahead and not started yet, counts as running, not as started)
  allocated, not reported
      at Hello from the same agent process, never started -> deliver the launch again
      at Hello from a new one, dispatched ahead and never started -> deliver it again (the
          agent records a task before starting it, so a started one would be reported)
      at Hello otherwise -> lost (the process that had it is gone)
      at a heartbeat, after the agent has acted on the launch -> lost
      at a heartbeat, launch not yet acted on -> nothing yet (it is in flight)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from common.ids import TaskId
from headnode.domain.node import Allocation, TaskReport


@dataclass
class Decisions:
    kill: list[tuple[TaskId, int, str]] = field(default_factory=list)
    forget: list[tuple[TaskId, int]] = field(default_factory=list)
    redeliver: list[TaskId] = field(default_factory=list)
    lost: list[TaskId] = field(default_factory=list)
    # Allocations the agent has confirmed it holds (running or exited, current attempt).
    confirmed: list[TaskId] = field(default_factory=list)
    running: list[TaskId] = field(default_factory=list)


def reconcile(
    allocations: Mapping[TaskId, Allocation],
    should_run: Callable[[TaskId, int], bool],
    reports: tuple[TaskReport, ...],
    acked_seq: int | None,
    same_agent: bool,
) -> Decisions:
    """acked_seq None: the reports come with Hello; else with a heartbeat of this session
    (the agent has acted on every head message up to acked_seq)."""
    d = Decisions()
    reported: set[TaskId] = set()
    for r in reports:
        reported.add(r.task)
        alloc = allocations.get(r.task)
        if alloc is None or alloc.attempt != r.attempt:
            if r.running:
                d.kill.append((r.task, r.attempt, "not assigned to this node"))
            else:
                d.forget.append((r.task, r.attempt))
            continue
        d.confirmed.append(r.task)
        if r.running:
            if not r.queued:
                d.running.append(r.task)
            if not should_run(r.task, r.attempt):
                d.kill.append((r.task, r.attempt, "cancelled"))
    for task, alloc in allocations.items():
        if task in reported:
            continue
        if acked_seq is None:
            if (same_agent or alloc.ahead) and not alloc.started:
                d.redeliver.append(task)
            else:
                d.lost.append(task)
        elif 0 < alloc.launch_seq <= acked_seq:
            d.lost.append(task)
    return d
