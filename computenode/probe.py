"""Is the head node stalled, or out of reach? A raw TCP look at its address, below gRPC.

When the head stops answering, an agent cannot tell from gRPC alone whether the head is
stalled (SIGSTOPped, paused, restarting) or cut off by the network. The difference decides
whether its tasks' lease may run on (computenode/lease.py): a stalled or restarting head
declares no node lost, and one that runs again gives every node a fresh grace; a head the
network cut off may well be running, and will run the tasks elsewhere.

The look: connect, send a few bytes, wait a moment for anything back. Measured here against
a grpc.aio server: a running one answers at once (its HTTP/2 SETTINGS, or a TLS alert, or it
closes the connection: "alive"); a SIGSTOPped one's kernel completes the connection and
acknowledges the bytes, but nothing comes back ("stalled"); with no process listening the
connection is refused ("down"); across a cut link it times out, or the bytes stay
unacknowledged ("unreachable"). Only "stalled" and "down" extend a lease, and only for the
head that last renewed it, since a standby's address refuses connections too.

One connection is kept while the head stays stalled and each later look sends two more bytes
on it, acknowledged or not (the socket's unacknowledged byte count, SIOCOUTQ): a frozen head
accepts nothing, so a new connection per look would pile up in its listen queue until that
overflowed and the looks timed out (measured: about 30 s at four looks a second).
"""

from __future__ import annotations

import asyncio
import fcntl
import socket
import struct
import termios

from common.hostport import parse_address

ALIVE, STALLED, DOWN, UNREACHABLE = "alive", "stalled", "down", "unreachable"
HELLO = b"SHOAL LEASE PROBE\r\n\r\n"  # not HTTP/2: a live server closes on it or sends SETTINGS first
MORE = b"\r\n"


def _unacked(sock: socket.socket) -> int:
    return struct.unpack("i", fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, b"\0\0\0\0"))[0]


class Prober:
    def __init__(self) -> None:
        self._sock: socket.socket | None = None
        self._address = ""

    async def probe(self, address: str, timeout: float = 1.0) -> str:
        loop = asyncio.get_running_loop()
        if self._sock is not None and self._address != address:
            self.close()
        fresh = self._sock is None
        if fresh:
            host, port = parse_address(address, "head")
            try:
                infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
                sock = socket.socket(infos[0][0], socket.SOCK_STREAM)
                sock.setblocking(False)
                try:
                    await asyncio.wait_for(loop.sock_connect(sock, infos[0][4]), timeout)
                except BaseException:
                    sock.close()
                    raise
            except ConnectionRefusedError:
                return DOWN
            except (OSError, TimeoutError):
                return UNREACHABLE
            self._sock, self._address = sock, address
        sock = self._sock
        assert sock is not None
        try:
            sock.send(HELLO if fresh else MORE)
        except BlockingIOError:
            pass  # the send buffer is full: nothing was acknowledged for long
        except OSError:
            self.close()
            return ALIVE  # reset by a live peer
        try:
            data = await asyncio.wait_for(loop.sock_recv(sock, 1), timeout)
        except TimeoutError:
            try:
                waiting = _unacked(sock)
            except OSError:
                waiting = 1
            if waiting:
                self.close()  # not even its kernel answers: the network, or the host is gone
                return UNREACHABLE
            return STALLED
        except OSError:
            self.close()
            return ALIVE
        del data  # bytes, or b"" at its close: a live process either way
        self.close()
        return ALIVE

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
