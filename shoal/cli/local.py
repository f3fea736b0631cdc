"""`shoal up` and `shoal demo`: local clusters of real processes."""

from __future__ import annotations

import argparse
import signal
import sys
import tempfile
import threading
from pathlib import Path

from shoal.cli.base import EXIT_OK, EXIT_REFUSED, usage


def up(args: argparse.Namespace, head: str) -> int:
    from shoal.local import ClusterError, LocalCluster

    temporary = args.state_dir is None
    state_dir = Path(args.state_dir or tempfile.mkdtemp(prefix="shoal-up-"))
    cluster = LocalCluster(state_dir, nodes=args.nodes, listen=args.listen, cores=args.cores,
                           memory_mb=args.memory_mb, web_listen=args.web_listen)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        cluster.start()
    except ClusterError as e:
        cluster.stop()
        return usage(str(e))
    print(f"Shoal local cluster: head node at {cluster.address} with {args.nodes} nodes "
          f"({', '.join(cluster.node_names)})")
    print(f"  state and logs: {state_dir}" + (" (removed at exit)" if temporary else ""))
    print(f"  use it:         export SHOAL_HEAD={cluster.address}")
    if cluster.web_url:
        print(f"  dashboard:      {cluster.web_url}")
    print("  PLAINTEXT: no TLS, and user names are trusted as sent. For development on this machine only;")
    print("  see the README's 'A real cluster' for a secure set-up.")
    print("Press Ctrl-C to stop.", flush=True)
    code = EXIT_OK
    try:
        while not stop.wait(0.5):
            if cluster.head is not None and cluster.head.poll() is not None:
                print(f"shoal: the head node exited:\n{cluster.log_tail('head')}", file=sys.stderr)
                code = EXIT_REFUSED
                break
    finally:
        print("Stopping...", flush=True)
        cluster.stop()
        if temporary:
            import shutil

            shutil.rmtree(state_dir, ignore_errors=True)
    return code


def demo(args: argparse.Namespace, head: str) -> int:
    from shoal.demo import run_demo

    return run_demo()
