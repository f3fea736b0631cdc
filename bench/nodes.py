"""A thousand agents against one head node on this machine (issue 8, item 5).

    .venv/bin/python bench/nodes.py [--agents 1000] [--swarms 4] [--runs 5] [--window 5]

The agents are the real agent (its connection, Hello, heartbeats every 5 s, the default, and
its reports) with launches faked (computenode/fake.py), many to a process
(`python -m computenode.swarm`); each offers 4 cores. Measured, each over `--runs` windows:
  nodes_head_cpu_idle      the head node's CPU while 1,000 idle agents heartbeat (% of a core)
  nodes_head_cpu_busy      the same with every core of every agent running a task, so each
                           heartbeat carries four task reports
  nodes_head_rss           the head node's resident memory with 1,000 agents connected
  nodes_dispatch           a sweep of 10,000 instantly ending tasks spread over the 1,000 agents:
                           tasks per second from submission to the job's end
  nodes_connect            seconds until all agents are connected and Online
The swarm processes share the machine's two cores with the head, as real agents would not.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")

import psutil  # noqa: E402
from figures import cpu_seconds, report, stat  # noqa: E402

from common.clock import (
    perf_counter,  # noqa: E402
    wait_until,  # noqa: E402
)
from shoal.client import Client, task_spec  # noqa: E402
from shoal.local import LocalCluster  # noqa: E402
from shoal.v1 import admin_pb2, jobs_pb2  # noqa: E402

CORES = 4



def _online(client: Client) -> int:
    return sum(n.connected and n.state == admin_pb2.NODE_STATE_ONLINE for n in client.list_nodes())


def _head_cpu(head: psutil.Process, windows: int, seconds: float) -> list[float]:
    """% of one core the head used in each of `windows` windows of `seconds`."""
    import time

    out = []
    for _ in range(windows):
        before, t = cpu_seconds(head), perf_counter()
        time.sleep(seconds)  # measuring a rate over a fixed window, not waiting for anything
        out.append(100 * (cpu_seconds(head) - before) / (perf_counter() - t))
    return out


def _counts(client: Client, job_id: int) -> jobs_pb2.TaskCounts:
    return client.get_job(job_id, full=False).task_counts


def run(agents: int, swarms: int, runs: int, window: float, dispatch: int) -> list[dict[str, object]]:
    with tempfile.TemporaryDirectory(prefix="shoal-bench-") as tmp, \
            LocalCluster(Path(tmp), nodes=0) as cluster, Client(cluster.address, timeout=60) as client:
        head = psutil.Process(cluster.head.pid)  # type: ignore[union-attr]
        env = dict(os.environ, GRPC_ENABLE_FORK_SUPPORT="false", PYTHONUNBUFFERED="1")
        per = -(-agents // swarms)
        procs = []
        start = perf_counter()
        try:
            for i in range(swarms):
                count = min(per, agents - i * per)
                log = open(Path(tmp) / f"swarm{i}.log", "wb")  # noqa: SIM115 - owned by the child
                procs.append(subprocess.Popen(
                    [sys.executable, "-m", "computenode.swarm", "--head", cluster.address, "--count", str(count),
                     "--first", str(i * per), "--cores", str(CORES), "--state-dir", str(Path(tmp) / "swarm")],
                    stdout=subprocess.DEVNULL, stderr=log, env=env))
                log.close()
            if not wait_until(lambda: _online(client) >= agents, 300, interval=1.0):
                raise RuntimeError(f"only {_online(client)} of {agents} agents came online")
            connect = perf_counter() - start
            idle = _head_cpu(head, runs, window)
            rss = head.memory_info().rss / (1 << 20)

            busy_job = client.submit(jobs_pb2.JobSpec(tasks=[task_spec(
                "sleep 100000", cores=1, sweep=(1, agents * CORES, 1))]))
            if not wait_until(lambda: _counts(client, busy_job).running == agents * CORES, 120, interval=0.5):
                raise RuntimeError(f"only {_counts(client, busy_job).running} of {agents * CORES} tasks running")
            busy = _head_cpu(head, runs, window)
            client.cancel_job(busy_job)
            if not wait_until(lambda: _counts(client, busy_job).running == 0, 120, interval=0.5):
                raise RuntimeError("the busy job's tasks did not stop")

            rates, dispatch_cpu = [], []
            for _ in range(runs):
                before, t = cpu_seconds(head), perf_counter()
                job_id = client.submit(jobs_pb2.JobSpec(tasks=[task_spec("true", cores=1, sweep=(1, dispatch, 1))]))
                job = client.wait_job(job_id)
                elapsed = perf_counter() - t
                if job.task_counts.finished != dispatch:
                    raise RuntimeError(f"dispatch job ended {jobs_pb2.JobState.Name(job.state)}: {job.task_counts}")
                rates.append(dispatch / elapsed)
                dispatch_cpu.append(100 * (cpu_seconds(head) - before) / elapsed)
        finally:
            for p in procs:
                p.terminate()
            for p in procs:
                try:
                    p.wait(30)
                except subprocess.TimeoutExpired:
                    p.kill()
    note = f"{agents:,} agents ({swarms} processes), heartbeat 5 s"
    return [
        stat("nodes_head_cpu_idle", idle, "% core", target=10.0, met=sorted(idle)[len(idle) // 2] <= 10.0, note=note),
        stat("nodes_head_cpu_busy", busy, "% core", target=10.0, met=sorted(busy)[len(busy) // 2] <= 10.0,
             note=f"{agents * CORES:,} tasks running"),
        stat("nodes_head_rss", [rss], "MiB"),
        stat("nodes_dispatch", rates, "tasks/s", note=f"sweeps of {dispatch:,} over {agents:,} agents"),
        stat("nodes_dispatch_head_cpu", dispatch_cpu, "% core"),
        stat("nodes_connect", [connect], "s"),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--agents", type=int, default=1000)
    parser.add_argument("--swarms", type=int, default=4)
    parser.add_argument("--runs", type=int, default=5)
    # One heartbeat interval: each window sees one heartbeat of every agent (they are spread
    # over the interval), and five of them fit make bench's budget where five of 10 s did not.
    parser.add_argument("--window", type=float, default=5.0, help="seconds per CPU measurement")
    parser.add_argument("--dispatch", type=int, default=10_000, help="instances per dispatch sweep")
    args = parser.parse_args()
    report(run(args.agents, args.swarms, args.runs, args.window, args.dispatch), "Shoal with many agents")


if __name__ == "__main__":
    main()
