"""A small HTTP client for the dashboard's JSON API and push streams, for tests.

Plain urllib: the tests check the server, so the client side stays as simple as a script's.
`Events` reads a server-sent-event stream on a thread and hands events to `wait_for`.
"""

from __future__ import annotations

import json
import queue
import ssl
import threading
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from common.clock import SystemClock


@dataclass
class Web:
    url: str  # the dashboard's base URL, ending in /
    cookie: str = ""
    ca: Path | None = None
    cert: tuple[Path, Path] | None = None
    headers: dict[str, str] = field(default_factory=dict)

    def _context(self) -> ssl.SSLContext | None:
        if not self.url.startswith("https"):
            return None
        context = ssl.create_default_context(cafile=str(self.ca) if self.ca else None)
        if self.cert:
            context.load_cert_chain(str(self.cert[0]), str(self.cert[1]))
        return context

    def open(self, path: str, method: str = "GET", body: Any = None, timeout: float = 15.0) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.url + path.lstrip("/"), data=data, method=method)
        if data is not None:
            request.add_header("Content-Type", "application/json")
        if self.cookie:
            request.add_header("Cookie", self.cookie)
        for k, v in self.headers.items():
            request.add_header(k, v)
        return urllib.request.urlopen(request, timeout=timeout, context=self._context())

    def call(self, path: str, method: str = "GET", body: Any = None) -> tuple[int, Any]:
        """(HTTP status, decoded JSON body), errors included."""
        try:
            with self.open(path, method, body) as r:
                if method == "POST" and (set_cookie := r.headers.get("Set-Cookie")):
                    self.cookie = set_cookie.split(";", 1)[0]
                return r.status, json.loads(r.read() or b"null")
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"null")

    def get(self, path: str) -> Any:
        status, body = self.call(path)
        assert status == 200, f"GET {path}: {status} {body}"
        return body

    def events(self, path: str) -> Events:
        return Events(self.open(path, timeout=60.0))


class Events:
    """A server-sent-event stream read on a thread: (event, data) pairs in arrival order."""

    def __init__(self, response: Any) -> None:
        self.response = response
        self.queue: queue.Queue[tuple[str, Any]] = queue.Queue()
        self.seen: list[tuple[str, Any]] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        event, data = "message", []
        try:
            for raw in self.response:
                line = raw.decode().rstrip("\n")
                if not line:
                    if data:
                        self.queue.put((event, json.loads("\n".join(data))))
                    event, data = "message", []
                elif line.startswith("event: "):
                    event = line[7:]
                elif line.startswith("data: "):
                    data.append(line[6:])
        except (OSError, ValueError, AttributeError):  # closed under the reader (http.client drops fp)
            pass
        self.queue.put(("closed", None))

    def wait_for(self, predicate: Any, timeout: float = 20.0, what: str = "an event") -> tuple[str, Any]:
        """The first event (from all seen so far) for which predicate(event, data) holds."""
        for item in self.seen:
            if predicate(*item):
                return item
        clock = SystemClock()
        deadline = clock.monotonic() + timeout
        while (left := deadline - clock.monotonic()) > 0:
            try:
                item = self.queue.get(timeout=left)
            except queue.Empty:
                break
            self.seen.append(item)
            if predicate(*item):
                return item
            if item[0] == "closed":
                break
        raise AssertionError(f"no {what} within {timeout:g}s; saw {[e for e, _ in self.seen][-20:]}")

    def close(self) -> None:
        self.response.close()

    def __enter__(self) -> Events:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
