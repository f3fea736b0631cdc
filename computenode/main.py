"""`shoal node`: load the config once, detect capacity, lock the state dir, run the agent until
SIGTERM/SIGINT; with `metrics_listen`, serve its Prometheus metrics (computenode/metrics.py)
meanwhile, their address in <state_dir>/metrics.addr."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import resource
import signal
from pathlib import Path

from common import config as config_mod
from common import heap, log
from common import loop as loops
from common import metrics as metrics_common
from common.clock import SystemClock
from common.config import NodeConfig
from common.errors import ConfigError
from common.resources import Resources
from common.statedir import StateDirLock
from computenode import capacity, cgroups
from computenode.agent import Agent
from computenode.metrics import NO_METRICS, AgentMetrics, PrometheusAgentMetrics

_log = log.get("node")


def read_secret(path: Path, what: str) -> str:
    """A secret kept in a file, refused (one line) when others may read it."""
    try:
        st = path.stat()
        text = path.read_text().strip()
    except OSError as e:
        raise ConfigError(f"cannot read the {what} file {path}: {e.strerror}") from None
    if st.st_mode & 0o077:
        raise ConfigError(f"the {what} file {path} is readable by others (mode {st.st_mode & 0o777:o}): "
                          f"chmod 600 {path}")
    if not text:
        raise ConfigError(f"the {what} file {path} is empty")
    return text


def limit_processes(most: int, isolation: cgroups.Isolation) -> str:
    """Where each task's cgroup cannot count its processes, RLIMIT_NPROC set here, which every
    task inherits (the hard limit too, so that a task cannot raise it back): the kernel counts
    it for the task's owner, over all their processes on the node. Root ignores it, so a root
    agent itself is not held back (nor is a task that runs as root). An agent that is not root
    runs tasks as its own user, whose other processes (a desktop's threads) count too: it
    allows that many more. Says how."""
    if not most:
        return "no limit"
    if isolation.limits_processes:
        return f"{most} per task (pids.max)"
    extra = 0 if os.geteuid() == 0 else _threads_of(os.getuid())
    soft, hard = resource.getrlimit(resource.RLIMIT_NPROC)
    limit = most + extra if hard == resource.RLIM_INFINITY else min(most + extra, hard)
    if soft == resource.RLIM_INFINITY or soft > limit or hard == resource.RLIM_INFINITY or hard > limit:
        resource.setrlimit(resource.RLIMIT_NPROC, (limit, limit))
    return f"{most} per task owner (RLIMIT_NPROC {limit})"


def _threads_of(uid: int) -> int:
    """Processes and threads of `uid` now (what RLIMIT_NPROC counts)."""
    count = 0
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                if os.stat(f"/proc/{name}").st_uid == uid:
                    count += len(os.listdir(f"/proc/{name}/task"))
            except OSError:
                continue
    return count


def run(args: argparse.Namespace, default_head: str | None) -> int:
    if getattr(args, "join_token", None):
        raise ConfigError("a join token on the command line is readable by every local user (ps, /proc): "
                          "write it to a file only you can read (chmod 600) and pass --join-token-file FILE")
    overrides = config_mod.flag_overrides(NodeConfig, args)
    overrides["head"] = args.head or default_head
    config = config_mod.load(NodeConfig, "node", args.config, overrides)
    if config.join_token_file:
        config = dataclasses.replace(config, join_token=read_secret(Path(config.join_token_file), "join token"))
    log.configure(config.log_level)
    heap.tune()
    heap.tune_gc()
    detected = capacity.detect()
    offered = capacity.offered(config, detected)
    _log.info("node_starting", node=config.name, head=config.head, offered=offered.describe(),
              detected=detected.describe(), groups=list(config.groups), labels=list(config.labels))
    try:
        isolation = cgroups.detect(config.isolation, config.name)
    except cgroups.IsolationError as e:
        raise ConfigError(str(e)) from None
    processes = limit_processes(config.max_processes, isolation)
    _log.info("isolation", node=config.name, mode=isolation.mode, reason=isolation.reason, max_processes=processes)
    return loops.run(_main(config, offered, isolation), config.event_loop)


async def _main(config: NodeConfig, offered: Resources, isolation: cgroups.Isolation) -> int:
    lock = StateDirLock(config.state_dir, "agent")
    try:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        metrics: AgentMetrics = PrometheusAgentMetrics() if config.metrics_listen else NO_METRICS
        agent = Agent(config, offered, SystemClock(), isolation, metrics=metrics)
        _log.info("event_loop", node=config.name, kind=loops.current())
        server = None
        if isinstance(metrics, PrometheusAgentMetrics):
            metrics.watch(agent, offered, loop)
            server = metrics_common.MetricsServer(config.metrics_listen, metrics.registry, config.state_dir)
        else:
            metrics_common.remove_stale(config.state_dir)
        try:
            return await agent.run(stop)
        finally:
            if server is not None:
                server.close()
    finally:
        isolation.close()
        lock.release()
