"""The agent's copy of each task's output, on disk, until the head has acknowledged the exit.

Output goes pipe -> spool file -> head, so a task may write faster than the network takes
it, and output written while the head is unreachable is sent when it is back, from the
offset the head says it has. Files are named by task and attempt; they are removed when
the head acknowledges the task's exit.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

STREAMS = ("stdout", "stderr")


class Spool:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        shutil.rmtree(self.root, ignore_errors=True)  # nothing survives an agent restart (yet)
        self.root.mkdir(parents=True, exist_ok=True)
        self._fds: dict[tuple[object, str], int] = {}
        self._sizes: dict[tuple[object, str], int] = {}

    def _name(self, key: tuple[object, int], stream: str) -> Path:
        task, attempt = key
        return self.root / f"{task}.{attempt}.{stream}"

    def open(self, key: tuple[object, int]) -> None:
        for stream in STREAMS:
            fd = os.open(self._name(key, stream), os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND | os.O_CLOEXEC,
                         0o600)
            self._fds[(key, stream)] = fd
            self._sizes[(key, stream)] = 0

    def append(self, key: tuple[object, int], stream: str, data: bytes) -> None:
        fd = self._fds.get((key, stream))
        if fd is None:
            return
        os.write(fd, data)
        self._sizes[(key, stream)] += len(data)

    def size(self, key: tuple[object, int], stream: str) -> int:
        return self._sizes.get((key, stream), 0)

    def read(self, key: tuple[object, int], stream: str, offset: int, limit: int) -> bytes:
        fd = self._fds.get((key, stream))
        if fd is None:
            return b""
        return os.pread(fd, limit, offset)

    def remove(self, key: tuple[object, int]) -> None:
        for stream in STREAMS:
            fd = self._fds.pop((key, stream), None)
            self._sizes.pop((key, stream), None)
            if fd is not None:
                os.close(fd)
            try:
                self._name(key, stream).unlink()
            except FileNotFoundError:
                pass
