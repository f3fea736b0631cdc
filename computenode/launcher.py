"""Starting, signalling and watching task processes.

Each task runs as `/bin/sh -c COMMAND` in its own process group (`process_group=0`, which
PLATFORM-NOTES measured safe next to grpc.aio, unlike preexec_fn), so a signal to the group
reaches every process the task started. Exits are seen through a pidfd on the event loop
(no child-watcher thread per task); stdout and stderr are non-blocking pipes read on the
loop and handed over as bytes as soon as they arrive.

Needs Linux 5.3+ (pidfd_open).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from common import log

READ_SIZE = 64 * 1024
_log = log.get("launcher")


class LaunchError(Exception):
    """The process could not be started; the message says why, for the user."""


@dataclass(eq=False)
class _Proc:
    key: object
    popen: subprocess.Popen[bytes]
    pidfd: int
    pipes: dict[int, str] = field(default_factory=dict)  # fd -> "stdout" | "stderr"
    exited: bool = False


class Launcher:
    def __init__(
        self,
        on_output: Callable[[object, str, bytes], None],
        on_exit: Callable[[object, int, int], None],
        on_drained: Callable[[object], None],
    ) -> None:
        self._on_output = on_output
        self._on_exit = on_exit
        self._on_drained = on_drained
        self._procs: dict[object, _Proc] = {}
        self._loop = asyncio.get_running_loop()

    def start(self, key: object, command_line: str, env: Mapping[str, str], cwd: str, stdin_path: str = "") -> int:
        if not os.path.isdir(cwd):
            raise LaunchError(f"working directory {cwd} does not exist on this node")
        stdin: int = subprocess.DEVNULL
        if stdin_path:
            path = os.path.join(cwd, stdin_path)
            try:
                stdin = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            except OSError as e:
                raise LaunchError(f"cannot open stdin file {path}: {e.strerror}") from None
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        try:
            popen = subprocess.Popen(
                ["/bin/sh", "-c", command_line],
                stdin=stdin,
                stdout=out_w,
                stderr=err_w,
                cwd=cwd,
                env=dict(env),
                process_group=0,
                close_fds=True,
            )
        except OSError as e:
            os.close(out_r)
            os.close(err_r)
            raise LaunchError(f"{e.strerror or e} ({e.filename or '/bin/sh'})") from None
        finally:
            os.close(out_w)
            os.close(err_w)
            if stdin != subprocess.DEVNULL:
                os.close(stdin)
        proc = _Proc(key, popen, os.pidfd_open(popen.pid))
        self._procs[key] = proc
        for fd, stream in ((out_r, "stdout"), (err_r, "stderr")):
            os.set_blocking(fd, False)
            proc.pipes[fd] = stream
            self._loop.add_reader(fd, self._readable, proc, fd)
        self._loop.add_reader(proc.pidfd, self._reap, proc)
        return popen.pid

    def signal(self, key: object, sig: int) -> None:
        proc = self._procs.get(key)
        if proc is None:
            return
        try:
            os.killpg(proc.popen.pid, sig)
        except ProcessLookupError:
            pass
        except PermissionError as e:
            _log.warning("signal_failed", pid=proc.popen.pid, signal=sig, error=str(e))

    def close_pipes(self, key: object) -> None:
        """Stop waiting for EOF (a process that left the group still holds the pipes)."""
        proc = self._procs.get(key)
        if proc is not None:
            for fd in list(proc.pipes):
                self._close_pipe(proc, fd)

    def release(self, key: object) -> None:
        """Forget an ended task (kept until then so its process group can still be signalled)."""
        proc = self._procs.pop(key, None)
        if proc is not None:
            for fd in list(proc.pipes):
                self._close_pipe(proc, fd)

    def running(self) -> int:
        return sum(1 for p in self._procs.values() if not p.exited)

    def _readable(self, proc: _Proc, fd: int) -> None:
        try:
            data = os.read(fd, READ_SIZE)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if data:
            self._on_output(proc.key, proc.pipes[fd], data)
        else:
            self._close_pipe(proc, fd)

    def _close_pipe(self, proc: _Proc, fd: int) -> None:
        if fd not in proc.pipes:
            return
        self._loop.remove_reader(fd)
        os.close(fd)
        del proc.pipes[fd]
        if not proc.pipes:
            self._on_drained(proc.key)

    def _reap(self, proc: _Proc) -> None:
        code = proc.popen.poll()
        if code is None:
            return
        self._loop.remove_reader(proc.pidfd)
        os.close(proc.pidfd)
        proc.exited = True
        exit_code, signal = (0, -code) if code < 0 else (code, 0)
        self._on_exit(proc.key, exit_code, signal)
