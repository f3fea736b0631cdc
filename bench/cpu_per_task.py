"""Where a trivial task's CPU goes: CPU milliseconds per task of `true`, process by process.

    .venv/bin/python bench/cpu_per_task.py [--runs 3] [--tasks 2000]

On the local cluster versus.py measures throughput with (a head node and 2 agents), a sweep of
`--tasks` instances and as many separate jobs (the SDK's submit_each: a request each on one SubmitJobStream, 32 unanswered) are run; over
each run the CPU (user and system) of the head node, of the agents, of the agents' children
(the tasks' own `sh` and `true`) and of this client is divided by the tasks. On a machine
where the throughput runs are CPU-bound (2 cores here), this says which process to make
cheaper: the throughput is about (cores x how busy they are kept) / the total.

`cpu_ceiling_*` is that bound with every core kept busy: the most tasks per second this
machine's cores allow at the measured CPU per task, whatever the latency of each hop.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")

import psutil  # noqa: E402
from figures import cpu_seconds, report, stat  # noqa: E402
from versus import shoal_cluster, shoal_jobs, shoal_sweep  # noqa: E402


def _children(proc: psutil.Process) -> float:
    t = proc.cpu_times()
    return t.children_user + t.children_system


def measure(kind: str, runs: int, n: int) -> list[dict[str, object]]:
    run = shoal_sweep if kind == "sweep" else shoal_jobs
    parts: dict[str, list[float]] = {k: [] for k in ("head", "agents", "tasks", "client", "total")}
    with tempfile.TemporaryDirectory(prefix="shoal-bench-") as tmp, shoal_cluster(Path(tmp)) as cluster:
        head = psutil.Process(cluster.head.pid)  # type: ignore[union-attr]
        agents = [psutil.Process(p.pid) for p in cluster.agents.values()]
        run(cluster, min(n, 200))  # warm up
        for _ in range(runs):
            before = (cpu_seconds(head), sum(map(cpu_seconds, agents)), sum(map(_children, agents)),
                      time.process_time())
            run(cluster, n)
            after = (cpu_seconds(head), sum(map(cpu_seconds, agents)), sum(map(_children, agents)),
                     time.process_time())
            used = [(a - b) * 1000 / n for a, b in zip(after, before)]
            for key, value in zip(("head", "agents", "tasks", "client"), used):
                parts[key].append(value)
            parts["total"].append(sum(used))
    note = f"{n} {'instances of one sweep' if kind == 'sweep' else 'separate jobs'} of true"
    cores = os.cpu_count() or 1
    return [stat(f"cpu_per_task_{kind}_{k}", v, "ms", note=note) for k, v in parts.items()] + [
        stat(f"cpu_ceiling_{kind}", [cores * 1000 / t for t in parts["total"]], "tasks/s",
             note=f"{cores} cores / total CPU per task")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--tasks", type=int, default=2000)
    args = parser.parse_args()
    report(measure("sweep", args.runs, args.tasks) + measure("jobs", args.runs, args.tasks),
           f"CPU per task, {args.runs} runs")


if __name__ == "__main__":
    main()
