"""`shoal head`: the composition root. Config -> store -> clock -> services -> server.

Writes the bound address to <state_dir>/head.addr once it serves (so tools and tests can
ask for port 0); with `metrics_listen`, serves Prometheus metrics (services/metrics.py) and
writes their address to <state_dir>/metrics.addr; with `web_listen`, serves the dashboard
(web/server.py) and writes its URL to <state_dir>/web.addr. Holds an exclusive lock on the state dir,
and stops cleanly on SIGTERM or SIGINT: health goes NOT_SERVING, in-flight RPCs get a grace
period, and everything queued in the journal is committed.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import importlib.metadata
import os
import signal
from collections.abc import Awaitable
from pathlib import Path

from common import config as config_mod
from common import heap, log, tokens
from common import loop as loops
from common import metrics as metrics_common
from common.clock import Clock, SystemClock
from common.config import HeadConfig
from common.hostport import parse_address
from common.statedir import StateDirLock
from headnode.api import server as server_mod
from headnode.api.admin_servicer import AdminServicer
from headnode.api.identity import Authority
from headnode.api.job_servicer import JobServicer, TemplateServicer
from headnode.api.node_servicer import NodeServicer
from headnode.domain.cluster import Cluster
from headnode.scheduling.policy import Policy
from headnode.services.allocator import Allocator
from headnode.services.effects import Effects
from headnode.services.events import EventBus
from headnode.services.fairshare import FairShare
from headnode.services.history import ClusterHistory, Tee
from headnode.services.housekeeping import Housekeeping
from headnode.services.join_tokens import META_KEY as JOIN_TOKENS
from headnode.services.join_tokens import JoinTokens
from headnode.services.journal import Journal
from headnode.services.lease import Lease
from headnode.services.membership import Membership
from headnode.services.metrics import NO_METRICS, HeadMetrics, Metrics
from headnode.services.nodes import NodeAdmin
from headnode.services.output import OutputStore
from headnode.services.queue import QueueService
from headnode.services.revocations import META_KEY as REVOKED
from headnode.services.revocations import Revocations
from headnode.services.templates import TemplateService
from headnode.services.usage import UsageService
from headnode.store import checks, open_store, redacted
from headnode.store.base import Store, WriteBatch
from headnode.store.postgres import PostgresStore
from headnode.store.records import restore
from headnode.web import ADDRESS_FILE as WEB_ADDRESS_FILE

ADDRESS_FILE = "head.addr"
TOKEN_KEY = "token_key"  # meta key of the cluster's token-signing key
_log = log.get("head")


def run(args: argparse.Namespace) -> int:
    # Flags are named after the keys they set (common/config.py); `shoal config show head`
    # resolves the same way.
    config = config_mod.load(HeadConfig, "head", args.config, config_mod.flag_overrides(HeadConfig, args))
    # The state dir holds the database, and it the key that signs every token: nothing the head
    # node writes is for other local users to read (the systemd unit says UMask=0077 too).
    os.umask(0o077)
    log.configure(config.log_level)
    heap.tune()
    return loops.run(serve(config, SystemClock()), config.event_loop)


async def serve(config: HeadConfig, clock: Clock) -> int:
    state_dir = Path(config.state_dir)
    lock = StateDirLock(state_dir, "head node")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    store = open_store(config.database, state_dir)
    lease: Lease | None = None
    try:
        if isinstance(store, PostgresStore):
            # Several head nodes may share this database: serve only while holding the lease.
            lease = Lease(config.database, config.lease_ttl, clock, config.listen)
            if not await _until_either(lease.acquire(), stop):
                return 0
            store.guard = lease.fence_check()
        return await _serve_active(config, clock, state_dir, store, lease, stop)
    finally:
        if lease is not None:
            await lease.release()
        store.close()
        lock.release()


async def _until_either(work: Awaitable[object], stop: asyncio.Event) -> bool:
    """Run `work` unless `stop` comes first; True if the work finished."""
    task = asyncio.ensure_future(work)
    stopper = asyncio.create_task(stop.wait())
    done, _ = await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
    for t in (task, stopper):
        if t not in done:
            t.cancel()
    return task in done


async def _serve_active(
    config: HeadConfig, clock: Clock, state_dir: Path, store: Store, lease: Lease | None, stop: asyncio.Event
) -> int:
    # Loaded only now: a standby that took over must see everything the old leader committed.
    loaded = store.load()
    _check_identity(config, state_dir, store, loaded.meta)
    cluster = restore(loaded, clock.now())
    exit_code = 0

    def on_fatal(reason: BaseException | str) -> None:
        nonlocal exit_code
        _log.critical("head_cannot_go_on", error=str(reason) if isinstance(reason, str) else repr(reason))
        exit_code = 1
        stop.set()

    prometheus: Metrics = HeadMetrics() if config.metrics_listen else NO_METRICS
    # The dashboard's charts count run ends through the same hooks as Prometheus.
    history = ClusterHistory(cluster, clock, config.web_sample_interval) if config.web_listen else None
    metrics: Metrics = prometheus if history is None else Tee(prometheus, history) if prometheus.enabled else history
    bus = EventBus()
    # Space back after a full disk: what waited behind the held write may now be placed.
    journal = Journal(store, bus, on_fatal, on_writable=lambda: allocator.kick())
    journal.start()
    output = OutputStore(Path(config.output_dir) if config.output_dir else state_dir / "output", cluster.may_output)
    allocator: Allocator
    membership: Membership
    effects = Effects(cluster, journal, clock, send_kill=lambda node, kill: membership.send(node, kill),
                      kick=lambda: allocator.kick(), metrics=metrics)
    membership = Membership(cluster, effects, output, clock, config, on_capacity=lambda: allocator.kick(),
                            metrics=metrics, may_renew=lease.holds if lease is not None else lambda: True)
    policy = Policy(name=config.policy, placement=config.placement, default_runtime=config.default_runtime_limit,
                    backfill_depth=config.backfill_depth, max_running_cores=config.max_running_cores_per_owner,
                    preemption=config.preemption, dispatch_ahead=config.dispatch_ahead,
                    dispatch_ahead_wait=config.dispatch_ahead_wait,
                    dispatch_ahead_pass_interval=config.dispatch_ahead_pass_interval)
    allocator = Allocator(cluster, effects, membership, output, clock, policy, metrics=metrics)
    fairshare = FairShare(cluster, clock, config, kick=lambda: allocator.kick())
    queue = QueueService(cluster, journal, effects, allocator, output, bus, clock,
                         max_queued_jobs=config.max_queued_jobs_per_owner)
    node_admin = NodeAdmin(cluster, effects, journal, membership, clock, kick=lambda: allocator.kick())
    templates = TemplateService(journal, clock, loaded.templates)
    housekeeping = Housekeeping(cluster, effects, journal, output, clock, config.completed_job_ttl,
                                kick=lambda: allocator.kick())
    token_key = loaded.meta.get(TOKEN_KEY)
    if token_key is None:  # the cluster's first start: head nodes sharing the store share the key
        token_key = tokens.new_key()
        await journal.record(meta={TOKEN_KEY: token_key})
    auth = Authority(config, clock, token_key, Revocations(journal, clock, loaded.meta.get(REVOKED, "")),
                     JoinTokens(journal, clock, loaded.meta.get(JOIN_TOKENS, "")))
    if config.plaintext:
        _log.warning("plaintext_mode", detail="PLAINTEXT gRPC: no TLS, user names are trusted as sent; anyone who "
                     "can reach this port can act as anyone. For local development only.")
        creds = None
    else:
        creds = server_mod.credentials(Path(config.tls_dir) if config.tls_dir else state_dir / "tls")
    # The journal gates client requests that would write while the disk is full.
    jobs_servicer = JobServicer(queue, output, templates, auth, UsageService(store), gate=journal)
    admin_servicer = AdminServicer(cluster, node_admin, auth, gate=journal)
    server, port, health = server_mod.build(
        config.listen, jobs_servicer, NodeServicer(membership, auth), admin_servicer,
        TemplateServicer(templates, auth, gate=journal), creds, interceptors=_rpc_metrics(prometheus),
    )
    metrics_server = None
    if isinstance(prometheus, HeadMetrics):
        prometheus.watch(cluster, asyncio.get_running_loop())
        metrics_server = metrics_common.MetricsServer(config.metrics_listen, prometheus.registry, state_dir)
    else:
        metrics_common.remove_stale(state_dir)
    web_server = None
    if history is not None:
        # Imported only when on: aiohttp costs the head node's start-up ~0.1 s otherwise.
        from headnode.web.routes import Api
        from headnode.web.server import WebServer

        api = Api(config, jobs_servicer, admin_servicer, queue, auth, history, _os_user(), _version())
        web_server = WebServer(config.web_listen, api, state_dir,
                               None if config.plaintext else Path(config.tls_dir) if config.tls_dir else state_dir / "tls")
        await web_server.start()
    else:
        (state_dir / WEB_ADDRESS_FILE).unlink(missing_ok=True)  # left by a head node that was killed
    await server.start()
    # Silence counts from now, not from start-up's loading: and a head that took over from
    # another (PostgreSQL) waits stall_grace longer, for the leases its agents may have
    # extended while that one was frozen (computenode/lease.py).
    membership.grace_all(config.stall_grace if lease is not None else 0.0)
    heap.tune_gc()  # after recovery: the jobs loaded from the store are start-up's too
    await server_mod.set_serving(health, True)
    address = _connectable(config.listen, port)
    _write_address(state_dir / ADDRESS_FILE, address)
    _log.info("head_started", address=address, state_dir=str(state_dir), event_loop=loops.current(), jobs=len(cluster.jobs),
              queued=cluster.waiting(), nodes=len(cluster.nodes), lease_epoch=lease.epoch if lease else None)
    background = [
        asyncio.create_task(allocator.run(), name="allocator"),
        asyncio.create_task(membership.run_liveness(), name="liveness"),
        *([asyncio.create_task(allocator.run_take_back(), name="take-back")] if policy.dispatch_ahead else []),
        asyncio.create_task(fairshare.run(), name="fairshare"),
        asyncio.create_task(housekeeping.run(), name="housekeeping"),
        asyncio.create_task(_seen_while_held(journal, cluster, clock), name="seen-while-held"),
    ]
    if lease is not None:
        background.append(asyncio.create_task(lease.keep(on_fatal), name="lease"))
    if history is not None:
        background.append(asyncio.create_task(history.run(), name="history"))
    allocator.kick()
    try:
        await stop.wait()
    finally:
        _log.info("head_stopping")
        await server_mod.set_serving(health, False)
        for session in list(membership.sessions.values()):
            session.close()
        if web_server is not None:
            await web_server.close()
        await server.stop(grace=2.0)
        for task in background:
            task.cancel()
        await asyncio.gather(*background, return_exceptions=True)
        await journal.close()
        output.close()
        (state_dir / ADDRESS_FILE).unlink(missing_ok=True)
        if metrics_server is not None:
            metrics_server.close()
        _log.info("head_stopped")
    return exit_code


async def _seen_while_held(journal: Journal, cluster: Cluster, clock: Clock) -> None:
    """While the journal holds a write for want of space, agents' messages wait behind it too
    (a reconnecting agent's Hello, a report whose handling writes), so their silence is the
    head's, not theirs: keep every node seen, or after node_lost_after the head would declare
    nodes lost and requeue (or fail) what they run because its own disk filled."""
    while True:
        await clock.sleep(1.0)
        if journal.full is not None:
            now = clock.monotonic()
            for node in cluster.nodes.values():
                node.seen_at = max(node.seen_at, now)


def _check_identity(config: HeadConfig, state_dir: Path, store: Store, meta: dict[str, str]) -> None:
    """Refuse a database that is not this cluster's (store/checks.py); on the cluster's first
    start, give it its id, in the database first, then in the file beside it (SQLite; with
    PostgreSQL the file is checked if one is there, not made)."""
    id_path = checks.id_file(config.database, state_dir)
    database = str(getattr(store, "path", "")) or redacted(config.database)
    new_id = checks.check_identity(meta, id_path, database)
    if new_id is not None:
        store.write(WriteBatch(meta={checks.CLUSTER_ID: new_id}))
        meta[checks.CLUSTER_ID] = new_id
        _log.info("cluster_created", cluster_id=new_id)
    if not isinstance(store, PostgresStore):
        checks.keep_id_file(id_path, meta[checks.CLUSTER_ID])


def _rpc_metrics(metrics: Metrics) -> list[server_mod.RpcMetrics]:
    if not isinstance(metrics, HeadMetrics):
        return []
    return [server_mod.RpcMetrics(metrics.rpc_started, metrics.rpc_handled, metrics.rpc_duration)]


def _os_user() -> str:
    """Who a plaintext cluster's dashboard is when no one signed in: whoever runs the head
    node, the same name the CLI sends by default on this machine."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "anonymous"


def _version() -> str:
    try:
        return importlib.metadata.version("shoal")
    except importlib.metadata.PackageNotFoundError:
        return ""


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
