"""The channel options every client and agent uses to reach the head node (common/addr.py),
checked against a real gRPC server behind a loopback proxy that can slow the connection."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from concurrent import futures

import grpc
import pytest
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from common.addr import channel

SLOW = 0.5  # seconds the proxy holds the server's first bytes: a busy head, a loaded machine


class SlowProxy:
    """Forwards loopback TCP to `target`, holding back the server's first bytes on each
    connection for SLOW seconds (so its HTTP/2 SETTINGS frame arrives late)."""

    def __init__(self, target: int) -> None:
        self._target = target
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._closing = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._closing:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            server = socket.create_connection(("127.0.0.1", self._target))
            threading.Thread(target=self._pipe, args=(client, server, 0.0), daemon=True).start()
            threading.Thread(target=self._pipe, args=(server, client, SLOW), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket, hold: float) -> None:
        try:
            while data := src.recv(65536):
                if hold:
                    # The point of the proxy: the client must wait this long for the server's
                    # first bytes. Not a wait for anything to happen.
                    time.sleep(hold)
                    hold = 0.0
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self) -> None:
        self._closing = True
        self._listener.close()


@pytest.fixture()
def slow_server() -> Iterator[int]:
    server = grpc.server(futures.ThreadPoolExecutor(2))
    health_pb2_grpc.add_HealthServicer_to_server(health.HealthServicer(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    proxy = SlowProxy(port)
    try:
        yield proxy.port
    finally:
        proxy.close()
        server.stop(None)


def test_a_head_slow_to_answer_a_new_connection_is_waited_for(slow_server: int) -> None:
    """gRPC takes `grpc.min_reconnect_backoff_ms` as the deadline of each connection attempt,
    not only as a backoff: at 100 ms, a head node too busy to finish a (TLS) handshake within
    100 ms failed every call on a new channel with UNAVAILABLE "connection attempt timed out
    before receiving SETTINGS frame", as a loaded CI machine once showed."""
    with channel(f"127.0.0.1:{slow_server}") as ch:
        stub = health_pb2_grpc.HealthStub(ch)
        response = stub.Check(health_pb2.HealthCheckRequest(), timeout=10.0)
    assert response.status == health_pb2.HealthCheckResponse.SERVING
