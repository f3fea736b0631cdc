"""The compute-node agent's I/O shell: the connection to the head, heartbeats, processes.

The agent opens one Connect stream to the head (so nodes behind NAT work), says Hello
with its full view, and then carries out what the head sends. Decisions about tasks live in
the pure AgentState (state.py); this module turns head messages and process events into
its events and carries out the instructions it returns.

One writer coroutine per connection owns the stream's send side. It sends output from the
spool in bounded bursts between control messages, so a task printing a gigabyte never
starves heartbeats, and it sends a task's exit only after all of its output.

On SIGTERM the v0 agent stops its tasks (SIGTERM, then SIGKILL after kill_grace), reports
how they ended if the head is reachable, and exits. Keeping tasks running across an agent
restart comes with the reliability work.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections import deque
from dataclasses import dataclass, field

import grpc

from common import log
from common.clock import Clock
from common.config import NodeConfig
from common.resources import Resources
from common.retry import Backoff
from common.wire import STREAM_VALUES, resources_msg, task_id, task_ref, timestamp
from computenode import state as st
from computenode.launcher import Launcher, LaunchError
from computenode.spool import STREAMS, Spool
from shoal import __version__
from shoal.v1 import nodes_pb2, nodes_pb2_grpc

CHUNK = 64 * 1024
BURST = 16  # output chunks sent between two looks at the control queue
DRAIN_GRACE = 2.0  # seconds to wait for EOF after a task's process group is gone
_HEARTBEAT = object()
_log = log.get("agent")

CHANNEL_OPTIONS = [
    ("grpc.keepalive_time_ms", 10_000),
    ("grpc.keepalive_timeout_ms", 5_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.max_pings_without_data", 0),
]


class Refused(Exception):
    """The head refused this agent for a reason retrying will not fix."""


@dataclass(eq=False)
class _Conn:
    call: grpc.aio.StreamStreamCall
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    control: deque[object] = field(default_factory=deque)
    # Output offsets sent on this connection, for tasks the head knows about.
    sent: dict[tuple[st.Key, str], int] = field(default_factory=dict)
    # Exits to report once their output is all sent.
    exits: set[st.Key] = field(default_factory=set)

    def push(self, message: object) -> None:
        self.control.append(message)
        self.wake.set()


class Agent:
    def __init__(self, config: NodeConfig, capacity: Resources, clock: Clock) -> None:
        self.config = config
        self.capacity = capacity
        self.clock = clock
        self.instance_id = uuid.uuid4().hex
        self.state = st.AgentState()
        self.spool = Spool(config.state_dir / "spool")
        self.acked_seq = 0
        self.heartbeat_interval = 5.0
        self._conn: _Conn | None = None
        self._timers: dict[st.Key, asyncio.Task[None]] = {}
        self._user_files: dict[st.Key, dict[str, int]] = {}
        self._changed = asyncio.Event()
        self.launcher: Launcher | None = None

    # -- main loop -----------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> int:
        self.launcher = Launcher(self._on_output, self._on_exit, self._on_drained)
        backoff = Backoff()
        code = 0
        while not stop.is_set():
            session = asyncio.create_task(self._session(backoff))
            stopper = asyncio.create_task(stop.wait())
            done, _ = await asyncio.wait({session, stopper}, return_when=asyncio.FIRST_COMPLETED)
            stopper.cancel()
            if session in done:
                exc = session.exception()
                if isinstance(exc, Refused):
                    _log.error("agent_refused", head=self.config.head, error=str(exc))
                    code = 1
                    break
                if exc is not None and not isinstance(exc, (grpc.aio.AioRpcError, ConnectionError)):
                    _log.error("session_failed", error=repr(exc))
                delay = backoff.next_delay()
                _log.info("reconnecting", head=self.config.head, in_seconds=round(delay, 2),
                          error=_rpc_error(exc) if exc else "stream ended")
                try:
                    await asyncio.wait_for(stop.wait(), delay)
                except TimeoutError:
                    pass
            else:
                await self._stop_tasks()
                session.cancel()
                await asyncio.gather(session, return_exceptions=True)
        return code

    async def _session(self, backoff: Backoff) -> None:
        async with grpc.aio.insecure_channel(self.config.head, options=CHANNEL_OPTIONS) as channel:
            call = nodes_pb2_grpc.NodeServiceStub(channel).Connect()
            conn = _Conn(call)
            try:
                await call.write(nodes_pb2.AgentMessage(hello=self._hello()))
                first = await call.read()
            except grpc.aio.AioRpcError as e:
                if e.code() in (grpc.StatusCode.ALREADY_EXISTS, grpc.StatusCode.INVALID_ARGUMENT):
                    raise Refused(e.details()) from None
                raise
            if first is grpc.aio.EOF or first.WhichOneof("kind") != "welcome":
                return
            self._welcome(conn, first.welcome)
            self.acked_seq = first.seq
            backoff.reset()
            _log.info("connected", head=self.config.head, node=self.config.name, tasks=len(self.state.tasks))
            self._conn = conn
            workers = [asyncio.create_task(self._writer(conn)), asyncio.create_task(self._heartbeats(conn))]
            try:
                while True:
                    msg = await call.read()
                    if msg is grpc.aio.EOF:
                        break
                    self._on_head_message(msg)
                    for w in workers:
                        if w.done():
                            w.result()  # a failed writer ends the session
            finally:
                self._conn = None
                for w in workers:
                    w.cancel()
                await asyncio.gather(*workers, return_exceptions=True)
                call.cancel()

    # -- from the head -------------------------------------------------------------------

    def _hello(self) -> nodes_pb2.Hello:
        return nodes_pb2.Hello(
            node_name=self.config.name,
            instance_id=self.instance_id,
            capacity=resources_msg(self.capacity),
            agent_version=__version__,
            hostname=os.uname().nodename,
            tasks=self._reports(),
        )

    def _welcome(self, conn: _Conn, welcome: nodes_pb2.Welcome) -> None:
        self.heartbeat_interval = welcome.heartbeat_interval.ToNanoseconds() / 1e9 or self.heartbeat_interval
        for r in welcome.resume:
            key = (task_id(r.task), r.attempt)
            entry = self.state.tasks.get(key)
            if entry is None:
                continue
            conn.sent[(key, "stdout")] = r.stdout_offset
            conn.sent[(key, "stderr")] = r.stderr_offset
            if entry.phase is st.Phase.REPORTED:
                conn.exits.add(key)
        conn.wake.set()

    def _on_head_message(self, msg: nodes_pb2.HeadMessage) -> None:
        kind = msg.WhichOneof("kind")
        if kind == "launch":
            key = (task_id(msg.launch.task), msg.launch.attempt)
            if self._conn is not None and key not in self.state.tasks:
                for stream in STREAMS:
                    self._conn.sent[(key, stream)] = 0
            limit = msg.launch.runtime_limit.ToNanoseconds() / 1e9 if msg.launch.HasField("runtime_limit") else 0.0
            self._apply(st.LaunchRequested(key, msg.launch, limit))
        elif kind == "kill":
            self._apply(st.KillRequested((task_id(msg.kill.task), msg.kill.attempt)))
        elif kind == "exit_ack":
            self._apply(st.ExitAcked((task_id(msg.exit_ack.task), msg.exit_ack.attempt)))
        self.acked_seq = msg.seq

    # -- the state machine and its instructions ------------------------------------------

    def _apply(self, event: st.Event) -> None:
        for instruction in self.state.handle(event):
            self._execute(instruction)
        self._changed.set()

    def _execute(self, ins: st.Instruction) -> None:
        assert self.launcher is not None
        if isinstance(ins, st.Start):
            self._start(ins.key, ins.launch)
        elif isinstance(ins, st.Signal):
            self.launcher.signal(ins.key, ins.signal)
        elif isinstance(ins, st.StartKillTimer):
            self._timer(ins.key, self.config.kill_grace, lambda k=ins.key: self._apply(st.KillTimeout(k)))
        elif isinstance(ins, st.StartRuntimeTimer):
            self._timer(ins.key, ins.seconds, lambda k=ins.key: self._apply(st.RuntimeExceeded(k)))
        elif isinstance(ins, st.ReportStarted):
            if self._conn is not None:
                task, attempt = ins.key
                self._conn.push(nodes_pb2.AgentMessage(started=nodes_pb2.TaskStarted(
                    task=task_ref(task), attempt=attempt, pid=ins.pid, time=timestamp(self.clock.now()))))
        elif isinstance(ins, st.ReportExited):
            self._cancel_timer(ins.key)
            if self._conn is not None and (ins.key, "stdout") in self._conn.sent:
                self._conn.exits.add(ins.key)
                self._conn.wake.set()
        elif isinstance(ins, st.Forget):
            self._cancel_timer(ins.key)
            self._close_user_files(ins.key)
            self.spool.remove(ins.key)
            self.launcher.release(ins.key)
            if self._conn is not None:
                for stream in STREAMS:
                    self._conn.sent.pop((ins.key, stream), None)

    def _start(self, key: st.Key, launch: nodes_pb2.LaunchTask) -> None:
        assert self.launcher is not None
        task, attempt = key
        self.spool.open(key)
        env = dict(os.environ)
        env.update(launch.environment)  # the head resolved the task's SHOAL_* variables
        env.update({"SHOAL_NODE": self.config.name, "SHOAL_ATTEMPT": str(attempt)})
        cwd = launch.working_directory or os.path.expanduser("~")
        try:
            self._open_user_files(key, cwd, launch)
            pid = self.launcher.start(key, launch.command_line, env, cwd, launch.stdin_path)
        except LaunchError as e:
            self._close_user_files(key)
            _log.warning("launch_failed", task_id=str(task), attempt=attempt, error=str(e))
            self._apply(st.StartFailed(key, str(e)))
            return
        _log.info("task_started", task_id=str(task), attempt=attempt, pid=pid)
        self._apply(st.ProcessStarted(key, pid))

    def _open_user_files(self, key: st.Key, cwd: str, launch: nodes_pb2.LaunchTask) -> None:
        """The task's own stdout/stderr files on the node (besides the copy the head keeps)."""
        if not os.path.isdir(cwd):
            return  # the launcher reports the missing directory
        for stream, path in (("stdout", launch.stdout_path), ("stderr", launch.stderr_path)):
            if not path:
                continue
            full = os.path.join(cwd, path)
            try:
                fd = os.open(full, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND | os.O_CLOEXEC, 0o644)
            except OSError as e:
                raise LaunchError(f"cannot open {stream} file {full}: {e.strerror}") from None
            self._user_files.setdefault(key, {})[stream] = fd

    def _close_user_files(self, key: st.Key) -> None:
        for fd in self._user_files.pop(key, {}).values():
            os.close(fd)

    def _on_output(self, key: object, stream: str, data: bytes) -> None:
        self.spool.append(key, stream, data)  # type: ignore[arg-type]
        files = self._user_files.get(key)  # type: ignore[arg-type]
        if files and stream in files:
            try:
                os.write(files[stream], data)
            except OSError as e:  # a full disk must not stop the copy the head keeps
                _log.warning("output_file_write_failed", task_id=str(key[0]), error=e.strerror)  # type: ignore[index]
        if self._conn is not None:
            self._conn.wake.set()

    def _on_exit(self, key: object, exit_code: int, signal: int) -> None:
        self._apply(st.ProcessExited(key, exit_code, signal))  # type: ignore[arg-type]
        entry = self.state.tasks.get(key)  # type: ignore[arg-type]
        if entry is not None and entry.phase is st.Phase.ENDED:
            # Something that left the process group may still hold the pipes open.
            launcher = self.launcher
            assert launcher is not None
            self._timer(key, DRAIN_GRACE, lambda: launcher.close_pipes(key))  # type: ignore[arg-type]

    def _on_drained(self, key: object) -> None:
        self._cancel_timer(key)  # type: ignore[arg-type]
        self._close_user_files(key)  # type: ignore[arg-type]
        self._apply(st.OutputDrained(key))  # type: ignore[arg-type]

    def _timer(self, key: st.Key, seconds: float, fire: object) -> None:
        self._cancel_timer(key)

        async def wait_then_fire() -> None:
            await self.clock.sleep(seconds)
            self._timers.pop(key, None)
            fire()  # type: ignore[operator]

        self._timers[key] = asyncio.create_task(wait_then_fire())

    def _cancel_timer(self, key: st.Key) -> None:
        timer = self._timers.pop(key, None)
        if timer is not None:
            timer.cancel()

    # -- to the head ---------------------------------------------------------------------

    def _reports(self) -> list[nodes_pb2.TaskReport]:
        out = []
        for e in self.state.entries():
            task, attempt = e.key
            running = e.phase in (st.Phase.RUNNING, st.Phase.KILLING)
            out.append(nodes_pb2.TaskReport(
                task=task_ref(task), attempt=attempt,
                phase=nodes_pb2.TASK_PHASE_RUNNING if running else nodes_pb2.TASK_PHASE_EXITED,
                exit_code=e.exit_code, signal=e.signal, error=e.error, runtime_exceeded=e.runtime_exceeded,
                stdout_bytes=self.spool.size(e.key, "stdout"), stderr_bytes=self.spool.size(e.key, "stderr"),
            ))
        return out

    async def _heartbeats(self, conn: _Conn) -> None:
        while True:
            await self.clock.sleep(self.heartbeat_interval)
            conn.push(_HEARTBEAT)

    async def _writer(self, conn: _Conn) -> None:
        call = conn.call
        while True:
            await conn.wake.wait()
            conn.wake.clear()
            more = True
            while more:
                more = await self._send_output(conn, BURST)
                while conn.control:
                    item = conn.control.popleft()
                    if item is _HEARTBEAT:
                        item = nodes_pb2.AgentMessage(heartbeat=nodes_pb2.Heartbeat(
                            acked_seq=self.acked_seq, tasks=self._reports()))
                    await call.write(item)
                for key in list(conn.exits):
                    if self._flushed(conn, key):
                        conn.exits.discard(key)
                        await call.write(self._exited_message(key))
            self._changed.set()

    async def _send_output(self, conn: _Conn, budget: int) -> bool:
        """Send up to `budget` chunks; True if output is still waiting."""
        for (key, stream), offset in list(conn.sent.items()):
            size = self.spool.size(key, stream)
            while offset < size:
                if budget == 0:
                    return True
                data = self.spool.read(key, stream, offset, CHUNK)
                if not data or (key, stream) not in conn.sent:
                    break
                task, attempt = key
                await conn.call.write(nodes_pb2.AgentMessage(output=nodes_pb2.TaskOutput(
                    task=task_ref(task), attempt=attempt, stream=STREAM_VALUES[stream], offset=offset, data=data)))
                offset += len(data)
                conn.sent[(key, stream)] = offset
                budget -= 1
        return False

    def _flushed(self, conn: _Conn, key: st.Key) -> bool:
        return all(conn.sent.get((key, s), 0) >= self.spool.size(key, s) for s in STREAMS)

    def _exited_message(self, key: st.Key) -> nodes_pb2.AgentMessage:
        e = self.state.tasks[key]
        task, attempt = key
        return nodes_pb2.AgentMessage(exited=nodes_pb2.TaskExited(
            task=task_ref(task), attempt=attempt, exit_code=e.exit_code, signal=e.signal, error=e.error,
            runtime_exceeded=e.runtime_exceeded, time=timestamp(self.clock.now()),
            stdout_bytes=self.spool.size(key, "stdout"), stderr_bytes=self.spool.size(key, "stderr"),
        ))

    # -- shutdown ------------------------------------------------------------------------

    async def _stop_tasks(self) -> None:
        """Stop every task and give the head a chance to hear how they ended."""
        for entry in self.state.entries():
            if entry.phase is st.Phase.RUNNING:
                self._apply(st.KillRequested(entry.key))
        deadline = self.clock.monotonic() + self.config.kill_grace + DRAIN_GRACE + 2.0
        while self.clock.monotonic() < deadline:
            unsettled = any(e.phase is not st.Phase.REPORTED for e in self.state.entries())
            conn = self._conn
            if not unsettled and (conn is None or not conn.exits):
                break
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), max(0.0, deadline - self.clock.monotonic()))
            except TimeoutError:
                break
        _log.info("agent_stopped", tasks_left=sum(1 for e in self.state.entries() if e.phase is not st.Phase.REPORTED))


def _rpc_error(exc: BaseException) -> str:
    if isinstance(exc, grpc.aio.AioRpcError):
        return f"{exc.code().name}: {exc.details()}"
    return repr(exc)
