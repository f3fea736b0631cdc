"""Command-line flags of `shoal head` (kept apart from main.py so the CLI parses them without
importing the server)."""

from __future__ import annotations

import argparse
from pathlib import Path

from common.loop import CHOICES


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--listen", metavar="HOST:PORT", help="address to serve on (default 127.0.0.1:7676; port 0 = any)")
    p.add_argument("--state-dir", metavar="DIR", type=Path, help="database, output and address file")
    p.add_argument("--config", metavar="FILE", type=Path, help="TOML file with a [head] table")
    p.add_argument("--database", metavar="URL",
                   help="postgresql://user@host/db[?schema=NAME] or sqlite:///PATH (default: SQLite in the state dir)")
    p.add_argument("--lease-ttl", metavar="SECONDS", type=float,
                   help="with PostgreSQL: leader lease length; standbys take over within about this long")
    p.add_argument("--output-dir", metavar="DIR", help="task output (default <state-dir>/output; share it between "
                   "head nodes that stand in for each other)")
    p.add_argument("--heartbeat-interval", metavar="SECONDS", type=float, help="told to agents (default 5)")
    p.add_argument("--node-lost-after", metavar="SECONDS", type=float,
                   help="silence after which a node is Unreachable and its tasks run elsewhere (default 30; at "
                        "least task lease + kill grace + 1)")
    p.add_argument("--task-lease", metavar="SECONDS", type=float,
                   help="how long an agent keeps its tasks running without an answer from the head "
                        "(default: node-lost-after - kill-grace - 1)")
    p.add_argument("--kill-grace", metavar="SECONDS", type=float,
                   help="between SIGTERM and SIGKILL when a task is stopped; told to agents (default 5)")
    p.add_argument("--stall-grace", metavar="SECONDS", type=float,
                   help="how much longer agents keep tasks while the head's host answers but the head "
                        "does not (stalled, restarting; default 120)")
    p.add_argument("--placement", choices=("pack", "spread"), help="node choice among those that fit")
    p.add_argument("--policy", choices=("easy", "fcfs"), help="queue policy (default easy: EASY backfilling)")
    p.add_argument("--preemption", action="store_true", default=None,
                   help="let higher priority levels preempt (requeue) lower-level work")
    p.add_argument("--dispatch-ahead", metavar="RATIO", type=float,
                   help="send a node queued tasks for up to RATIO times its cores beyond what is free, "
                        "started by its agent as room frees, for clusters of short tasks (default 0: off)")
    p.add_argument("--completed-job-ttl", metavar="SECONDS", type=float,
                   help="purge ended jobs after this long (default 432000, 5 days)")
    p.add_argument("--plaintext", action="store_true", default=None,
                   help="no TLS, user names trusted as sent: local development only (says so in the log)")
    p.add_argument("--tls-dir", metavar="DIR", help="ca.crt, head.crt, head.key (default <state-dir>/tls)")
    p.add_argument("--admin", dest="admins", action="append", metavar="USER",
                   help="a user allowed to manage nodes (repeatable; default: every user)")
    p.add_argument("--web-listen", metavar="HOST:PORT",
                   help="serve the web dashboard at http(s)://HOST:PORT/ (read-only; https with the head's "
                        "certificate unless --plaintext); port 0 = any, the URL goes to <state-dir>/web.addr "
                        "(default: off)")
    p.add_argument("--web-sample-interval", type=float, metavar="SECONDS",
                   help="seconds between the dashboard's samples of the cluster (default 2)")
    p.add_argument("--metrics-listen", metavar="HOST:PORT",
                   help="serve Prometheus metrics at http://HOST:PORT/metrics (jobs, tasks, nodes, queue "
                        "wait, scheduling passes, RPC latency); port 0 = any, the address goes to "
                        "<state-dir>/metrics.addr (default: off)")
    p.add_argument("--event-loop", choices=CHOICES,
                   help="the asyncio event loop: uvloop (default, where installed) or asyncio")
    p.add_argument("--log-level", choices=("debug", "info", "warning", "error"))
