"""Starting, signalling and watching task processes.

Each task runs as `/bin/sh -c WRAPPER shoal-task COMMAND STATUS_FILE WORKDIR RUN_ID`: the
wrapper shell enters WORKDIR and evaluates the command, and an EXIT trap writes its exit code
and RUN_ID to STATUS_FILE. So the code survives even when the agent, the task's parent, does
not (a restarted agent adopts the task and reads the file). A command that `exec`s or sets its
own trap would leave no file, so a command line with either word in it runs in a subshell
instead, as every command did before (costing a fork). Only a command that hides them (a
sourced script that `exec`s) loses its code if the agent restarts while it runs, and is
reported as having left none. The task's stdout and stderr are files in the spool, never pipes
to the agent, so an agent restart does not kill the task with SIGPIPE.

Tasks start through `os.posix_spawn` (glibc: a vfork-style clone, then exec, with nothing run
in Python in between, which PLATFORM-NOTES measured safe next to grpc.aio, unlike preexec_fn).
It takes a tenth of a millisecond less of the agent per task than `subprocess.Popen`, whose
Python-side encoding of a 50-variable environment was an eighth of a busy agent's CPU. Its
limits are kept here: the program is given by its full path (no PATH search, in the task's
environment or any other); the working directory is entered by the wrapper shell (`cd`, as
the task's user), since posix_spawn has no chdir; SIGPIPE and SIGXFSZ go back to their
defaults, as `restore_signals` did; and no descriptor is closed on the way, so every one the
agent opens is close-on-exec (Python's default; tests check a task inherits only 0, 1 and 2).
Each task is its own process group (`setpgroup=0`), so a signal to the group reaches
everything it started.
A task that runs as its owner gets its environment only once it is the owner's: the
programs that switch to that user run as root with a fixed one (handover()).
Exits are seen through a pidfd on the event loop, which works for adopted processes that are
not the agent's children as well. Needs Linux 5.3+ (pidfd_open).
"""

from __future__ import annotations

import asyncio
import functools
import os
import select
import signal
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass

import psutil

from common import log

# "$1": the task's command line; "$2": where to write its exit code. The command runs in the
# wrapper shell itself, with no positional parameters and no variable of ours left set, so it
# sees what `sh -c COMMAND` would show it. The trap, not a subshell, catches the code (an
# `exit` in the command runs it too): a subshell is a fork, about 0.6 ms of CPU per task here,
# half again what starting `true` costs. The status path is fixed into the trap's text when
# the trap is set, so a path with a single quote in it takes the subshell form instead.
# "$4": the run id, written after the code ("CODE RUN_ID"), fixed into the trap's text too.
# The file is written over in place (`1<>`, no truncation), not created: a slot's .status
# outlives its task (spool.py), and a create and an unlink per task cost 0.06 ms of the
# shell's CPU and 0.03 of the agent's here. The run id tells this task's code from what an
# earlier task in the same slot left; only the first line counts.
# (The subshell is the rule for `exec` and `trap` commands, see the module's docstring.)
# "$3": the working directory, entered first, as the task's user (`[ -x ]` asks the kernel
# with the user's ids, so no message of the shell's own comes before ours). If it cannot be
# entered, the task's stderr ends with cd_failed(cwd) and the code is 2: the agent reports
# the directory rather than an exit code. OLDPWD, which `cd` sets to the agent's directory,
# goes.
CD = ('{ [ -x "$3" ] && cd -- "$3"; } || { echo "shoal: cannot enter the working directory $3" >&2; exit 2; }; '
      'unset OLDPWD; ')


def cd_failed(cwd: str) -> bytes:
    """What a task's stderr ends with when its working directory could not be entered."""
    return f"shoal: cannot enter the working directory {cwd}\n".encode()


# SIGTERM (a kill: cancel, runtime limit, preemption, a lapsed lease) goes to the task's whole
# process group, the wrapper included. A shell waiting for a foreground command runs its trap
# only once that command ends (POSIX), so with a TERM trap the wrapper waits while the task's
# own TERM handler cleans up, and then exits with the task's code; without one it died at once,
# and the agent, seeing it gone, SIGKILLed the group mid-cleanup. A caught signal is reset to
# its default in what the shell execs or forks as a subshell, so the task sees TERM as usual.
WRAPPER = (CD + 'trap "printf \'%s %s\\n\' \\$? \'$4\' 1<> \'$2\'" EXIT; trap \'exit $?\' TERM; '
           '__shoal_cmd=$1; set --; eval "unset __shoal_cmd; $__shoal_cmd"')
SUBSHELL_WRAPPER = (CD + 'trap : TERM; (__shoal_cmd=$1; set --; eval "unset __shoal_cmd; $__shoal_cmd"); s=$?; '
                    'printf \'%s %s\\n\' "$s" "$4" 1<> "$2"; exit "$s"')
_log = log.get("launcher")


def wrapper_for(command_line: str, status_path: str) -> str:
    if "exec" in command_line or "trap" in command_line or "'" in status_path:
        return SUBSHELL_WRAPPER
    return WRAPPER


# A task that runs as another user passes programs that run as root on its way (the cgroup
# join, setpriv). Given the task's environment, a job could steer them: LD_PRELOAD or
# LD_DEBUG_OUTPUT to the dynamic loader, GCONV_PATH or NLSPATH to glibc, BASH_ENV to a shell.
# So they get only ROOT_SIDE_PATH and the run id (by which a restarted agent finds the task),
# and the task's variables travel as shell text in SHOAL_ENV (split in pieces under Linux's
# 128 KiB limit on one variable); the wrapper, already the task's user, evaluates and unsets
# it. Names the shell cannot hold are left out, as dash leaves them out of what it passes on;
# so are IFS, PPID, PWD and OLDPWD, which the shell sets for itself.
ROOT_SIDE_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"
_PIECE = 100 * 1024
_OWN = frozenset({"IFS", "PPID", "PWD", "OLDPWD"})


def handover(env: Mapping[str, str]) -> tuple[dict[str, str], str]:
    """(the environment for the root side, the shell text that restores the task's own)."""
    pieces: list[list[str]] = [[]]
    size = 0
    for name, value in env.items():
        if not name.isidentifier() or not name.isascii() or name in _OWN or name.startswith("SHOAL_ENV"):
            continue
        line = "export " + name + "='" + value.replace("'", "'\\''") + "'\n"
        if size + len(line) > _PIECE and pieces[-1]:
            pieces.append([])
            size = 0
        pieces[-1].append(line)
        size += len(line)
    names = [f"SHOAL_ENV{i or ''}" for i in range(len(pieces))]
    root_side = {"PATH": ROOT_SIDE_PATH, **{n: "".join(p) for n, p in zip(names, pieces)}}
    for name in ("SHOAL_RUN_ID", "SHOAL_LEASE", "SHOAL_NODE"):  # how a task is found (runner.py, fence.py)
        if name in env:
            root_side[name] = env[name]
    return root_side, "".join(f'eval "${n}"; unset {n}; ' for n in names)


class LaunchError(Exception):
    """The process could not be started; the message says why, for the user."""


@dataclass(eq=False)
class _Proc:
    key: object
    pid: int
    pidfd: int
    child: bool  # False when adopted: not ours to wait for
    exited: bool = False
    # Ended but not reaped: a child is reaped only when released, so that its pid, which is
    # its process group's id, is not reused while what it left in the group may be signalled.
    zombie: bool = False
    released: bool = False
    finishing: bool = False  # a SIGKILL of its leftovers is due (finish_later)


_TICKS = os.sysconf("SC_CLK_TCK")
# The signals Python ignores (SIGPIPE) or may (SIGXFSZ), and the agent does (SIGIO: runner.py),
# back to their defaults in a task.
_DEFAULT_SIGNALS = (signal.SIGPIPE, signal.SIGXFSZ, signal.SIGIO)


def start_time(pid: int) -> float:
    """When the process started (to tell it from a later process given the same pid), as
    psutil's create_time() gives it, read with one look at /proc rather than psutil's several."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except (FileNotFoundError, ProcessLookupError):
        raise psutil.NoSuchProcess(pid) from None
    return int(stat[stat.rindex(b")") + 2:].split()[19]) / _TICKS + _boot_time()


@functools.cache
def _devnull() -> int:
    # One descriptor for the agent's life, rather than subprocess's open and close per task.
    return os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)


@functools.cache
def _boot_time() -> float:
    # Read once per process (psutil reads /proc/stat on every call, half of start_time()'s
    # cost); an agent restarted later reads it afresh, as it always did.
    return psutil.boot_time()


class Launcher:
    def __init__(self, on_exit: Callable[[object, int | None], None]) -> None:
        """on_exit(key, returncode): as subprocess gives it (negative: killed by that signal),
        or None for an adopted process, whose exit code is in its status file."""
        self._on_exit = on_exit
        self._procs: dict[object, _Proc] = {}
        self._loop = asyncio.get_running_loop()

    def start(
        self, key: object, command_line: str, env: Mapping[str, str], cwd: str, stdin_path: str,
        stdout_fd: int, stderr_fd: int, status_path: str, run_id: str, prefix: list[str] | None = None,
        hand_over: bool = False, files: Callable[[], AbstractContextManager[None]] = nullcontext,
    ) -> int:
        """Start the task (behind `prefix`, e.g. setpriv to switch user); returns its pid.
        The two output fds stay the caller's. `hand_over`: the prefix runs as root and the
        task as someone else, so `env` goes past the prefix (handover()); `files`: as whom
        the working directory is looked for and the stdin file opened (runas.RunAs.files)."""
        with files():  # looked for as the user: no word on what lies where they cannot look
            there = os.path.isdir(cwd)
        if not there:
            raise LaunchError(f"working directory {cwd} does not exist on this node")
        stdin = _devnull()
        if stdin_path:
            path = os.path.join(cwd, stdin_path)
            try:
                with files():
                    stdin = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            except OSError as e:
                raise LaunchError(f"cannot open stdin file {path}: {e.strerror}") from None
        wrapper = wrapper_for(command_line, status_path)
        if hand_over:
            env, restore = handover(env)
            wrapper = restore + wrapper
        argv = [*(prefix or ()), "/bin/sh", "-c", wrapper, "shoal-task", command_line, status_path, cwd, run_id]
        try:
            pid = os.posix_spawn(
                argv[0], argv, env,
                file_actions=[(os.POSIX_SPAWN_DUP2, stdin, 0), (os.POSIX_SPAWN_DUP2, stdout_fd, 1),
                              (os.POSIX_SPAWN_DUP2, stderr_fd, 2)],
                setpgroup=0, setsigdef=_DEFAULT_SIGNALS, setsigmask=(),
            )
        except OSError as e:
            raise LaunchError(f"{e.strerror or e} ({e.filename or argv[0]})") from None
        finally:
            if stdin_path:
                os.close(stdin)
        self._watch(_Proc(key, pid, os.pidfd_open(pid), child=True))
        # No start time is read here: /proc/PID/stat of a process still mapping its program
        # blocked the agent's loop for a quarter of a millisecond per task. A restarted agent
        # knows the process by the run id in its environment instead (adopt()).
        return pid

    def adopt(self, key: object, pid: int, started: float, run_id: str) -> bool:
        """Watch a task an earlier agent started; False if that process is gone. The process
        at `pid` is the task's if it started at `started` (as agents before 2026-12 recorded
        it), or, with no start time recorded, if it leads its process group and carries
        SHOAL_RUN_ID=run_id, which a process that merely reused the pid would not."""
        try:
            proc = psutil.Process(pid)
            if started:
                same = abs(start_time(pid) - started) <= 0.05
            else:
                same = proc.environ().get("SHOAL_RUN_ID") == run_id and os.getpgid(pid) == pid
            if not same or proc.status() == psutil.STATUS_ZOMBIE:
                return False
            pidfd = os.pidfd_open(pid)
        except (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied, ProcessLookupError):
            return False
        self._watch(_Proc(key, pid, pidfd, child=False))
        return True

    def signal(self, key: object, sig: int) -> None:
        proc = self._procs.get(key)
        if proc is None:
            return
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            pass
        except PermissionError as e:
            _log.warning("signal_failed", pid=proc.pid, signal=sig, error=str(e))

    def release(self, key: object) -> None:
        """Forget an ended task (kept until then so its process group can still be signalled)."""
        proc = self._procs.get(key)
        if proc is None:
            return
        proc.released = True
        if not proc.finishing:
            self._procs.pop(key, None)
            self._bury(proc)

    def finish_later(self, key: object, seconds: float, then: Callable[[], None] = lambda: None) -> None:
        """SIGKILL the ended task's process group in `seconds` (the rest of its kill grace),
        then call `then`; it stays known until then, whenever it is released."""
        proc = self._procs.get(key)
        if proc is None:
            then()
            return
        proc.finishing = True

        def finish() -> None:
            proc.finishing = False
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            if proc.released and self._procs.get(key) is proc:
                self._procs.pop(key, None)
                self._bury(proc)
            then()

        self._loop.call_later(max(0.0, seconds), finish)

    @staticmethod
    def _bury(proc: _Proc) -> None:
        if proc.zombie:
            proc.zombie = False
            try:
                os.waitpid(proc.pid, os.WNOHANG)
            except ChildProcessError:
                pass

    def running(self) -> int:
        return sum(1 for p in self._procs.values() if not p.exited)

    def ended_unseen(self) -> list[object]:
        """Tasks whose process has ended but whose exit the loop has not delivered yet (an
        agent woken from a freeze has a backlog of them)."""
        ready = []
        for key, proc in self._procs.items():
            if not proc.exited:
                poller = select.poll()
                poller.register(proc.pidfd, select.POLLIN)
                if poller.poll(0):
                    ready.append(key)
        return ready

    def deliver(self, keys: list[object]) -> None:
        """Deliver those exits now, ahead of the loop (ended_unseen)."""
        for key in keys:
            proc = self._procs.get(key)
            if proc is not None and not proc.exited:
                self._reap(proc)

    def _watch(self, proc: _Proc) -> None:
        self._procs[proc.key] = proc
        self._loop.add_reader(proc.pidfd, self._reap, proc)

    def _reap(self, proc: _Proc) -> None:
        code: int | None = None
        if proc.child:
            try:
                # WNOWAIT: how it ended, leaving it a zombie until it is released (_Proc.zombie).
                info = os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
            except ChildProcessError:  # reaped elsewhere: its code is lost, as for an adopted one
                info = None
            else:
                if info is None:
                    return
                proc.zombie = True
                # As subprocess gives it: negative for a signal.
                code = info.si_status if info.si_code == os.CLD_EXITED else -info.si_status
        self._loop.remove_reader(proc.pidfd)
        os.close(proc.pidfd)
        proc.exited = True
        self._on_exit(proc.key, code)


def find_by_run_id(run_id: str) -> tuple[int, float] | None:
    """A task process carrying SHOAL_RUN_ID=run_id in its environment (started by an agent
    that died before it could record the pid)."""
    for p in psutil.process_iter(["pid"]):
        try:
            # Its children carry the variable too; the wrapper leads the process group.
            if p.environ().get("SHOAL_RUN_ID") == run_id and os.getpgid(p.pid) == p.pid:
                return p.pid, p.create_time()
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess, ProcessLookupError):
            continue
    return None
