"""Fault injection: a workload of short tasks while the head node and agents are SIGKILLed and
restarted at random (seeded) moments. Then everything must be accounted for.

Each task appends its own id to a shared file (so a double run shows), prints a known set of
lines, and exits with a known code (every tenth exits 3). At the end:
  - every job and task is in an end state,
  - each task's recorded state and exit code are what its process did,
  - each task ran exactly once,
  - each task's output is exactly what it printed: no chunk missing or doubled.
Agents are restarted well within the node-lost grace, so their tasks are adopted, never
given away; a node lost for good would be the reliability issue's other half, tested apart.

    .venv/bin/python -m tests.fault.soak [--tasks 2000] [--seed 7] [--agents 4]   # make soak
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import tempfile
import threading
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")

from common.clock import perf_counter, wait_until  # noqa: E402
from common.ids import TaskId  # noqa: E402
from shoal.client import Client, RequestFailed, task_spec  # noqa: E402
from shoal.local import LocalCluster  # noqa: E402
from shoal.v1 import jobs_pb2  # noqa: E402

TASKS_PER_JOB = 10
LINES = 20


@dataclass
class Report:
    tasks: int
    seed: int
    head_kills: int = 0
    agent_kills: int = 0
    head_recovery: list[float] = field(default_factory=list)  # restart -> serving again
    elapsed: float = 0.0
    not_ended: list[str] = field(default_factory=list)
    wrong_result: list[str] = field(default_factory=list)
    run_twice: list[str] = field(default_factory=list)
    never_ran: list[str] = field(default_factory=list)
    bad_output: list[str] = field(default_factory=list)

    @property
    def lost(self) -> int:
        return sum(len(x) for x in (self.not_ended, self.wrong_result, self.run_twice, self.never_ran,
                                    self.bad_output))

    def summary(self) -> dict[str, object]:
        rec = sorted(self.head_recovery)
        return {
            "tasks": self.tasks, "seed": self.seed, "head_kills": self.head_kills, "agent_kills": self.agent_kills,
            "head_recovery_median_s": round(rec[len(rec) // 2], 2) if rec else None,
            "head_recovery_max_s": round(rec[-1], 2) if rec else None,
            "elapsed_s": round(self.elapsed, 1), "not_ended": len(self.not_ended),
            "wrong_result": len(self.wrong_result), "run_twice": len(self.run_twice),
            "never_ran": len(self.never_ran), "bad_output": len(self.bad_output), "lost": self.lost,
        }


def expected_output(label: str) -> bytes:
    return b"".join(f"{label} line {n}\n".encode() for n in range(1, LINES + 1))


def _command(runs: Path, label: str, code: int, seconds: float) -> str:
    # Output before and after the pause, so kills land while tasks are half-way through it.
    half = LINES // 2
    return (f"echo {label} >> {runs}; for n in $(seq 1 {half}); do echo {label} line $n; done; sleep {seconds}; "
            f"for n in $(seq {half + 1} {LINES}); do echo {label} line $n; done; exit {code}")


class Chaos(threading.Thread):
    """Kills and restarts daemons at seeded random moments until told to stop."""

    def __init__(self, cluster: LocalCluster, rng: random.Random, report: Report, pause: tuple[float, float]) -> None:
        super().__init__(daemon=True)
        self.cluster, self.rng, self.report, self.pause = cluster, rng, report, pause
        self.halt = threading.Event()

    def run(self) -> None:
        while not self.halt.wait(self.rng.uniform(*self.pause)):
            if self.rng.random() < 0.35:
                self.cluster.kill_head()
                self.report.head_kills += 1
                self.halt.wait(self.rng.uniform(0.0, 1.0))
                started = perf_counter()
                self.cluster.start_head()
                self.report.head_recovery.append(perf_counter() - started)
            else:
                name = self.rng.choice(self.cluster.node_names)
                self.cluster.kill_node(name, signal.SIGKILL)
                self.report.agent_kills += 1
                self.halt.wait(self.rng.uniform(0.0, 1.5))
                self.cluster.start_node(name)


def _retrying(client: Client, call: object, timeout: float = 60.0) -> object:
    """Call through a head node that may be down for a moment."""
    result: list[object] = []

    def attempt() -> bool:
        try:
            result.append(call())  # type: ignore[operator]
            return True
        except RequestFailed as e:
            if e.code.name not in ("UNAVAILABLE", "DEADLINE_EXCEEDED"):
                raise
            return False

    if not wait_until(attempt, timeout, interval=0.1):
        raise TimeoutError("the head node did not come back")
    return result[0]


def run_soak(state_dir: Path, tasks: int, seed: int, agents: int = 4, pause: tuple[float, float] = (0.5, 2.0),
             task_seconds: float = 0.3, timeout: float = 900.0) -> Report:
    rng = random.Random(seed)
    report = Report(tasks=tasks, seed=seed)
    runs = state_dir / "runs"
    runs.touch()
    cluster = LocalCluster(state_dir / "cluster", nodes=agents, cores=2, stop_tasks_on_exit=False,
                           head_args=["--heartbeat-interval", "0.3", "--node-lost-after", "15"])
    expected: dict[str, int] = {}
    start = perf_counter()
    with cluster, Client(cluster.address, timeout=10.0) as client:
        chaos = Chaos(cluster, rng, report, pause)
        chaos.start()
        job_ids = []
        for first in range(0, tasks, TASKS_PER_JOB):
            numbers = range(first, min(first + TASKS_PER_JOB, tasks))
            specs = []
            for n in numbers:
                label = f"t{n}"
                code = 3 if n % 10 == 9 else 0
                specs.append(task_spec(_command(runs, label, code, task_seconds), name=label))
            spec = jobs_pb2.JobSpec(name=f"soak{first}", tasks=specs)
            job_id = _retrying(client, lambda s=spec: client.submit(s))
            job_ids.append(job_id)
            for i, n in enumerate(numbers, start=1):
                expected[f"{job_id}.{i}"] = 3 if n % 10 == 9 else 0

        def all_ended() -> bool:
            try:
                active = list(client.list_jobs(states=(jobs_pb2.JOB_STATE_QUEUED, jobs_pb2.JOB_STATE_RUNNING)))
            except RequestFailed:
                return False
            return not active

        wait_until(all_ended, timeout, interval=0.5)
        chaos.halt.set()
        chaos.join()
        wait_until(lambda: cluster.active_head() is not None, 30)
        report.elapsed = perf_counter() - start
        _check(client, job_ids, expected, runs, report)
    return report


def _check(client: Client, job_ids: list[int], expected: dict[str, int], runs: Path, report: Report) -> None:
    ran = Counter(runs.read_text().split())
    seen: dict[str, str] = {}
    for job_id in job_ids:
        job = _retrying(client, lambda j=job_id: client.get_job(j))
        for t in job.tasks:  # type: ignore[attr-defined]
            ref = f"{t.ref.job_id}.{t.ref.task_id}"
            seen[ref] = t.spec.name
            code = expected[ref]
            state = jobs_pb2.TaskState.Name(t.state)
            if state not in ("TASK_STATE_FINISHED", "TASK_STATE_FAILED", "TASK_STATE_CANCELLED"):
                report.not_ended.append(f"{ref} {state}")
                continue
            want = "TASK_STATE_FINISHED" if code == 0 else "TASK_STATE_FAILED"
            if state != want or (t.HasField("exit_code") and t.exit_code != code) or not t.HasField("exit_code"):
                report.wrong_result.append(f"{ref} {state} exit={t.exit_code if t.HasField('exit_code') else None} "
                                           f"({t.reason}); its process exits {code}")
            label = t.spec.name
            if ran[label] > 1:
                report.run_twice.append(f"{ref} ({label}) ran {ran[label]} times")
            elif ran[label] == 0:
                report.never_ran.append(f"{ref} ({label})")
            out = b"".join(_retrying(client, lambda r=t.ref: list(client.read_output(TaskId(r.job_id, r.task_id)))))
            if out != expected_output(label):
                report.bad_output.append(f"{ref}: {len(out)} bytes, expected {len(expected_output(label))}")
    missing = set(expected) - set(seen)
    report.not_ended += [f"{ref} missing" for ref in sorted(missing)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--agents", type=int, default=4)
    parser.add_argument("--task-seconds", type=float, default=0.3, help="how long each task pauses mid-way")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="shoal-soak-") as tmp:
        report = run_soak(Path(tmp), args.tasks, args.seed, args.agents, task_seconds=args.task_seconds)
    print(json.dumps(report.summary()))
    for name in ("not_ended", "wrong_result", "run_twice", "never_ran", "bad_output"):
        for line in getattr(report, name)[:10]:
            print(f"  {name}: {line}")
    raise SystemExit(1 if report.lost else 0)


if __name__ == "__main__":
    main()
