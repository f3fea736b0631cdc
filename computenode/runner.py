"""The agent's local half: task processes, their spool records, timers, and adoption.

It carries out the local instructions of the agent's state machine (start, signal, timers,
forget, persist) and feeds back what the processes do as events. Everything it needs to take
a task back after an agent restart is in the spool (spool.py): on start-up, `adopt_all` turns
each record into an `Adopted` event: still running (watched again, its runtime limit resumed),
or ended (with the exit code its wrapper wrote). A record whose process never started is
dropped, so the head counts that task lost and requeues it; none is ever run twice.
"""

from __future__ import annotations

import asyncio
import errno
import os
import signal as _signal
import uuid
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path

from common import log
from common.clock import Clock
from common.config import NodeConfig
from common.resources import GPU
from computenode import runas, tracking
from computenode import state as st
from computenode.cgroups import Isolation, TaskGroup
from computenode.launcher import Launcher, LaunchError, cd_failed, find_by_run_id
from computenode.spool import STREAMS, Meta, Spool
from shoal.v1 import nodes_pb2

_log = log.get("runner")
MEMORY_CHECK = 0.5  # seconds between looks at each limited task's memory
# Below this much free space on the spool's file system a node takes no new work (its tasks'
# output goes there): a node condition the head sees in every heartbeat.
MIN_FREE_MB = 16


COPY_CHUNK = 1024 * 1024


def _is_link(path: str) -> bool:
    try:
        return os.path.islink(path)
    except OSError:
        return False


class TaskRunner:
    def __init__(self, config: NodeConfig, clock: Clock, spool: Spool, feed: Callable[[st.Event], None],
                 on_output: Callable[[st.Key], None], gpu_devices: list[str] | None = None,
                 isolation: Isolation | None = None) -> None:
        self.config = config
        self.isolation = isolation or Isolation("watch", "no isolation given")
        self.gpu_devices = gpu_devices or []
        self.clock = clock
        self.spool = spool
        self._feed = feed
        self._on_output = on_output
        self._metas: dict[st.Key, Meta] = {}
        self._timers: dict[st.Key, asyncio.Task[None]] = {}
        self._memory_watch: asyncio.Task[None] | None = None
        self._user_files: dict[st.Key, dict[str, int]] = {}
        self._signals: dict[st.Key, int] = {}
        self._term_at: dict[st.Key, float] = {}  # when a task's kill began (its first SIGTERM)
        self._groups: dict[st.Key, TaskGroup] = {}
        # The task lease every task's environment names (SHOAL_LEASE: how the watchdog and a
        # successor agent find them, fence.py), and the runs the watchdog stopped.
        self.lease_id = ""
        self.fenced_runs: set[str] = set()
        self.disk_full_at = 0.0  # monotonic time a spool write last failed for want of space
        self.launcher: Launcher | None = None
        # Tasks inherit the agent's environment as it was at start-up: copying os.environ
        # decodes every variable again, a twentieth of the agent's work per trivial task.
        self._environ = dict(os.environ)
        # Without cgroups, which processes are each task's (tracking.py); the agent's own
        # children that are no task's (its watchdog) are the agent's to name.
        self.tracker: tracking.Tracker | None = None
        self.spare_pids: Callable[[], set[int]] = set
        self._look_again = False
        self._home = os.path.expanduser("~")  # the agent's, likewise as at start-up (a lookup per task)

    def begin(self) -> None:
        """Start watching processes, output and memory (needs the running event loop)."""
        # The spool asks for file leases to learn no one else holds a slot's files (spool.py);
        # one broken meanwhile signals SIGIO, whose default would end the agent.
        _signal.signal(_signal.SIGIO, _signal.SIG_IGN)
        self.launcher = Launcher(self._on_exit)
        asyncio.get_running_loop().add_reader(self.spool.watch(self._on_growth), self.spool.pump)
        if not self.isolation.cgroups:
            if tracking.become_subreaper():
                self.tracker = tracking.Tracker()
            else:
                _log.warning("no_subreaper", detail="the kernel refused PR_SET_CHILD_SUBREAPER: processes that "
                             "detach from their task are not counted against its memory nor killed at its end")
            self._memory_watch = asyncio.create_task(self._watch_processes())

    async def _watch_processes(self) -> None:
        """Without cgroups: each task's processes, orphans included (tracking.py), and memory
        limits by watching usage: a task whose processes hold more resident memory than it was
        given is killed and reported out of memory."""
        while True:
            await self.clock.sleep(MEMORY_CHECK)
            running = {key: tracking.Running(meta.pid, meta.run_id) for key, meta in self._metas.items() if meta.pid}
            if self.tracker is not None:
                # One more look after the last task went, for what it left detached.
                if not running and not self._look_again:
                    continue
                self._look_again = bool(running)
                self.tracker.spare = self.spare_pids()
                trees = self.tracker.scan(running)
            else:
                trees = tracking.descendants({key: r.leader for key, r in running.items()
                                              if self._metas[key].memory_mb})
            for key in running:
                meta = self._metas[key]
                if meta.memory_mb and not meta.out_of_memory:
                    used = tracking.resident_mb(trees.get(key, []))
                    if used > meta.memory_mb:
                        _log.warning("task_out_of_memory", task_id=meta.task, used_mb=used, limit_mb=meta.memory_mb)
                        self._feed(st.MemoryExceeded(key))

    # -- adoption ----------------------------------------------------------------------------

    def adopt_all(self) -> int:
        adopted = 0
        metas = self.spool.existing()
        if swept := self.isolation.sweep([m.cgroups for m in metas]):
            _log.info("stale_cgroups_removed", count=swept)
        for meta in metas:
            event = self._adoption(meta)
            if event is not None:
                self._metas[meta.key] = meta
                self._feed(event)
                adopted += 1
        return adopted

    def _adoption(self, meta: Meta) -> st.Adopted | None:
        assert self.launcher is not None
        key = meta.key
        if meta.error:
            return st.Adopted(key, running=False, error=meta.error)
        pid, started = meta.pid, meta.start_time
        if not pid and (found := find_by_run_id(meta.run_id)) is not None:
            pid, started = found  # the agent died between starting it and writing its pid
            meta.pid, meta.start_time = found
            self.spool.save(meta)
        if (group := self.isolation.adopt(meta.cgroups)) is not None:
            self._groups[key] = group
        fenced = meta.fenced or meta.run_id in self.fenced_runs
        if fenced and not meta.fenced:
            meta.fenced = True  # the fence record is cleared once all are adopted
            self.spool.save(meta)
        if pid and self.launcher.adopt(key, pid, started, meta.run_id):
            try:
                self._open_user_files(key, meta, truncate=False,
                                      owner=runas.RunAs.from_ids(meta.ids) if meta.ids else None)
            except LaunchError as e:  # the copy on the node is lost; the head's copy is not
                _log.warning("output_file_reopen_failed", task_id=meta.task, error=str(e))
            left = 0.0
            if meta.runtime_deadline:
                left = max(0.001, meta.runtime_deadline - self.clock.now())
            _log.info("task_adopted", task_id=meta.task, attempt=meta.attempt, pid=pid)
            return st.Adopted(key, running=True, killing=meta.killing, runtime_left=left,
                              runtime_exceeded=meta.runtime_exceeded,
                              out_of_memory=meta.out_of_memory, fenced=fenced)
        code = self.spool.exit_status(key, meta.run_id)
        if code is not None:
            return st.Adopted(key, running=False, exit_code=code, runtime_exceeded=meta.runtime_exceeded,
                              out_of_memory=meta.out_of_memory, fenced=fenced)
        if not pid:
            self.spool.remove(key)  # never started: the head will count it lost and requeue it
            return None
        if meta.killing or fenced:
            return st.Adopted(key, running=False, signal=_signal.SIGKILL, runtime_exceeded=meta.runtime_exceeded,
                              out_of_memory=meta.out_of_memory, fenced=fenced)
        return st.Adopted(key, running=False,
                          error="it ended while the agent was down and left no exit status")

    # -- instructions ------------------------------------------------------------------------

    def start(self, key: st.Key, launch: nodes_pb2.LaunchTask, node: str) -> None:
        assert self.launcher is not None
        task, attempt = key
        limit = launch.runtime_limit.ToNanoseconds() / 1e9 if launch.HasField("runtime_limit") else 0.0
        meta = Meta(task=str(task), attempt=attempt, run_id=uuid.uuid4().hex,
                    runtime_deadline=self.clock.now() + limit if limit else 0.0)
        try:
            run_as = runas.resolve(launch.owner, self.config, node)
        except LaunchError as e:
            run_as, meta.error = None, str(e)
        cwd = meta.cwd = launch.working_directory or (run_as.home if run_as else self._home)
        if run_as is not None:
            meta.ids = run_as.ids
        for stream, path in (("stdout", launch.stdout_path), ("stderr", launch.stderr_path)):
            if path:
                meta.user_files[stream] = os.path.join(cwd, path)
        meta.gpus = self._free_gpus(launch.resources.generic.get(GPU, 0))
        meta.memory_mb = launch.resources.memory_mb
        try:
            out_fd, err_fd = self.spool.create(meta, key)
        except OSError as e:  # the spool's disk (full, read-only): the task cannot even be recorded
            self.spool.remove(key)
            why = self.spool_trouble(e)
            _log.warning("launch_failed", task_id=str(task), attempt=attempt, error=why)
            self._feed(st.StartFailed(key, why))
            return
        try:
            self._metas[key] = meta
            self._look_again = True
            env = self._environ.copy()
            env.update(launch.environment)  # the head resolved the task's SHOAL_* variables
            env.update({"SHOAL_NODE": node, "SHOAL_ATTEMPT": str(attempt), "SHOAL_RUN_ID": meta.run_id,
                        "SHOAL_LEASE": self.lease_id})
            if meta.gpus or GPU in launch.resources.generic:
                # The head counts GPUs; which devices is the node's business (it knows which are busy).
                env["CUDA_VISIBLE_DEVICES"] = env["SHOAL_GPUS"] = ",".join(meta.gpus)
            if int(launch.environment.get("SHOAL_NODE_COUNT", "1")) > 1:
                env["SHOAL_HOSTFILE"] = str(self._hostfile(key, launch.environment.get("SHOAL_NODES", "")))
            status = self.spool.status_path(key)
            prefix: list[str] = []
            if not meta.error:
                try:
                    group = self.isolation.create(self.spool.name(key), meta.memory_mb, launch.resources.cores,
                                                  self.config.max_processes)
                except OSError as e:
                    meta.error = f"cannot set up the task's cgroup on node {node}: {e.strerror}"
                else:
                    if group is not None:
                        self._groups[key] = group
                        meta.cgroups = group.dirs
                        prefix = group.prefix()
                        env["SHOAL_CGROUP"] = group.dirs[0]
            if run_as is not None:
                env.update(run_as.environment())
                try:  # the wrapper writes the exit code as the task's user
                    self.spool.make_status(key, run_as.uid, run_as.gid)
                except OSError as e:
                    meta.error = self.spool_trouble(e)
            try:
                if meta.error:
                    raise LaunchError(meta.error)
                self._open_user_files(key, meta, truncate=True, owner=run_as)
                pid = self.launcher.start(key, launch.command_line, env, cwd, launch.stdin_path, out_fd,
                                          err_fd, status, meta.run_id, prefix + (run_as.prefix() if run_as else []),
                                          hand_over=run_as is not None, files=run_as.files if run_as else nullcontext)
            except LaunchError as e:
                self._close_user_files(key)
                meta.error = str(e)
                self._save(meta, key)
                _log.warning("launch_failed", task_id=str(task), attempt=attempt, error=str(e))
                self._feed(st.StartFailed(key, str(e)))
                return
            meta.pid = pid
            self._save(meta, key)
            _log.info("task_started", task_id=str(task), attempt=attempt, pid=pid)
            self._feed(st.ProcessStarted(key, pid))
        finally:
            # The task holds its own copies now (or never will): the spool keeps its own.
            os.close(out_fd)
            os.close(err_fd)

    def spool_trouble(self, error: OSError) -> str:
        """What a failed write to the spool means, for the task's reason and the node's condition."""
        if error.errno == errno.ENOSPC:
            self.disk_full_at = self.clock.monotonic()
            return f"the node's spool disk is full ({self.spool.root}): free space there"
        return f"cannot write the task's record in the node's spool ({self.spool.root}): {error.strerror}"

    def _save(self, meta: Meta, key: st.Key) -> None:
        """Save a record of a task that runs on regardless: a failed save costs only its adoption
        by a restarted agent (which then finds it by its run id, or counts it lost)."""
        try:
            self.spool.save(meta, key)
        except OSError as e:
            _log.warning("spool_write_failed", task_id=meta.task, error=self.spool_trouble(e))

    def condition(self) -> str:
        """Why this node should take no new work ("" if none): its spool's disk is full, or was
        found full less than a minute ago and has not yet MIN_FREE_MB * 2 free."""
        try:
            fs = os.statvfs(self.spool.root)
        except OSError:
            return ""
        free_mb = fs.f_bavail * fs.f_frsize // (1024 * 1024)
        recent = self.disk_full_at and self.clock.monotonic() - self.disk_full_at < 60
        if free_mb < MIN_FREE_MB or (recent and free_mb < 2 * MIN_FREE_MB):
            return f"spool disk full: {self.spool.root} has {free_mb} MB free"
        if fs.f_files and fs.f_favail < 64:  # out of inodes: no record can be made either
            return f"spool disk full: {self.spool.root} has {fs.f_favail} inodes free"
        self.disk_full_at = 0.0
        return ""

    def _free_gpus(self, count: int) -> list[str]:
        if count <= 0:
            return []
        busy = {g for m in self._metas.values() for g in m.gpus}
        free = [d for d in self.gpu_devices if d not in busy]
        if len(free) < count:
            _log.warning("gpus_short", wanted=count, free=len(free))
        return free[:count]

    def _hostfile(self, key: st.Key, nodes: str) -> str:
        """An MPI hostfile ("host slots=N" lines, Open MPI's form) in the task's spool record."""
        words = nodes.split()
        path = Path(self.spool.hostfile_path(key))  # so that remove() takes it
        path.write_text("".join(f"{h} slots={c}\n" for h, c in zip(words[::2], words[1::2])))
        return str(path)

    def signal(self, key: st.Key, sig: int) -> None:
        assert self.launcher is not None
        self._signals[key] = sig
        self.launcher.signal(key, sig)
        if self.tracker is not None:
            self.tracker.kill(key, sig)  # those that left the process group
        if sig == _signal.SIGTERM:
            self._term_at.setdefault(key, self.clock.monotonic())
            if (group := self._groups.get(key)) is not None:
                for pid in group.pids():  # those that left the process group, too
                    try:
                        os.kill(pid, sig)
                    except (ProcessLookupError, PermissionError):
                        pass

    def kill_leftovers(self, key: st.Key, grace: float) -> None:
        """The task ended while being killed: SIGKILL what it left once its grace is over."""
        assert self.launcher is not None
        began = self._term_at.get(key)
        left = grace - (self.clock.monotonic() - began) if began is not None else 0.0
        group = self._groups.pop(key, None)

        def then() -> None:
            if group is not None:
                self.isolation.release(group)  # kills what is left in it, then removes it
            if self.tracker is not None:
                self.tracker.kill(key)

        if left <= 0:
            self.launcher.signal(key, _signal.SIGKILL)
            then()
        else:
            self.launcher.finish_later(key, left, then)

    def timer(self, key: st.Key, seconds: float, fire: Callable[[], None]) -> None:
        self.cancel_timer(key)

        async def wait_then_fire() -> None:
            await self.clock.sleep(seconds)
            self._timers.pop(key, None)
            fire()

        self._timers[key] = asyncio.create_task(wait_then_fire())

    def cancel_timer(self, key: st.Key) -> None:
        timer = self._timers.pop(key, None)
        if timer is not None:
            timer.cancel()

    def persist(self, key: st.Key, killing: bool, runtime_exceeded: bool, out_of_memory: bool = False,
                fenced: bool = False) -> None:
        meta = self._metas.get(key)
        if meta is not None:
            meta.killing, meta.runtime_exceeded, meta.out_of_memory = killing, runtime_exceeded, out_of_memory
            meta.fenced = fenced
            self._save(meta, key)

    def forget(self, key: st.Key) -> None:
        assert self.launcher is not None
        if self.tracker is not None:
            # Nothing of a task outlives it, as its cgroup's release ensures with cgroups: what
            # detached from it since its end (the state machine killed its process group).
            self.tracker.kill(key)
        self.cancel_timer(key)
        self._close_user_files(key)
        self._metas.pop(key, None)
        self._signals.pop(key, None)
        self._term_at.pop(key, None)
        self.launcher.release(key)  # reaped first, so the spool sees its process group gone
        self.spool.remove(key)
        if (group := self._groups.pop(key, None)) is not None:
            self.isolation.release(group)

    # -- what the processes do ---------------------------------------------------------------

    def ended_unseen(self) -> list[st.Key]:
        """Tasks that ended but whose exits are not delivered yet (Launcher.ended_unseen)."""
        return self.launcher.ended_unseen() if self.launcher is not None else []  # type: ignore[return-value]

    def deliver(self, keys: list[st.Key]) -> None:
        if self.launcher is not None:
            self.launcher.deliver(keys)  # type: ignore[arg-type]

    def was_fenced(self, key: st.Key) -> bool:
        """The watchdog stopped this task's process (its run is in the fence record)."""
        meta = self._metas.get(key)
        return meta is not None and meta.run_id in self.fenced_runs

    def _on_exit(self, key: object, returncode: int | None) -> None:
        k: st.Key = key  # type: ignore[assignment]
        self._on_growth(k)  # copy the last of its output before it is reported
        group, meta = self._groups.get(k), self._metas.get(k)
        if group is not None and meta is not None and meta.memory_mb and group.oom_killed():
            _log.warning("task_out_of_memory", task_id=meta.task, by="kernel", limit_mb=meta.memory_mb)
            self._feed(st.MemoryExceeded(k))  # so the exit below is reported as OUT_OF_MEMORY
        fenced = self.was_fenced(k)
        if returncode in (None, 2) and meta is not None and self._could_not_enter(k, meta.cwd):
            self._feed(st.ProcessExited(k, 0, 0, f"the task's user cannot enter {meta.cwd} on this node", fenced))
            return
        if returncode is not None:
            code, sig = (0, -returncode) if returncode < 0 else (returncode, 0)
            if code > 128 and self._signals.get(k) == code - 128:
                code, sig = 0, code - 128  # the wrapper, waiting, passed on its task's death by our signal
            self._feed(st.ProcessExited(k, code, sig, fenced=fenced))
            return
        code = self.spool.exit_status(k, meta.run_id if meta is not None else "")
        if code is not None:
            self._feed(st.ProcessExited(k, code, 0, fenced=fenced))
        elif k in self._signals:
            self._feed(st.ProcessExited(k, 0, self._signals[k], fenced=fenced))  # what we last sent it
        else:
            self._feed(st.ProcessExited(k, 0, 0, "it ended without leaving an exit status", fenced))

    def _could_not_enter(self, key: st.Key, cwd: str) -> bool:
        if not cwd:
            return False  # recorded by an agent that did not enter it this way
        said = cd_failed(cwd)
        size = self.spool.size(key, "stderr")
        return 0 < size <= 65536 and self.spool.read(key, "stderr", 0, size).endswith(said)

    def _on_growth(self, key: st.Key) -> None:
        for stream, fd in self._user_files.get(key, {}).items():
            copied = os.fstat(fd).st_size  # only the agent writes it, appending
            while data := self.spool.read(key, stream, copied, COPY_CHUNK):
                try:
                    os.write(fd, data)
                except OSError as e:  # a full disk must not stop the copy the head keeps
                    _log.warning("output_file_write_failed", task_id=str(key[0]), error=e.strerror)
                    break
                copied += len(data)
        self._on_output(key)

    def _open_user_files(self, key: st.Key, meta: Meta, truncate: bool, owner: runas.RunAs | None = None) -> None:
        """The task's own stdout/stderr files on the node, besides the copy the head keeps,
        opened (and made) as its owner when it runs as its owner (runas.RunAs.files)."""
        for stream in STREAMS:
            path = meta.user_files.get(stream)
            if not path:
                continue
            # Never through a symbolic link: one planted where a job's output goes (on a host
            # with protected_symlinks off) would have the owner write over the link's target.
            mode = os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW | os.O_CLOEXEC | (os.O_TRUNC if truncate else 0)
            try:
                with owner.files() if owner is not None else nullcontext():
                    fd = os.open(path, mode, 0o644)
            except OSError as e:
                # A link gives ELOOP, or EACCES when O_CREAT meets one in a sticky directory;
                # looked at as the user, who learns nothing of where they cannot look.
                with owner.files() if owner is not None else nullcontext():
                    link = _is_link(path)
                why = "it is a symbolic link, which is not followed" if link else e.strerror
                raise LaunchError(f"cannot open {stream} file {path}: {why}") from None
            self._user_files.setdefault(key, {})[stream] = fd

    def _close_user_files(self, key: st.Key) -> None:
        for fd in self._user_files.pop(key, {}).values():
            os.close(fd)
