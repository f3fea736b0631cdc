"""Command-line flags of `shoal node` (kept apart from main.py so the CLI parses them without
importing the agent)."""

from __future__ import annotations

import argparse
from pathlib import Path

from common.loop import CHOICES


def add_arguments(p: argparse.ArgumentParser) -> None:
    # SUPPRESS: `shoal --head X node` must not be overwritten by this flag's default.
    p.add_argument("--head", metavar="HOST:PORT", default=argparse.SUPPRESS,
                   help="head node address (default $SHOAL_HEAD or localhost:7676)")
    p.add_argument("--name", help="node name, unique in the cluster (default: the host name)")
    p.add_argument("--cores", type=int, help="cores offered to tasks (default: detected)")
    p.add_argument("--memory-mb", type=int, help="memory offered to tasks in MB (default: detected)")
    p.add_argument("--state-dir", metavar="DIR", type=Path, help="the agent's output spool")
    p.add_argument("--config", metavar="FILE", type=Path, help="TOML file with a [node] table")
    p.add_argument("--kill-grace", metavar="SECONDS", type=float,
                   help="time between SIGTERM and SIGKILL when a task is cancelled (default 5)")
    p.add_argument("--stop-tasks-on-exit", action="store_true", default=None,
                   help="stop running tasks when the agent stops (default: they keep running and are "
                        "adopted by the next agent on this state dir)")
    p.add_argument("--resource", dest="resources", action="append", metavar="NAME=COUNT",
                   help="a named resource offered, e.g. gpu=2 or license_matlab=4 (repeatable; gpu is "
                        "detected with nvidia-smi where present)")
    p.add_argument("--group", dest="groups", action="append", metavar="GROUP",
                   help="a node group this node is in (repeatable)")
    p.add_argument("--label", dest="labels", action="append", metavar="LABEL",
                   help="a label this node carries, e.g. avx512 or rack=3 (repeatable)")
    p.add_argument("--plaintext", action="store_true", default=None,
                   help="plaintext gRPC to a plaintext head node (local development only)")
    p.add_argument("--tls-ca", metavar="FILE", help="the cluster CA certificate (required unless --plaintext)")
    p.add_argument("--tls-cert", metavar="FILE", help="this node's certificate (shoal certs issue --node NAME)")
    p.add_argument("--tls-key", metavar="FILE", help="this node's key")
    p.add_argument("--join-token-file", metavar="FILE",
                   help="join with the token in FILE (shoal node token create; FILE readable by its owner alone)")
    # Refused with a pointer to --join-token-file: a token in argv is readable by every local user.
    p.add_argument("--join-token", metavar="TOKEN", help=argparse.SUPPRESS)
    p.add_argument("--run-as", choices=("owner", "agent"),
                   help="as root, run tasks as their owner's Unix user (default) or as the agent's")
    p.add_argument("--allow-root-tasks", action="store_true", default=None, help="let tasks owned by root run")
    p.add_argument("--isolation", choices=("auto", "cgroup", "watch"),
                   help="memory and CPU limits by per-task cgroups where writable (auto, the default), "
                        "by cgroups or not at all (cgroup), or by watching memory use (watch)")
    p.add_argument("--max-processes", type=int, metavar="N",
                   help="most processes a task may have at once (default 4096; 0: no limit)")
    p.add_argument("--metrics-listen", metavar="HOST:PORT",
                   help="serve Prometheus metrics at http://HOST:PORT/metrics (tasks started, finished "
                        "and running, the agent's CPU and memory); port 0 = any, the address goes to "
                        "<state-dir>/metrics.addr (default: off)")
    p.add_argument("--event-loop", choices=CHOICES,
                   help="the asyncio event loop: uvloop (default, where installed) or asyncio")
    p.add_argument("--log-level", choices=("debug", "info", "warning", "error"))
