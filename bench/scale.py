"""Shoal at scale on this machine (no Slurm side: these are Shoal's own limits).

    .venv/bin/python bench/scale.py [output|queue|aside|all] [--runs 5] [--gib 1] [--sweeps 10 --instances 100000]
        [--aside 10000]

  output   a task writes 1 GiB to stdout while a client follows it live (ReadOutput with
           follow): MB/s delivered from submission to the last byte, and the head node's CPU
           meanwhile (% of one core). Each run starts on a quiet disk: the page cache is
           synced before it, and the head purges the last run's job and its spooled GiB
           (completed_job_ttl 1 s) before the next is submitted. Otherwise each run after
           the first also paid the kernel writing the last run's GiB back to disk (measured
           here: 290 MB/s for the first of six runs, 180-220 for the rest; 215-340 with each
           run starting clean)
  queue    ten sweeps of 100,000 instances queued on a head node with no agents (1,000,000
           queued tasks): the head node's RSS, the time of one scheduling pass over that
           queue (the head's own, read from its `scheduling_pass` log events), and the
           wall time of `shoal job list`
  aside    the head node's CPU per SubmitJob of a job that runs (on a node of 4 cores, with
           max_running_cores_per_owner 2, so the submitter's own jobs are held back and put
           back as its runs end), with nothing else queued, then with --aside jobs no node
           could ever run (64 cores) and as many of another owner's held back by its limit
           queued: both kinds are set aside (domain/cluster.py), so they should cost later
           passes nothing
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")

import grpc  # noqa: E402
import psutil  # noqa: E402
from figures import cpu_seconds, report, stat  # noqa: E402
from versus import Watcher  # noqa: E402

from common.clock import perf_counter, wait_until  # noqa: E402
from common.ids import TaskId  # noqa: E402
from shoal.client import Client, RequestFailed, task_spec  # noqa: E402
from shoal.local import LocalCluster  # noqa: E402
from shoal.v1 import jobs_pb2  # noqa: E402

SHOAL = [sys.executable, "-m", "shoal"]



def purged(client: Client, job_id: int, timeout: float = 30.0) -> None:
    """Wait until the job has ended and the head has purged it (its output spool with it)."""
    def gone() -> bool:
        try:
            client.get_job(job_id, full=False)
        except RequestFailed as e:
            if e.code == grpc.StatusCode.NOT_FOUND:
                return True
            raise
        return False
    if not wait_until(gone, timeout, interval=0.05):
        raise RuntimeError(f"job {job_id} was not purged within {timeout:g} s")


def output(runs: int, gib: float) -> list[dict[str, object]]:
    size = int(gib * (1 << 30))
    rates, head_cpu = [], []
    with tempfile.TemporaryDirectory(prefix="shoal-bench-") as tmp, \
            LocalCluster(Path(tmp), nodes=1, head_args=["--completed-job-ttl", "1"]) as cluster, \
            Client(cluster.address) as client:
        head = psutil.Process(cluster.head.pid)  # type: ignore[union-attr]
        for _ in range(runs):
            os.sync()
            before, start = cpu_seconds(head), perf_counter()
            job_id = client.submit(jobs_pb2.JobSpec(tasks=[task_spec(f"head -c {size} /dev/zero")]))
            got = 0
            for chunk in client.read_output(TaskId(job_id, 1), follow=True):
                got += len(chunk)
            elapsed = perf_counter() - start
            if got != size:
                raise RuntimeError(f"the follower got {got} bytes of {size}")
            rates.append(size / elapsed / 1e6)
            head_cpu.append(100 * (cpu_seconds(head) - before) / elapsed)
            purged(client, job_id)  # so ended too (waiting for its end first could miss it: purged)
    return [stat("output_follow", rates, "MB/s", target=150.0, met=sorted(rates)[len(rates) // 2] >= 150.0,
                 note=f"{gib:g} GiB to stdout, followed live"),
            stat("output_follow_head_cpu", head_cpu, "% core")]


def queue(sweeps: int, instances: int, runs: int) -> list[dict[str, object]]:
    total = sweeps * instances
    with tempfile.TemporaryDirectory(prefix="shoal-bench-") as tmp:
        cluster = LocalCluster(Path(tmp), nodes=0, head_args=["--log-level", "debug"])
        with cluster, Client(cluster.address) as client:
            head = psutil.Process(cluster.head.pid)  # type: ignore[union-attr]
            start = perf_counter()
            for _ in range(sweeps):
                client.submit(jobs_pb2.JobSpec(tasks=[task_spec("true", sweep=(1, instances, 1))]))
            submit = perf_counter() - start
            rss = head.memory_info().rss / (1 << 20)
            env = dict(os.environ, SHOAL_HEAD=cluster.address)
            lists = []
            for _ in range(runs):
                t = perf_counter()
                subprocess.run([*SHOAL, "job", "list"], env=env, check=True, capture_output=True)
                lists.append(perf_counter() - t)
            # The head's own passes over the full queue (logged at debug with their duration).
            cluster.start_node("late")  # a node to schedule onto: each pass now walks the queue
            passes = _passes(cluster.log_dir / "head.log", runs)
    return [stat("queue_head_rss", [rss], "MiB", target=1024.0, met=rss <= 1024.0,
                 note=f"{total:,} queued tasks ({sweeps} sweeps of {instances:,})"),
            stat("queue_submit", [submit * 1000], "ms", note=f"{sweeps} SubmitJob calls (sweeps expand lazily)"),
            stat("queue_scheduling_pass", passes, "ms", target=100.0,
                 met=bool(passes) and sorted(passes)[len(passes) // 2] <= 100.0),
            stat("queue_cli_job_list", [x * 1000 for x in lists], "ms")]


def aside(jobs: int, runs: int, per_run: int = 200) -> list[dict[str, object]]:
    with tempfile.TemporaryDirectory(prefix="shoal-bench-") as tmp:
        config = Path(tmp) / "head.toml"
        config.write_text("[head]\nmax_running_cores_per_owner = 2\nrate_limit = 0\n")
        cluster = LocalCluster(Path(tmp) / "cluster", nodes=1, cores=4, head_args=["--config", str(config)])
        with cluster, Client(cluster.address, user="alice") as alice, Client(cluster.address, user="bob") as bob:
            head = psutil.Process(cluster.head.pid)  # type: ignore[union-attr]
            plain = jobs_pb2.JobSpec(tasks=[task_spec("true")])

            def cost() -> float:
                with Client(cluster.address, user="bob") as watching:
                    watcher = Watcher(watching)  # bob's jobs' ends, on one stream
                    before = cpu_seconds(head)
                    bob.submit_each([plain] * per_run, window=8)
                    watcher.wait(per_run)
                    used = cpu_seconds(head) - before
                if watcher.failed:
                    raise RuntimeError(f"{watcher.failed} of bob's jobs did not finish")
                return used * 1000 / per_run

            cost()  # warm up
            alone = [cost() for _ in range(runs)]
            busy = alice.submit(jobs_pb2.JobSpec(tasks=[task_spec("sleep 3600", cores=2)]))  # alice at her limit
            if not wait_until(lambda: alice.get_job(busy).state == jobs_pb2.JOB_STATE_RUNNING, 30):
                raise RuntimeError("alice's first job did not start")
            alice.submit_many([plain] * jobs)
            bob.submit_many([jobs_pb2.JobSpec(tasks=[task_spec("true", cores=64)])] * jobs)
            queued = [cost() for _ in range(runs)]
    note = f"SubmitJob of a job that runs; {jobs:,} jobs of 64 cores and {jobs:,} held by a limit queued"
    return [stat("aside_submit_head_cpu_alone", alone, "ms", note="SubmitJob of a job that runs; nothing else queued"),
            stat("aside_submit_head_cpu", queued, "ms", note=note)]


def _passes(log: Path, want: int) -> list[float]:
    """Durations of the head's scheduling passes that saw the full queue."""
    import time

    deadline = time.monotonic() + 120
    found: list[float] = []
    while time.monotonic() < deadline and len(found) < want:
        found = []
        for line in log.read_text().splitlines():
            if '"scheduling_pass"' in line:
                event = json.loads(line)
                if event.get("queued", 0) > 0:
                    found.append(float(event["ms"]))
        time.sleep(0.2)
    return found[:want] or [float("nan")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("which", nargs="?", default="all", choices=("all", "output", "queue", "aside"))
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--gib", type=float, default=1.0)
    parser.add_argument("--sweeps", type=int, default=10)
    parser.add_argument("--instances", type=int, default=100_000)
    parser.add_argument("--aside", type=int, default=10_000, metavar="JOBS")
    args = parser.parse_args()
    figures: list[dict[str, object]] = []
    if args.which in ("all", "output"):
        figures += output(args.runs, args.gib)
    if args.which in ("all", "queue"):
        figures += queue(args.sweeps, args.instances, args.runs)
    if args.which in ("all", "aside"):
        figures += aside(args.aside, args.runs)
    report(figures, "Shoal at scale")


if __name__ == "__main__":
    main()
