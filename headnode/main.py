"""`shoal head`: the composition root. Config -> store -> clock -> services -> server.

Writes the bound address to <state_dir>/head.addr once it serves (so tools and tests can
ask for port 0), holds an exclusive lock on the state dir, and stops cleanly on SIGTERM
or SIGINT: health goes NOT_SERVING, in-flight RPCs get a grace period, and everything
queued in the journal is committed.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
from pathlib import Path

from common import config as config_mod
from common import log
from common.clock import Clock, SystemClock
from common.config import HeadConfig, parse_address
from common.statedir import StateDirLock
from headnode.api import server as server_mod
from headnode.api.admin_servicer import AdminServicer
from headnode.api.job_servicer import JobServicer, TemplateServicer
from headnode.api.node_servicer import NodeServicer
from headnode.services.allocator import Allocator
from headnode.services.effects import Effects
from headnode.services.events import EventBus
from headnode.services.housekeeping import Housekeeping
from headnode.services.journal import Journal
from headnode.services.membership import Membership
from headnode.services.output import OutputStore
from headnode.services.queue import QueueService
from headnode.services.templates import TemplateService
from headnode.store.records import restore
from headnode.store.sqlite import SqliteStore

ADDRESS_FILE = "head.addr"
_log = log.get("head")


def run(args: argparse.Namespace) -> int:
    config = config_mod.load(
        HeadConfig,
        "head",
        args.config,
        {
            "listen": args.listen,
            "state_dir": args.state_dir,
            "heartbeat_interval": args.heartbeat_interval,
            "node_lost_after": args.node_lost_after,
            "placement": args.placement,
            "completed_job_ttl": args.completed_job_ttl,
            "log_level": args.log_level,
        },
    )
    log.configure(config.log_level)
    return asyncio.run(serve(config, SystemClock()))


async def serve(config: HeadConfig, clock: Clock) -> int:
    state_dir = Path(config.state_dir)
    lock = StateDirLock(state_dir, "head node")
    store = SqliteStore(state_dir / "shoal.db")
    loaded = store.load()
    cluster = restore(loaded, clock.now())
    stop = asyncio.Event()
    exit_code = 0

    def on_fatal(exc: BaseException) -> None:
        nonlocal exit_code
        _log.critical("store_write_failed", error=repr(exc))
        exit_code = 1
        stop.set()

    bus = EventBus()
    journal = Journal(store, bus, on_fatal)
    journal.start()
    output = OutputStore(state_dir / "output", cluster.may_output)
    allocator: Allocator
    membership: Membership
    effects = Effects(cluster, journal, clock, send_kill=lambda node, kill: membership.send(node, kill),
                      kick=lambda: allocator.kick())
    membership = Membership(cluster, effects, output, clock, config, on_capacity=lambda: allocator.kick())
    allocator = Allocator(cluster, effects, membership, output, clock, config.placement)
    queue = QueueService(cluster, journal, effects, allocator, output, bus, clock)
    templates = TemplateService(journal, clock, loaded.templates)
    housekeeping = Housekeeping(cluster, effects, journal, output, clock, config.completed_job_ttl)
    server, port, health = server_mod.build(
        config.listen, JobServicer(queue, output, templates), NodeServicer(membership), AdminServicer(cluster),
        TemplateServicer(templates),
    )
    await server.start()
    await server_mod.set_serving(health, True)
    address = _connectable(config.listen, port)
    _write_address(state_dir / ADDRESS_FILE, address)
    _log.info("head_started", address=address, state_dir=str(state_dir), jobs=len(cluster.jobs),
              queued=len(cluster.queue), nodes=len(cluster.nodes))

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    background = [
        asyncio.create_task(allocator.run(), name="allocator"),
        asyncio.create_task(membership.run_liveness(), name="liveness"),
        asyncio.create_task(housekeeping.run(), name="housekeeping"),
    ]
    allocator.kick()
    try:
        await stop.wait()
    finally:
        _log.info("head_stopping")
        await server_mod.set_serving(health, False)
        for session in list(membership.sessions.values()):
            session.close()
        await server.stop(grace=2.0)
        for task in background:
            task.cancel()
        await asyncio.gather(*background, return_exceptions=True)
        await journal.close()
        store.close()
        output.close()
        (state_dir / ADDRESS_FILE).unlink(missing_ok=True)
        lock.release()
        _log.info("head_stopped")
    return exit_code


def _connectable(listen: str, port: int) -> str:
    host, _ = parse_address(listen, "listen")
    if host in ("0.0.0.0", "", "::"):
        host = "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    return f"{host}:{port}"


def _write_address(path: Path, address: str) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(address + "\n")
    os.replace(tmp, path)
