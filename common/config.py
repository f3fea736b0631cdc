"""Daemon configuration: every key, its default and its meaning, in one place.

A config file is TOML with a `[head]` table and/or a `[node]` table (one file can serve both
daemons). Values come from, in rising precedence: the defaults below, the file (--config, else
$SHOAL_CONFIG), environment variables named SHOAL_<TABLE>_<KEY> (SHOAL_HEAD_POLICY=fcfs,
SHOAL_NODE_CORES=8; lists comma-separated, booleans true/false), command-line flags. Each
daemon loads its config once at start-up and passes the object down; `shoal config show head`
(or `node`, with the daemon's flags) prints what would be in force and where each value came
from.
"""

from __future__ import annotations

import dataclasses
import os
import socket
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from common.constraints import check_token
from common.errors import ConfigError
from common.hostport import DEFAULT_PORT, parse_address
from common.loop import CHOICES as loop_choices
from common.resources import parse_generic

DEFAULT_HEAD = f"localhost:{DEFAULT_PORT}"


def default_state_dir(role: str) -> Path:
    if env := os.environ.get("SHOAL_STATE_DIR"):
        return Path(env) / role
    if os.geteuid() == 0:
        return Path("/var/lib/shoal") / role
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "shoal" / role


def _check_event_loop(kind: str) -> None:
    if kind not in loop_choices:
        raise ConfigError(f"event_loop must be 'uvloop' or 'asyncio', got {kind!r}")


@dataclass(frozen=True)
class HeadConfig:
    # Address the gRPC server binds. Port 0 picks a free port; the bound address is written
    # to <state_dir>/head.addr either way. Plaintext until the security issue lands, so the
    # default keeps it on loopback: use 0.0.0.0:7676 for a real cluster.
    listen: str = f"127.0.0.1:{DEFAULT_PORT}"
    # SQLite database (unless `database` says otherwise), task output and the address file.
    state_dir: Path = field(default_factory=lambda: default_state_dir("head"))
    # Where the cluster's state is stored: empty for SQLite in the state dir, or a URL:
    # postgresql://user@host:5432/db?schema=NAME (several head nodes may share one; one is
    # active at a time), or sqlite:///PATH.
    database: str = ""
    # With PostgreSQL: seconds the leader lease lasts; the active head renews it every third of
    # that, and a standby takes over within about this long of the active head dying.
    lease_ttl: float = 6.0
    # Task output; empty: <state_dir>/output. Head nodes standing in for each other must share
    # it (for example on NFS), or the output of tasks that ended before a takeover stays
    # with the old head.
    output_dir: str = ""
    # Seconds between agent heartbeats; the head tells each agent when it connects.
    heartbeat_interval: float = 5.0
    # Seconds without a heartbeat (or a connection) after which a node is Unreachable and
    # its running tasks are requeued (or failed, past their retries) with the reason
    # "node NAME lost". Must be at least task_lease + kill_grace + LEASE_MARGIN: by then a
    # node that heard nothing from the head has surely stopped its copies.
    node_lost_after: float = 30.0
    # Seconds an agent keeps its tasks running past the last heartbeat the head answered
    # (the task lease); then they are stopped on the node (SIGTERM, kill_grace, SIGKILL) by a
    # watchdog process beside the agent, even if the agent itself is frozen or dead, so the
    # head can run them elsewhere without two live copies. 0: as long as node_lost_after
    # allows (node_lost_after - kill_grace - LEASE_MARGIN).
    task_lease: float = 0.0
    # Seconds between SIGTERM and SIGKILL when a task is stopped (cancel, runtime limit,
    # preemption, a lapsed lease); the head tells every agent (Slurm's KillWait).
    kill_grace: float = 5.0
    # While the head node's host still answers but the head node does not (it is stalled,
    # SIGSTOPped, or restarting), agents extend their tasks' leases, by at most this many
    # seconds in all: a head that stalls for less than this kills nothing. A head node that
    # takes over from another (PostgreSQL) waits this much longer than node_lost_after before
    # it declares a silent node lost, since the old leader's agents may have extended so.
    stall_grace: float = 120.0
    # Node choice among those that fit: "pack" fills the busiest node first (keeps whole
    # nodes free for wide tasks, as Slurm does), "spread" the least busy.
    placement: str = "pack"
    # Queue policy: "easy" (EASY backfilling: the first task that cannot start gets a
    # reservation, and later ones start only if they cannot delay it) or "fcfs" (strict
    # first come, first served).
    policy: str = "easy"
    # Seconds assumed for work without a runtime limit when backfilling (it is not enforced).
    default_runtime_limit: float = 3600.0
    # Queued tasks looked at past the reservation in one pass (Slurm's bf_max_job_test).
    backfill_depth: int = 1000
    # Per owner: most cores running at once, and most jobs Queued; 0: no limit.
    max_running_cores_per_owner: int = 0
    max_queued_jobs_per_owner: int = 0
    # A blocked task of a higher priority level stops lower-level runs (SIGTERM, then SIGKILL
    # after the agent's kill_grace), which are requeued.
    preemption: bool = False
    # Dispatch ahead (HPC Pack's Dispatching): a node that ended a task in the last
    # dispatch_ahead_wait seconds may be sent queued single-node tasks for up to this many
    # times its cores beyond what is free; its agent starts each, in order, the moment it has
    # room, so a stream of short tasks does not wait a round trip to the head between one
    # task and the next. A task not started within dispatch_ahead_wait seconds is taken back
    # and queued again, as is what was sent for a job of lower priority than the queue's
    # first task. Off (0) unless asked for, as a cluster of short tasks would: a task sent
    # ahead shows as Running before it starts, and may wait there behind a long one.
    dispatch_ahead: float = 0.0
    dispatch_ahead_wait: float = 2.0
    # While tasks sent ahead wait on the agents (whose nodes then have their next tasks in
    # hand), scheduling passes are at least this many seconds apart, so that each places what
    # several ends freed rather than one pass per end. A sweep of 2,000 `true` on 2 agents of
    # 2 cores: the head's CPU per task fell by 27-32% and the sweep ran 5-25% faster at 0.01
    # than at 0 (4 alternating rounds); at 0.02 it ran slower than at 0.01 (916 tasks/s in both
    # rounds, against 1,014 and 1,160), the agents' queues likely emptying. 0: a pass per end.
    dispatch_ahead_pass_interval: float = 0.01
    # Fair-share: usage (core-seconds) decays with this half-life, and a job's priority within
    # its level gains up to fairshare_weight points the less its owner (or project) has used.
    # A weight of 0 turns fair-share off.
    fairshare_half_life: float = 7 * 86400.0
    fairshare_weight: float = 1000.0
    # Seconds between fair-share usage updates (and re-ordering of the queue).
    fairshare_interval: float = 30.0
    # Seconds a Finished, Failed or Cancelled job is kept before it is purged with its
    # output (HPC Pack's TTLCompletedJobs; default 5 days).
    completed_job_ttl: float = 5 * 86400.0
    # Plaintext gRPC with trusted user names, for local development only (`shoal up`, tests):
    # anyone who can reach the port can act as anyone. Otherwise TLS: the head node's
    # certificate and the cluster CA from tls_dir, clients and agents identified by their
    # certificates or signed tokens.
    plaintext: bool = False
    # ca.crt, head.crt and head.key (`shoal certs init --dir DIR`); empty: <state_dir>/tls.
    tls_dir: str = ""
    # Roles (HPC Pack's): Admins manage nodes, tokens and everyone's jobs; JobAdmins act on
    # everyone's jobs; the rest are Users. A certificate or token may also carry a role. In
    # plaintext mode with no admins listed, everyone is an Admin.
    admins: tuple[str, ...] = ()
    job_admins: tuple[str, ...] = ()
    # What Users see of other users' jobs (they never act on them; issue 33). By default
    # others' jobs are listed and viewable (state, owner, name, resources, timings, reasons)
    # but what they run is not shown: their tasks' command lines, environments, working
    # directories, stdin/stdout/stderr paths and their output are for the owner, JobAdmins and
    # Admins (ReadOutput is PERMISSION_DENIED). users_see_all_jobs = true shows everyone all
    # of it; users_list_others_jobs = false shows Users only their own jobs (and usage), as
    # users_see_all_jobs = false did before.
    users_see_all_jobs: bool = False
    users_list_others_jobs: bool = True
    # The longest a minted token (user or join) may last, in seconds: a longer ttl is refused.
    # A minted token never outlives the credential that minted it either.
    max_token_ttl: float = 90 * 86400.0
    # Requests per second each caller may make, with bursts of twice that; 0: no limit.
    # Past it a call gets RESOURCE_EXHAUSTED (agents' streams are not counted).
    rate_limit: float = 1000.0
    # Prometheus metrics (jobs, tasks and nodes by state, queue wait, scheduling passes, RPC
    # latency) served over HTTP at HOST:PORT/metrics; empty: off. Port 0 picks a free port;
    # the bound address is written to <state_dir>/metrics.addr.
    metrics_listen: str = ""
    # The web dashboard (read-only; the same identities and roles as the gRPC API, over HTTPS
    # with the head's certificate unless plaintext) at http(s)://HOST:PORT/; empty: off. Port 0
    # picks a free port; the bound URL is written to <state_dir>/web.addr.
    web_listen: str = ""
    # Seconds between the dashboard's samples of the cluster (its charts and live updates).
    web_sample_interval: float = 2.0
    # The daemon's asyncio event loop: "uvloop" (default; the standard loop where uvloop is not
    # installed) or "asyncio" (the standard library's). common/loop.py says why.
    event_loop: str = "uvloop"
    log_level: str = "info"

    def validate(self) -> HeadConfig:
        _check_event_loop(self.event_loop)
        parse_address(self.listen, what="listen")
        if self.metrics_listen:
            parse_address(self.metrics_listen, what="metrics_listen")
        if self.web_listen:
            parse_address(self.web_listen, what="web_listen")
        if not 0.1 <= self.web_sample_interval <= 3600:
            raise ConfigError(f"web_sample_interval must be 0.1..3600 seconds, got {self.web_sample_interval}")
        if self.heartbeat_interval <= 0:
            raise ConfigError(f"heartbeat_interval must be > 0 seconds, got {self.heartbeat_interval}")
        if self.node_lost_after <= self.heartbeat_interval:
            raise ConfigError(
                f"node_lost_after ({self.node_lost_after}s) must be longer than "
                f"heartbeat_interval ({self.heartbeat_interval}s)"
            )
        if self.kill_grace < 0:
            raise ConfigError(f"kill_grace must be >= 0 seconds, got {self.kill_grace}")
        if self.max_token_ttl <= 0:
            raise ConfigError(f"max_token_ttl must be > 0 seconds, got {self.max_token_ttl}")
        if self.task_lease < 0 or self.stall_grace < 0:
            raise ConfigError("task_lease and stall_grace must be >= 0 seconds")
        lease = self.lease
        if self.task_lease and self.node_lost_after < self.task_lease + self.kill_grace + LEASE_MARGIN:
            raise ConfigError(
                f"node_lost_after ({self.node_lost_after:g}s) must be at least task_lease ({self.task_lease:g}s) + "
                f"kill_grace ({self.kill_grace:g}s) + {LEASE_MARGIN:g}s, so that a lost node has stopped its "
                "tasks before they run elsewhere"
            )
        if lease < 2 * self.heartbeat_interval:
            raise ConfigError(
                f"the task lease ({lease:g}s{'' if self.task_lease else ' = node_lost_after - kill_grace - 1s'}) "
                f"must be at least twice heartbeat_interval ({self.heartbeat_interval:g}s): raise node_lost_after "
                "or lower heartbeat_interval or kill_grace"
            )
        if self.lease_ttl < 1:
            raise ConfigError(f"lease_ttl must be at least 1 second, got {self.lease_ttl}")
        if self.completed_job_ttl <= 0:
            raise ConfigError(f"completed_job_ttl must be > 0 seconds, got {self.completed_job_ttl}")
        if self.placement not in ("pack", "spread"):
            raise ConfigError(f"placement must be 'pack' or 'spread', got {self.placement!r}")
        if self.policy not in ("easy", "fcfs"):
            raise ConfigError(f"policy must be 'easy' or 'fcfs', got {self.policy!r}")
        for key in ("default_runtime_limit", "fairshare_half_life", "fairshare_interval"):
            if getattr(self, key) <= 0:
                raise ConfigError(f"{key} must be > 0 seconds, got {getattr(self, key)}")
        for key in ("backfill_depth", "max_running_cores_per_owner", "max_queued_jobs_per_owner"):
            if getattr(self, key) < 0:
                raise ConfigError(f"{key} must be >= 0, got {getattr(self, key)}")
        if not 0 <= self.dispatch_ahead <= 16:
            raise ConfigError(f"dispatch_ahead must be between 0 and 16 (times a node's cores), got {self.dispatch_ahead}")
        if self.dispatch_ahead_wait <= 0:
            raise ConfigError(f"dispatch_ahead_wait must be > 0 seconds, got {self.dispatch_ahead_wait}")
        if not 0 <= self.dispatch_ahead_pass_interval <= 1:
            raise ConfigError("dispatch_ahead_pass_interval must be between 0 and 1 seconds, "
                              f"got {self.dispatch_ahead_pass_interval}")
        if self.rate_limit < 0:
            raise ConfigError(f"rate_limit must be >= 0 requests per second, got {self.rate_limit}")
        if self.users_see_all_jobs and not self.users_list_others_jobs:
            raise ConfigError("users_see_all_jobs = true shows Users everyone's jobs and users_list_others_jobs = "
                              "false hides them: set at most one of them")
        if not 0 <= self.fairshare_weight <= 100_000:
            raise ConfigError(f"fairshare_weight must be between 0 and 100000, got {self.fairshare_weight}")
        return self

    @property
    def lease(self) -> float:
        """The task lease in force (task_lease, or what node_lost_after leaves for it)."""
        return self.task_lease or self.node_lost_after - self.kill_grace - LEASE_MARGIN


# What node_lost_after keeps beyond task_lease + kill_grace: the watchdog's look at the lease
# (every 0.2 s), the SIGKILL taking effect, a heartbeat's time on the wire.
LEASE_MARGIN = 1.0


@dataclass(frozen=True)
class NodeConfig:
    # Head node address HOST:PORT, or several separated by commas (an active head node and its
    # standbys); the agent opens the connection.
    head: str = DEFAULT_HEAD
    # Node name, unique in the cluster.
    name: str = field(default_factory=socket.gethostname)
    # Cores and memory offered to tasks; 0 means detect (psutil, cgroup limits, affinity).
    cores: int = 0
    memory_mb: int = 0
    # Agent's own state (output spool).
    state_dir: Path = field(default_factory=lambda: default_state_dir("node"))
    # Seconds between SIGTERM and SIGKILL when a task is stopped, until the head node says
    # (its kill_grace, sent when the agent connects, is the one in force).
    kill_grace: float = 5.0
    # Stop the tasks when the agent stops. Off: tasks keep running, and the next agent on this
    # state dir adopts them (local clusters turn it on, so nothing outlives them).
    stop_tasks_on_exit: bool = False
    # Named countable resources offered, NAME=COUNT ("gpu=4", "license_matlab=10"). gpu is
    # detected with nvidia-smi where it is installed; a value here overrides the detection.
    resources: tuple[str, ...] = ()
    # GPU device ids handed out as CUDA_VISIBLE_DEVICES; empty: those detected, else 0..gpu-1.
    gpu_devices: tuple[str, ...] = ()
    # Node groups and labels the node declares (admins can add more at the head node).
    groups: tuple[str, ...] = ()
    labels: tuple[str, ...] = ()
    # Plaintext gRPC to a plaintext head node: local development only.
    plaintext: bool = False
    # The cluster CA certificate the head node's is checked against (required unless
    # plaintext), and this node's own certificate and key (`shoal certs issue --node NAME`), if
    # it joins with one rather than a join token.
    tls_ca: str = ""
    tls_cert: str = ""
    tls_key: str = ""
    # A join token (`shoal node token create`), for a node without a certificate: used once,
    # to register; the head then gives the agent its own credential (<state_dir>/node.token).
    # It is read from join_token_file (readable by its owner alone: a token on a command line
    # or in a world-readable file is every local user's, and the agent refuses both); a
    # join_token set here needs the config file kept as private.
    join_token: str = ""
    join_token_file: str = ""
    # When the agent runs as root: "owner" runs each task as its owner's Unix user and groups;
    # "agent" runs them as the agent's user. A task owned by root runs only with
    # allow_root_tasks. (An agent that is not root always runs tasks as itself.)
    run_as: str = "owner"
    allow_root_tasks: bool = False
    # How memory and CPU limits are enforced: "auto" (a per-task cgroup where cgroups v2 or
    # v1 are writable, else watching memory use), "cgroup" (refuse to start without one) or
    # "watch" (never cgroups). computenode/cgroups.py says how each mode works.
    isolation: str = "auto"
    # The most processes (and threads) a task may have at once: its cgroup's pids.max where
    # the pids controller is there, else RLIMIT_NPROC, which counts all of the task owner's
    # processes on the node (cgroups.py). 0: no limit. A fork bomb stops here.
    max_processes: int = 4096
    # Prometheus metrics (tasks started, finished and running, the agent's CPU and memory, the
    # connection to the head) served over HTTP at HOST:PORT/metrics; empty: off. Port 0 picks
    # a free port; the bound address is written to <state_dir>/metrics.addr.
    metrics_listen: str = ""
    # The daemon's asyncio event loop: "uvloop" (default; the standard loop where uvloop is not
    # installed) or "asyncio" (the standard library's). common/loop.py says why.
    event_loop: str = "uvloop"
    log_level: str = "info"

    def validate(self) -> NodeConfig:
        _check_event_loop(self.event_loop)
        for address in self.head.split(","):
            parse_address(address.strip(), what="head")
        if self.metrics_listen:
            parse_address(self.metrics_listen, what="metrics_listen")
        if not self.name or any(c.isspace() for c in self.name):
            raise ConfigError(f"node name {self.name!r} must be non-empty and contain no spaces")
        if self.cores < 0 or self.memory_mb < 0:
            raise ConfigError("cores and memory_mb must be >= 0 (0 means detect)")
        if self.kill_grace < 0:
            raise ConfigError(f"kill_grace must be >= 0 seconds, got {self.kill_grace}")
        if not self.plaintext and not self.tls_ca:
            raise ConfigError("give tls_ca (the cluster CA certificate, --tls-ca) to reach a TLS head node, "
                              "or --plaintext for a local development cluster")
        if self.run_as not in ("owner", "agent"):
            raise ConfigError(f"run_as must be 'owner' or 'agent', got {self.run_as!r}")
        if self.isolation not in ("auto", "cgroup", "watch"):
            raise ConfigError(f"isolation must be 'auto', 'cgroup' or 'watch', got {self.isolation!r}")
        if self.max_processes < 0 or 0 < self.max_processes < 16:
            raise ConfigError(f"max_processes must be 0 (no limit) or at least 16, got {self.max_processes}")
        if bool(self.tls_cert) != bool(self.tls_key):
            raise ConfigError("tls_cert and tls_key go together: give both or neither")
        try:
            parse_generic(self.resources)
        except ValueError as e:
            raise ConfigError(f"resources: {e}") from None
        for what, values in (("group", self.groups), ("label", self.labels)):
            for value in values:
                if why := check_token(value, what):
                    raise ConfigError(why)
        return self


C = TypeVar("C", HeadConfig, NodeConfig)


CONFIG_ENV = "SHOAL_CONFIG"


def env_name(table: str, key: str) -> str:
    """The environment variable that sets a key: SHOAL_HEAD_LISTEN, SHOAL_NODE_CORES, ..."""
    return f"SHOAL_{table.upper()}_{key.upper()}"


def flag_overrides(cls: type[C], args: Any) -> dict[str, Any]:
    """The values the daemon's flags set, by key (a flag's dest is its key; unset flags are None)."""
    return {f.name: getattr(args, f.name, None) for f in dataclasses.fields(cls)}


def load(cls: type[C], table: str, path: Path | None, overrides: dict[str, Any],
         env: Mapping[str, str] | None = None) -> C:
    """Build a config from defaults, then the file's [table], then the environment, then
    non-None overrides (flags)."""
    return resolve(cls, table, path, overrides, env)[0]


def resolve(cls: type[C], table: str, path: Path | None, overrides: dict[str, Any],
            env: Mapping[str, str] | None = None) -> tuple[C, dict[str, str]]:
    """As load, and where each key's value came from: "default", "file PATH", "env NAME" or
    "flag". The file is `path`, else $SHOAL_CONFIG if set; env is os.environ by default."""
    env = os.environ if env is None else env
    if path is None and env.get(CONFIG_ENV):
        path = Path(env[CONFIG_ENV])
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    known = {f.name: f for f in dataclasses.fields(cls)}
    if path is not None:
        try:
            data = tomllib.loads(Path(path).read_text())
        except FileNotFoundError:
            raise ConfigError(f"config file {path} does not exist") from None
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"config file {path} is not valid TOML: {e}") from None
        section = data.get(table, {})
        if not isinstance(section, dict):
            raise ConfigError(f"[{table}] in {path} must be a table")
        for key, value in section.items():
            if key not in known:
                raise ConfigError(
                    f"unknown key {key!r} in [{table}] of {path}; known keys: {', '.join(sorted(known))}"
                )
            values[key], sources[key] = value, f"file {path}"
    for key in known:
        name = env_name(table, key)
        if name in env:
            values[key], sources[key] = env[name], f"env {name}"
    for key, value in overrides.items():
        if value is not None:
            values[key], sources[key] = value, "flag"
    typed: dict[str, Any] = {}
    for key, value in values.items():
        default = known[key].default
        if default is dataclasses.MISSING:
            default = known[key].default_factory()  # type: ignore[misc]
        try:
            typed[key] = _coerce(key, value, default)
        except ConfigError as e:
            raise ConfigError(f"{e.message} (from {sources[key]})") from None
    config = cls(**typed).validate()
    return config, {key: sources.get(key, "default") for key in known}


_BOOLS = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}


def _coerce(key: str, value: Any, default: Any) -> Any:
    try:
        if isinstance(default, bool):
            if isinstance(value, bool):
                return value
            if isinstance(value, str) and value.lower() in _BOOLS:  # from the environment
                return _BOOLS[value.lower()]
            raise ValueError
        if isinstance(default, tuple):
            if isinstance(value, str):
                value = [v for v in value.split(",") if v.strip()]
            if not isinstance(value, (list, tuple)) or not all(isinstance(v, (str, int)) for v in value):
                raise ValueError
            return tuple(str(v).strip() for v in value)
        if isinstance(default, Path):
            return Path(value).expanduser()
        if isinstance(default, float):
            return float(value)
        if isinstance(default, int):
            if isinstance(value, float) and not value.is_integer():
                raise ValueError
            return int(value)
        return str(value)
    except (TypeError, ValueError):
        kind = "list of strings" if isinstance(default, tuple) else type(default).__name__
        raise ConfigError(f"{key} = {value!r} is not a valid {kind}") from None
