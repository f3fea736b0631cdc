"""Replaying a trace through the scheduling core in simulated time (pure; no clock).

The machine is one node with the trace's processors as cores (or `cores`). Events are job
arrivals and ends; after each distinct event time the core is asked for a plan with that
time as `now`, exactly as the head node asks it, and the jobs it places start then and end
after their run time (cut at their limit: the requested time is enforced, as a runtime
limit is). Jobs wider than the machine are skipped and counted. The queue is handed to the
core lazily in submission order, so a pass costs what the policy looks at, not the queue's
length. No pass is asked for while fewer cores are free than the smallest waiting job needs:
it could start nothing, and a start is all the replay takes from a pass (38% of the SDSC-SP2
replay's passes under EASY, a quarter of its time; the same starts either way). With
preemption on, a pass may stop runs for such a job, so every event time gets its pass.
The passes are asked for no pending reasons (`schedule(..., reasons=False)`): the replay
reads none, and their text was a tenth of its time.
"""

from __future__ import annotations

import heapq
from dataclasses import asdict, dataclass

from sortedcontainers import SortedList

from common.clock import perf_counter
from common.ids import TaskId
from common.resources import Resources
from headnode.scheduling.core import schedule
from headnode.scheduling.policy import Policy
from headnode.scheduling.snapshot import NodeView, Running, Snapshot, TaskRequest
from headnode.sim.swf import Trace, TraceJob

MACHINE = "machine"
BSLD_THRESHOLD = 10.0


@dataclass
class Result:
    policy: str
    cores: int
    jobs: int
    skipped: int  # wider than the machine
    dropped: int  # never ran, or no processors (from the trace)
    makespan: float
    utilization: float
    mean_wait: float
    mean_bounded_slowdown: float
    passes: int
    seconds: float  # wall time the replay took

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def replay(trace: Trace, policy: Policy, cores: int = 0, every_pass: bool = False,
           starts: dict[int, float] | None = None) -> Result:
    """`every_pass`: ask for a pass at every event time, even where nothing could start (to
    check that skipping them changes nothing); `starts`, when given, gets each job's start."""
    started_at = perf_counter()
    cores = cores or trace.max_procs or max((j.procs for j in trace.jobs), default=1)
    jobs = [j for j in trace.jobs if j.procs <= cores]
    skipped = len(trace.jobs) - len(jobs)
    by_id = {j.id: j for j in jobs}
    requests = {j.id: TaskRequest(TaskId(j.id, 1), Resources(j.procs), runtime=j.limit, owner=j.user)
                for j in jobs}
    events: list[tuple[float, int, int]] = [(j.submit, 1, j.id) for j in jobs]  # (time, 0 end | 1 arrival, job)
    heapq.heapify(events)
    waiting: dict[int, TaskRequest] = {}
    sizes = SortedList()  # the cores each waiting job needs
    every_pass = every_pass or policy.preemption
    running: dict[int, Running] = {}
    used = 0
    starts = {} if starts is None else starts
    ends: dict[int, float] = {}
    passes = 0
    while events:
        now = events[0][0]
        while events and events[0][0] == now:
            _, kind, job_id = heapq.heappop(events)
            if kind == 0:
                used -= by_id[job_id].procs
                del running[job_id]
            else:
                waiting[job_id] = requests[job_id]
                sizes.add(by_id[job_id].procs)
        if not waiting or (cores - used < sizes[0] and not every_pass):
            continue
        passes += 1
        node = NodeView(MACHINE, Resources(cores), Resources(used))
        plan = schedule(Snapshot((node,), iter(waiting.values()), running=running.values()), now, policy,
                        reasons=False)
        for p in plan.placements:
            job = by_id[p.task.job]
            del waiting[job.id]
            sizes.remove(job.procs)
            end = now + min(job.run, job.limit)
            starts[job.id], ends[job.id] = now, end
            used += job.procs
            running[job.id] = Running(p.task, ((MACHINE, Resources(job.procs)),), now + job.limit, job.user)
            heapq.heappush(events, (end, 0, job.id))
    return _result(policy, cores, jobs, skipped, trace.dropped, starts, ends, passes, perf_counter() - started_at)


def _result(policy: Policy, cores: int, jobs: list[TraceJob], skipped: int, dropped: int,
            starts: dict[int, float], ends: dict[int, float], passes: int, seconds: float) -> Result:
    if not jobs:
        return Result(policy.name, cores, 0, skipped, dropped, 0.0, 0.0, 0.0, 0.0, passes, seconds)
    makespan = max(ends.values()) - min(j.submit for j in jobs)
    work = sum(j.procs * (ends[j.id] - starts[j.id]) for j in jobs)
    waits = [starts[j.id] - j.submit for j in jobs]
    bsld = [max(1.0, (starts[j.id] - j.submit + ends[j.id] - starts[j.id]) / max(ends[j.id] - starts[j.id],
                                                                              BSLD_THRESHOLD)) for j in jobs]
    return Result(
        policy=policy.name, cores=cores, jobs=len(jobs), skipped=skipped, dropped=dropped,
        makespan=makespan, utilization=work / (cores * makespan) if makespan > 0 else 0.0,
        mean_wait=sum(waits) / len(jobs), mean_bounded_slowdown=sum(bsld) / len(jobs),
        passes=passes, seconds=seconds,
    )
