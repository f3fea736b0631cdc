"""`shoal node`: load the config once, detect capacity, lock the state dir, run the agent until
SIGTERM/SIGINT."""

from __future__ import annotations

import argparse
import asyncio
import signal

from common import config as config_mod
from common import log
from common.clock import SystemClock
from common.config import NodeConfig
from common.errors import ConfigError
from common.resources import Resources
from common.statedir import StateDirLock
from computenode import capacity, cgroups
from computenode.agent import Agent

_log = log.get("node")


def run(args: argparse.Namespace, default_head: str | None) -> int:
    config = config_mod.load(
        NodeConfig,
        "node",
        args.config,
        {
            "head": args.head or default_head,
            "name": args.name,
            "cores": args.cores,
            "memory_mb": args.memory_mb,
            "state_dir": args.state_dir,
            "kill_grace": args.kill_grace,
            "stop_tasks_on_exit": args.stop_tasks_on_exit,
            "resources": args.resources,
            "groups": args.groups,
            "labels": args.labels,
            "plaintext": args.plaintext,
            "tls_ca": args.tls_ca,
            "tls_cert": args.tls_cert,
            "tls_key": args.tls_key,
            "join_token": args.join_token,
            "run_as": args.run_as,
            "allow_root_tasks": args.allow_root_tasks,
            "isolation": args.isolation,
            "log_level": args.log_level,
        },
    )
    log.configure(config.log_level)
    detected = capacity.detect()
    offered = capacity.offered(config, detected)
    _log.info("node_starting", node=config.name, head=config.head, offered=offered.describe(),
              detected=detected.describe(), groups=list(config.groups), labels=list(config.labels))
    try:
        isolation = cgroups.detect(config.isolation, config.name)
    except cgroups.IsolationError as e:
        raise ConfigError(str(e)) from None
    _log.info("isolation", node=config.name, mode=isolation.mode, reason=isolation.reason)
    return asyncio.run(_main(config, offered, isolation))


async def _main(config: NodeConfig, offered: Resources, isolation: cgroups.Isolation) -> int:
    lock = StateDirLock(config.state_dir, "agent")
    try:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        return await Agent(config, offered, SystemClock(), isolation).run(stop)
    finally:
        isolation.close()
        lock.release()
