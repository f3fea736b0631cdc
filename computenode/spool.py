"""The agent's durable record of each task it runs: a few files per (task, attempt), side by
side in one directory, named <slot>.<kind>:

    .meta       what the agent needs to adopt the task after its own restart: the run id,
                the process id, runtime deadline, the user's output files
    .stdout     the task writes its output here itself (its fd 1 and 2 are these files, not
    .stderr     pipes to the agent), so it never notices the agent dying
    .status     the exit code and the run id, written by the task's wrapper shell when the
                command ends
    .hostfile   a multi-node task's MPI hostfile

The head is sent output from these files from the offset it says it has, so output written
while the agent or the head was down is sent afterwards. A record is removed once the head
has acknowledged the task's exit. Growth of the files is signalled by inotify (one watch on
the directory), which only wakes the agent; sizes are read from the files themselves.

Files are recycled, by slot, but never while anyone else holds them. A slot is the stem its
record's files share: s<N> for one this agent made (N above any already in the directory when
it started), or the record's own <job>.<task>.<instance>.<attempt> for one an older agent left
(still adopted as it is; the task's cgroup keeps that name, `Spool.name()`). Creating a
record's files and unlinking them was ~150 us of the agent's CPU per trivial task on this
ext4 (mounted with `discard`) when quiet, and ~1 ms under a busy head's commits (its journal
is shared): a sweep of `true` ran 25% slower with fresh files per task. Handing the same files
to the next record costs ~50 us. So a removed record whose task wrote no output keeps its
slot: its .meta is blanked in place (spaces, which are no record to an agent that restarts),
its .hostfile goes, and its descriptors stay open for the next create(). Its .status stays
too, for the next task's wrapper to write over: each names the run it is from, and
exit_status() takes only its own run's. A slot with output is deleted, not emptied: an
ftruncate of a non-empty file that is then written again makes ext4 (auto_da_alloc) flush
it, ~600 us of wall time here.

Nor is a slot kept while any process but the agent holds one of its files open (issue 33: a
detached process of one user's task kept its output open, and read and wrote the next task's,
another user's). The task is given its own open file description of each output file
(opened apart from the agent's), so whatever inherits, duplicates or is passed it (fork,
dup, SCM_RIGHTS) holds that description, and so does anything that opened the file by path;
at removal the kernel is asked for a write lease on each file (F_SETLEASE, ~4 us), which it
grants only when no other description of the file is open. Refused: the slot is deleted and
the holder writes into a file no one reads. A kept .status is first given back to the agent's
user (a task's user's other processes cannot open it by path from then on), then checked the
same way. New files are made with O_CREAT|O_EXCL|O_NOFOLLOW, owner-only. At most MAX_FREE
slots are kept free, three descriptors each; a restarted agent deletes them, as it deletes
records cut short.

One directory rather than one per record: a directory's creation and removal were the two
slowest file-system calls of a trivial task here (ext4 waits on its journal, which the head's
commits keep busy). Records an older agent left in directories are moved out on start-up.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from inotify_simple import INotify, flags

from common import jsontext
from common.ids import TaskId

STREAMS = ("stdout", "stderr")
_KINDS = ("meta", *STREAMS, "status", "hostfile")
_OLD_NAMES = {"meta.json": "meta", "stdout": "stdout", "stderr": "stderr", "status": "status", "hostfile": "hostfile"}
_SLOT_FILE = re.compile(r"s(\d+)\.", re.ASCII)
MAX_FREE = 64  # free slots kept (three descriptors each: the soft limit is often 1,024)
# A record's new files: never through a link, never an existing file, readable by the agent alone.
_FRESH = os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
# json.dumps's own text (its separators), from an encoder made once: json.dumps makes its C
# encoder afresh on every call, and a record is saved twice per task.
_encode = jsontext.encoder(", ", ": ")
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
    fenced: bool = False  # stopped because its lease lapsed
    ids: list[int] = field(default_factory=list)  # uid, gid, groups: whose files it opens (runas.RunAs)

    @property
    def key(self) -> Key:
        return (TaskId.parse(self.task), self.attempt)


class _Slot:
    """One record's files, <base>.<kind>, and the descriptors the spool holds on them."""

    __slots__ = ("name", "base", "fds", "outputs", "meta_fd", "length", "hostfile", "ours")

    def __init__(self, name: str, base: str, fds: dict[str, int], meta_fd: int = -1, length: int = 0,
                 hostfile: bool = False, ours: bool = False) -> None:
        self.name = name
        self.base = base
        self.fds = fds  # stream -> fd
        self.outputs = tuple(f"{name}.{stream}" for stream in STREAMS)  # as inotify names them
        self.meta_fd = meta_fd  # open from create() to the next save, and while free; -1: closed
        self.length = length  # the longest .meta written: what a save or the blank must cover
        self.hostfile = hostfile  # one was written
        # Made by this agent, so its output fds are the task's kind (O_RDWR, O_APPEND); an
        # adopted one's are read-only, and it is deleted at its removal.
        self.ours = ours


class Spool:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self._root = str(self.root)
        self._slots: dict[Key, _Slot] = {}
        self._free: list[_Slot] = []
        self._inotify: INotify | None = None
        self._outputs: dict[str, Key] = {}  # "<slot>.stdout" and "<slot>.stderr" -> key, for inotify
        # Above every slot in the directory, so that no new one is handed another's files
        # (records of an earlier agent, or free slots it left, which existing() deletes).
        self._next = 1 + max((int(m[1]) for n in os.listdir(self._root) if (m := _SLOT_FILE.match(n))),
                             default=0)

    @staticmethod
    def name(key: Key) -> str:
        """The record's name, <job>.<task>.<instance>.<attempt> (its cgroup's; its files are
        named by its slot)."""
        task, attempt = key
        return f"{task.job}.{task.task}.{task.instance}.{attempt}"

    def file(self, key: Key, kind: str) -> str:
        # A string, not a Path: pathlib's joins were a twentieth of the agent's time per task.
        slot = self._slots.get(key)
        base = slot.base if slot is not None else f"{self._root}/{self.name(key)}"
        return f"{base}.{kind}"

    def status_path(self, key: Key) -> str:
        return self.file(key, "status")

    def hostfile_path(self, key: Key) -> str:
        """Where a multi-node task's MPI hostfile goes: written by the caller, taken by remove()."""
        slot = self._slots.get(key)
        if slot is not None:
            slot.hostfile = True
        return self.file(key, "hostfile")

    # -- lifecycle of one task's record ----------------------------------------------------

    def create(self, meta: Meta, key: Key | None = None) -> tuple[int, int]:
        """A fresh record; returns the (stdout, stderr) fds to give the task's process: its own
        open file descriptions (write-only), the caller's to close once the task has them.
        The spool reads the output through its own. `key`: meta.key, when the caller has it
        (parsing it again costs). Its files hold nothing of an earlier record that counts, and
        no one else holds them: a free slot's output is empty and unheld (remove()), and its
        .status names another run."""
        key = key or meta.key
        if key in self._slots:  # launched again under the same key: the old record goes
            self.remove(key)
        slot = self._take()
        self._slots[key] = slot
        self.save(meta, key, keep=True)
        for name in slot.outputs:
            self._outputs[name] = key
        flags = os.O_WRONLY | os.O_APPEND | os.O_NOFOLLOW | os.O_CLOEXEC
        out = os.open(f"{slot.base}.stdout", flags)
        try:
            return out, os.open(f"{slot.base}.stderr", flags)
        except OSError:
            os.close(out)
            raise

    def make_status(self, key: Key, uid: int, gid: int) -> str:
        """The record's .status, the task's user's (the wrapper writes its exit code there as
        that user); returns its path. A kept one is unheld (remove()) and written over."""
        path = self.status_path(key)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            os.fchown(fd, uid, gid)
        finally:
            os.close(fd)
        return path

    def _take(self) -> _Slot:
        while self._free:
            slot = self._free.pop()  # the last freed: its inodes are the likeliest still cached
            if _empty(slot):
                return slot
            self._drop(slot)  # written to while free, by something its last task left behind
        return self._new_slot()

    def _new_slot(self) -> _Slot:
        name = f"s{self._next}"
        self._next += 1
        base = f"{self._root}/{name}"
        # O_TRUNC, and the status unlinked: nothing found under a new name (there should be
        # none) is taken for this record's.
        _unlink(f"{base}.status")
        # One descriptor per stream, both the task's output (O_APPEND) and what the agent
        # reads it through (pread, which ignores the shared offset). Made before the .meta,
        # so that a record never lacks them after a crash.
        for stream in STREAMS:
            _unlink(f"{base}.{stream}")
        fds = {stream: os.open(f"{base}.{stream}", os.O_RDWR | os.O_APPEND | _FRESH, 0o600) for stream in STREAMS}
        # Kept open for the save that follows the start (the pid): each open of a file cost
        # about 40 us of CPU here, and a trivial task made seven.
        _unlink(f"{base}.meta")
        meta_fd = os.open(f"{base}.meta", os.O_WRONLY | _FRESH, 0o600)
        return _Slot(name, base, fds, meta_fd, ours=True)

    def save(self, meta: Meta, key: Key | None = None, keep: bool = False) -> None:
        """Rewrite the record in place with one pwrite, padded with blanks (which JSON allows)
        to at least its last length. A write() is all or nothing to anyone who reads the file
        later, even if the agent dies just after it, so the file always holds one whole
        record; only a machine crash could tear it, and that leaves no task to adopt. This
        spares the file system a create and a rename per save, which on ext4 here cost more
        than the rest of starting a trivial task. `keep`: leave the file open for the next
        save."""
        key = key or meta.key
        data = _encode(vars(meta)).encode()  # flat fields: no need for asdict's deep copy
        slot = self._slots.get(key)
        fd = -1
        if slot is not None:
            fd, slot.meta_fd = slot.meta_fd, -1
        # Opened for each save rather than kept for the task's life (create()'s stays open only
        # until the save after the start): a running task already holds two of the agent's
        # descriptors (its output), and the soft limit is often 1,024.
        if fd < 0:
            fd = os.open(self.file(key, "meta"), os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            last = slot.length if slot is not None else os.fstat(fd).st_size
            os.pwrite(fd, data.ljust(last), 0)
        finally:
            if keep and slot is not None:
                slot.meta_fd = fd
            else:
                os.close(fd)
        if slot is not None:
            slot.length = max(last, len(data))

    def exit_status(self, key: Key, run_id: str) -> int | None:
        """The exit code the wrapper of run `run_id` left, or None: none yet, or what another
        run in the same slot left. Its first line is "CODE RUN_ID" (the rest is what a longer
        earlier one left); a bare code is from an agent before run ids, whose slots never
        kept a .status."""
        try:
            with open(self.status_path(key), "rb") as f:
                line = f.readline().decode(errors="replace").strip()
        except FileNotFoundError:
            return None
        code, _, run = line.partition(" ")
        if run and run != run_id:
            return None
        return int(code) if code.lstrip("-").isdigit() else None

    def existing(self) -> list[Meta]:
        """Records left by an earlier run of the agent, to adopt. The rest goes: free slots
        (a blank .meta), records cut short (the task never started) and files left without a
        .meta (an agent killed while it removed a record)."""
        self._move_old_records()
        names = set(os.listdir(self._root))
        records = {n[:-5] for n in names if n.endswith(".meta")}
        metas: list[Meta] = []
        for stem in sorted(records):
            base = f"{self._root}/{stem}"
            try:
                with open(f"{base}.meta", "rb") as f:
                    raw = f.read()
                meta = Meta(**json.loads(raw))  # blank or empty: a ValueError
                key = meta.key
            except (FileNotFoundError, ValueError, TypeError):
                _unlink_record(base)
                continue
            # O_CREAT: an agent before slots made the output files after the first save.
            fds = {stream: os.open(f"{base}.{stream}", os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC, 0o600)
                   for stream in STREAMS}
            slot = self._slots[key] = _Slot(stem, base, fds, length=len(raw), hostfile=f"{stem}.hostfile" in names)
            for name in slot.outputs:
                self._outputs[name] = key
            metas.append(meta)
        for stem in {n.rpartition(".")[0] for n in names if n.rpartition(".")[2] in _KINDS} - records:
            _unlink_record(f"{self._root}/{stem}")
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
        """The record goes: its slot is kept free for the next create() if its task wrote no
        output and no process but the agent holds its files, else deleted (its descriptors
        closed)."""
        slot = self._slots.pop(key, None)
        if slot is None:
            return
        for name in slot.outputs:
            self._outputs.pop(name, None)
        if slot.ours and len(self._free) < MAX_FREE and _empty(slot) and _unheld(slot):
            try:
                # The blank first: from then on a restarted agent deletes the slot, status and all.
                blanked = self._blank(slot)
            except OSError:
                blanked = False
            if blanked:
                if slot.hostfile:
                    _unlink(f"{slot.base}.hostfile")
                    slot.hostfile = False
                self._free.append(slot)
                return
        # Not blanked first: its .meta is unlinked before the rest, which is as final.
        self._drop(slot)

    def _blank(self, slot: _Slot) -> bool:
        # Spaces over the whole record, not an ftruncate (see the module's docstring).
        if slot.meta_fd < 0:
            slot.meta_fd = os.open(f"{slot.base}.meta", os.O_WRONLY | os.O_CLOEXEC)
        return os.pwrite(slot.meta_fd, b" " * slot.length, 0) == slot.length

    def _drop(self, slot: _Slot) -> None:
        """Close the slot's descriptors and delete its files."""
        _close(slot)
        _unlink_record(slot.base, slot.hostfile)

    # -- output ----------------------------------------------------------------------------

    def size(self, key: Key, stream: str) -> int:
        slot = self._slots.get(key)
        return os.fstat(slot.fds[stream]).st_size if slot is not None else 0

    def read(self, key: Key, stream: str, offset: int, limit: int) -> bytes:
        slot = self._slots.get(key)
        return os.pread(slot.fds[stream], limit, offset) if slot is not None else b""

    def watch(self, on_growth: Callable[[Key], None]) -> int:
        """Start signalling growth of output files; returns the fd to put on the event loop,
        whose readiness means `pump()` has news."""
        self._inotify = INotify(nonblocking=True)
        self._on_growth = on_growth
        self._inotify.add_watch(self._root, flags.MODIFY)
        return self._inotify.fileno()

    def pump(self) -> None:
        assert self._inotify is not None
        # Only output counts: .meta and .status change too, and need no one woken. An event
        # from a slot's last record, read once it holds the next, wakes that one for nothing.
        outputs = self._outputs
        events = self._inotify.read(timeout=0)
        grown = {outputs.get(e.name) for e in events}
        if any(e.mask & flags.Q_OVERFLOW for e in events):  # events were lost: any may have grown
            grown = set(self._slots)
        for key in grown:
            if key is not None:
                self._on_growth(key)

    def close(self) -> None:
        for slot in (*self._slots.values(), *self._free):
            _close(slot)
        self._slots.clear()
        self._free.clear()
        self._outputs.clear()
        if self._inotify is not None:
            self._inotify.close()


def _empty(slot: _Slot) -> bool:
    return all(os.fstat(fd).st_size == 0 for fd in slot.fds.values())


def _unheld(slot: _Slot) -> bool:
    """No one but the agent holds the slot's output or status open (the module's docstring).
    A kept .status goes back to the agent's user first, so no one opens it anew meanwhile."""
    for fd in slot.fds.values():
        if not _lease_free(fd):
            return False
    try:
        fd = os.open(f"{slot.base}.status", os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        return True
    except OSError:
        return False
    try:
        st = os.fstat(fd)
        if st.st_uid != os.geteuid():
            os.fchown(fd, os.geteuid(), os.getegid())
        if st.st_mode & 0o077:
            os.fchmod(fd, 0o600)
        return _lease_free(fd)
    except OSError:
        return False
    finally:
        os.close(fd)


def _lease_free(fd: int) -> bool:
    """Whether the kernel grants a write lease on the file: no other open file description of
    it exists (fork, dup and SCM_RIGHTS share one; an open by path makes another). Taken and
    dropped at once (a lease-break signal, SIGIO, is ignored by the agent: see TaskRunner)."""
    try:
        fcntl.fcntl(fd, fcntl.F_SETLEASE, fcntl.F_WRLCK)
    except OSError:
        return False
    fcntl.fcntl(fd, fcntl.F_SETLEASE, fcntl.F_UNLCK)
    return True


def _close(slot: _Slot) -> None:
    for fd in (slot.meta_fd, *slot.fds.values()):
        if fd >= 0:
            os.close(fd)
    slot.meta_fd = -1
    slot.fds = {}


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def _unlink_record(base: str, hostfile: bool = True) -> None:
    """Remove every file of the record whose paths are `base`.<kind>, its .meta first (with
    that gone, what is left is no record)."""
    for kind in _KINDS if hostfile else _KINDS[:-1]:
        _unlink(f"{base}.{kind}")
