"""Shoal against Slurm on this machine, in the same run, pair by pair.

    .venv/bin/python bench/versus.py [throughput_jobs|throughput_sweep|latency|submission|all]
                                     [--runs 5] [--tasks 2000] [--no-slurm] [--with-default]

Shoal runs as a local cluster (`shoal.local`: a head node on SQLite and 2 agents, each
offering this machine's cores, as `shoal up` runs it), with `dispatch_ahead = 6` (the setting
for clusters of short tasks; `--with-default` also measures Shoal's default, off, as the
`throughput_*_default` figures, pair by pair with the others: `make bench` leaves them out,
as they took 70 s of its twenty minutes on a slow hour); Slurm as bench/slurm.py sets it up (one
node of this machine's cores, tuned). Slurm runs without cgroups, and so do Shoal's agents
(`isolation = "watch"`) unless `--isolation cgroup`: on this machine's cgroup v1 hierarchy,
moving each task into its cgroup waits for an RCU grace period, which costs 10-20 ms of start
latency and about a third of trivial-task throughput. Each run measures Shoal then Slurm, so the ratio of a
pair is taken while the machine is in the same mood.

  throughput_jobs    2,000 separate jobs of `true`, submitted as fast as the client allows
                     (Shoal: the SDK's submit_each, each job its own request on one
                     SubmitJobStream call, 32 unanswered, and submit_many, 100 jobs to a
                     SubmitJobs call; Slurm: `sbatch
                     --wrap=true` from 8 parallel clients, as it has no batch submission of
                     separate jobs), tasks/s from the first submit to the last end
  throughput_sweep   one sweep of 2,000 instances (Slurm: `sbatch --array=1-2000`)
  latency            idle cluster, 50 samples each: submit to process start (the task prints
                     its own start time) through the SDK and `srun`/`sbatch`; submit to
                     completion seen by the client: SDK, `shoal job submit --wait`, `sbatch
                     --wait`, `srun` (Slurm's start and end come from the same call)
  submission         durable submissions per second: SDK one by one, SDK batched (SubmitJobs
                     of 1,000), CLI one by one, against `sbatch` one by one; held jobs, so
                     nothing runs meanwhile; then the head node is SIGKILLed and restarted and
                     every acknowledged job must be there
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import os
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")

from figures import percentile, report, timed, versus  # noqa: E402
from slurm import Slurm  # noqa: E402

from common.clock import SystemClock, perf_counter  # noqa: E402
from common.ids import TaskId  # noqa: E402
from shoal.client import Client, task_spec  # noqa: E402
from shoal.local import LocalCluster  # noqa: E402
from shoal.v1 import jobs_pb2  # noqa: E402

SHOAL = [sys.executable, "-m", "shoal"]
ENDED = {jobs_pb2.JOB_STATE_FINISHED, jobs_pb2.JOB_STATE_FAILED, jobs_pb2.JOB_STATE_CANCELLED}
NOW = SystemClock().now


class Watcher:
    """Counts jobs ending, from one WatchJobs stream opened before the first submission."""

    def __init__(self, client: Client) -> None:
        self.ended: set[int] = set()
        self.failed = 0
        self._want = 0
        self._done = threading.Event()
        self._events = client.watch_jobs(ends_only=True)
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        try:
            self._follow()
        except Exception:  # noqa: BLE001 - the stream closes with the client at the end
            pass

    def _follow(self) -> None:
        for ev in self._events:
            if not ev.HasField("task") and ev.job_state in ENDED and ev.job_id not in self.ended:
                self.ended.add(ev.job_id)
                self.failed += ev.job_state != jobs_pb2.JOB_STATE_FINISHED
                if self._want and len(self.ended) >= self._want:
                    self._done.set()

    def wait(self, count: int, timeout: float = 600.0) -> None:
        self._want = count
        if len(self.ended) >= count:
            return
        if not self._done.wait(timeout):
            raise RuntimeError(f"only {len(self.ended)} of {count} jobs ended within {timeout:g}s")


ISOLATION = "watch"
# The head node's dispatch_ahead: these runs are the cluster of short tasks it is for (Shoal's
# own default is 0, off: --with-default measures that too, as the *_default figures). Sweeps of
# 3,000 here, alternating: 2 did ~5% better than 1. Separate jobs gain from more: while the
# client keeps 32 submissions unanswered, the head's loop takes longer to come back to an
# agent's exits, and a deeper queue on the agent bridges the gap. 2,000 separate jobs, 10
# alternating pairs (2 or 3 runs each, /tmp script): 4 did better in 7, by a median of 7%
# (up to 20%), worse in 3 (by 2-20%, the VM's speed moving); sweeps about the same or better
# (2 pairs: +2%, +10%); 6 no better than 4 (3 pairs, mixed). Since passes are spaced while
# tasks sent ahead wait (dispatch_ahead_pass_interval), a node's queue must cover more: sweeps
# of 2,000, 4 alternating rounds (/tmp script): 6 did 1,183-1,338/s against 4's 1,106-1,137,
# with 3% less CPU per task; separate jobs about the same; 8 no better than 6 (2 rounds).
DISPATCH_AHEAD = 6.0


def shoal_cluster(tmp: Path, dispatch_ahead: float | None = None) -> LocalCluster:
    # Slurm runs here without cgroups (task/none, proctrack/linuxproc), so Shoal's agents do too
    # by default; --isolation cgroup measures Shoal with a cgroup per task.
    ahead = DISPATCH_AHEAD if dispatch_ahead is None else dispatch_ahead
    return LocalCluster(tmp, nodes=2, node_args=["--isolation", ISOLATION], head_args=["--dispatch-ahead", f"{ahead:g}"])


# -- 1 and 2: throughput -------------------------------------------------------------------


def shoal_jobs(cluster: LocalCluster, n: int, batched: bool = False) -> float:
    with Client(cluster.address) as client, Client(cluster.address) as watch_client:
        watcher = Watcher(watch_client)
        spec = jobs_pb2.JobSpec(tasks=[task_spec("true")])
        start = perf_counter()
        if batched:
            client.submit_many([spec] * n, batch=100)
        else:
            client.submit_each([spec] * n, window=32)
        watcher.wait(n)
        elapsed = perf_counter() - start
        assert not watcher.failed, f"{watcher.failed} jobs did not finish"
    return n / elapsed


def shoal_sweep(cluster: LocalCluster, n: int) -> float:
    with Client(cluster.address) as client, Client(cluster.address) as watch_client:
        watcher = Watcher(watch_client)
        start = perf_counter()
        client.submit(jobs_pb2.JobSpec(tasks=[task_spec("true", sweep=(1, n, 1))]))
        watcher.wait(1)
        elapsed = perf_counter() - start
        assert not watcher.failed
    return n / elapsed


def slurm_jobs(slurm: Slurm, n: int) -> float:
    start = perf_counter()

    def submit(count: int) -> None:
        for _ in range(count):
            slurm.run("sbatch", "-Q", "-o", "/dev/null", "--wrap=true")

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        list(pool.map(submit, [n // 8 + (i < n % 8) for i in range(8)]))
    slurm.wait_idle()
    return n / (perf_counter() - start)


def slurm_sweep(slurm: Slurm, n: int) -> float:
    start = perf_counter()
    slurm.run("sbatch", "-Q", "-o", "/dev/null", f"--array=1-{n}", "--wrap=true")
    slurm.wait_idle()
    return n / (perf_counter() - start)


def throughput(kind: str, runs: int, n: int, slurm: Slurm | None, with_default: bool = False) -> list[dict[str, object]]:
    shoal_fn, slurm_fn = (shoal_jobs, slurm_jobs) if kind == "jobs" else (shoal_sweep, slurm_sweep)
    ours, batched, theirs, default = [], [], [], []
    with contextlib.ExitStack() as stack:
        cluster = stack.enter_context(shoal_cluster(Path(stack.enter_context(_tmp()))))
        plain = stack.enter_context(shoal_cluster(Path(stack.enter_context(_tmp())), 0.0)) if with_default else None
        shoal_fn(cluster, min(n, 200))  # warm up
        if plain is not None:
            shoal_fn(plain, min(n, 200))
        for _ in range(runs):
            ours.append(shoal_fn(cluster, n))
            if kind == "jobs":
                batched.append(shoal_jobs(cluster, n, batched=True))
            if plain is not None:
                default.append(shoal_fn(plain, n))
            if slurm is not None:
                theirs.append(slurm_fn(slurm, n))
    ahead = f"dispatch_ahead = {DISPATCH_AHEAD:g}"
    off = [versus(f"throughput_{kind}_default", default, theirs or None, "tasks/s", True,
                  note=f"as throughput_{kind}{'' if kind == 'sweep' else ' (a request per job on one stream)'}, "
                       "with Shoal's default config (dispatch_ahead = 0)")] if with_default else []
    if kind == "sweep":
        return [versus("throughput_sweep", ours, theirs or None, "tasks/s", True, 600.0,
                       note=f"{n} tasks of true per run; {ahead}"), *off]
    return [versus("throughput_jobs", ours, theirs or None, "tasks/s", True, 500.0,
                   note=f"{n} jobs, each its own request on one SubmitJobStream, 32 unanswered; {ahead}"),
            versus("throughput_jobs_batched", batched, theirs or None, "tasks/s", True, 500.0,
                   note=f"{n} jobs submitted 100 to a SubmitJobs call; {ahead}"), *off]


def _tmp() -> tempfile.TemporaryDirectory[str]:
    return tempfile.TemporaryDirectory(prefix="shoal-bench-")


# -- 3: latency ----------------------------------------------------------------------------


def shoal_start_latency(client: Client) -> tuple[float, float]:
    """(submit to process start, submit to completion seen), through the SDK."""
    start = NOW()
    job_id = client.submit(jobs_pb2.JobSpec(tasks=[task_spec("date +%s.%N")]))
    client.wait_job(job_id)
    done = NOW()
    started = float(b"".join(client.read_output(TaskId(job_id, 1))).decode())
    return started - start, done - start


def cli_wait(env: dict[str, str]) -> float:
    start = perf_counter()
    subprocess.run([*SHOAL, "job", "submit", "--wait", "--", "true"], env=env, check=True, capture_output=True)
    return perf_counter() - start


def slurm_latency(slurm: Slurm, tmp: Path) -> dict[str, float]:
    """Slurm's four figures from two calls, each giving its start (the job prints its own start
    time) and its end as the client sees it: one `srun` and one `sbatch --wait` take a second or
    two each here, so separate calls for start and end would double Slurm's side of the run."""
    out = tmp / "start.out"
    start = NOW()
    srun_started = float(slurm.run("srun", "date", "+%s.%N"))
    srun_done = NOW()
    sbatch = NOW()
    slurm.run("sbatch", "-Q", "--wait", "-o", str(out), "--wrap=date +%s.%N")
    sbatch_done = NOW()
    return {"srun_start": srun_started - start, "srun": srun_done - start,
            "sbatch_start": float(out.read_text()) - sbatch, "sbatch_wait": sbatch_done - sbatch}


def seconds(fn: Callable[[], object]) -> float:
    return timed(fn)[0]


def latency(samples: int, slurm: Slurm | None) -> list[dict[str, object]]:
    results: dict[str, list[float]] = {k: [] for k in ("start", "done", "cli")}
    theirs: dict[str, list[float]] = {k: [] for k in ("srun_start", "sbatch_start", "sbatch_wait", "srun")}
    with tempfile.TemporaryDirectory(prefix="shoal-bench-") as tmp, shoal_cluster(Path(tmp)) as cluster, \
            Client(cluster.address) as client:
        env = dict(os.environ, SHOAL_HEAD=cluster.address)
        for _ in range(3):
            shoal_start_latency(client)
            cli_wait(env)
        for _ in range(samples):
            s, d = shoal_start_latency(client)
            results["start"].append(s)
            results["done"].append(d)
            results["cli"].append(cli_wait(env))
            if slurm is not None:
                for key, value in slurm_latency(slurm, Path(tmp)).items():
                    theirs[key].append(value)

    def pair(name: str, ours: list[float], slurm_key: str, target: float | None) -> list[dict[str, object]]:
        ms = [x * 1000 for x in ours]
        theirs_ms = [x * 1000 for x in theirs[slurm_key]] or None
        f = versus(name, ms, theirs_ms, "ms", False, target, note=f"vs Slurm {slurm_key}")
        f["p99"] = round(percentile(ms, 0.99), 2)
        if theirs_ms:
            f["slurm"]["p99"] = round(percentile(theirs_ms, 0.99), 2)  # type: ignore[index]
        return [f]

    return [*pair("latency_submit_to_start_sdk", results["start"], "srun_start", 10.0),
            *pair("latency_submit_to_start_vs_sbatch", results["start"], "sbatch_start", None),
            *pair("latency_submit_to_done_sdk", results["done"], "srun", None),
            *pair("latency_cli_submit_wait", results["cli"], "sbatch_wait", 250.0)]


# -- 4: submission rate --------------------------------------------------------------------


def submission(runs: int, slurm: Slurm | None) -> list[dict[str, object]]:
    one, batched, cli, sb = [], [], [], []
    held = jobs_pb2.JobSpec(hold=True, tasks=[task_spec("true")])
    acknowledged = 0
    with tempfile.TemporaryDirectory(prefix="shoal-bench-") as tmp:
        cluster = LocalCluster(Path(tmp), nodes=0)
        with cluster:
            env = dict(os.environ, SHOAL_HEAD=cluster.address)
            with Client(cluster.address) as client:
                for _ in range(runs):
                    one.append(1000 / seconds(lambda: [client.submit(held) for _ in range(1000)]))
                    batched.append(10_000 / seconds(lambda: client.submit_many([held] * 10_000, batch=1000)))
                    cli.append(10 / seconds(lambda: [subprocess.run([*SHOAL, "job", "submit", "--hold", "--", "true"],
                                                                  env=env, check=True, capture_output=True)
                                                   for _ in range(10)]))
                    if slurm is not None:
                        sb.append(200 / seconds(lambda: [slurm.run("sbatch", "-Q", "-H", "-o", "/dev/null",
                                                                 "--wrap=true") for _ in range(200)]))
                        slurm.run("scancel", "-u", "root", check=False)
                ids = client.submit_many([held] * 10_000)
                acknowledged = len(list(client.list_jobs()))
            # Durable: every acknowledged job is there after a SIGKILL right after.
            cluster.kill_head()
            cluster.start_head()
            with Client(cluster.address) as client:
                survived = len(list(client.list_jobs()))
                assert client.get_job(ids[-1]).id == ids[-1]
    if survived != acknowledged:
        raise RuntimeError(f"{acknowledged - survived} acknowledged jobs lost to kill -9 of the head node")
    theirs = sb or None
    return [versus("submit_sdk_one_by_one", one, theirs, "jobs/s", True, note="vs sbatch one by one"),
            versus("submit_sdk_batched", batched, theirs, "jobs/s", True, 3000.0,
                   note=f"SubmitJobs of 1,000; {survived} of {acknowledged} acknowledged jobs survived kill -9"),
            versus("submit_cli_one_by_one", cli, theirs, "jobs/s", True, note="vs sbatch one by one")]


# -- main ----------------------------------------------------------------------------------


def main() -> None:
    global ISOLATION, DISPATCH_AHEAD
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("which", nargs="?", default="all",
                        choices=("all", "throughput_jobs", "throughput_sweep", "latency", "submission"))
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--tasks", type=int, default=2000)
    parser.add_argument("--samples", type=int, default=50)
    parser.add_argument("--no-slurm", action="store_true")
    parser.add_argument("--with-default", action="store_true",
                        help="also measure the throughput with Shoal's default config (dispatch_ahead = 0), "
                             "as the throughput_*_default figures (not in make bench: its time goes to Slurm)")
    parser.add_argument("--isolation", choices=("watch", "cgroup"), default="watch",
                        help="Shoal's agents without cgroups, like the Slurm here (default), or with them")
    parser.add_argument("--dispatch-ahead", type=float, default=DISPATCH_AHEAD, metavar="RATIO",
                        help=f"the head node's dispatch_ahead (default {DISPATCH_AHEAD:g}; 0: off)")
    args = parser.parse_args()
    ISOLATION, DISPATCH_AHEAD = args.isolation, args.dispatch_ahead
    slurm: Slurm | None = None
    figures: list[dict[str, object]] = []
    if not args.no_slurm:
        slurm = Slurm()
        if not slurm.start():
            print(f"# Slurm not measured: {slurm.reason}", file=sys.stderr)
            figures.append({"name": "slurm", "value": 0, "unit": "", "runs": 0, "note": slurm.reason})
            slurm = None
    try:
        if args.which in ("all", "throughput_jobs"):
            figures += throughput("jobs", args.runs, args.tasks, slurm, args.with_default)
        if args.which in ("all", "throughput_sweep"):
            figures += throughput("sweep", args.runs, args.tasks, slurm, args.with_default)
        if args.which in ("all", "latency"):
            figures += latency(args.samples, slurm)
        if args.which in ("all", "submission"):
            figures += submission(args.runs, slurm)
    finally:
        if slurm is not None:
            slurm.stop()
    report([f for f in figures if "median" in f], f"Shoal vs Slurm, {args.runs} runs")
    for f in figures:
        if "median" not in f:
            print(f"# {f['note']}")


if __name__ == "__main__":
    main()
