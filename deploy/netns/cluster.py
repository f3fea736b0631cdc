"""A real multi-host Shoal cluster on one machine: the head node and each agent in its own Linux
network namespace with its own address, joined by a bridge (see network.py for the layout).

The daemons are the ones an operator runs, started as shoal/local.py's LocalCluster starts them
(same interpreter, logs in <state_dir>/logs, GRPC_ENABLE_FORK_SUPPORT=false) but through
`ip netns exec`. Clients in the root namespace reach the head node over the bridge at `address`.
Tests use NetnsCluster as a context manager; operators use the command line:

    python -m deploy.netns.cluster up --nodes 2 [--prefix shoal] [--subnet 10.77.0.0/24]
    python -m deploy.netns.cluster status [--prefix shoal]
    python -m deploy.netns.cluster down [--prefix shoal]

`up` returns once every node is Online and leaves the daemons running; `down` stops whatever
runs in the prefix's namespaces and removes the network, so it also cleans up after a crash.
Needs root and iproute2 (`netns_permitted()` says why not). Plaintext by default: anyone who
can reach the bridge can act as anyone, which is acceptable only on this isolated network.
"""

from __future__ import annotations

import os

os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")  # before anything imports grpc

import argparse
import signal
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from deploy.netns import network
from deploy.netns.network import HEAD, NetnsError, netns_permitted, teardown, unused_subnet
from shoal.local import ClusterError, LocalCluster

__all__ = ["NetnsCluster", "NetnsError", "ClusterError", "netns_permitted", "teardown", "unused_subnet"]

DEFAULT_PREFIX = "shoal"
DEFAULT_SUBNET = "10.77.0.0/24"
DEFAULT_PORT = 7676  # each namespace has its own ports, so every cluster can use the usual one


class NetnsCluster:
    """A head node in namespace <prefix>-head and agents host1..hostN in <prefix>-n1..nN."""

    def __init__(self, state_dir: Path | str, nodes: int = 2, prefix: str = DEFAULT_PREFIX,
                 subnet: str = DEFAULT_SUBNET, cores: int | None = 1, memory_mb: int | None = None,
                 port: int = DEFAULT_PORT, head_args: Sequence[str] = (), node_args: Sequence[str] = (),
                 stop_tasks_on_exit: bool = True, secure: bool = False, run_as: str = "agent") -> None:
        self.layout = network.Layout.of(prefix, subnet, nodes)
        self.port = port
        self.local = LocalCluster(Path(state_dir), nodes=0, listen=f"{self.layout.host(0).ip}:{port}",
                                  cores=cores, memory_mb=memory_mb, head_args=head_args, node_args=node_args,
                                  stop_tasks_on_exit=stop_tasks_on_exit, secure=secure, run_as=run_as)
        self._hosts = {h.name: h for h in self.layout.hosts}

    # -- what tests need to know ---------------------------------------------------------------

    @property
    def address(self) -> str:
        """The head node's address, reachable from the root namespace through the bridge."""
        return self.local.address or self.local.listen

    @property
    def node_hosts(self) -> dict[str, str]:
        """Node name -> that host's address."""
        return {h.name: h.ip for h in self.layout.hosts[1:]}

    @property
    def node_names(self) -> list[str]:
        return list(self.node_hosts)

    @property
    def state_dir(self) -> Path:
        return self.local.state_dir

    def namespace(self, name: str) -> str:
        """The namespace of "head" or of a node."""
        return self._host(name).namespace

    def client(self, **kwargs: Any) -> Any:
        """A Client of this cluster's head node (as an Admin when the cluster is secure)."""
        from shoal.client import Client

        return Client(self.address, tls=self.local.admin_tls(), **kwargs)

    def log_tail(self, name: str, lines: int = 30) -> str:
        return self.local.log_tail(name, lines)

    # -- lifecycle -------------------------------------------------------------------------------

    def check_prefix_free(self) -> None:
        prefix = self.layout.prefix
        if network.namespaces(prefix) or network.links(prefix):
            raise NetnsError(f"namespaces or links of prefix {prefix!r} already exist (a cluster is up, or a "
                             f"crashed one left them): run "
                             f"`python -m deploy.netns.cluster down --prefix {prefix}`")

    def start(self, timeout: float = 30.0) -> str:
        """Build the network, start the head node and every agent, and wait until all are Online.
        Refuses to touch an existing cluster of the same prefix; cleans up after itself on failure."""
        self.check_prefix_free()
        network.check_subnet_free(self.layout)
        try:
            network.create(self.layout)
            if self.local.secure:
                self._head_certificate()
            self.start_head(timeout)
            for name in self.node_names:
                self.start_node(name)
            self.wait_nodes(self.node_names, timeout)
        except BaseException:
            self.stop()
            raise
        return self.address

    def start_head(self, timeout: float = 30.0) -> str:
        """Start (or restart) the head node and wait until it serves."""
        return self.local.start_head(0, timeout, prefix=self._exec(HEAD))

    def start_node(self, name: str, extra: Sequence[str] = ()) -> subprocess.Popen[bytes]:
        """Start (or restart) a node's agent in its namespace."""
        return self.local.start_node(name, extra, head=self.address, prefix=self._exec(name))

    def wait_nodes(self, names: Sequence[str] | None = None, timeout: float = 30.0) -> None:
        """Wait until the named nodes (default: all) are connected and Online."""
        self.local.wait_nodes(self.node_names if names is None else names, timeout)

    def stop(self, timeout: float = 15.0) -> None:
        """Stop the agents (they stop their tasks), then the head node; remove the network."""
        try:
            self.local.stop(timeout)
        finally:
            teardown(self.layout.prefix, timeout)

    def kill_node(self, name: str, sig: int = signal.SIGKILL) -> None:
        """Signal a node's agent and wait for it to exit (its tasks live on unless it stops them)."""
        self._host(name)
        self.local.kill_node(name, sig)

    def kill_head(self, sig: int = signal.SIGKILL) -> None:
        self.local.kill_head(0, sig)

    def disconnect(self, name: str) -> None:
        """Cut a host (a node or "head") off the network, as a pulled cable would."""
        network.set_link(self._host(name).veth, up=False)

    def reconnect(self, name: str) -> None:
        network.set_link(self._host(name).veth, up=True)

    def run(self, name: str, *argv: str, timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
        """Run a command on a host (in its namespace), e.g. to probe the network from there."""
        return subprocess.run([*self._exec(name), *argv], capture_output=True, text=True, timeout=timeout)

    def __enter__(self) -> NetnsCluster:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- helpers -----------------------------------------------------------------------------------

    def _host(self, name: str) -> network.Host:
        try:
            return self._hosts[name]
        except KeyError:
            hosts = ", ".join(self._hosts)
            raise ClusterError(f"no host {name!r} in this cluster (hosts: {hosts})") from None

    def _exec(self, name: str) -> list[str]:
        return ["ip", "netns", "exec", self.namespace(name)]

    def _head_certificate(self) -> None:
        """A cluster CA whose head certificate also names the head's bridge address (LocalCluster's
        own names only loopback), made before LocalCluster would make one."""
        from common import tls
        from common.clock import SystemClock

        if not (self.local.tls_dir / tls.CA_KEY).exists():
            tls.init(self.local.tls_dir, SystemClock().now(), names=[self.layout.host(0).ip])


# -- command line ----------------------------------------------------------------------------------


def status(prefix: str, port: int) -> list[str]:
    """Lines describing what of this prefix's cluster exists and, if the head answers, its nodes."""
    spaces = network.namespaces(prefix)
    if not spaces and not network.links(prefix):
        return [f"no cluster with prefix {prefix!r}"]
    lines, head_ip = [], ""
    for ns in sorted(spaces, key=lambda ns: not ns.endswith("-head")):
        shown = network.ip("-n", ns, "-4", "-o", "addr", "show", "dev", "eth0", check=False).stdout.split()
        addr = shown[shown.index("inet") + 1].split("/")[0] if "inet" in shown else "(no address)"
        head_ip = addr if ns.endswith("-head") else head_ip
        lines.append(f"{ns:<16} {addr:<15} processes: {' '.join(map(str, network.pids(ns))) or 'none'}")
    lines.append(f"links: {' '.join(network.links(prefix)) or 'none'}")
    if head_ip:
        from shoal.client import Client, RequestFailed
        from shoal.v1 import admin_pb2

        try:
            with Client(f"{head_ip}:{port}", timeout=3.0) as client:
                nodes = client.list_nodes()
            lines.append(f"head node at {head_ip}:{port}: {len(nodes)} node(s)")
            for n in nodes:
                state = admin_pb2.NodeState.Name(n.state).removeprefix("NODE_STATE_").lower()
                lines.append(f"  {n.name:<12} {state}{'' if n.connected else ' (not connected)'}")
        except RequestFailed as e:
            lines.append(f"head node at {head_ip}:{port}: {e.message}")
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    """Exit codes: 0 done, 1 the cluster did not come up (or could not be removed), 2 bad usage
    or this machine does not permit network namespaces."""
    p = argparse.ArgumentParser(prog="python -m deploy.netns.cluster", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    for name, text in (("up", "build the network and start the cluster"),
                       ("down", "stop it and remove the network"),
                       ("status", "show namespaces, processes and nodes")):
        c = sub.add_parser(name, help=text)
        c.add_argument("--prefix", default=DEFAULT_PREFIX,
                       help=f"names of namespaces and links (default {DEFAULT_PREFIX})")
        if name != "down":
            c.add_argument("--port", type=int, default=DEFAULT_PORT,
                           help=f"head node port (default {DEFAULT_PORT})")
    up = sub.choices["up"]
    up.add_argument("--nodes", type=int, default=2, help="agent hosts (default 2)")
    up.add_argument("--cores", type=int, default=1, help="cores each agent offers (default 1)")
    up.add_argument("--subnet", default=DEFAULT_SUBNET,
                    help=f"IPv4 subnet of the bridge (default {DEFAULT_SUBNET})")
    up.add_argument("--state-dir", type=Path, help="state and logs (default <tmp>/shoal-netns-PREFIX)")
    up.add_argument("--secure", action="store_true", help="TLS with a fresh cluster CA in <state-dir>/tls")
    args = p.parse_args(argv)
    if args.command == "down":
        try:
            removed = teardown(args.prefix)
        except NetnsError as e:
            print(f"netns: {e}", file=sys.stderr)
            return 1
        print(f"removed {' '.join(removed)}" if removed else f"nothing of prefix {args.prefix!r} to remove")
        return 0
    if args.command == "status":
        print("\n".join(status(args.prefix, args.port)))
        return 0
    reason = netns_permitted()
    if reason:
        print(f"netns: {reason}", file=sys.stderr)
        return 2
    state_dir = args.state_dir or Path(tempfile.gettempdir()) / f"shoal-netns-{args.prefix}"
    try:
        cluster = NetnsCluster(state_dir, nodes=args.nodes, prefix=args.prefix, subnet=args.subnet,
                               cores=args.cores, port=args.port, secure=args.secure)
    except NetnsError as e:
        print(f"netns: {e}", file=sys.stderr)
        return 2
    try:
        # A cluster of this prefix already up comes first: its subnet would be taken too.
        cluster.check_prefix_free()
    except NetnsError as e:
        print(f"netns: {e}", file=sys.stderr)
        return 1
    try:
        network.check_subnet_free(cluster.layout)
    except NetnsError as e:
        print(f"netns: {e}", file=sys.stderr)
        return 2
    try:
        cluster.start()
    except (NetnsError, ClusterError) as e:
        print(f"netns: {e}", file=sys.stderr)
        return 1
    print(f"Shoal cluster in namespaces {args.prefix}-*: head node at {cluster.address}, "
          f"nodes {', '.join(f'{n} ({a})' for n, a in cluster.node_hosts.items())}")
    print(f"  state and logs: {state_dir}")
    print(f"  use it:         export SHOAL_HEAD={cluster.address}")
    if args.secure:
        print(f"  TLS:            CA and certificates in {cluster.local.tls_dir} (see `shoal certs`)")
    print(f"  stop it:        python -m deploy.netns.cluster down --prefix {args.prefix}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
