"""The Linux network of a one-machine Shoal cluster: a bridge in the root namespace and one
network namespace per host, each joined to the bridge by a veth pair and given its own address.

Everything is named after a prefix, so runs with different prefixes do not collide and a crashed
run's leftovers can be found and removed by prefix alone (`teardown`), processes included.
Layout of prefix P on subnet 10.77.0.0/24:

    bridge  P + "br0"   10.77.0.1     (the root namespace reaches every host through it)
    head    P + "-head" 10.77.0.10    veth P + "v0" <-> eth0 in the namespace
    host i  P + "-n{i}" 10.77.0.{10+i} veth P + "v{i}" <-> eth0
"""

from __future__ import annotations

import functools
import ipaddress
import os
import re
import shutil
import signal
import subprocess
from dataclasses import dataclass

from common.clock import wait_until

HEAD = "head"
IFNAME_MAX = 15  # the kernel's IFNAMSIZ less the NUL
FIRST_HOST = 10  # host addresses start at .10, leaving the low ones for the bridge
_PREFIX = re.compile(r"[a-z][a-z0-9-]{0,9}")  # + "v999" or "br0" stays within IFNAME_MAX


class NetnsError(Exception):
    """A network operation failed; the message is one line fit to show an operator."""


@dataclass(frozen=True)
class Host:
    name: str  # "head" or the node name
    namespace: str
    veth: str  # the root-namespace end; the other end is eth0 in `namespace`
    ip: str


@dataclass(frozen=True)
class Layout:
    prefix: str
    subnet: ipaddress.IPv4Network
    nodes: int

    @staticmethod
    def of(prefix: str, subnet: str, nodes: int) -> Layout:
        if not _PREFIX.fullmatch(prefix):
            raise NetnsError(f"prefix {prefix!r} must be 1-10 characters of a-z, 0-9 and '-', "
                             f"starting with a letter")
        try:
            net = ipaddress.IPv4Network(subnet, strict=True)
        except ValueError as e:
            raise NetnsError(f"subnet {subnet!r} is not an IPv4 network such as 10.77.0.0/24: {e}") from None
        if nodes < 0:
            raise NetnsError(f"nodes must be >= 0, got {nodes}")
        if net.num_addresses < FIRST_HOST + nodes + 2:
            raise NetnsError(f"subnet {net} is too small for a head node and {nodes} hosts")
        return Layout(prefix, net, nodes)

    @property
    def bridge(self) -> str:
        return f"{self.prefix}br0"

    @property
    def bridge_ip(self) -> str:
        return str(self.subnet.network_address + 1)

    @property
    def hosts(self) -> list[Host]:
        """The head first, then node hosts host1..hostN."""
        return [self.host(i) for i in range(self.nodes + 1)]

    def host(self, i: int) -> Host:
        name, ns = (HEAD, f"{self.prefix}-head") if i == 0 else (f"host{i}", f"{self.prefix}-n{i}")
        return Host(name, ns, f"{self.prefix}v{i}", str(self.subnet.network_address + FIRST_HOST + i))


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run `ip ARGS`; a failure raises NetnsError with ip's own one-line complaint."""
    try:
        done = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)
    except FileNotFoundError:
        raise NetnsError("the `ip` command (iproute2) is not installed") from None
    if check and done.returncode != 0:
        why = (done.stderr.strip().splitlines() or [f"exit status {done.returncode}"])[0]
        raise NetnsError(f"ip {' '.join(args)}: {why}")
    return done


def create(layout: Layout) -> None:
    """Make the bridge and every host's namespace; the caller tears down on failure."""
    ip("link", "add", "name", layout.bridge, "type", "bridge")
    ip("addr", "add", f"{layout.bridge_ip}/{layout.subnet.prefixlen}", "dev", layout.bridge)
    ip("link", "set", layout.bridge, "up")
    for host in layout.hosts:
        add_host(layout, host)


def add_host(layout: Layout, host: Host) -> None:
    ip("netns", "add", host.namespace)
    # The far end is born inside the namespace, so it can be called eth0 in every one of them.
    ip("link", "add", host.veth, "type", "veth", "peer", "name", "eth0", "netns", host.namespace)
    ip("link", "set", host.veth, "master", layout.bridge, "up")
    ip("-n", host.namespace, "addr", "add", f"{host.ip}/{layout.subnet.prefixlen}", "dev", "eth0")
    ip("-n", host.namespace, "link", "set", "eth0", "up")
    ip("-n", host.namespace, "link", "set", "lo", "up")


def set_link(veth: str, up: bool) -> None:
    """Cut (down) or restore (up) a host's only link, as a pulled cable would."""
    ip("link", "set", veth, "up" if up else "down")


def check_subnet_free(layout: Layout) -> None:
    """Refuse a subnet this machine already routes: the hosts would not be reachable."""
    for net, dev in routes():
        if net.overlaps(layout.subnet):
            raise NetnsError(f"subnet {layout.subnet} overlaps {net} already routed on {dev}: "
                             f"choose another (e.g. {unused_subnet()})")


def routes() -> list[tuple[ipaddress.IPv4Network, str]]:
    found = []
    for line in ip("-4", "-o", "route", "show", "table", "all").stdout.splitlines():
        words = line.split()
        try:  # "default", and typed routes ("local 10.0.0.1 ..."), are not a destination
            net = ipaddress.IPv4Network(words[0], strict=False)
        except (ValueError, IndexError):
            continue
        found.append((net, words[words.index("dev") + 1] if "dev" in words else "?"))
    return found


def unused_subnet(base: str = "10.77", start: int = 0) -> str:
    """The first {base}.X.0/24 (X from `start`, wrapping) that this machine does not route."""
    taken = [net for net, _ in routes()]
    for k in range(256):
        candidate = ipaddress.IPv4Network(f"{base}.{(start + k) % 256}.0/24")
        if not any(candidate.overlaps(net) for net in taken):
            return str(candidate)
    raise NetnsError(f"every {base}.X.0/24 is routed here already")


# -- finding and removing a prefix's leftovers ---------------------------------------------------


def namespaces(prefix: str) -> list[str]:
    """This prefix's namespaces, node hosts first and the head last (the order to stop them in)."""
    listed = [line.split()[0] for line in ip("netns", "list").stdout.splitlines() if line.strip()]
    pattern = re.compile(rf"{re.escape(prefix)}-(?:n(\d+)|head)")
    ours = [(m.group(1), m.string) for m in map(pattern.fullmatch, listed) if m]
    return [ns for _, ns in sorted(ours, key=lambda o: (o[0] is None, int(o[0] or 0)))]


def links(prefix: str) -> list[str]:
    """This prefix's veths (root-namespace ends) and bridge, the bridge last."""
    pattern = re.compile(rf"{re.escape(prefix)}(v\d+|br0)")
    shown = ip("-br", "link", "show").stdout.splitlines()
    names = [line.split()[0].split("@")[0] for line in shown if line.strip()]
    return sorted((n for n in names if pattern.fullmatch(n)), key=lambda n: n.endswith("br0"))


def pids(namespace: str) -> list[int]:
    done = ip("netns", "pids", namespace, check=False)
    return [int(p) for p in done.stdout.split() if p.isdigit()] if done.returncode == 0 else []


def stop_processes(namespace: str, timeout: float = 10.0) -> None:
    """SIGTERM every process in the namespace, SIGKILL what is left after `timeout`."""
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
        alive = pids(namespace)
        if not alive:
            return
        for pid in alive:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        wait_until(lambda: not pids(namespace), wait, interval=0.05)
    if pids(namespace):
        raise NetnsError(f"processes {pids(namespace)} in namespace {namespace} survived SIGKILL")


def teardown(prefix: str, timeout: float = 10.0) -> list[str]:
    """Stop the processes in this prefix's namespaces (node hosts, then the head) and delete the
    namespaces, veths and bridge; safe to repeat and after a crash. Returns what it removed."""
    removed = []
    for ns in namespaces(prefix):
        stop_processes(ns, timeout)
    for link in links(prefix):
        ip("link", "del", link, check=False)  # deleting a veth end deletes its peer
        removed.append(link)
    for ns in namespaces(prefix):
        ip("netns", "del", ns, check=False)
        removed.append(ns)
    return removed


@functools.cache
def netns_permitted() -> str | None:
    """None if this machine lets us build the cluster's network, else the reason it does not."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    if shutil.which("ip") is None:
        return "the `ip` command (iproute2) is not installed"
    probe_ns, probe_br = f"shoal-probe-{os.getpid()}", f"shp{os.getpid()}"
    try:
        ip("netns", "add", probe_ns)
        ip("netns", "exec", probe_ns, "true")
        ip("link", "add", "name", probe_br, "type", "bridge")
    except NetnsError as e:
        return str(e)
    finally:
        ip("link", "del", probe_br, check=False)
        ip("netns", "del", probe_ns, check=False)
    return None
