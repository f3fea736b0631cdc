"""Task output on the head node: spooled to files under the state dir, never held in memory.

Agents send chunks tagged with their byte offset; the head writes each at that offset
(pwrite), so a chunk sent twice after a reconnect lands on the same bytes and the file ends
up the same. Readers get the file from any offset; followers are woken on every write and
stop once the task's output is complete (the agent sends all output before the exit).

Files are named by job, task and instance, and job ids may meet files they did not write (a
new cluster on an old output dir, a database restored from a backup): a new job's directory
is emptied when the job is made (`begin_job`), and a new attempt's files when it is placed
(`reset`). A chunk is written whole or not at all as far as the agent is concerned: on a
full disk the write raises DiskFull, the agent's session ends, and it sends again from the
size the file has.
"""

from __future__ import annotations

import asyncio
import errno
import os
import shutil
from collections.abc import AsyncIterator, Callable
from pathlib import Path

from common.errors import DiskFull
from common.ids import TaskId

STREAMS = ("stdout", "stderr")
READ_CHUNK = 256 * 1024  # what one OutputChunk carries; the agent's size (see computenode/agent.py)


class OutputStore:
    def __init__(self, root: Path, is_live: Callable[[TaskId], bool]) -> None:
        """`is_live(task)` says whether more output may still arrive for the task."""
        self.root = Path(root)
        self.full = f"the head node's disk is full (output dir {self.root})"
        self.root.mkdir(parents=True, exist_ok=True)
        self._is_live = is_live
        self._fds: dict[tuple[TaskId, str], int] = {}
        self._waiters: dict[TaskId, set[asyncio.Future[None]]] = {}

    def path(self, task: TaskId, stream: str) -> Path:
        return self.root / str(task.job) / f"{task.task}.{task.instance}.{stream}"

    def size(self, task: TaskId, stream: str) -> int:
        try:
            return self.path(task, stream).stat().st_size
        except FileNotFoundError:
            return 0

    def reset(self, task: TaskId) -> None:
        """A new attempt starts: its output replaces whatever the files held. Called for every
        placement, so the paths are plain strings (Path objects cost 11 us here, these 4)."""
        base = f"{self.root}/{task.job}/{task.task}.{task.instance}."
        for stream in STREAMS:
            self._close(task, stream)
            try:
                os.unlink(base + stream)
            except FileNotFoundError:
                pass

    def begin_job(self, job_id: int) -> None:
        """A job id is new: whatever files its directory holds are another job's."""
        directory = self.root / str(job_id)
        if not directory.exists():  # the common case: one stat
            return
        for key in [k for k in self._fds if k[0].job == job_id]:
            self._close(*key)
        shutil.rmtree(directory, ignore_errors=True)

    def write(self, task: TaskId, stream: str, offset: int, data: bytes) -> None:
        try:
            fd = self._fds.get((task, stream))
            if fd is None:
                path = self.path(task, stream)
                path.parent.mkdir(parents=True, exist_ok=True)
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o640)
                self._fds[(task, stream)] = fd
            view = memoryview(data)
            while view:  # pwrite may write less than asked (a nearly full disk): write the rest
                written = os.pwrite(fd, view, offset)
                view, offset = view[written:], offset + written
        except OSError as e:
            if e.errno in (errno.ENOSPC, errno.EDQUOT):
                raise DiskFull.at(self.full) from None
            raise
        finally:
            self._wake(task)  # what did land is there to read

    def complete(self, task: TaskId) -> None:
        """No more output will come for this attempt (its exit was reported)."""
        for stream in STREAMS:
            self._close(task, stream)
        self._wake(task)

    def remove_job(self, job_id: int) -> None:
        shutil.rmtree(self.root / str(job_id), ignore_errors=True)

    async def read(self, task: TaskId, stream: str, offset: int, follow: bool) -> AsyncIterator[tuple[int, bytes]]:
        """Yield (offset, data) from `offset` on; with follow, until the output is complete."""
        path = self.path(task, stream)
        fd: int | None = None
        try:
            while True:
                # Whether more may come is decided before reading, so output written between
                # the read and the check is never missed.
                live = follow and self._is_live(task)
                waiter = self._waiter(task) if live else None
                if fd is None:
                    try:
                        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
                    except FileNotFoundError:
                        fd = None
                if fd is not None:
                    while data := os.pread(fd, READ_CHUNK, offset):
                        yield offset, data
                        offset += len(data)
                if waiter is None:
                    return
                try:
                    await waiter
                finally:
                    self._drop_waiter(task, waiter)
        finally:
            if fd is not None:
                os.close(fd)

    def close(self) -> None:
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()

    def _close(self, task: TaskId, stream: str) -> None:
        fd = self._fds.pop((task, stream), None)
        if fd is not None:
            os.close(fd)

    def _waiter(self, task: TaskId) -> asyncio.Future[None]:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(task, set()).add(future)
        return future

    def _drop_waiter(self, task: TaskId, future: asyncio.Future[None]) -> None:
        waiters = self._waiters.get(task)
        if waiters is not None:
            waiters.discard(future)
            if not waiters:
                del self._waiters[task]

    def _wake(self, task: TaskId) -> None:
        for future in self._waiters.pop(task, ()):
            if not future.done():
                future.set_result(None)
