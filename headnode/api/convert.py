"""to_proto / from_proto for the head node's API. The only module that knows both the domain
types and the generated messages; servicers stay thin by calling these."""

from __future__ import annotations

from types import MappingProxyType

from common.errors import InvalidArgument
from common.resources import Resources
from common.wire import STREAM_NAMES, resources, resources_msg, seconds, task_id, task_ref, timestamp
from headnode.domain.model import DEFAULT_TASK_RESOURCES, Job, JobSpec, Task, TaskSpec
from headnode.domain.node import (
    AckExit,
    AgentEvent,
    Exited,
    Heartbeat,
    Hello,
    Instruction,
    Kill,
    Launch,
    Node,
    Output,
    Started,
    TaskReport,
)
from headnode.domain.states import JobState, NodeState, TaskState
from headnode.services.events import JobChanged
from headnode.services.membership import Welcome
from headnode.services.queue import JobDetails
from shoal.v1 import admin_pb2, common_pb2, jobs_pb2, nodes_pb2

JOB_STATES = {s: jobs_pb2.JobState.Value(f"JOB_STATE_{s.name}") for s in JobState}
JOB_STATES_BACK = {v: k for k, v in JOB_STATES.items()}
TASK_STATES = {s: jobs_pb2.TaskState.Value(f"TASK_STATE_{s.name}") for s in TaskState}
NODE_STATES = {s: admin_pb2.NodeState.Value(f"NODE_STATE_{s.name}") for s in NodeState}
_COUNT_FIELDS = {s: s.name.lower() for s in TaskState}


# -- client API: in ------------------------------------------------------------------------


def job_spec(msg: jobs_pb2.JobSpec) -> JobSpec:
    return JobSpec(name=msg.name, tasks=tuple(task_spec(t, f"spec.tasks[{i}]") for i, t in enumerate(msg.tasks)))


def task_spec(msg: jobs_pb2.TaskSpec, where: str = "task") -> TaskSpec:
    cores, memory = DEFAULT_TASK_RESOURCES.cores, DEFAULT_TASK_RESOURCES.memory_mb
    if msg.HasField("resources"):
        r = msg.resources
        # An explicit value must be positive; an absent one takes the default.
        if r.HasField("cores"):
            if r.cores < 1:
                raise InvalidArgument(f"{where}.resources.cores must be at least 1, got {r.cores}")
            cores = r.cores
        if r.HasField("memory_mb"):
            if r.memory_mb < 1:
                raise InvalidArgument(f"{where}.resources.memory_mb must be at least 1, got {r.memory_mb}")
            memory = r.memory_mb
    return TaskSpec(
        command_line=msg.command_line,
        name=msg.name,
        resources=Resources(cores, memory),
        environment=MappingProxyType(dict(msg.environment)),
        working_directory=msg.working_directory,
    )


def job_states(values: list[int]) -> list[JobState]:
    out = []
    for v in values:
        if v not in JOB_STATES_BACK:
            raise InvalidArgument(f"states: {v} is not a job state")
        out.append(JOB_STATES_BACK[v])
    return out


# -- client API: out -----------------------------------------------------------------------


def task_spec_msg(spec: TaskSpec) -> jobs_pb2.TaskSpec:
    msg = jobs_pb2.TaskSpec(
        name=spec.name,
        command_line=spec.command_line,
        environment=dict(spec.environment),
        working_directory=spec.working_directory,
    )
    msg.resources.cores = spec.resources.cores
    if spec.resources.memory_mb:
        msg.resources.memory_mb = spec.resources.memory_mb
    return msg


def counts_msg(counts: object) -> jobs_pb2.TaskCounts:
    msg = jobs_pb2.TaskCounts()
    for state, n in counts.items() if isinstance(counts, dict) else counts:  # type: ignore[attr-defined]
        if n:
            setattr(msg, _COUNT_FIELDS[state], n)
    return msg


def job_msg(job: Job, pending_reason: str = "") -> jobs_pb2.Job:
    return jobs_pb2.Job(
        id=job.id,
        name=job.name,
        owner=job.owner,
        state=JOB_STATES[job.state],
        reason=job.reason,
        pending_reason=pending_reason,
        create_time=timestamp(job.created_at),
        submit_time=timestamp(job.submitted_at),
        start_time=timestamp(job.started_at),
        end_time=timestamp(job.ended_at),
        task_counts=counts_msg(job.counts),
    )


def task_msg(task: Task, pending_reason: str, sizes: tuple[int, int]) -> jobs_pb2.Task:
    msg = jobs_pb2.Task(
        ref=task_ref(task.id),
        spec=task_spec_msg(task.spec),
        state=TASK_STATES[task.state],
        reason=task.reason,
        pending_reason=pending_reason,
        node=task.node,
        attempt=task.attempt,
        signal=task.signal,
        start_time=timestamp(task.started_at),
        end_time=timestamp(task.ended_at),
        stdout_bytes=sizes[0],
        stderr_bytes=sizes[1],
    )
    if task.exit_code is not None:
        msg.exit_code = task.exit_code
    return msg


def job_details_msg(d: JobDetails) -> jobs_pb2.Job:
    msg = job_msg(d.job, d.pending_reason)
    if d.history is None:
        return msg
    task_history: dict[int, list[jobs_pb2.TaskUpdate]] = {}
    for h in d.history:
        if h.task_id == 0:
            msg.history.append(jobs_pb2.JobUpdate(time=timestamp(h.at), state=JOB_STATES[JobState(h.state)],
                                                  reason=h.reason, seq=h.seq))
        else:
            task_history.setdefault(h.task_id, []).append(
                jobs_pb2.TaskUpdate(time=timestamp(h.at), state=TASK_STATES[TaskState(h.state)], reason=h.reason,
                                    seq=h.seq)
            )
    for number, task in d.job.tasks.items():
        t = task_msg(task, d.task_pending.get(number, ""), d.output_sizes.get(number, (0, 0)))
        t.history.extend(task_history.get(number, ()))
        msg.tasks.append(t)
    return msg


def job_event_msg(event: JobChanged) -> jobs_pb2.JobEvent:
    c = event.change
    msg = jobs_pb2.JobEvent(
        time=timestamp(c.at),
        job_id=c.job_id,
        job_state=JOB_STATES[event.job_state],
        reason=c.reason,
        task_counts=counts_msg(event.counts),
        seq=c.seq,
    )
    if c.task_id:
        msg.task.CopyFrom(common_pb2.TaskRef(job_id=c.job_id, task_id=c.task_id))
        msg.task_state = TASK_STATES[TaskState(c.state)]
    return msg


# -- admin API -----------------------------------------------------------------------------


def node_msg(node: Node) -> admin_pb2.Node:
    return admin_pb2.Node(
        name=node.name,
        state=NODE_STATES[node.state],
        reason=node.reason,
        connected=node.connected,
        capacity=resources_msg(node.capacity),
        allocated=resources_msg(node.used),
        running_tasks=len(node.allocations),
        last_heartbeat=timestamp(node.last_heartbeat or None),
        registered_time=timestamp(node.registered_at or None),
        hostname=node.hostname,
        agent_version=node.agent_version,
    )


# -- node API ------------------------------------------------------------------------------


def _report(r: nodes_pb2.TaskReport) -> TaskReport:
    return TaskReport(
        task=task_id(r.task),
        attempt=r.attempt,
        running=r.phase != nodes_pb2.TASK_PHASE_EXITED,
        exit_code=r.exit_code,
        signal=r.signal,
        error=r.error,
        stdout_bytes=r.stdout_bytes,
        stderr_bytes=r.stderr_bytes,
    )


def hello(msg: nodes_pb2.AgentMessage) -> Hello:
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
    )


def agent_event(msg: nodes_pb2.AgentMessage) -> AgentEvent | None:
    kind = msg.WhichOneof("kind")
    if kind == "output":
        o = msg.output
        return Output(task_id(o.task), o.attempt, STREAM_NAMES.get(o.stream, "stdout"), o.offset, o.data)
    if kind == "heartbeat":
        return Heartbeat(msg.heartbeat.acked_seq, tuple(_report(r) for r in msg.heartbeat.tasks))
    if kind == "started":
        s = msg.started
        return Started(task_id(s.task), s.attempt, s.pid, seconds(s.time))
    if kind == "exited":
        e = msg.exited
        return Exited(task_id(e.task), e.attempt, e.exit_code, e.signal, e.error, seconds(e.time),
                      e.stdout_bytes, e.stderr_bytes)
    if kind == "hello":
        raise InvalidArgument("hello may be sent only once, as the first message of a stream")
    return None  # unknown kinds from a newer agent are ignored


def head_message(seq: int, message: Instruction | Welcome) -> nodes_pb2.HeadMessage:
    out = nodes_pb2.HeadMessage(seq=seq)
    if isinstance(message, Launch):
        spec = message.spec
        out.launch.CopyFrom(nodes_pb2.LaunchTask(
            task=task_ref(message.task),
            attempt=message.attempt,
            command_line=spec.command_line,
            environment=dict(spec.environment),
            working_directory=spec.working_directory,
            resources=resources_msg(spec.resources),
            owner=message.owner,
        ))
    elif isinstance(message, Kill):
        out.kill.CopyFrom(nodes_pb2.KillTask(task=task_ref(message.task), attempt=message.attempt,
                                             reason=message.reason))
    elif isinstance(message, AckExit):
        out.exit_ack.CopyFrom(nodes_pb2.ExitAck(task=task_ref(message.task), attempt=message.attempt))
    elif isinstance(message, Welcome):
        w = out.welcome
        w.heartbeat_interval.FromNanoseconds(int(message.heartbeat_interval * 1e9))
        for task, attempt, out_off, err_off in message.resume:
            w.resume.append(nodes_pb2.OutputResume(task=task_ref(task), attempt=attempt,
                                                   stdout_offset=out_off, stderr_offset=err_off))
    return out
