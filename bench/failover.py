"""Failover time of two head nodes on one PostgreSQL database.

Starts a local cluster (2 head nodes, 2 agents, real processes) on a fresh schema, then for
each round keeps a small workload going, SIGKILLs the active head node and measures from the
kill to:
  standby_active      the standby holds the lease and serves (its address file is written)
  submit_accepted     a client given both addresses has a new job accepted
  job_finished        that job has run to the end on an agent
then restarts the killed head, which stands by for the next round. Prints one JSON line per
figure (median, min, max, p90 over the rounds) and a table.

    .venv/bin/python bench/failover.py [--rounds 5] [--lease-ttl 6] [--database URL]

The default lease time-to-live is the head node's default (6 s): a standby takes over once
the dead leader's lease has expired, so the figures sit between ttl and ttl + ttl/3.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import uuid
from pathlib import Path

os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")

from figures import figure, report  # noqa: E402

from common.clock import perf_counter, wait_until  # noqa: E402
from shoal.client import Client, RequestFailed, task_spec  # noqa: E402
from shoal.local import LocalCluster  # noqa: E402
from shoal.v1 import jobs_pb2  # noqa: E402

DEFAULT_DB = "postgresql://postgres@127.0.0.1:5432/test"


def one_round(cluster: LocalCluster, client: Client) -> tuple[float, float, float]:
    for _ in range(10):  # work in flight when the head dies
        client.submit(jobs_pb2.JobSpec(tasks=[task_spec("sleep 0.2")]))
    victim = cluster.active_head()
    assert victim is not None
    killed = perf_counter()
    cluster.kill_head(victim)
    if not wait_until(lambda: cluster.active_head() not in (None, victim), 60, interval=0.01):
        sys.exit(f"no standby took over within 60 s:\n{cluster.log_tail(cluster.head_name(1 - victim))}")
    active = perf_counter() - killed
    def try_submit() -> int:
        try:
            return client.submit(jobs_pb2.JobSpec(tasks=[task_spec("true")]))
        except RequestFailed:  # Unavailable until the channel has moved to the new head
            return 0

    job_id = wait_until(try_submit, 60, interval=0.01)
    assert job_id, "no head node accepted a job within 60 s"
    accepted = perf_counter() - killed
    job = client.wait_job(job_id)
    assert job.state == jobs_pb2.JOB_STATE_FINISHED, job
    finished = perf_counter() - killed
    log = cluster.log_dir / f"{cluster.head_name(victim)}.log"
    before = log.stat().st_size
    cluster.start_head(victim, wait=False)

    def standing_by() -> bool:
        with log.open("rb") as f:
            f.seek(before)
            return b"standing_by" in f.read()

    if not wait_until(standing_by, 30, interval=0.05):
        sys.exit(f"the restarted head did not stand by:\n{cluster.log_tail(cluster.head_name(victim))}")
    return active, accepted, finished


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--lease-ttl", type=float, default=6.0)
    parser.add_argument("--database", default=os.environ.get("SHOAL_TEST_POSTGRES", DEFAULT_DB))
    parser.add_argument("--keep", action="store_true", help="keep the cluster's directory and logs")
    args = parser.parse_args()
    try:
        import psycopg
        psycopg.connect(args.database, connect_timeout=3).close()
    except Exception as e:  # noqa: BLE001 - any failure means: no server to measure against
        print(f"failover benchmark skipped: no PostgreSQL at {args.database} ({e})")
        return
    schema = f"bench_failover_{uuid.uuid4().hex[:10]}"
    results: list[tuple[float, float, float]] = []
    tmp = tempfile.mkdtemp(prefix="shoal-bench-")
    try:
        cluster = LocalCluster(Path(tmp) / "ha", nodes=2, cores=2, heads=2,
                               database=f"{args.database}?schema={schema}",
                               head_args=["--lease-ttl", str(args.lease_ttl)])
        try:
            with cluster, Client(cluster.address) as client:
                for n in range(args.rounds):
                    results.append(one_round(cluster, client))
                    print(f"round {n + 1}: " + ", ".join(f"{x:.2f}s" for x in results[-1]), file=sys.stderr)
        finally:
            import psycopg
            with psycopg.connect(args.database, autocommit=True) as db:
                db.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        if args.keep:
            print(f"logs kept in {tmp}/ha/logs", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    names = ("standby_active", "submit_accepted", "job_finished")
    report([figure(name, [r[i] for r in results], lease_ttl_s=args.lease_ttl) for i, name in enumerate(names)],
           f"from SIGKILL of the active head node, lease ttl {args.lease_ttl:g}s, {args.rounds} rounds")


if __name__ == "__main__":
    main()
