"""Latency from `shoal job submit` to the task's first output line, on an idle local cluster.

Starts a real local cluster (head node + 2 agents as processes), then over N runs measures:
  sdk_submit_to_first_output   SubmitJob RPC sent -> first stdout chunk read by a follower
  cli_submit_to_first_output   `shoal job submit -- echo ...` started -> `shoal task output
                               JOB.1 --follow` has printed the line (two CLI processes, as a
                               user types them), wall time
  cli_submit_wait              `shoal job submit --wait -- true`, wall time
Prints one JSON line per figure (name, unit, runs, median, min, max, p90) and a table.

    .venv/bin/python bench/latency_first_output.py [--runs 20] [--warmup 3]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")

from figures import figure, report  # noqa: E402

from common.clock import perf_counter  # noqa: E402
from common.ids import TaskId  # noqa: E402
from shoal.client import Client, task_spec  # noqa: E402
from shoal.local import LocalCluster  # noqa: E402
from shoal.v1 import jobs_pb2  # noqa: E402

SHOAL = [sys.executable, "-m", "shoal"]


def sdk_first_output(client: Client) -> float:
    start = perf_counter()
    job_id = client.submit(jobs_pb2.JobSpec(tasks=[task_spec("echo hello")]))
    for data in client.read_output(TaskId(job_id, 1), follow=True):
        if data:
            elapsed = perf_counter() - start
            break
    client.wait_job(job_id)
    return elapsed


def cli_first_output(env: dict[str, str]) -> float:
    start = perf_counter()
    job_id = subprocess.run([*SHOAL, "job", "submit", "--", "echo hello"], env=env, check=True,
                            capture_output=True, text=True).stdout.strip()
    follower = subprocess.Popen([*SHOAL, "task", "output", f"{job_id}.1", "--follow"], env=env,
                                stdout=subprocess.PIPE)
    assert follower.stdout is not None
    line = follower.stdout.readline()
    elapsed = perf_counter() - start
    follower.wait()
    assert line == b"hello\n", line
    return elapsed


def cli_submit_wait(env: dict[str, str]) -> float:
    start = perf_counter()
    subprocess.run([*SHOAL, "job", "submit", "--wait", "--", "true"], env=env, check=True, capture_output=True)
    return perf_counter() - start


def measure(name: str, fn: Callable[[], float], runs: int, warmup: int) -> dict[str, object]:
    for _ in range(warmup):
        fn()
    return figure(name, [fn() for _ in range(runs)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="shoal-bench-") as tmp, LocalCluster(Path(tmp), nodes=2) as cluster:
        env = dict(os.environ, SHOAL_HEAD=cluster.address)
        with Client(cluster.address) as client:
            results = [
                measure("sdk_submit_to_first_output", lambda: sdk_first_output(client), args.runs, args.warmup),
                measure("cli_submit_to_first_output", lambda: cli_first_output(env), args.runs, args.warmup),
                measure("cli_submit_wait", lambda: cli_submit_wait(env), args.runs, args.warmup),
            ]
    report(results, f"{args.runs} runs, idle local cluster of 2 agents")


if __name__ == "__main__":
    main()
