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
import os
import subprocess
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")

from figures import figure, report, timed  # noqa: E402

from shoal.client import Client, task_spec  # noqa: E402
from shoal.local import LocalCluster  # noqa: E402
from shoal.v1 import jobs_pb2  # noqa: E402


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
                t, job_id = timed(lambda spec=spec: client.submit(spec))
                samples["submit_sweep"].append(t)
                t, units = timed(lambda j=job_id: sum(1 for _ in client.list_instances(j, page_size=10_000)))
                assert units == args.instances, units
                samples["list_instances"].append(t)
                t, _ = timed(lambda j=job_id: subprocess.run(
                    [sys.executable, "-m", "shoal", "task", "list", str(j), "--instances", "--json"],
                    env=env, check=True, stdout=subprocess.DEVNULL))
                samples["cli_list"].append(t)
                t, _ = timed(lambda j=job_id: client.get_job(j))
                samples["view_job"].append(t)
    report([figure(name, values, instances=args.instances) for name, values in samples.items()],
           f"{args.runs} runs, a sweep of {args.instances} instances")

if __name__ == "__main__":
    main()
