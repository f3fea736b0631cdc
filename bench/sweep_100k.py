"""Submitting and listing a 100,000-instance parametric sweep.

On a local head node (no agents, so nothing runs and the queue stays full), over N runs:
  submit_sweep       SubmitJob of one task swept 1..100000, until the id is back (durable)
  list_instances     every instance listed through the SDK (ListTasks, pages of 10,000)
  cli_list           `shoal task list JOB --instances --json > /dev/null`, wall time
  view_job           GetJob of the job (full view)
Prints one JSON line per figure (name, unit, runs, median, min, max) and a table.

    .venv/bin/python bench/sweep_100k.py [--runs 5] [--instances 100000]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")

from common.clock import perf_counter  # noqa: E402
from shoal.client import Client, task_spec  # noqa: E402
from shoal.local import LocalCluster  # noqa: E402
from shoal.v1 import jobs_pb2  # noqa: E402


def timed(fn):  # type: ignore[no-untyped-def]
    start = perf_counter()
    value = fn()
    return perf_counter() - start, value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--instances", type=int, default=100_000)
    args = parser.parse_args()
    samples: dict[str, list[float]] = {"submit_sweep": [], "list_instances": [], "cli_list": [], "view_job": []}
    with tempfile.TemporaryDirectory(prefix="shoal-bench-") as tmp:
        cluster = LocalCluster(Path(tmp), nodes=0)
        with cluster, Client(cluster.address, timeout=300) as client:
            env = dict(os.environ, SHOAL_HEAD=cluster.address)
            for _ in range(args.runs):
                spec = jobs_pb2.JobSpec(name="sweep", tasks=[task_spec("echo *", sweep=(1, args.instances, 1))])
                t, job_id = timed(lambda: client.submit(spec))
                samples["submit_sweep"].append(t)
                t, units = timed(lambda: sum(1 for _ in client.list_instances(job_id, page_size=10_000)))
                assert units == args.instances, units
                samples["list_instances"].append(t)
                t, _ = timed(lambda: subprocess.run(
                    [sys.executable, "-m", "shoal", "task", "list", str(job_id), "--instances", "--json"],
                    env=env, check=True, stdout=subprocess.DEVNULL))
                samples["cli_list"].append(t)
                t, _ = timed(lambda: client.get_job(job_id))
                samples["view_job"].append(t)
    results = []
    for name, values in samples.items():
        ms = sorted(v * 1000 for v in values)
        results.append({"name": name, "unit": "ms", "runs": len(ms), "instances": args.instances,
                        "median": round(statistics.median(ms), 1), "min": round(ms[0], 1), "max": round(ms[-1], 1)})
    for r in results:
        print(json.dumps(r))
    print(f"\n{'figure':<18} {'median':>10} {'min':>10} {'max':>10}   (ms, {args.runs} runs, {args.instances} instances)")
    for r in results:
        print(f"{r['name']:<18} {r['median']:>10} {r['min']:>10} {r['max']:>10}")


if __name__ == "__main__":
    main()
