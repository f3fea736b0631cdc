"""Head-node addresses: one HOST:PORT, or several separated by commas (an active head node and
its standbys). Several become one gRPC target of resolved addresses with the pick_first
policy, so a channel connects to whichever head is listening (standbys do not listen) and
looks again when that one goes away."""

from __future__ import annotations

import socket
from collections.abc import Sequence
from typing import Any

import grpc

from common.errors import ConfigError
from common.hostport import parse_address
from common.tls import Files

# For every channel to the head nodes. gRPC backs off reconnecting up to 120 s by default,
# and shares subchannels (with their backoff) between channels to the same address: a standby
# that refused connections for minutes would then be tried late after it takes over. Our own
# channels, a short cap: a refused connect costs next to nothing. Not min_reconnect_backoff_ms:
# gRPC takes that as each connection attempt's deadline (default 20 s), and at 100 ms a head
# slow to finish a TLS handshake on a loaded machine failed calls with "connection attempt
# timed out before receiving SETTINGS frame" (tests/integration/test_channel.py).
# Keepalive: a head that froze (SIGSTOP, a paused VM) keeps its connections open, and without
# pings a long-lived client would wait on it call after call; with them the connection is
# found dead within 15 s and pick_first moves on to the next address, the head that took over
# (the head permits a ping every 5 s, headnode/api/server.py). grpcio 1.85 times a keepalive
# ping out after grpc.http2.ping_timeout_ms (default 60 s), not keepalive_timeout_ms: measured
# here, a call to a SIGSTOPped head failed after 60 s with only the latter, 2 s with both at 1 s.
HEAD_CHANNEL_OPTIONS: list[tuple[str, int]] = [
    ("grpc.use_local_subchannel_pool", 1),
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 2000),
    ("grpc.keepalive_time_ms", 10_000),
    ("grpc.keepalive_timeout_ms", 5_000),
    ("grpc.http2.ping_timeout_ms", 5_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.max_pings_without_data", 0),
]


def addresses(text: str) -> list[str]:
    found = [a.strip() for a in text.split(",") if a.strip()]
    if not found:
        raise ConfigError("no head node address given (HOST:PORT[,HOST:PORT...])")
    for a in found:
        parse_address(a, "head")
    return found


def grpc_target(text: str) -> str:
    found = addresses(text)
    if len(found) == 1:
        return found[0]  # gRPC resolves a single name itself (and re-resolves it)
    v4, v6 = [], []
    for a in found:
        host, port = parse_address(a, "head")
        try:
            info = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except socket.gaierror as e:
            raise ConfigError(f"head address {a!r}: cannot resolve {host!r} ({e.strerror})") from None
        family, _, _, _, sockaddr = info[0]
        (v4 if family == socket.AF_INET else v6).append((sockaddr[0], port))
    if v4 and v6:
        raise ConfigError(f"head addresses {text!r} mix IPv4 and IPv6; give them all in one family")
    if v4:
        return "ipv4:" + ",".join(f"{ip}:{port}" for ip, port in v4)
    return "ipv6:" + ",".join(f"[{ip}]:{port}" for ip, port in v6)


def channel(address: str, files: Files | None = None, aio: bool = False,
            options: Sequence[tuple[str, object]] = HEAD_CHANNEL_OPTIONS, name_from: str = "") -> Any:
    """A channel to the head node(s): TLS checked against the cluster CA when `files` are
    given (with the client's certificate when they name one), else plaintext. With several
    head addresses, TLS checks every head against the first one's name: give all head nodes
    a certificate that names each of them (`shoal certs init --name h1 --name h2`).
    `name_from`: the full list one `address` of it was taken from (an agent connects to one
    head at a time), whose first name TLS checks the same way."""
    mod = grpc.aio if aio else grpc
    target = grpc_target(address)
    if files is None:
        return mod.insecure_channel(target, options=list(options))
    try:
        ca, cert, key = files.read()
    except ValueError as e:
        raise ConfigError(str(e)) from None
    creds = grpc.ssl_channel_credentials(ca, key, cert)
    extra = list(options)
    found = addresses(name_from or address)
    if len(found) > 1:
        extra.append(("grpc.ssl_target_name_override", parse_address(found[0], "head")[0]))
    return mod.secure_channel(target, creds, options=extra)
