"""The agent's durable record of each task it runs: a few files per (task, attempt), side by
side in one directory, named <job>.<task>.<instance>.<attempt>.<kind>:

    .meta       what the agent needs to adopt the task after its own restart: the run id,
                the process id, runtime deadline, the user's output files
    .stdout     the task writes its output here itself (its fd 1 and 2 are these files, not
    .stderr     pipes to the agent), so it never notices the agent dying
    .status     the exit code, written by the task's wrapper shell when the command ends
    .hostfile   a multi-node task's MPI hostfile

The head is sent output from these files from the offset it says it has, so output written
while the agent or the head was down is sent afterwards. A record is removed once the head
has acknowledged the task's exit. Growth of the files is signalled by inotify (one watch on
the directory), which only wakes the agent; sizes are read from the files themselves.

One directory rather than one per record: a directory's creation and removal were the two
slowest file-system calls of a trivial task here (ext4 waits on its journal, which the head's
commits keep busy). Records an older agent left in directories are moved out on start-up.
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
_KINDS = ("meta", *STREAMS, "status", "hostfile")
_OLD_NAMES = {"meta.json": "meta", "stdout": "stdout", "stderr": "stderr", "status": "status", "hostfile": "hostfile"}
Key = tuple[TaskId, int]


@dataclass
class Meta:
    task: str  # "J.T.I"
    attempt: int
    run_id: str  # also in the task's environment, to find it if the pid was never written
    pid: int = 0
    start_time: float = 0.0  # the process's start time (0: not read; the run id tells it from a reused pid)
    runtime_deadline: float = 0.0  # wall time; 0: none
    user_files: dict[str, str] = field(default_factory=dict)  # stream -> absolute path
    killing: bool = False
    runtime_exceeded: bool = False
    error: str = ""  # could not start
    gpus: list[str] = field(default_factory=list)  # GPU device ids it was given
    out_of_memory: bool = False
    memory_mb: int = 0  # its memory limit; 0: none
    cgroups: list[str] = field(default_factory=list)  # its cgroup directories (cgroups.py)
    cwd: str = ""  # its working directory
    ids: list[int] = field(default_factory=list)  # uid, gid, groups: whose files it opens (runas.RunAs)

    @property
    def key(self) -> Key:
        return (TaskId.parse(self.task), self.attempt)


class Spool:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self._root = str(self.root)
        self._read_fds: dict[tuple[Key, str], int] = {}
        self._inotify: INotify | None = None
        self._outputs: dict[str, Key] = {}  # "<name>.stdout" and "<name>.stderr" -> key, for inotify
        self._lengths: dict[Key, int] = {}  # key -> the longest .meta written
        self._meta_fds: dict[Key, int] = {}  # .meta kept open from create() to the next save()

    @staticmethod
    def name(key: Key) -> str:
        """The record's name, <job>.<task>.<instance>.<attempt> (also its cgroup's)."""
        task, attempt = key
        return f"{task.job}.{task.task}.{task.instance}.{attempt}"

    def file(self, key: Key, kind: str) -> str:
        # A string, not a Path: pathlib's joins were a twentieth of the agent's time per task.
        return f"{self._root}/{self.name(key)}.{kind}"

    # -- lifecycle of one task's record ----------------------------------------------------

    def create(self, meta: Meta, key: Key | None = None) -> tuple[int, int]:
        """A fresh record; returns the (stdout, stderr) fds to give the task's process. They
        stay the spool's (it reads the output through them; remove() closes them). `key`:
        meta.key, when the caller has it (parsing it again costs)."""
        key = key or meta.key
        # O_TRUNC, and the status unlinked: nothing of an attempt that never started (an
        # agent killed between this and the start) is taken for this one's.
        try:
            os.unlink(self.file(key, "status"))
        except FileNotFoundError:
            pass
        # Kept open for the save that follows the start (the pid): each open of a file cost
        # about 40 us of CPU here, and a trivial task made seven.
        self._meta_fds[key] = os.open(self.file(key, "meta"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        self._lengths[key] = 0
        self.save(meta, key, keep=True)
        # One descriptor per stream, both the task's output (O_APPEND) and what the agent
        # reads it through (pread, which ignores the shared offset).
        for stream in STREAMS:
            self._read_fds[(key, stream)] = os.open(
                self.file(key, stream), os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND | os.O_CLOEXEC, 0o600)
        self._name_outputs(key)
        return self._read_fds[(key, "stdout")], self._read_fds[(key, "stderr")]

    def save(self, meta: Meta, key: Key | None = None, keep: bool = False) -> None:
        """Rewrite the record in place with one pwrite, padded with blanks (which JSON allows)
        to at least its last length. A write() is all or nothing to anyone who reads the file
        later, even if the agent dies just after it, so the file always holds one whole
        record; only a machine crash could tear it, and that leaves no task to adopt. This
        spares the file system a create and a rename per save, which on ext4 here cost more
        than the rest of starting a trivial task. `keep`: leave the file open for the next
        save."""
        key = key or meta.key
        data = json.dumps(vars(meta)).encode()  # flat fields: no need for asdict's deep copy
        # Opened for each save rather than kept for the task's life (create()'s stays open only
        # until the save after the start): a running task already holds two of the agent's
        # descriptors (its output), and the soft limit is often 1,024.
        fd = self._meta_fds.pop(key, None)
        if fd is None:
            fd = os.open(self.file(key, "meta"), os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            last = self._lengths.get(key)
            if last is None:  # a record an earlier agent wrote: its length is the file's
                last = os.fstat(fd).st_size
            os.pwrite(fd, data.ljust(last), 0)
        finally:
            if keep:
                self._meta_fds[key] = fd
            else:
                os.close(fd)
        self._lengths[key] = max(last, len(data))

    def status_path(self, key: Key) -> str:
        return self.file(key, "status")

    def exit_status(self, key: Key) -> int | None:
        try:
            with open(self.status_path(key), "rb") as f:
                text = f.read().decode(errors="replace").strip()
        except FileNotFoundError:
            return None
        return int(text) if text.lstrip("-").isdigit() else None

    def existing(self) -> list[Meta]:
        """Records left by an earlier run of the agent, to adopt."""
        self._move_old_records()
        metas = []
        for path in sorted(self.root.glob("*.meta")):
            try:
                metas.append(Meta(**json.loads(path.read_text())))
            except (FileNotFoundError, ValueError, TypeError):  # half-written: the task never started
                _unlink_record(str(path.with_suffix("")))
        for meta in metas:
            self._open(meta.key)
        return metas

    def _move_old_records(self) -> None:
        """Records an agent before 2026-12 kept in a directory each: moved out, file by file."""
        for path in sorted(p for p in self.root.iterdir() if p.is_dir()):
            for child in path.iterdir():
                kind = _OLD_NAMES.get(child.name)
                if kind is not None:
                    os.replace(child, f"{self._root}/{path.name}.{kind}")
            shutil.rmtree(path, ignore_errors=True)

    def remove(self, key: Key) -> None:
        fd = self._meta_fds.pop(key, None)
        if fd is not None:
            os.close(fd)
        name = self.name(key)
        for stream in STREAMS:
            fd = self._read_fds.pop((key, stream), None)
            if fd is not None:
                os.close(fd)
            self._outputs.pop(f"{name}.{stream}", None)
        self._lengths.pop(key, None)
        _unlink_record(f"{self._root}/{name}")

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
        self._inotify.add_watch(self._root, flags.MODIFY)
        return self._inotify.fileno()

    def pump(self) -> None:
        assert self._inotify is not None
        # Only output counts: .meta and .status change too, and need no one woken.
        outputs = self._outputs
        grown = {outputs.get(e.name) for e in self._inotify.read(timeout=0)}
        for key in grown:
            if key is not None:
                self._on_growth(key)

    def close(self) -> None:
        for fd in (*self._read_fds.values(), *self._meta_fds.values()):
            os.close(fd)
        self._read_fds.clear()
        self._meta_fds.clear()
        self._lengths.clear()
        self._outputs.clear()
        if self._inotify is not None:
            self._inotify.close()

    def _open(self, key: Key) -> None:
        for stream in STREAMS:
            if (key, stream) not in self._read_fds:
                self._read_fds[(key, stream)] = os.open(self.file(key, stream), os.O_RDONLY | os.O_CLOEXEC)
        self._name_outputs(key)

    def _name_outputs(self, key: Key) -> None:
        name = self.name(key)
        for stream in STREAMS:
            self._outputs[f"{name}.{stream}"] = key


def _unlink_record(base: str) -> None:
    """Remove every file of the record whose paths are `base`.<kind>."""
    for kind in _KINDS:
        try:
            os.unlink(f"{base}.{kind}")
        except FileNotFoundError:
            pass
