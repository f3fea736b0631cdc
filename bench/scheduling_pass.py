"""One scheduling pass (headnode/scheduling/core.py `schedule`) over a long queue.

A snapshot of 1,000 nodes (8 cores, 32768 MB each) and 100,000 queued single-core tasks
(1,024 MB each, 100 tasks per job), timed over N runs with a fresh snapshot each run
(building it is not timed):
  empty_tuple / empty_lazy   every node free: the pass places 8,000 instances, then stops at
                             the first task that does not fit (first come first served)
  half_tuple / half_lazy     half the nodes full: 4,000 instances, then it stops
  full_tuple / full_lazy     every node full: nothing fits, the pass stops at the first task
  build_requests             building the 100,000 TaskRequest objects alone
`_tuple`: the queue is a tuple built beforehand; `_lazy`: a generator that builds each
request as the pass reads it, as the head node gives it (allocator.take_snapshot), so
those figures include building the requests the pass looks at; `_easy`: lazy, under EASY
backfilling, with the busy nodes' runs given so the blocked task gets a reservation.
Prints one JSON line per figure (name, unit, runs, median, min, max, p90) and a table.

    .venv/bin/python bench/scheduling_pass.py [--runs 5] [--nodes 1000] [--cores 8] [--tasks 100000]
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable, Iterator

from figures import figure, report, timed

from common.ids import TaskId
from common.resources import Resources
from headnode.scheduling.core import Plan, schedule
from headnode.scheduling.policy import EASY, Policy
from headnode.scheduling.snapshot import NodeView, Running, Snapshot, TaskRequest

MEMORY = 32768
TASK = Resources(1, 1024)
PER_JOB = 100


def nodes(count: int, cores: int, full: int) -> tuple[NodeView, ...]:
    """`count` nodes in name order; the first `full` have every core and all memory in use."""
    capacity = Resources(cores, MEMORY)
    return tuple(
        NodeView(f"node{i:04d}", capacity, capacity if i < full else Resources(),
                 jobs=frozenset({1}) if i < full else frozenset())
        for i in range(count)
    )


def request(i: int) -> TaskRequest:
    return TaskRequest(TaskId(2 + i // PER_JOB, 1 + i % PER_JOB), TASK)


def requests(count: int) -> Iterator[TaskRequest]:
    return (request(i) for i in range(count))


def runs(count: int, cores: int, full: int) -> tuple[Running, ...]:
    """What keeps the first `full` nodes busy: one single-core run per core, ending over the next hour."""
    part = Resources(1, MEMORY // cores)
    return tuple(Running(TaskId(900_000 + i, c + 1), ((f"node{i:04d}", part),), 60.0 + (i * cores + c) % 3600)
                 for i in range(full) for c in range(cores))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--cores", type=int, default=8)
    parser.add_argument("--tasks", type=int, default=100_000)
    args = parser.parse_args()

    samples: dict[str, list[float]] = {"build_requests": []}
    placed: dict[str, int] = {}
    for _ in range(args.runs):
        t, queue = timed(lambda: tuple(requests(args.tasks)))
        samples["build_requests"].append(t)
        assert len(queue) == args.tasks  # type: ignore[arg-type]

    scenarios = {"empty": 0, "half": args.nodes // 2, "full": args.nodes}
    for scenario, full in scenarios.items():
        expected = min(args.tasks, (args.nodes - full) * args.cores)
        for variant in ("tuple", "lazy", "easy"):
            name = f"{scenario}_{variant}"
            samples[name] = []
            for _ in range(args.runs):
                queue: Iterable[TaskRequest] = tuple(requests(args.tasks)) if variant == "tuple" else requests(args.tasks)
                running = runs(args.nodes, args.cores, full) if variant == "easy" else ()
                snapshot = Snapshot(nodes(args.nodes, args.cores, full), queue, running=running)
                policy = Policy(name=EASY) if variant == "easy" else Policy()
                t, plan = timed(lambda snapshot=snapshot, policy=policy: schedule(snapshot, 0.0, policy))
                assert isinstance(plan, Plan)
                assert len(plan.placements) == expected, (name, len(plan.placements))
                assert plan.blocked_at == (request(expected).id if expected < args.tasks else None), plan.blocked_at
                samples[name].append(t)
            placed[name] = expected

    report([figure(name, values, nodes=args.nodes, cores=args.cores, tasks=args.tasks,
                   **({"placed": placed[name]} if name in placed else {}))
            for name, values in samples.items()],
           f"{args.runs} runs, {args.nodes} nodes x {args.cores} cores, {args.tasks} queued single-core tasks")


if __name__ == "__main__":
    main()
