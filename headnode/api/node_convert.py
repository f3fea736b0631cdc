"""to_proto / from_proto for the agent protocol (NodeService) and the admin API's nodes."""

from __future__ import annotations

from common.errors import InvalidArgument
from common.wire import STREAM_NAMES, resources, resources_msg, seconds, task_id, task_ref, timestamp
from headnode.api.errors import check
from headnode.domain.node import (
    AckExit,
    AgentEvent,
    Exited,
    Heartbeat,
    HeartbeatAck,
    Hello,
    Instruction,
    Kill,
    Launch,
    Node,
    Output,
    Started,
    TaskReport,
)
from headnode.domain.states import NodeState
from headnode.services.membership import Welcome
from shoal.v1 import admin_pb2, nodes_pb2

NODE_STATES = {s: admin_pb2.NodeState.Value(f"NODE_STATE_{s.name}") for s in NodeState}


def node_msg(node: Node, heartbeats: bool = False) -> admin_pb2.Node:
    """`heartbeats`: with the latest ones (GetNode; a list of nodes leaves them out)."""
    return admin_pb2.Node(
        name=node.name,
        state=NODE_STATES[node.state],
        reason=f"{node.reason}; taking no work: {node.condition}" if node.condition and node.reason else
        node.condition or node.reason,
        connected=node.connected,
        capacity=resources_msg(node.capacity),
        allocated=resources_msg(node.used),
        running_tasks=node.running(),
        last_heartbeat=timestamp(node.last_heartbeat or None),
        registered_time=timestamp(node.registered_at or None),
        hostname=node.hostname,
        agent_version=node.agent_version,
        groups=sorted(node.all_groups),
        labels=sorted(node.all_labels),
        state_time=timestamp(node.state_at or None),
        history=[admin_pb2.NodeStateChange(time=timestamp(at), state=NODE_STATES[NodeState(state)], reason=reason)
                 for at, state, reason in node.history],
        tasks=sorted((str(t) for t, a in node.allocations.items() if not a.secondary)),
        heartbeats=[admin_pb2.HeartbeatSample(time=timestamp(at), tasks=n) for at, n in node.heartbeats]
        if heartbeats else (),
    )


def _report(r: nodes_pb2.TaskReport) -> TaskReport:
    return TaskReport(
        task=task_id(r.task),
        attempt=r.attempt,
        running=r.phase != nodes_pb2.TASK_PHASE_EXITED,
        queued=r.phase == nodes_pb2.TASK_PHASE_QUEUED,
        exit_code=r.exit_code,
        signal=r.signal,
        error=r.error,
        stdout_bytes=r.stdout_bytes,
        stderr_bytes=r.stderr_bytes,
        runtime_exceeded=r.runtime_exceeded,
        out_of_memory=r.out_of_memory,
        fenced=r.fenced,
    )


def hello(msg: nodes_pb2.AgentMessage) -> Hello:
    check(msg)
    if msg.WhichOneof("kind") != "hello":
        raise InvalidArgument("the first message on a Connect stream must be hello")
    h = msg.hello
    return Hello(
        node_name=h.node_name,
        instance_id=h.instance_id,
        capacity=resources(h.capacity),
        hostname=h.hostname,
        agent_version=h.agent_version,
        tasks=tuple(_report(r) for r in h.tasks),
        groups=frozenset(h.groups),
        labels=frozenset(h.labels),
        fresh_state=h.fresh_state,
        condition=h.condition[:300],
    )


def agent_event(msg: nodes_pb2.AgentMessage) -> AgentEvent | None:
    check(msg)
    kind = msg.WhichOneof("kind")
    if kind == "output":
        o = msg.output
        return Output(task_id(o.task), o.attempt, STREAM_NAMES.get(o.stream, "stdout"), o.offset, o.data)
    if kind == "heartbeat":
        return Heartbeat(msg.heartbeat.acked_seq, tuple(_report(r) for r in msg.heartbeat.tasks),
                         msg.heartbeat.number, msg.heartbeat.condition[:300])
    if kind == "started":
        s = msg.started
        return Started(task_id(s.task), s.attempt, s.pid, seconds(s.time))
    if kind == "exited":
        e = msg.exited
        return Exited(task_id(e.task), e.attempt, e.exit_code, e.signal, e.error, seconds(e.time),
                      e.stdout_bytes, e.stderr_bytes, e.runtime_exceeded, e.out_of_memory, e.fenced)
    if kind == "hello":
        raise InvalidArgument("hello may be sent only once, as the first message of a stream")
    return None  # unknown kinds from a newer agent are ignored


def head_message(seq: int, message: Instruction | Welcome) -> nodes_pb2.HeadMessage:
    out = nodes_pb2.HeadMessage(seq=seq)
    if isinstance(message, Launch):
        run = message.run
        launch = nodes_pb2.LaunchTask(
            task=task_ref(message.task),
            attempt=message.attempt,
            command_line=run.command_line,
            environment=dict(run.environment),
            working_directory=run.working_directory,
            resources=resources_msg(run.resources),
            owner=run.owner,
            stdin_path=run.stdin_path,
            stdout_path=run.stdout_path,
            stderr_path=run.stderr_path,
        )
        if run.runtime_limit:
            launch.runtime_limit.FromNanoseconds(int(run.runtime_limit * 1e9))
        out.launch.CopyFrom(launch)
    elif isinstance(message, Kill):
        out.kill.CopyFrom(nodes_pb2.KillTask(task=task_ref(message.task), attempt=message.attempt,
                                             reason=message.reason))
    elif isinstance(message, AckExit):
        out.exit_ack.CopyFrom(nodes_pb2.ExitAck(task=task_ref(message.task), attempt=message.attempt))
    elif isinstance(message, HeartbeatAck):
        out.heartbeat_ack.number = message.number
    elif isinstance(message, Welcome):
        w = out.welcome
        w.heartbeat_interval.FromNanoseconds(int(message.heartbeat_interval * 1e9))
        w.node_token = message.node_token
        w.task_lease.FromNanoseconds(int(message.task_lease * 1e9))
        w.kill_grace.FromNanoseconds(int(message.kill_grace * 1e9))
        w.stall_grace.FromNanoseconds(int(message.stall_grace * 1e9))
        for task, attempt, out_off, err_off in message.resume:
            w.resume.append(nodes_pb2.OutputResume(task=task_ref(task), attempt=attempt,
                                                   stdout_offset=out_off, stderr_offset=err_off))
    return out
