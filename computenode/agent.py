"""The compute-node agent's connection to the head, and the driver of its state machine.

The agent opens one Connect stream to the head (so nodes behind NAT work), says Hello with its
full view, and then carries out what the head sends. Decisions about tasks live in the pure
AgentState (state.py); the local work (processes, spool, timers, adoption) is the runner's
(runner.py); this module wires the two to the head.

One writer coroutine per connection owns the stream's send side. It sends output from the
spool in bounded bursts between control messages, so a task printing a gigabyte never starves
heartbeats, and it sends a task's exit only after all of its output.

Tasks outlive the agent: on SIGTERM (or a crash) they keep running, and the next agent on the
same state dir adopts them from the spool. `stop_tasks_on_exit` (used by local clusters) stops
them instead, SIGTERM then SIGKILL after kill_grace, and reports how they ended.

Every task runs under the node's lease (lease.py, keeper.py), renewed by the head's answers to
Hello and to each heartbeat. When it lapses the agent stops its tasks and ends the session,
and a watchdog beside it does the same if the agent cannot (fence.py). A head that stops
answering for longer than its heartbeats explain is left for the next address given (an
active head and its standbys), one address per session, so a frozen leader does not hold its
agents: each Hello waits HELLO_TIMEOUT for its Welcome at most.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from pathlib import Path

import grpc

from common import addr, log, tls
from common.clock import Clock
from common.config import NodeConfig
from common.resources import GPU, Resources
from common.retry import Backoff
from common.wire import STREAM_VALUES, resources_msg, task_id, task_ref, timestamp
from computenode import probe
from computenode import state as st
from computenode.capacity import gpu_devices
from computenode.cgroups import Isolation
from computenode.conn import CHANNEL_OPTIONS, NAME_IN_USE_GRACE, Refused
from computenode.conn import HEARTBEAT as _HEARTBEAT
from computenode.conn import Conn as _Conn
from computenode.fake import FakeRunner
from computenode.keeper import LeaseKeeper
from computenode.metrics import NO_METRICS, AgentMetrics
from computenode.runner import TaskRunner
from computenode.spool import STREAMS, Spool
from shoal import __version__
from shoal.v1 import nodes_pb2, nodes_pb2_grpc

# Output goes up in chunks of 256 KiB: grpc.aio's work per message outweighs the bytes'. A 1 GiB
# stdout reached a live follower here at 137 MB/s in 64 KiB chunks and 177 MB/s in 256 KiB ones
# (`bench/scale.py output`); 1 MiB chunks did worse (97), held up by HTTP/2 flow control.
CHUNK = 256 * 1024
BURST = 4  # output chunks sent between two looks at the control queue (1 MiB, as before)
MAX_BATCH = 256  # reports in one write
# While the agent holds launches it has no room for yet (sent ahead), its node has its next
# tasks in hand, and what it reports (mostly exits) waits this long to go up together: each
# message costs the head more than its content. A sweep of 2,000 `true` on 2 agents: all CPU
# per task -6% at 3 ms, -10% at 6 ms, which lost throughput on a fast hour (2 alternating rounds).
REPORT_GATHER = 0.003
# Seconds a Hello waits for its Welcome: past it the head (a frozen one) is left for the next
# address. A head answers once it has recorded the node, a write on a busy one.
HELLO_TIMEOUT = 10.0
NODE_TOKEN_FILE = "node.token"
# Metadata names (the head's headnode/api/identity.py reads them).
NODE_TOKEN, JOIN_TOKEN = "shoal-node-token", "shoal-join-token"
_log = log.get("agent")

class Agent:
    def __init__(self, config: NodeConfig, capacity: Resources, clock: Clock,
                 isolation: Isolation | None = None, fake_launch: bool = False,
                 metrics: AgentMetrics = NO_METRICS) -> None:
        self.config = config
        self.metrics = metrics
        self.capacity = capacity
        self.clock = clock
        self.instance_id = uuid.uuid4().hex
        # The agent holds launches dispatched ahead until the node has room for them (state.py).
        self.state = st.AgentState(capacity.cores, capacity.memory_mb)
        self.spool = Spool(config.state_dir / "spool")
        # fake_launch: benchmarks of the head with many agents in one process (fake.py).
        self.runner: TaskRunner | FakeRunner = FakeRunner(self._apply) if fake_launch else TaskRunner(
            config, clock, self.spool, self._apply, self._on_output, gpu_devices(config, capacity.get(GPU)),
            isolation or Isolation("watch", "no isolation given"))
        self.acked_seq = 0
        self.heartbeat_interval = 5.0
        self.kill_grace = config.kill_grace  # until the head says (Welcome)
        self.keeper = LeaseKeeper(config.state_dir, config.name, config.head, clock, enforce=not fake_launch)
        self._addresses = addr.addresses(config.head)
        self._next_address = 0
        self._renewer = ""  # the head address that last renewed the lease
        self._beat = 0
        self._last_condition = ""
        self._conn: _Conn | None = None
        self._changed = asyncio.Event()

    @property
    def connected(self) -> bool:
        """A session with the head is open (it has welcomed this agent)."""
        return self._conn is not None

    # -- main loop -----------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> int:
        self.runner.begin()
        self.keeper.open(self.config.kill_grace)
        if isinstance(self.runner, TaskRunner):
            self.runner.lease_id = self.keeper.lease_id
            self.runner.fenced_runs = self.keeper.fenced_runs
            self.runner.spare_pids = lambda: {self.keeper.watchdog_pid}
        if stopped := await asyncio.to_thread(self.keeper.stop_orphans):
            _log.warning("orphans_stopped", node=self.config.name, processes=stopped,
                         detail="tasks an earlier agent of this node or state dir left running")
        if adopted := self.runner.adopt_all():
            _log.info("tasks_adopted", count=adopted)
        self.keeper.adopted()
        keeper = asyncio.create_task(self.keeper.run(self._lease_lapsed, self._busy, lambda: self._renewer,
                                                     self._silent_after))
        try:
            return await self._run(stop)
        finally:
            keeper.cancel()
            await asyncio.gather(keeper, return_exceptions=True)
            self.keeper.close(tasks_left=self._busy())

    def _condition(self) -> str:
        condition = self.runner.condition()
        if condition != self._last_condition:
            (_log.warning if condition else _log.info)("node_condition", node=self.config.name,
                                                       condition=condition or "cleared")
            self._last_condition = condition
        return condition

    def _silent_after(self) -> float:
        """Seconds without renewal past which the keeper probes the head: a missed heartbeat and
        a half, but never later than a third of the lease, so that a probe of a stalled head
        (which takes its whole timeout) still extends the lease before it ends under load."""
        return min(1.5 * self.heartbeat_interval, self.keeper.lease.lease / 3 or 1.5 * self.heartbeat_interval)

    def _busy(self) -> bool:
        return any(e.phase is not st.Phase.REPORTED for e in self.state.tasks.values())

    async def _run(self, stop: asyncio.Event) -> int:
        # Capped at 2 s: a standby head takes over within seconds, and its agents' reconnects
        # bound how soon work resumes; a refused connect to a dead head costs next to nothing.
        backoff = Backoff(maximum=2.0)
        code = 0
        refused_since: float | None = None
        while not stop.is_set():
            await self._pick_address()
            session = asyncio.create_task(self._session(backoff))
            stopper = asyncio.create_task(stop.wait())
            done, _ = await asyncio.wait({session, stopper}, return_when=asyncio.FIRST_COMPLETED)
            stopper.cancel()
            if session in done:
                exc = session.exception()
                if isinstance(exc, Refused):
                    now = self.clock.monotonic()
                    refused_since = now if refused_since is None else refused_since
                    if not exc.name_in_use or now - refused_since >= NAME_IN_USE_GRACE:
                        _log.error("agent_refused", head=self.config.head, error=str(exc))
                        code = 1
                        break
                    _log.warning("node_name_in_use", head=self.config.head, error=str(exc),
                                 gives_up_in=round(NAME_IN_USE_GRACE - (now - refused_since), 1))
                else:
                    refused_since = None
                if exc is not None and not isinstance(exc, (grpc.aio.AioRpcError, ConnectionError, Refused,
                                                            TimeoutError)):
                    _log.error("session_failed", error=repr(exc))
                if exc is not None or len(self._addresses) > 1:
                    self._next_address += 1  # the next head in the list, round robin
                delay = backoff.next_delay()
                _log.info("reconnecting", head=self._address(), in_seconds=round(delay, 2),
                          error=_rpc_error(exc) if exc else session.result() or "stream ended")
                try:
                    await asyncio.wait_for(stop.wait(), delay)
                except TimeoutError:
                    pass
            else:
                if self.config.stop_tasks_on_exit:
                    await self._stop_tasks()
                else:
                    await self._flush_briefly()
                session.cancel()
                await asyncio.gather(session, return_exceptions=True)
        self.spool.close()
        return code

    async def _pick_address(self) -> None:
        """With several head addresses, start from the one whose process answers (probe.py):
        a standby refuses, a frozen leader accepts and says nothing, and either would cost a
        failed session (a frozen one, HELLO_TIMEOUT). None answering: round robin as before."""
        if len(self._addresses) < 2:
            return
        n = len(self._addresses)
        for i in range(n):
            at = (self._next_address + i) % n
            prober = probe.Prober()
            try:
                found = await prober.probe(self._addresses[at], timeout=1.0)
            finally:
                prober.close()
            if found == probe.ALIVE:
                self._next_address = at
                return

    def _address(self) -> str:
        return self._addresses[self._next_address % len(self._addresses)]

    async def _session(self, backoff: Backoff) -> str:
        """One Connect stream to one head address; returns why it ended, if the agent ended it."""
        address = self._address()
        async with addr.channel(address, self._tls, aio=True, options=CHANNEL_OPTIONS,
                                name_from=self.config.head) as channel:
            call = nodes_pb2_grpc.NodeServiceStub(channel).Connect(metadata=self._credential())
            conn = _Conn(call, address)
            try:
                sent = self.clock.boottime()
                first = await asyncio.wait_for(self._greet(call), HELLO_TIMEOUT)
            except grpc.aio.AioRpcError as e:
                if e.code() in (grpc.StatusCode.ALREADY_EXISTS, grpc.StatusCode.INVALID_ARGUMENT,
                                grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED):
                    raise Refused(e.details(), e.code() == grpc.StatusCode.ALREADY_EXISTS) from None
                raise
            except TimeoutError:
                call.cancel()
                raise TimeoutError(f"no welcome from {address} within {HELLO_TIMEOUT:g}s") from None
            if first is grpc.aio.EOF or first.WhichOneof("kind") != "welcome":
                return ""
            self._welcome(conn, first.welcome)
            self.keeper.renew(sent)
            self._renewer = address
            self.acked_seq = first.seq
            backoff.reset()
            _log.info("connected", head=address, node=self.config.name, tasks=len(self.state.tasks))
            self._conn = conn
            conn.heard = self.clock.monotonic()
            workers = [asyncio.create_task(self._writer(conn)), asyncio.create_task(self._heartbeats(conn))]
            try:
                while True:
                    try:
                        msg = await call.read()
                    except asyncio.CancelledError:
                        if conn.ended:  # the agent's own doing (conn.end): a silent head, a lapsed lease
                            return conn.ended
                        raise
                    if msg is grpc.aio.EOF:
                        break
                    conn.heard = self.clock.monotonic()
                    self._on_head_message(msg)
                    if conn.ended:
                        return conn.ended
                    for w in workers:
                        if w.done():
                            w.result()  # a failed writer ends the session
            finally:
                self._conn = None
                for w in workers:
                    w.cancel()
                await asyncio.gather(*workers, return_exceptions=True)
                call.cancel()
        return ""

    async def _greet(self, call: grpc.aio.StreamStreamCall) -> object:
        await call.write(nodes_pb2.AgentMessage(hello=self._hello()))
        return await call.read()

    # -- from the head -------------------------------------------------------------------

    def _hello(self) -> nodes_pb2.Hello:
        return nodes_pb2.Hello(
            node_name=self.config.name,
            instance_id=self.instance_id,
            capacity=resources_msg(self.capacity),
            groups=list(self.config.groups),
            labels=list(self.config.labels),
            agent_version=__version__,
            hostname=os.uname().nodename,
            tasks=self._reports(),
            fresh_state=self.keeper.fresh,
            condition=self._condition(),
        )

    @property
    def _tls(self) -> tls.Files | None:
        c = self.config
        if c.plaintext:
            return None
        return tls.Files(Path(c.tls_ca), Path(c.tls_cert) if c.tls_cert else None, Path(c.tls_key) if c.tls_key else None)

    def _credential(self) -> tuple[tuple[str, str], ...]:
        """This node's own token once it has one, else the join token it was given."""
        own = self.config.state_dir / NODE_TOKEN_FILE
        if own.exists():
            return ((NODE_TOKEN, own.read_text().strip()),)
        if self.config.join_token:
            return ((JOIN_TOKEN, self.config.join_token),)
        return ()

    def _welcome(self, conn: _Conn, welcome: nodes_pb2.Welcome) -> None:
        if welcome.node_token:
            path = self.config.state_dir / NODE_TOKEN_FILE
            fd = os.open(path.with_suffix(".tmp"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(welcome.node_token)
            os.replace(path.with_suffix(".tmp"), path)
            _log.info("node_token_saved", path=str(path))
        self.heartbeat_interval = welcome.heartbeat_interval.ToNanoseconds() / 1e9 or self.heartbeat_interval
        if welcome.HasField("kill_grace"):
            self.kill_grace = welcome.kill_grace.ToNanoseconds() / 1e9
        self.keeper.configure(welcome.task_lease.ToNanoseconds() / 1e9, welcome.stall_grace.ToNanoseconds() / 1e9,
                              self.kill_grace)
        for r in welcome.resume:
            key = (task_id(r.task), r.attempt)
            entry = self.state.tasks.get(key)
            if entry is None:
                continue
            conn.sent[(key, "stdout")] = r.stdout_offset
            conn.sent[(key, "stderr")] = r.stderr_offset
            if entry.phase is st.Phase.REPORTED:
                conn.exits.add(key)
        conn.dirty.update(dict.fromkeys(key for key, _ in conn.sent))
        conn.wake.set()

    def _on_head_message(self, msg: nodes_pb2.HeadMessage) -> None:
        if self.keeper.lapsed():  # woken from a freeze, say, with messages of a stale session
            self._lease_lapsed()
        conn = self._conn
        if conn is not None and conn.ended:
            return  # the session is over: what the head sent is for the next one to settle
        kind = msg.WhichOneof("kind")
        if kind == "heartbeat_ack":
            if conn is None:
                return
            number = msg.heartbeat_ack.number
            sent = conn.beats.pop(number, None)
            for older in [n for n in conn.beats if n < number]:
                del conn.beats[older]
            if sent is not None:
                self.keeper.renew(sent)
                self._renewer = conn.address
            return
        if kind == "batch":
            for item in msg.batch.items:
                self._on_head_message(item)
            return
        if kind == "launch":
            key = (task_id(msg.launch.task), msg.launch.attempt)
            if self._conn is not None and key not in self.state.tasks:
                for stream in STREAMS:
                    self._conn.sent[(key, stream)] = 0
            limit = msg.launch.runtime_limit.ToNanoseconds() / 1e9 if msg.launch.HasField("runtime_limit") else 0.0
            asks = msg.launch.resources
            self._apply(st.LaunchRequested(key, msg.launch, limit, asks.cores, asks.memory_mb))
        elif kind == "kill":
            self._apply(st.KillRequested((task_id(msg.kill.task), msg.kill.attempt)))
        elif kind == "exit_ack":
            self._apply(st.ExitAcked((task_id(msg.exit_ack.task), msg.exit_ack.attempt)))
        self.acked_seq = msg.seq

    # -- the state machine and its instructions ------------------------------------------

    def _apply(self, event: st.Event) -> None:
        if type(event) is st.ProcessExited and self.keeper.lapsed():
            self._lease_lapsed(event)  # the exit is judged with the others that wait (below)
            return
        for instruction in self.state.handle(event):
            self._execute(instruction)
        self._changed.set()

    def _lease_lapsed(self, exited: st.ProcessExited | None = None) -> None:
        """The lease lapsed: stop every task (fenced) and leave the session; the next one
        reports them. Exits that happened before (an agent woken from a freeze finds them
        waiting) are not the fence's: a task that ended by itself within its lease, or in the
        moments after before the watchdog stopped anything, keeps its result (the head starts no
        other attempt before it hears of a fence or counts the node lost). Those the watchdog
        stopped are in its fence record, written before its first signal, so it is read after
        the waiting exits are listed."""
        self.keeper.handled()
        waiting = self.runner.ended_unseen()
        self.keeper.reload_fenced()
        if exited is not None:
            exited.fenced = exited.fenced or self.runner.was_fenced(exited.key)
            for instruction in self.state.handle(exited):
                self._execute(instruction)
        self.runner.deliver(waiting)
        running = sum(1 for e in self.state.tasks.values() if e.phase is not st.Phase.REPORTED)
        if running:
            _log.warning("tasks_fenced", node=self.config.name, tasks=running,
                         detail="the head did not renew the task lease: stopping them")
        for instruction in self.state.fence():
            self._execute(instruction)
        if self._conn is not None:
            self._conn.end("the task lease lapsed")
        self._changed.set()

    def _execute(self, ins: st.Instruction) -> None:
        r = self.runner
        if isinstance(ins, st.Start):
            self.metrics.task_started()
            r.start(ins.key, ins.launch, self.config.name)
        elif isinstance(ins, st.Signal):
            r.signal(ins.key, ins.signal)
        elif isinstance(ins, st.StartKillTimer):
            r.timer(ins.key, self.kill_grace, lambda k=ins.key: self._apply(st.KillTimeout(k)))
        elif isinstance(ins, st.KillLeftovers):
            r.kill_leftovers(ins.key, self.kill_grace)
        elif isinstance(ins, st.StartRuntimeTimer):
            r.timer(ins.key, ins.seconds, lambda k=ins.key: self._apply(st.RuntimeExceeded(k)))
        elif isinstance(ins, st.Persist):
            entry = self.state.tasks[ins.key]
            if entry.phase is st.Phase.KILLING:
                self.metrics.task_stopping(ins.key)
            r.persist(ins.key, entry.phase is st.Phase.KILLING, entry.runtime_exceeded, entry.out_of_memory,
                      entry.fenced)
        elif isinstance(ins, st.ReportStarted):
            if self._conn is not None:
                task, attempt = ins.key
                self._conn.started[ins.key] = nodes_pb2.AgentMessage(started=nodes_pb2.TaskStarted(
                    task=task_ref(task), attempt=attempt, pid=ins.pid, time=timestamp(self.clock.now())))
        elif isinstance(ins, st.ReportExited):
            self.metrics.task_finished(self.state.tasks[ins.key])
            r.cancel_timer(ins.key)
            if self._conn is not None and (ins.key, "stdout") in self._conn.sent:
                # Output written just before the exit may not have been signalled yet.
                self._conn.dirty[ins.key] = None
                self._conn.exits.add(ins.key)
                self._conn.wake.set()
        elif isinstance(ins, st.Forget):
            r.forget(ins.key)
            if self._conn is not None:
                for stream in STREAMS:
                    self._conn.sent.pop((ins.key, stream), None)
                self._conn.dirty.pop(ins.key, None)

    def _on_output(self, key: st.Key) -> None:
        if self._conn is not None:
            self._conn.dirty[key] = None
            self._conn.wake.set()

    # -- to the head ---------------------------------------------------------------------

    def _reports(self) -> list[nodes_pb2.TaskReport]:
        out = []
        for e in self.state.entries():
            task, attempt = e.key
            if e.phase is st.Phase.QUEUED:  # not started: no output, no spool record
                out.append(nodes_pb2.TaskReport(task=task_ref(task), attempt=attempt,
                                                phase=nodes_pb2.TASK_PHASE_QUEUED))
                continue
            running = e.phase in (st.Phase.RUNNING, st.Phase.KILLING)
            out.append(nodes_pb2.TaskReport(
                task=task_ref(task), attempt=attempt,
                phase=nodes_pb2.TASK_PHASE_RUNNING if running else nodes_pb2.TASK_PHASE_EXITED,
                exit_code=e.exit_code, signal=e.signal, error=e.error, runtime_exceeded=e.runtime_exceeded,
                out_of_memory=e.out_of_memory, fenced=e.fenced,
                stdout_bytes=self.spool.size(e.key, "stdout"), stderr_bytes=self.spool.size(e.key, "stderr"),
            ))
        return out

    async def _heartbeats(self, conn: _Conn) -> None:
        """Beat; and leave a head that answers nothing for longer than two beats explain."""
        due = self.clock.monotonic() + self.heartbeat_interval
        while True:
            # Looked at every second at least, so a head silent for 2 beats and 1 s is left within
            # about that (11-12 s at the default 5 s heartbeats), not at a later beat.
            await self.clock.sleep(max(0.0, min(due - self.clock.monotonic(), 1.0)))
            now = self.clock.monotonic()
            silent = now - conn.heard
            if silent > max(3.0, 2 * self.heartbeat_interval + 1):
                _log.warning("head_silent", head=conn.address, seconds=round(silent, 1))
                conn.end(f"no word from {conn.address} for {silent:.1f}s")
                return
            if now >= due:
                due = now + self.heartbeat_interval
                conn.push(_HEARTBEAT)

    async def _writer(self, conn: _Conn) -> None:
        call = conn.call
        while True:
            await conn.wake.wait()
            if self.state.queue:  # see REPORT_GATHER
                await self.clock.sleep(REPORT_GATHER)
            conn.wake.clear()
            more = True
            while more:
                more = await self._send_output(conn, BURST)
                out: list[nodes_pb2.AgentMessage] = []
                while conn.control:
                    item = conn.control.popleft()
                    if item is _HEARTBEAT:
                        self._beat += 1
                        conn.beats[self._beat] = self.clock.boottime()
                        if len(conn.beats) > 64:  # a head that never answers (one from before leases)
                            del conn.beats[min(conn.beats)]
                        item = nodes_pb2.AgentMessage(heartbeat=nodes_pb2.Heartbeat(
                            acked_seq=self.acked_seq, tasks=self._reports(), number=self._beat,
                            condition=self._condition()))
                    out.append(item)
                for key in list(conn.exits):
                    if self._flushed(conn, key):
                        conn.exits.discard(key)
                        conn.started.pop(key, None)
                        out.append(self._exited_message(key))
                if conn.started and out:
                    out[:0] = conn.started.values()
                    conn.started.clear()
                # Reports queued together go in one write (output chunks, being large, do not).
                for start in range(0, len(out), MAX_BATCH):
                    part = out[start:start + MAX_BATCH]
                    await call.write(part[0] if len(part) == 1 else
                                     nodes_pb2.AgentMessage(batch=nodes_pb2.AgentBatch(items=part)))
            self._changed.set()

    async def _send_output(self, conn: _Conn, budget: int) -> bool:
        """Send up to `budget` chunks of the dirty tasks' output; True if output is still waiting
        (the task stays dirty until all of it is sent)."""
        for key in list(conn.dirty):
            # Unmarked before the look, so that growth signalled during a write marks it again.
            conn.dirty.pop(key, None)
            for stream in STREAMS:
                offset = conn.sent.get((key, stream))
                if offset is None:
                    continue
                size = self.spool.size(key, stream)
                while offset < size:
                    if budget == 0:
                        conn.dirty[key] = None  # to the back: the others' turn first
                        return True
                    data = self.spool.read(key, stream, offset, CHUNK)
                    if not data or (key, stream) not in conn.sent:
                        break
                    task, attempt = key
                    await conn.call.write(nodes_pb2.AgentMessage(output=nodes_pb2.TaskOutput(
                        task=task_ref(task), attempt=attempt, stream=STREAM_VALUES[stream], offset=offset,
                        data=data)))
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
            runtime_exceeded=e.runtime_exceeded, out_of_memory=e.out_of_memory, time=timestamp(self.clock.now()),
            fenced=e.fenced,
            stdout_bytes=self.spool.size(key, "stdout"), stderr_bytes=self.spool.size(key, "stderr"),
        ))

    # -- shutdown ------------------------------------------------------------------------

    async def _wait_until(self, settled: object, seconds: float) -> None:
        deadline = self.clock.monotonic() + seconds
        while not settled() and self.clock.monotonic() < deadline:  # type: ignore[operator]
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), max(0.0, deadline - self.clock.monotonic()))
            except TimeoutError:
                break

    async def _flush_briefly(self) -> None:
        """Leaving tasks running: give what is queued for the head a moment to go out."""
        conn = self._conn
        if conn is not None:
            conn.wake.set()
            await self._wait_until(lambda: not conn.exits and not conn.control, 1.0)
        _log.info("agent_stopped", tasks_left_running=sum(
            1 for e in self.state.entries() if e.phase in (st.Phase.RUNNING, st.Phase.KILLING)))

    async def _stop_tasks(self) -> None:
        """Stop every task and give the head a chance to hear how they ended."""
        # Queued launches first, and from the back, so none is started only to be stopped;
        # each is reported killed at once.
        for key in reversed(self.state.queue.copy()):
            self._apply(st.KillRequested(key))
        for entry in self.state.entries():
            if entry.phase is st.Phase.RUNNING:
                self._apply(st.KillRequested(entry.key))

        def settled() -> bool:
            conn = self._conn
            unsettled = any(e.phase is not st.Phase.REPORTED for e in self.state.entries())
            return not unsettled and (conn is None or not conn.exits)

        await self._wait_until(settled, self.kill_grace + 3.0)
        _log.info("agent_stopped", tasks_left=sum(1 for e in self.state.entries() if e.phase is not st.Phase.REPORTED))


def _rpc_error(exc: BaseException) -> str:
    if isinstance(exc, grpc.aio.AioRpcError):
        return f"{exc.code().name}: {exc.details()}"
    return repr(exc)
