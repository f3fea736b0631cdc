"""deploy/: the secure example configs load and are secure, the systemd units pass
`systemd-analyze verify`, the compose file is a secure head node and three agents, and
make-certs.sh's layout with the example configs makes a working TLS cluster.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

from common.config import HeadConfig, NodeConfig, load
from common.hostport import parse_address
from tests.conftest import REPO, eventually

DEPLOY = REPO / "deploy"
SECURE = DEPLOY / "secure"
UNITS = ("shoal-head.service", "shoal-node.service")
NODES = ("node1", "node2", "node3")


# -- example configs -------------------------------------------------------------------------

@pytest.mark.parametrize("path", sorted(SECURE.glob("*.toml")), ids=lambda p: p.name)
def test_each_secure_example_loads_and_is_not_plaintext(path: Path) -> None:
    tables = tomllib.loads(path.read_text())
    assert tables.keys() & {"head", "node"}, f"{path.name} has neither a [head] nor a [node] table"
    if "head" in tables:
        head = load(HeadConfig, "head", path, {})
        assert not head.plaintext and head.tls_dir
        assert parse_address(head.listen)[0] == "0.0.0.0", "a cluster's head node listens beyond loopback"
        assert head.admins and head.rate_limit > 0
    if "node" in tables:
        node = load(NodeConfig, "node", path, {})
        assert not node.plaintext and node.tls_ca
        assert (node.tls_cert and node.tls_key) or node.join_token, "an agent needs a credential"
        assert node.run_as == "owner" and not node.allow_root_tasks and node.isolation == "auto"


def test_the_secure_examples_cover_both_daemons() -> None:
    assert {p.name for p in SECURE.glob("*.toml")} >= {"head.toml", "node.toml"}


# -- systemd units ---------------------------------------------------------------------------

def _verify(unit: Path) -> tuple[int, list[str]]:
    """Exit status of `systemd-analyze verify UNIT` and the lines it says about that unit."""
    done = subprocess.run([shutil.which("systemd-analyze") or "systemd-analyze", "verify", str(unit)],
                          capture_output=True, text=True, timeout=60)
    lines = (done.stdout + done.stderr).splitlines()
    return done.returncode, [line for line in lines if unit.name in line]


@pytest.fixture(scope="module")
def verifier(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Skip unless systemd-analyze runs here and really reports a broken unit (it warns about an
    unknown key and still exits 0, so the tests read what it says too)."""
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed")
    probe = tmp_path_factory.mktemp("units")
    good, bad = probe / "shoal-probe-good.service", probe / "shoal-probe-bad.service"
    good.write_text("[Service]\nExecStart=/bin/true\n")
    bad.write_text("[Service]\nExecStart=/bin/true\nNoSuchKey=1\n")
    status, said = _verify(good)
    if status != 0 or said:
        pytest.skip(f"systemd-analyze verify cannot run here (a trivial unit gives {status}: {said})")
    if not _verify(bad)[1]:
        pytest.skip("systemd-analyze verify here does not report an unknown key, so it would prove nothing")


@pytest.mark.parametrize("name", UNITS)
def test_systemd_unit_passes_verify(name: str, tmp_path: Path, verifier: None) -> None:
    text = (DEPLOY / "systemd" / name).read_text()
    assert "ExecStart=/opt/shoal/bin/shoal " in text
    # verify checks that ExecStart's binary exists: point a copy at this checkout's own.
    shoal = shutil.which("shoal", path=str(Path(sys.executable).parent)) or sys.executable
    copy = tmp_path / name
    copy.write_text(text.replace("/opt/shoal/bin/shoal", shoal))
    status, said = _verify(copy)
    assert status == 0 and not said, f"systemd-analyze verify {name}: exit {status}\n" + "\n".join(said)


# -- compose ---------------------------------------------------------------------------------

def _compose() -> dict:
    """deploy/compose.yaml as data: by PyYAML if this venv has it (it is not a dependency),
    else as `docker compose config` resolves it."""
    path = DEPLOY / "compose.yaml"
    try:
        import yaml  # type: ignore[import-untyped]
    except ImportError:
        yaml = None
    if yaml is not None:
        return yaml.safe_load(path.read_text())
    docker = shutil.which("docker")
    if docker is None:
        pytest.skip("neither PyYAML in this venv nor docker to read deploy/compose.yaml")
    if subprocess.run([docker, "compose", "version"], capture_output=True, timeout=60).returncode != 0:
        pytest.skip("no PyYAML in this venv and docker has no compose plugin to read deploy/compose.yaml")
    done = subprocess.run([docker, "compose", "-f", str(path), "config", "--format", "json"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, f"docker compose config: {done.stderr}"
    return json.loads(done.stdout)


def _mounts(service: dict) -> dict[str, str]:
    """target -> source of a service's volumes, short ("src:dst:ro") or long syntax."""
    out = {}
    for v in service.get("volumes", []):
        if isinstance(v, str):
            source, target = v.split(":")[:2]
        else:
            source, target = v.get("source", ""), v["target"]
        out[target] = source
    return out


def test_compose_is_a_secure_head_node_and_three_agents() -> None:
    services = _compose()["services"]
    assert {"head", *NODES} <= services.keys()
    head = services["head"]
    assert head["command"][0] == "head"
    assert _mounts(head)["/etc/shoal/shoal.toml"].endswith("secure/head.toml")
    for name in NODES:
        node = services[name]
        assert node["command"][0] == "node" and node["hostname"] == name, "the name its certificate carries"
        assert "head" in node["depends_on"]
        mounts = _mounts(node)
        assert mounts["/etc/shoal/shoal.toml"].endswith("secure/node.toml")
        assert mounts["/etc/shoal/tls"].endswith(f"pki-{name}"), "each agent sees its own certificate only"
    for name, service in services.items():
        assert "--plaintext" not in service.get("command", []), f"{name} runs plaintext"
        if name != "certs":
            assert not any(s.endswith("pki-ca") for s in _mounts(service).values()), f"{name} sees the CA key"


# -- a cluster from the examples -------------------------------------------------------------

@pytest.fixture
def shoal_on_path(tmp_path: Path) -> dict[str, str]:
    """An environment whose `shoal` is this checkout's, for make-certs.sh."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "shoal").write_text(f'#!/bin/sh\nexec {sys.executable} -m shoal "$@"\n')
    (bin_dir / "shoal").chmod(0o755)
    return dict(os.environ, PATH=f"{bin_dir}:{os.environ['PATH']}", PYTHONPATH=str(REPO),
                GRPC_ENABLE_FORK_SUPPORT="false", PYTHONUNBUFFERED="1")


def _make_certs(env: dict[str, str], out: Path, *names: str) -> None:
    done = subprocess.run(["sh", str(SECURE / "make-certs.sh"), str(out), *names],
                          capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr


@pytest.fixture
def spawn(tmp_path: Path, shoal_on_path: dict[str, str]) -> Iterator[object]:
    procs: list[subprocess.Popen[bytes]] = []

    def start(name: str, *args: str) -> subprocess.Popen[bytes]:
        with open(tmp_path / f"{name}.log", "ab") as log:
            procs.append(subprocess.Popen([sys.executable, "-m", "shoal", *args], stdin=subprocess.DEVNULL,
                                          stdout=log, stderr=subprocess.STDOUT, env=shoal_on_path))
        return procs[-1]

    yield start
    for proc in reversed(procs):  # agents first, then the head node
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.mark.cluster
def test_make_certs_and_the_secure_examples_make_a_working_cluster(
        tmp_path: Path, shoal_on_path: dict[str, str], spawn) -> None:  # type: ignore[no-untyped-def]
    from common import tls
    from shoal.client import Client
    from shoal.v1 import admin_pb2

    pki = tmp_path / "pki"
    _make_certs(shoal_on_path, pki, "head", "node1")
    ca, node1 = (pki / "ca" / "ca.crt").read_bytes(), (pki / "node1" / "node.crt").read_bytes()
    _make_certs(shoal_on_path, pki, "head", "node1", "node2")
    assert (pki / "ca" / "ca.crt").read_bytes() == ca, "a second run keeps the CA"
    assert (pki / "node1" / "node.crt").read_bytes() == node1 and (pki / "node2" / "node.crt").exists()
    assert not (pki / "node1" / "ca.key").exists() and not (pki / "head" / "ca.key").exists()

    # The examples as they are, but for where the files are on this machine.
    head = spawn("head", "head", "--config", str(SECURE / "head.toml"), "--listen", "127.0.0.1:0",
                 "--state-dir", str(tmp_path / "head"), "--tls-dir", str(pki / "head"))
    addr_file = tmp_path / "head" / "head.addr"
    eventually(lambda: head.poll() is not None or addr_file.exists(), 30, "the head node to serve")
    assert head.poll() is None, (tmp_path / "head.log").read_text()
    address = addr_file.read_text().strip()
    node = pki / "node1"
    agent = spawn("node1", "node", "--config", str(SECURE / "node.toml"), "--head", address,
                  "--name", "node1", "--state-dir", str(tmp_path / "node1"), "--tls-ca", str(node / "ca.crt"),
                  "--tls-cert", str(node / "node.crt"), "--tls-key", str(node / "node.key"),
                  "--stop-tasks-on-exit")

    admin = tls.Files(pki / "head" / "ca.crt", pki / "head" / "admin.crt", pki / "head" / "admin.key")
    with Client(address, timeout=5.0, tls=admin) as client:
        def online() -> bool:
            assert agent.poll() is None, (tmp_path / "node1.log").read_text()
            return any(n.name == "node1" and n.connected and n.state == admin_pb2.NODE_STATE_ONLINE
                       for n in client.list_nodes())

        eventually(online, 30, "node1 to join over TLS with its certificate")
        # make-certs.sh's admin.crt carries the Admin role: it may create join tokens.
        assert client.call_admin("CreateJoinToken", admin_pb2.CreateJoinTokenRequest()).token
