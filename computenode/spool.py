"""The agent's durable record of each task it runs, one directory per (task, attempt).

    <state_dir>/spool/<job>.<task>.<instance>.<attempt>/
        meta.json   what the agent needs to adopt the task after its own restart: the run
                    id, the process id and start time, runtime deadline, the user's output files
        stdout      the task writes its output here itself (its fd 1 and 2 are these files, not
        stderr      pipes to the agent), so it never notices the agent dying
        status      the exit code, written by the task's wrapper shell when the command ends

The head is sent output from these files from the offset it says it has, so output written
while the agent or the head was down is sent afterwards. A directory is removed once the head
has acknowledged the task's exit. Growth of the files is signalled by inotify, which only
wakes the agent; sizes are read from the files themselves.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from inotify_simple import INotify, flags

from common.ids import TaskId

STREAMS = ("stdout", "stderr")
Key = tuple[TaskId, int]


@dataclass
class Meta:
    task: str  # "J.T.I"
    attempt: int
    run_id: str  # also in the task's environment, to find it if the pid was never written
    pid: int = 0
    start_time: float = 0.0  # the process's start time, to tell it from a reused pid
    runtime_deadline: float = 0.0  # wall time; 0: none
    user_files: dict[str, str] = field(default_factory=dict)  # stream -> absolute path
    killing: bool = False
    runtime_exceeded: bool = False
    error: str = ""  # could not start
    gpus: list[str] = field(default_factory=list)  # GPU device ids it was given
    out_of_memory: bool = False
    memory_mb: int = 0  # its memory limit; 0: none
    cgroups: list[str] = field(default_factory=list)  # its cgroup directories (cgroups.py)

    @property
    def key(self) -> Key:
        return (TaskId.parse(self.task), self.attempt)


class Spool:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self._read_fds: dict[tuple[Key, str], int] = {}
        self._inotify: INotify | None = None
        self._watches: dict[int, Key] = {}

    def dir(self, key: Key) -> Path:
        task, attempt = key
        return self.root / f"{task.job}.{task.task}.{task.instance}.{attempt}"

    # -- lifecycle of one task's record ----------------------------------------------------

    def create(self, meta: Meta) -> tuple[int, int]:
        """A fresh record; returns the (stdout, stderr) fds to give the task's process."""
        key = meta.key
        path = self.dir(key)
        shutil.rmtree(path, ignore_errors=True)
        path.mkdir(parents=True)
        self.save(meta)
        fds = []
        for stream in STREAMS:
            fds.append(os.open(path / stream, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600))
        self._open(key)
        return fds[0], fds[1]

    def save(self, meta: Meta) -> None:
        path = self.dir(meta.key)
        tmp = path / "meta.json.tmp"
        tmp.write_text(json.dumps(vars(meta)))  # flat fields: no need for asdict's deep copy
        os.replace(tmp, path / "meta.json")

    def status_path(self, key: Key) -> Path:
        return self.dir(key) / "status"

    def exit_status(self, key: Key) -> int | None:
        try:
            text = self.status_path(key).read_text().strip()
        except FileNotFoundError:
            return None
        return int(text) if text.lstrip("-").isdigit() else None

    def existing(self) -> list[Meta]:
        """Records left by an earlier run of the agent, to adopt."""
        metas = []
        for path in sorted(self.root.iterdir()):
            try:
                metas.append(Meta(**json.loads((path / "meta.json").read_text())))
            except (FileNotFoundError, NotADirectoryError, ValueError, TypeError):
                shutil.rmtree(path, ignore_errors=True)  # half-written: the task never started
        for meta in metas:
            self._open(meta.key)
        return metas

    def remove(self, key: Key) -> None:
        for stream in STREAMS:
            fd = self._read_fds.pop((key, stream), None)
            if fd is not None:
                os.close(fd)
        for wd, watched in list(self._watches.items()):
            if watched == key:
                del self._watches[wd]
                if self._inotify is not None:
                    try:
                        self._inotify.rm_watch(wd)
                    except OSError:
                        pass
        shutil.rmtree(self.dir(key), ignore_errors=True)

    # -- output ----------------------------------------------------------------------------

    def size(self, key: Key, stream: str) -> int:
        fd = self._read_fds.get((key, stream))
        return os.fstat(fd).st_size if fd is not None else 0

    def read(self, key: Key, stream: str, offset: int, limit: int) -> bytes:
        fd = self._read_fds.get((key, stream))
        return os.pread(fd, limit, offset) if fd is not None else b""

    def watch(self, on_growth: Callable[[Key], None]) -> int:
        """Start signalling growth of output files; returns the fd to put on the event loop,
        whose readiness means `pump()` has news."""
        self._inotify = INotify(nonblocking=True)
        self._on_growth = on_growth
        for key in {k for k, _ in self._read_fds}:
            self._add_watch(key)
        return self._inotify.fileno()

    def pump(self) -> None:
        assert self._inotify is not None
        # Only output counts: meta.json and status change too, and need no one woken.
        grown = {self._watches.get(e.wd) for e in self._inotify.read(timeout=0) if e.name in STREAMS}
        for key in grown:
            if key is not None:
                self._on_growth(key)

    def close(self) -> None:
        for fd in self._read_fds.values():
            os.close(fd)
        self._read_fds.clear()
        if self._inotify is not None:
            self._inotify.close()

    def _open(self, key: Key) -> None:
        for stream in STREAMS:
            if (key, stream) not in self._read_fds:
                self._read_fds[(key, stream)] = os.open(self.dir(key) / stream, os.O_RDONLY | os.O_CLOEXEC)
        if self._inotify is not None:
            self._add_watch(key)

    def _add_watch(self, key: Key) -> None:
        assert self._inotify is not None
        wd = self._inotify.add_watch(self.dir(key), flags.MODIFY)
        self._watches[wd] = key
