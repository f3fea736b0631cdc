"""Fault injection: a workload of short tasks while, at seeded random moments, the head node and
agents are SIGKILLed and restarted, frozen (SIGSTOP, then SIGCONT) and, for agents in their
own network namespace, cut off from the head and healed. Then everything must be accounted for.

Faults come from two seeded drivers running side by side, each one fault at a time: the head's
(SIGKILL and restart; a freeze of up to 1.5x node_lost_after) and the agents' (SIGKILL and
restart; a freeze; a partition), each kind drawn from a shuffled deck so that every kind comes
round early, each freeze and partition lasting, by turns, less than the task lease (nothing
may happen), past the lease but within node_lost_after (the tasks are fenced, the node is not
lost) or past node_lost_after (the node is lost; its tasks run again elsewhere). Partitions
need root and `ip netns`; without them that one fault is skipped, saying why, and the rest runs.
The timings are short (heartbeat 0.3 s, task lease 2 s, kill grace 0.5 s, node lost after 4 s)
so that every fault's consequences play out within seconds.

Each task records itself: a line "TASK ATTEMPT RUN_ID start" in a shared file when it starts
and "... end" just before it exits, ticks (tests/fault/ticks.py: "TASK ATTEMPT TIME" every
0.1 s) while it runs, prints a known set of lines (half before its pause, half after), and
exits with a known code (every tenth exits 3). A task killed by a fault may legitimately run
again: a fenced attempt, or one on a node lost, is replaced by the next. So what must hold is:

  (a) no overlap: no two attempts of one task ever tick at the same time, and no attempt is
      launched twice (two processes with the same attempt number, told apart by run id);
  (b) nothing lost: every task is in an end state, with the state and exit code of its last
      attempt's process (the attempt the head counts is the last one that started, and that
      process ran to its end), and its output is exactly the lines that attempt printed, once
      (the head keeps one attempt's output: a fenced attempt's part is replaced by the next's);
  (c) nothing run twice: besides (a), no attempt started after the attempt the head counted
      (a task run again once its end was recorded), no task's end recorded twice (two end
      states in its history), and no earlier attempt that ran to its end was run again
      unless the head never heard of that end: its requeue says its node was lost or that
      attempt fenced. Such a rerun, of an end the head could not have known, is the
      at-least-once the design allows and is counted (completed_unreported), not failed.

The summary's "lost" counts (b)'s failures, "run_twice" (c)'s (overlapping tasks included),
"overlapping_attempts" and "overlap_s" (a)'s pairs and their seconds.

    .venv/bin/python -m tests.fault.soak [--tasks 2000] [--seed 7] [--agents 4]   # make soak
"""

from __future__ import annotations

import argparse
import bisect
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")

from common.clock import boot_clock, perf_counter, wait_until  # noqa: E402
from common.ids import TaskId  # noqa: E402
from computenode import fence  # noqa: E402
from shoal.client import Client, RequestFailed, task_spec  # noqa: E402
from shoal.local import LocalCluster, free_port  # noqa: E402
from shoal.v1 import admin_pb2, jobs_pb2  # noqa: E402
from tests.fault.ticks import TICK, overlap_seconds, overlaps, spans  # noqa: E402

TASKS_PER_JOB = 10
LINES = 20
MAX_RETRIES = 10  # a task may be hit by several faults in a row; 3 (the default) would fail it "lost"
ENDED = ("TASK_STATE_FINISHED", "TASK_STATE_FAILED", "TASK_STATE_CANCELLED")


@dataclass(frozen=True)
class Timings:
    heartbeat: float = 0.3
    lease: float = 2.0
    kill_grace: float = 0.5
    lost_after: float = 4.0  # >= lease + kill_grace + 1, as the head checks

    def head_args(self) -> list[str]:
        return ["--heartbeat-interval", str(self.heartbeat), "--task-lease", str(self.lease),
                "--kill-grace", str(self.kill_grace), "--node-lost-after", str(self.lost_after)]

    def outage(self, kind: str, rng: random.Random) -> float:
        """Seconds of an agent's freeze or partition of a kind: within the lease, past it but
        within node_lost_after, past node_lost_after."""
        if kind == "short":
            return rng.uniform(0.2, 0.8 * self.lease)
        if kind == "past_lease":
            return rng.uniform(self.lease + self.kill_grace + 0.3, self.lost_after - 0.3)
        return rng.uniform(self.lost_after + 0.5, 1.6 * self.lost_after)


OUTAGES = ("short", "past_lease", "past_lost")


@dataclass
class Report:
    tasks: int
    seed: int
    agents: int = 0
    timings: Timings = field(default_factory=Timings)
    head_kills: int = 0
    head_freezes: int = 0
    agent_kills: int = 0
    agent_freezes: int = 0
    partitions: int = 0
    partition_skipped: str = ""  # why there were none, when netns is not available
    netns_agents: list[str] = field(default_factory=list)
    outages: dict[str, int] = field(default_factory=lambda: defaultdict(int))  # "freeze past_lost" -> count
    head_freeze_s: list[float] = field(default_factory=list)
    head_recovery: list[float] = field(default_factory=list)  # restart -> serving again
    agent_back: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))  # fault -> seconds
    agent_not_back: list[str] = field(default_factory=list)
    elapsed: float = 0.0
    requeues: int = 0
    fenced: int = 0
    lost_requeues: int = 0
    tasks_rerun: int = 0
    completed_unreported: list[str] = field(default_factory=list)
    extra_jobs: int = 0  # submissions retried across a head kill that had in fact been queued
    # (a) and (c)
    overlaps: list[str] = field(default_factory=list)
    overlap_s: float = 0.0
    launched_twice: list[str] = field(default_factory=list)
    ran_after_end: list[str] = field(default_factory=list)
    reported_twice: list[str] = field(default_factory=list)
    completed_twice: list[str] = field(default_factory=list)
    # (b)
    not_ended: list[str] = field(default_factory=list)
    wrong_result: list[str] = field(default_factory=list)
    never_ran: list[str] = field(default_factory=list)
    bad_output: list[str] = field(default_factory=list)

    LOST = ("not_ended", "wrong_result", "never_ran", "bad_output")
    RUN_TWICE = ("launched_twice", "ran_after_end", "reported_twice", "completed_twice")
    PROBLEMS = ("overlaps", *RUN_TWICE, *LOST, "agent_not_back")

    @property
    def lost(self) -> int:
        return sum(len(getattr(self, name)) for name in self.LOST)

    @property
    def run_twice(self) -> int:
        """Tasks that ran twice at once, or twice where once was due."""
        overlapping = {line.split(":")[0].removeprefix("task ") for line in self.overlaps}
        twice = {line.split()[0] for name in self.RUN_TWICE for line in getattr(self, name)}
        return len(overlapping | twice)

    def summary(self) -> dict[str, object]:
        back = sorted(s for by in self.agent_back.values() for s in by)
        return {
            "tasks": self.tasks, "seed": self.seed, "agents": self.agents,
            "timings": {"heartbeat": self.timings.heartbeat, "task_lease": self.timings.lease,
                        "kill_grace": self.timings.kill_grace, "node_lost_after": self.timings.lost_after},
            "head_kills": self.head_kills, "head_freezes": self.head_freezes,
            "head_freeze_max_s": _r(max(self.head_freeze_s, default=None)),
            "agent_kills": self.agent_kills, "agent_freezes": self.agent_freezes, "partitions": self.partitions,
            **({"partition_skipped": self.partition_skipped} if self.partition_skipped else {}),
            "outages": dict(sorted(self.outages.items())),
            "head_recovery_median_s": _r(_median(self.head_recovery)),
            "head_recovery_max_s": _r(max(self.head_recovery, default=None)),
            "agent_back_median_s": _r(_median(back)), "agent_back_max_s": _r(back[-1] if back else None),
            "agent_back_max_s_by_fault": {k: _r(max(v)) for k, v in sorted(self.agent_back.items())},
            "agent_not_back": len(self.agent_not_back),
            "requeued": self.requeues, "fenced": self.fenced, "lost_requeued": self.lost_requeues,
            "tasks_rerun": self.tasks_rerun, "completed_unreported": len(self.completed_unreported),
            "extra_jobs": self.extra_jobs, "elapsed_s": round(self.elapsed, 1),
            "overlapping_attempts": len(self.overlaps), "overlap_s": round(self.overlap_s, 3),
            **{name: len(getattr(self, name)) for name in (*self.RUN_TWICE, *self.LOST)},
            "run_twice": self.run_twice, "lost": self.lost,
        }


def _r(x: float | None) -> float | None:
    return None if x is None else round(x, 2)


def _median(xs: list[float]) -> float | None:
    return sorted(xs)[len(xs) // 2] if xs else None


def expected_output(label: str) -> bytes:
    return b"".join(f"{label} line {n}\n".encode() for n in range(1, LINES + 1))


def _command(runs: Path, ticks: Path, label: str, code: int, seconds: float) -> str:
    # Output before and after the pause, and ticks all along, so faults land half-way through.
    half, tick = LINES // 2, TICK.format(path=ticks)
    mark = f'echo "$SHOAL_TASK $SHOAL_ATTEMPT $SHOAL_RUN_ID {{}}" >> {runs}'
    return (f"{mark.format('start')}; {tick}; for n in $(seq 1 {half}); do echo {label} line $n; done; "
            f"for i in $(seq 1 {max(1, round(seconds / 0.1))}); do sleep 0.1; {tick}; done; "
            f"for n in $(seq {half + 1} {LINES}); do echo {label} line $n; done; "
            f"{mark.format('end $SHOAL_NODE $(date +%s.%N)')}; exit {code}")


# -- network namespaces ------------------------------------------------------------------------


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True)


@dataclass
class Netns:
    """An agent's own network namespace, joined to the head's by a veth pair (as in
    tests/integration/test_partition.py); cut() takes the head side's link down."""

    name: str
    host_if: str
    host_ip: str

    def cut(self) -> None:
        _ip("link", "set", self.host_if, "down")

    def heal(self) -> None:
        _ip("link", "set", self.host_if, "up")

    def remove(self) -> None:
        subprocess.run(["ip", "link", "del", self.host_if], capture_output=True)
        subprocess.run(["ip", "netns", "del", self.name], capture_output=True)


def netns_unavailable() -> str:
    """Why partitions cannot be made here ("" when they can)."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    if shutil.which("ip") is None:
        return "no `ip` command (iproute2)"
    return ""


def make_netns() -> Netns:
    tag = uuid.uuid4().hex[:6]
    ns = Netns(f"shoal-soak-{tag}", f"ss{tag}h", f"10.{int(tag[:2], 16) % 200 + 20}.{int(tag[2:4], 16)}.1")
    node_ip, node_if = ns.host_ip.rsplit(".", 1)[0] + ".2", f"ss{tag}n"
    _ip("netns", "add", ns.name)
    try:
        _ip("link", "add", ns.host_if, "type", "veth", "peer", "name", node_if)
        _ip("link", "set", node_if, "netns", ns.name)
        _ip("addr", "add", f"{ns.host_ip}/24", "dev", ns.host_if)
        _ip("link", "set", ns.host_if, "up")
        _ip("-n", ns.name, "addr", "add", f"{node_ip}/24", "dev", node_if)
        _ip("-n", ns.name, "link", "set", node_if, "up")
        _ip("-n", ns.name, "link", "set", "lo", "up")
    except BaseException:
        ns.remove()
        raise
    return ns


# -- the fault drivers ----------------------------------------------------------------------


class Deck:
    """Seeded draws that deal every card once per round, in a shuffled order."""

    def __init__(self, rng: random.Random, cards: list[str]) -> None:
        self.rng, self.cards, self.left = rng, cards, []  # type: ignore[var-annotated]

    def draw(self) -> str:
        if not self.left:
            self.left = self.rng.sample(self.cards, len(self.cards))
        return self.left.pop()


class Driver(threading.Thread):
    def __init__(self, soak: Soak, rng: random.Random, pause: tuple[float, float]) -> None:
        super().__init__(daemon=True)
        self.soak, self.rng, self.pause = soak, rng, pause
        self.halt = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            while not self.halt.wait(self.rng.uniform(*self.pause)):
                self.fault()
        except BaseException as e:  # noqa: BLE001 - reported by the soak
            self.error = e
            self.soak.log(f"{type(self).__name__} failed: {e!r}")

    def fault(self) -> None:
        raise NotImplementedError


class HeadFaults(Driver):
    """SIGKILL and restart (down 0-1 s), or SIGSTOP (within the lease, or past node_lost_after, up to
    1.5x it) and SIGCONT."""

    def __init__(self, soak: Soak, rng: random.Random, pause: tuple[float, float]) -> None:
        super().__init__(soak, rng, pause)
        self.deck = Deck(rng, ["kill", "kill", "freeze_short", "freeze_long"])

    def fault(self) -> None:
        cluster, report, t = self.soak.cluster, self.soak.report, self.soak.timings
        kind = self.deck.draw()
        if kind == "kill":
            cluster.kill_head()
            report.head_kills += 1
            self.soak.log("head SIGKILL")
            self.halt.wait(self.rng.uniform(0.0, 1.0))
            started = perf_counter()
            cluster.start_head()
            report.head_recovery.append(perf_counter() - started)
            return
        seconds = (self.rng.uniform(0.3, t.lease) if kind == "freeze_short"
                   else self.rng.uniform(t.lost_after, 1.5 * t.lost_after))
        head = cluster.head_procs[0]
        self.soak.log(f"head SIGSTOP for {seconds:.2f}s")
        os.kill(head.pid, signal.SIGSTOP)
        try:
            report.head_freezes += 1
            report.outages[f"head_freeze {'past_lost' if seconds > t.lost_after else 'short'}"] += 1
            report.head_freeze_s.append(seconds)
            time.sleep(seconds)  # not cut short by the halt: a freeze is as long as it was drawn
        finally:
            os.kill(head.pid, signal.SIGCONT)
            self.soak.log("head SIGCONT")
        self.halt.wait(seconds)  # as long awake as it was frozen, so that work goes on between freezes


class AgentFaults(Driver):
    """On one agent at a time: SIGKILL and restart (down 0-1.5 s), SIGSTOP and SIGCONT, or a
    partition (its netns link down, then up); then wait for it to be back (a heartbeat after)."""

    def __init__(self, soak: Soak, rng: random.Random, pause: tuple[float, float]) -> None:
        super().__init__(soak, rng, pause)
        cards = ["kill", "kill", "freeze", "freeze", "freeze"]
        if soak.netns:
            cards += ["partition"] * 3
        self.deck = Deck(rng, cards)
        self.freezes, self.cuts = Deck(rng, list(OUTAGES)), Deck(rng, list(OUTAGES))

    def fault(self) -> None:
        soak, cluster, report = self.soak, self.soak.cluster, self.soak.report
        kind = self.deck.draw()
        if kind == "partition":
            name = self.rng.choice(sorted(soak.netns))
            outage = self.cuts.draw()
            seconds = soak.timings.outage(outage, self.rng)
            soak.log(f"{name} partition for {seconds:.2f}s ({outage})")
            soak.netns[name].cut()
            try:
                report.partitions += 1
                report.outages[f"partition {outage}"] += 1
                time.sleep(seconds)
            finally:
                soak.netns[name].heal()
                soak.log(f"{name} healed")
        elif kind == "freeze":
            name = self.rng.choice(cluster.node_names)
            outage = self.freezes.draw()
            seconds = soak.timings.outage(outage, self.rng)
            proc = cluster.agents[name]
            soak.log(f"{name} SIGSTOP for {seconds:.2f}s ({outage})")
            os.kill(proc.pid, signal.SIGSTOP)
            try:
                report.agent_freezes += 1
                report.outages[f"agent_freeze {outage}"] += 1
                time.sleep(seconds)
            finally:
                os.kill(proc.pid, signal.SIGCONT)
                soak.log(f"{name} SIGCONT")
        else:
            name = self.rng.choice(cluster.node_names)
            cluster.kill_node(name, signal.SIGKILL)
            report.agent_kills += 1
            soak.log(f"{name} SIGKILL")
            self.halt.wait(self.rng.uniform(0.0, 1.5))
            soak.start_node(name)
            soak.log(f"{name} restarted")
        self._wait_back(name, kind)

    def _wait_back(self, name: str, kind: str) -> None:
        """Until the head hears a heartbeat of `name` sent after the fault ended."""
        since, started = time.time(), perf_counter()

        def back() -> bool:
            try:
                nodes = {n.name: n for n in self.soak.poller.list_nodes()}
            except RequestFailed:
                return False
            n = nodes.get(name)
            return (n is not None and n.connected and n.state == admin_pb2.NODE_STATE_ONLINE
                    and n.last_heartbeat.ToMicroseconds() / 1e6 > since)

        if wait_until(back, 60.0, interval=0.1):
            self.soak.report.agent_back[kind].append(perf_counter() - started)
        else:
            self.soak.report.agent_not_back.append(f"{name} not back 60 s after its {kind}")
            self.soak.log(f"{name} NOT back after its {kind}")


class LeaseWatch(threading.Thread):
    """Reads each agent's lease deadline (<state_dir>/lease, as its watchdog does) ten times a
    second, to tell afterwards whether a task's process ended within its lease: the deadline in
    force at a moment is at least the latest one read before it (renewals only move it on)."""

    def __init__(self, state_dir: Path, names: list[str]) -> None:
        super().__init__(daemon=True)
        self.paths = {name: state_dir / name / fence.LEASE_FILE for name in names}
        self.seen: dict[str, tuple[list[float], list[float]]] = {name: ([], []) for name in names}
        self.halt = threading.Event()

    def run(self) -> None:
        while not self.halt.wait(0.1):
            for name, path in self.paths.items():
                try:
                    fd = os.open(path, os.O_RDONLY)
                except OSError:
                    continue
                try:
                    state = fence.LeaseFile(path, fd).read()
                finally:
                    os.close(fd)
                now = time.time()
                if state is not None and state.deadline > 0:
                    at, deadlines = self.seen[name]
                    deadline = state.deadline + now - boot_clock()  # boot clock to wall clock
                    if not deadlines or deadline > deadlines[-1] + 0.01:
                        at.append(now)
                        deadlines.append(deadline)

    def deadline_at(self, name: str, when: float) -> float | None:
        """A lower bound of the lease deadline `name` had at wall time `when`."""
        at, deadlines = self.seen.get(name, ([], []))
        i = bisect.bisect_right(at, when)
        return deadlines[i - 1] if i else None


# -- the soak -------------------------------------------------------------------------------


class Soak:
    def __init__(self, state_dir: Path, report: Report, timings: Timings, agents: int, partitions: bool) -> None:
        self.state_dir, self.report, self.timings = state_dir, report, timings
        self.netns: dict[str, Netns] = {}
        self._log = open(state_dir / "faults.log", "a", buffering=1)  # noqa: SIM115 - closed in close()
        self._t0 = perf_counter()
        why = netns_unavailable() if partitions else "not asked for"
        names = [f"node{i}" for i in range(1, agents + 1)]
        if not why:
            try:
                for name in names[len(names) - max(1, agents // 2):]:  # the last half of the agents
                    self.netns[name] = make_netns()
            except (subprocess.CalledProcessError, OSError) as e:
                why = f"cannot create a network namespace here: {(getattr(e, 'stderr', '') or str(e)).strip()}"
                self.close_netns()
        if why:
            report.partition_skipped = why
            print(f"soak: no partitions: {why}", file=sys.stderr, flush=True)
        report.netns_agents = sorted(self.netns)
        # A head reachable from the namespaces (on all addresses, at one port, restarts too:
        # the last --listen is the one taken), and agents in them given its veth address.
        self.port = free_port()
        head_args = timings.head_args()
        if self.netns:
            head_args += ["--listen", f"0.0.0.0:{self.port}"]
        self.cluster = LocalCluster(state_dir / "cluster", nodes=agents, cores=2, stop_tasks_on_exit=False,
                                    listen=f"127.0.0.1:{self.port}", head_args=head_args)
        self.leases = LeaseWatch(self.cluster.state_dir, self.cluster.node_names)
        self.poller: Client = None  # type: ignore[assignment]

    def log(self, line: str) -> None:
        self._log.write(f"{time.time():.3f} +{perf_counter() - self._t0:7.2f}s {line}\n")

    def start_node(self, name: str) -> None:
        ns = self.netns.get(name)
        if ns is None:
            self.cluster.start_node(name)
        else:
            self.cluster.start_node(name, head=f"{ns.host_ip}:{self.port}", prefix=["ip", "netns", "exec", ns.name])

    @contextmanager
    def running(self) -> Iterator[LocalCluster]:
        c = self.cluster
        try:
            c.start_head()
            for name in c.node_names:
                self.start_node(name)
            c.wait_nodes(c.node_names)
            self.leases.start()
            with Client(c.address, timeout=2.0) as self.poller:
                yield c
        finally:
            self.leases.halt.set()
            c.stop()
            self.close_netns()
            self._log.close()

    def close_netns(self) -> None:
        for ns in self.netns.values():
            ns.remove()


def _retrying(client: Client, call: object, timeout: float = 60.0) -> object:
    """Call through a head node that may be down or frozen for a moment."""
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
             task_seconds: float = 0.3, timeout: float = 900.0, timings: Timings | None = None,
             partitions: bool = True) -> Report:
    timings = timings or Timings()
    rng = random.Random(seed)
    report = Report(tasks=tasks, seed=seed, agents=agents, timings=timings)
    runs, ticks = state_dir / "runs", state_dir / "ticks"
    runs.touch()
    soak = Soak(state_dir, report, timings, agents, partitions)
    expected: dict[str, tuple[str, int]] = {}
    start = perf_counter()
    with soak.running() as cluster, Client(cluster.address, timeout=10.0) as client:
        drivers = [HeadFaults(soak, random.Random(rng.random()), pause),
                   AgentFaults(soak, random.Random(rng.random()), pause)]
        for d in drivers:
            d.start()
        try:
            job_ids = _submit(client, runs, ticks, tasks, task_seconds, expected)
            wait_until(lambda: _all_ended(client, drivers), timeout, interval=0.5)
        finally:
            for d in drivers:
                d.halt.set()
            for d in drivers:
                d.join()
        wait_until(lambda: cluster.active_head() is not None, 30)
        report.elapsed = perf_counter() - start
        _check(client, job_ids, expected, runs, ticks, report, soak.leases)
        soak.log(f"summary {json.dumps(report.summary())}")
    details = {name: getattr(report, name) for name in (*report.PROBLEMS, "completed_unreported")}
    (state_dir / "report.json").write_text(json.dumps({"summary": report.summary(), **details}, indent=1))
    return report


def _submit(client: Client, runs: Path, ticks: Path, tasks: int, task_seconds: float,
            expected: dict[str, tuple[str, int]]) -> list[int]:
    job_ids = []
    for first in range(0, tasks, TASKS_PER_JOB):
        numbers = range(first, min(first + TASKS_PER_JOB, tasks))
        specs = []
        for n in numbers:
            label = f"t{n}"
            code = 3 if n % 10 == 9 else 0
            specs.append(task_spec(_command(runs, ticks, label, code, task_seconds), name=label,
                                   max_retries=MAX_RETRIES))
        spec = jobs_pb2.JobSpec(name=f"soak{first}", tasks=specs)
        job_id = _retrying(client, lambda s=spec: client.submit(s))
        job_ids.append(job_id)
        for i, n in enumerate(numbers, start=1):
            expected[f"{job_id}.{i}"] = (f"t{n}", 3 if n % 10 == 9 else 0)
    return job_ids


def _all_ended(client: Client, drivers: list[Driver]) -> bool:
    if any(d.error for d in drivers):
        raise RuntimeError(f"a fault driver failed: {[repr(d.error) for d in drivers if d.error]}")
    try:
        active = list(client.list_jobs(states=(jobs_pb2.JOB_STATE_QUEUED, jobs_pb2.JOB_STATE_RUNNING)))
    except RequestFailed:
        return False
    return not active


Starts = dict[str, dict[int, set[str]]]  # task -> attempt -> run ids
Ends = dict[str, dict[int, tuple[str, float]]]  # task -> attempt -> (node, wall time)


def _records(runs: Path) -> tuple[Starts, Ends]:
    """The starts and the ends the tasks wrote."""
    starts: Starts = defaultdict(lambda: defaultdict(set))
    ends: Ends = defaultdict(dict)
    for line in runs.read_text().splitlines():
        parts = line.split()
        if len(parts) == 4 and parts[3] == "start":
            starts[parts[0]][int(parts[1])].add(parts[2])
        elif len(parts) == 6 and parts[3] == "end":
            ends[parts[0]][int(parts[1])] = (parts[4], float(parts[5]))
        # else a line cut short by SIGKILL
    return starts, ends


def _check(client: Client, job_ids: list[int], expected: dict[str, tuple[str, int]], runs: Path, ticks: Path,
           report: Report, leases: LeaseWatch) -> None:
    found = spans(ticks)
    report.overlaps = overlaps(found)
    report.overlap_s = overlap_seconds(found)
    starts, ends = _records(runs)
    seen: set[str] = set()
    for job_id in job_ids:
        job = _retrying(client, lambda j=job_id: client.get_job(j))
        for t in job.tasks:  # type: ignore[attr-defined]
            ref = f"{t.ref.job_id}.{t.ref.task_id}"
            seen.add(ref)
            label, code = expected[ref]
            _check_task(client, t, ref, label, code, starts.get(ref, {}), ends.get(ref, {}), report, leases)
    report.not_ended += [f"{ref} missing" for ref in sorted(set(expected) - seen)]
    try:
        names = {j.id for j in client.list_jobs() if j.name.startswith("soak")}
        report.extra_jobs = len(names - set(job_ids))
    except RequestFailed:
        pass


def _check_task(client: Client, t: jobs_pb2.Task, ref: str, label: str, code: int, started: dict[int, set[str]],
                ended: dict[int, tuple[str, float]], report: Report, leases: LeaseWatch) -> None:
    state = jobs_pb2.TaskState.Name(t.state)
    final = t.attempt
    history = list(t.history)
    requeues = [u.reason for u in history if u.state == jobs_pb2.TASK_STATE_QUEUED and "requeued" in u.reason]
    report.requeues += len(requeues)
    report.fenced += sum("fenced attempt" in r for r in requeues)
    report.lost_requeues += sum(" lost;" in r for r in requeues)
    report.tasks_rerun += final > 1
    # (a) and (c)
    for attempt, run_ids in sorted(started.items()):
        if len(run_ids) > 1:
            report.launched_twice.append(f"{ref} ({label}) attempt {attempt} launched {len(run_ids)} times: "
                                         f"runs {' '.join(sorted(run_ids))}")
    later = [a for a in started if a > final]
    if later:
        report.ran_after_end.append(f"{ref} ({label}) attempt(s) {sorted(later)} started, the head counts "
                                    f"attempt {final} ({state})")
    ends_recorded = [u for u in history if jobs_pb2.TaskState.Name(u.state) in ENDED]
    if len(ends_recorded) > 1 or (ends_recorded and history[-1] is not ends_recorded[-1]):
        report.reported_twice.append(f"{ref} ({label}) history: " + "; ".join(
            f"{jobs_pb2.TaskState.Name(u.state)[11:]} {u.reason}" for u in history))
    for attempt in sorted(a for a in ended if a < final):
        why = requeues[attempt - 1] if attempt <= len(requeues) else "(no requeue recorded)"
        node, at = ended[attempt]
        deadline = leases.deadline_at(node, at)
        said = (f"{ref} ({label}) attempt {attempt} ran to its end on {node} at {at:.3f}"
                + (f", {deadline - at:+.2f}s before its lease's end (at {deadline:.3f} or later)" if deadline else "")
                + f"; attempt {final} ran too; the head: {why}")
        if " lost;" in why:
            report.completed_unreported.append(said)  # the head never heard of that end
        elif f"fenced attempt {attempt}:" in why and (deadline is None or at >= deadline):
            report.completed_unreported.append(said)  # it outlived its lease: its end no longer counts
        else:
            report.completed_twice.append(said)  # ended within its lease and told, or requeued otherwise
    # (b)
    if state not in ENDED:
        report.not_ended.append(f"{ref} ({label}) {state}")
        return
    if final not in started:
        report.never_ran.append(f"{ref} ({label}) attempt {final} ({state}, {t.reason}) never started; "
                                f"attempts started: {sorted(started)}")
        return
    want = "TASK_STATE_FINISHED" if code == 0 else "TASK_STATE_FAILED"
    if state != want or not t.HasField("exit_code") or t.exit_code != code or final not in ended:
        report.wrong_result.append(
            f"{ref} ({label}) attempt {final} {state} exit={t.exit_code if t.HasField('exit_code') else None} "
            f"({t.reason}); its process {'exited' if final in ended else 'never reached its end, would exit'} {code}")
    out = b"".join(_retrying(client, lambda r=t.ref: list(client.read_output(TaskId(r.job_id, r.task_id)))))
    if out != expected_output(label):
        report.bad_output.append(f"{ref} ({label}) attempt {final}: {len(out)} bytes, expected "
                                 f"{len(expected_output(label))}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--agents", type=int, default=4)
    parser.add_argument("--task-seconds", type=float, default=0.3, help="how long each task pauses mid-way")
    parser.add_argument("--no-partitions", action="store_true", help="no network partitions (they need root)")
    parser.add_argument("--keep", metavar="DIR", help="run in DIR and keep it (logs, runs, ticks, faults.log)")
    args = parser.parse_args()
    if args.keep:
        Path(args.keep).mkdir(parents=True, exist_ok=True)
        report = run_soak(Path(args.keep), args.tasks, args.seed, args.agents, task_seconds=args.task_seconds,
                          partitions=not args.no_partitions)
    else:
        with tempfile.TemporaryDirectory(prefix="shoal-soak-") as tmp:
            report = run_soak(Path(tmp), args.tasks, args.seed, args.agents, task_seconds=args.task_seconds,
                              partitions=not args.no_partitions)
    print(json.dumps(report.summary()))
    for name in report.PROBLEMS:
        for line in getattr(report, name)[:10]:
            print(f"  {name}: {line}")
    raise SystemExit(1 if report.lost or report.run_twice or report.overlaps else 0)


if __name__ == "__main__":
    main()
