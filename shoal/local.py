"""A local cluster of real processes: head node(s) and N agents on this machine.

Used by `shoal up`, `shoal demo`, the benchmarks and the test suite, so all of them run the
very daemons an operator runs. Each daemon logs to <state_dir>/logs/<name>.log.

With one head node (the default) it is first started on the requested address (port 0 picks
one) and later restarts reuse the port it got, so agents find it again. With several (which
needs a PostgreSQL `database`), each gets a port picked up front, they share the database and
the output directory, one is active and the others stand by, and `address` lists them all.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from common.clock import wait_until

ADDRESS_FILE = "head.addr"
WEB_ADDRESS_FILE = "web.addr"  # headnode/web: the dashboard's URL


class ClusterError(Exception):
    pass


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class LocalCluster:
    state_dir: Path
    nodes: int = 2
    listen: str = "127.0.0.1:0"
    cores: int | None = None
    memory_mb: int | None = None
    head_args: Sequence[str] = ()
    node_args: Sequence[str] = ()
    # Agents stop their tasks when they stop, so nothing outlives the cluster. Off: tasks
    # outlive their agent, to be adopted by the next one (reliability tests).
    stop_tasks_on_exit: bool = True
    heads: int = 1
    database: str = ""
    # TLS with a fresh cluster CA in <state_dir>/tls and a node certificate per agent;
    # otherwise plaintext (a development cluster, as `shoal up` runs).
    secure: bool = False
    # "agent": tasks run as the agent's user, whoever submits them (a development cluster);
    # "owner": as root, each task runs as its owner's Unix user.
    run_as: str = "agent"
    # The head node's dashboard (HOST:PORT, port 0: any); empty: off. Its URL: `web_url`.
    web_listen: str = ""
    address: str = ""
    head_procs: dict[int, subprocess.Popen[bytes]] = field(default_factory=dict)
    agents: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    # The TLS files of the cluster's own Admin client (a secure cluster), made on first use.
    _admin: object = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self.state_dir = Path(self.state_dir)
        self.log_dir = self.state_dir / "logs"
        self.log_dir.mkdir(parents=True, exist_ok=True)
        if self.heads > 1 and not self.database:
            raise ClusterError("several head nodes need a shared PostgreSQL database")
        self._listen = [f"127.0.0.1:{free_port()}" for _ in range(self.heads)] if self.heads > 1 else [self.listen]
        if self.heads > 1:
            self.address = ",".join(self._listen)

    @property
    def node_names(self) -> list[str]:
        return [f"node{i}" for i in range(1, self.nodes + 1)]

    @property
    def head(self) -> subprocess.Popen[bytes] | None:
        """The active head node's process (the only one, with a single head)."""
        active = self.active_head()
        return self.head_procs.get(active if active is not None else 0)

    def head_name(self, i: int) -> str:
        return "head" if i == 0 else f"head{i + 1}"

    # -- lifecycle -------------------------------------------------------------------------

    def start(self, timeout: float = 30.0) -> str:
        for i in range(self.heads):
            self.start_head(i, timeout, wait=i == 0)
        for name in self.node_names:
            self.start_node(name)
        self.wait_nodes(self.node_names, timeout)
        return self.address

    def start_head(self, i: int = 0, timeout: float = 30.0, wait: bool = True,
                   prefix: Sequence[str] = ()) -> str:
        """Start head node i; with wait, until some head node serves. `prefix` runs it through
        another command (e.g. `ip netns exec NS`)."""
        name = self.head_name(i)
        head_dir = self.state_dir / name
        (head_dir / ADDRESS_FILE).unlink(missing_ok=True)
        listen = self._listen[i] if self.heads > 1 else (self.address or self.listen)
        args = ["head", "--listen", listen, "--state-dir", str(head_dir), *self._security(), *self.head_args]
        if self.web_listen:
            args += ["--web-listen", self.web_listen]
        if self.database:
            args += ["--database", self.database, "--output-dir", str(self.state_dir / "output")]
        self.head_procs[i] = self._spawn(name, args, prefix)
        if not wait:
            return self.address
        if not wait_until(lambda: self._serving(), timeout):
            raise ClusterError(f"no head node served within {timeout:g}s:\n{self.log_tail(name)}")
        if self.heads == 1:
            self.address = (head_dir / ADDRESS_FILE).read_text().strip()
        return self.address

    @property
    def web_url(self) -> str:
        """The active head node's dashboard URL ("" when it serves none)."""
        active = self.active_head()
        path = self.state_dir / self.head_name(active or 0) / WEB_ADDRESS_FILE
        try:
            return path.read_text().strip()
        except FileNotFoundError:
            return ""

    def _serving(self) -> bool:
        for i, proc in self.head_procs.items():
            if proc.poll() is not None and self.heads == 1:
                name = self.head_name(i)
                raise ClusterError(f"the head node exited with status {proc.returncode}:\n{self.log_tail(name)}")
        return self.active_head() is not None

    def active_head(self) -> int | None:
        for i, proc in self.head_procs.items():
            if proc.poll() is None and (self.state_dir / self.head_name(i) / ADDRESS_FILE).exists():
                return i
        return None

    def start_node(self, name: str, extra: Sequence[str] = (), head: str = "",
                   prefix: Sequence[str] = ()) -> subprocess.Popen[bytes]:
        """Start agent `name`; `head` overrides the address it is given, `prefix` runs it
        through another command (e.g. `ip netns exec NS`)."""
        args = ["node", "--head", head or self.address, "--name", name, "--state-dir", str(self.state_dir / name),
                "--run-as", self.run_as, *self._security(name)]
        if self.stop_tasks_on_exit:
            args.append("--stop-tasks-on-exit")
        if self.cores:
            args += ["--cores", str(self.cores)]
        if self.memory_mb:
            args += ["--memory-mb", str(self.memory_mb)]
        proc = self._spawn(name, [*args, *self.node_args, *extra], prefix)
        self.agents[name] = proc
        return proc

    def wait_nodes(self, names: Sequence[str], timeout: float = 30.0) -> None:
        """Wait until every named node is connected and Online."""
        from shoal.client import Client, RequestFailed
        from shoal.v1 import admin_pb2

        with Client(self.address, timeout=5.0, tls=self.admin_tls()) as client:

            def online() -> bool:
                for name in names:
                    proc = self.agents.get(name)
                    if proc is not None and proc.poll() is not None:
                        raise ClusterError(f"agent {name} exited with status {proc.returncode}:\n{self.log_tail(name)}")
                try:
                    nodes = {n.name: n for n in client.list_nodes()}
                except RequestFailed:
                    return False
                return all(
                    n in nodes and nodes[n].connected and nodes[n].state == admin_pb2.NODE_STATE_ONLINE for n in names
                )

            if not wait_until(online, timeout, interval=0.05):
                raise ClusterError(f"nodes {', '.join(names)} did not come online within {timeout:g}s")

    def stop(self, timeout: float = 15.0) -> None:
        """Stop agents first (they stop their tasks), then the head nodes."""
        for proc in self.agents.values():
            _signal(proc, signal.SIGTERM)
        for proc in self.agents.values():
            _wait(proc, timeout)
        self.agents.clear()
        self.stop_head(timeout)

    def stop_head(self, timeout: float = 15.0) -> None:
        for proc in self.head_procs.values():
            _signal(proc, signal.SIGTERM)
        for proc in self.head_procs.values():
            _wait(proc, timeout)
        self.head_procs.clear()

    def kill_head(self, i: int | None = None, sig: int = signal.SIGKILL) -> int:
        """Signal head node i (default: the active one) and wait for it to exit; returns which."""
        if i is None:
            i = self.active_head()
            if i is None:
                raise ClusterError("no head node is active")
        proc = self.head_procs.pop(i)
        _signal(proc, sig)
        proc.wait()
        return i

    def kill_node(self, name: str, sig: int = signal.SIGKILL) -> None:
        proc = self.agents.pop(name)
        _signal(proc, sig)
        proc.wait()

    def __enter__(self) -> LocalCluster:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- helpers ---------------------------------------------------------------------------

    def log_tail(self, name: str, lines: int = 30) -> str:
        try:
            text = (self.log_dir / f"{name}.log").read_text(errors="replace")
        except FileNotFoundError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    @property
    def tls_dir(self) -> Path:
        return self.state_dir / "tls"

    def _security(self, node: str = "") -> list[str]:
        """The head's or an agent's security flags: plaintext, or TLS with this cluster's CA."""
        if not self.secure:
            return ["--plaintext"]
        from common import tls
        from common.clock import SystemClock

        if not (self.tls_dir / tls.CA_KEY).exists():
            tls.init(self.tls_dir, SystemClock().now())
        if not node:
            return ["--tls-dir", str(self.tls_dir)]
        key, cert = self.tls_dir / f"node-{node}.key", self.tls_dir / f"node-{node}.crt"
        if not cert.exists():
            key, cert = tls.issue(self.tls_dir, "node", node, SystemClock().now())
        return ["--tls-ca", str(self.tls_dir / tls.CA_CERT), "--tls-cert", str(cert), "--tls-key", str(key)]

    def admin_tls(self) -> object:
        """An Admin's TLS files for this cluster's own checks; None when it is plaintext."""
        if not self.secure:
            return None
        if self._admin is None:
            self._admin = self.user_tls("shoal-local", "Admin")
        return self._admin

    def user_tls(self, user: str, role: str = "") -> object:
        """TLS files for a client acting as `user` (a secure cluster)."""
        from common import tls
        from common.clock import SystemClock

        self._security()
        key, cert = tls.issue(self.tls_dir, "user", user, SystemClock().now(), role)
        return tls.Files(self.tls_dir / tls.CA_CERT, cert, key)

    def _spawn(self, name: str, args: list[str], prefix: Sequence[str] = ()) -> subprocess.Popen[bytes]:
        env = dict(os.environ, GRPC_ENABLE_FORK_SUPPORT="false", PYTHONUNBUFFERED="1")
        log = open(self.log_dir / f"{name}.log", "ab")  # noqa: SIM115 - owned by the child
        try:
            return subprocess.Popen(
                [*prefix, sys.executable, "-m", "shoal", *args],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,  # Ctrl-C in a terminal goes to `shoal up`, which stops them in order
            )
        finally:
            log.close()


def _signal(proc: subprocess.Popen[bytes], sig: int) -> None:
    if proc.poll() is None:
        try:
            proc.send_signal(sig)
        except ProcessLookupError:
            pass


def _wait(proc: subprocess.Popen[bytes], timeout: float) -> None:
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
