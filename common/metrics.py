"""Serving a daemon's Prometheus metrics: the HTTP endpoint, its address file, and reading
state that lives on the asyncio loop from the endpoint's thread.

Off unless `metrics_listen` is set. prometheus_client serves /metrics from a thread of its
own, while the daemons change their state only on the event loop's thread: a collector that
reads that state hands the reading to the loop (`on_loop`) and waits for the answer with a
deadline. A scrape so never sees a dict in the middle of a change, and a stalled loop makes
the scrape come back without those gauges instead of hanging.

The bound address is written to <state_dir>/metrics.addr (port 0 picks a free port), as the
head writes head.addr, and removed when the daemon stops.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from common import log
from common.errors import ConfigError
from common.hostport import parse_address

if TYPE_CHECKING:  # prometheus_client is imported only when metrics are on
    from prometheus_client import CollectorRegistry
    from prometheus_client.metrics_core import Metric

ADDRESS_FILE = "metrics.addr"
# Prometheus gives up on a scrape after 10 s by default; answer well before that.
LOOP_TIMEOUT = 5.0
_log = log.get("metrics")
T = TypeVar("T")


def on_loop(loop: asyncio.AbstractEventLoop, read: Callable[[], T],
            timeout: float = LOOP_TIMEOUT) -> T | None:
    """`read()` run on `loop`'s thread, from any thread; None if the loop is closed or does
    not get to it within `timeout` seconds. Exceptions from `read` are raised here."""
    try:
        if asyncio.get_running_loop() is loop:
            return read()
    except RuntimeError:
        pass  # no loop runs in this thread: the usual case, the HTTP server's thread
    answer: concurrent.futures.Future[T] = concurrent.futures.Future()

    def run() -> None:
        if answer.set_running_or_notify_cancel():  # False: the scrape gave up meanwhile
            try:
                answer.set_result(read())
            except BaseException as e:  # handed to the waiting thread, which reports it
                answer.set_exception(e)

    try:
        loop.call_soon_threadsafe(run)
    except RuntimeError:  # closed: the daemon is stopping
        return None
    try:
        return answer.result(timeout)
    except concurrent.futures.TimeoutError:
        answer.cancel()
        return None


class LoopCollector:
    """Metric families computed at scrape time by `read`, on the event loop's thread."""

    def __init__(self, loop: asyncio.AbstractEventLoop, read: Callable[[], Iterable[Metric]]) -> None:
        self._loop = loop
        self._read = read

    def describe(self) -> Iterable[Metric]:
        return ()  # so registering never calls collect() (which would wait on the loop)

    def collect(self) -> Iterator[Metric]:
        try:
            families = on_loop(self._loop, lambda: list(self._read()))
        except Exception:  # a bug here must cost the scrape these gauges, not the whole answer
            _log.exception("metrics_read_failed")
            return
        if families is None:
            _log.warning("metrics_read_timed_out", seconds=LOOP_TIMEOUT)
            return
        yield from families


class MetricsServer:
    """The /metrics endpoint on `listen` (HOST:PORT, port 0: any free one), serving `registry`."""

    def __init__(self, listen: str, registry: CollectorRegistry, state_dir: Path) -> None:
        from prometheus_client import start_http_server

        host, port = parse_address(listen, "metrics_listen")
        try:
            self._httpd, self._thread = start_http_server(port, host, registry=registry)
        except OSError as e:
            raise ConfigError(f"cannot serve metrics on {listen}: {e.strerror or e} "
                              f"(choose another with --metrics-listen)") from None
        self.address = connectable(host, self._httpd.server_address[1])
        self._file = state_dir / ADDRESS_FILE
        tmp = self._file.with_suffix(".tmp")
        tmp.write_text(self.address + "\n")
        os.replace(tmp, self._file)
        _log.info("metrics_serving", address=self.address, url=f"http://{self.address}/metrics")

    def close(self) -> None:
        self._file.unlink(missing_ok=True)
        self._httpd.shutdown()
        self._httpd.server_close()


def connectable(host: str, port: int) -> str:
    """HOST:PORT another process on this machine can reach (a wildcard bind -> loopback)."""
    if host in ("0.0.0.0", "", "::"):
        host = "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    return f"{host}:{port}"


def remove_stale(state_dir: Path) -> None:
    """Forget the address file a daemon that was killed left behind (metrics off this time)."""
    (state_dir / ADDRESS_FILE).unlink(missing_ok=True)
