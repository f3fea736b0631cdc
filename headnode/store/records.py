"""Conversions between the in-memory domain objects and store records, and the rebuild of
the in-memory Cluster from a loaded store at start-up."""

from __future__ import annotations

import json
from types import MappingProxyType

from common.ids import TaskId
from common.resources import Resources
from headnode.domain.cluster import Cluster
from headnode.domain.model import Change, Job, JobSpec, Task, TaskSpec
from headnode.domain.node import Allocation, Node
from headnode.domain.states import JobState, NodeState, TaskState
from headnode.store.base import HistoryRecord, JobRecord, Loaded, NodeRecord, TaskRecord

NEXT_JOB_ID = "next_job_id"


def task_spec_to_json(spec: TaskSpec) -> str:
    return json.dumps(
        {
            "command_line": spec.command_line,
            "name": spec.name,
            "cores": spec.resources.cores,
            "memory_mb": spec.resources.memory_mb,
            "environment": dict(spec.environment),
            "working_directory": spec.working_directory,
        },
        separators=(",", ":"),
    )


def task_spec_from_json(text: str) -> TaskSpec:
    d = json.loads(text)
    return TaskSpec(
        command_line=d["command_line"],
        name=d.get("name", ""),
        resources=Resources(d.get("cores", 1), d.get("memory_mb", 0)),
        environment=MappingProxyType(dict(d.get("environment", {}))),
        working_directory=d.get("working_directory", ""),
    )


def job_spec_to_json(spec: JobSpec) -> str:
    # Tasks are stored in their own rows; the job row keeps the job-level fields.
    return json.dumps({"name": spec.name}, separators=(",", ":"))


def job_record(job: Job) -> JobRecord:
    return JobRecord(
        id=job.id,
        owner=job.owner,
        name=job.name,
        state=job.state.value,
        reason=job.reason,
        created_at=job.created_at,
        submitted_at=job.submitted_at,
        started_at=job.started_at,
        ended_at=job.ended_at,
        history_seq=job.history_seq,
        spec=job_spec_to_json(JobSpec(name=job.name)),
    )


def task_record(task: Task, with_spec: bool = False) -> TaskRecord:
    return TaskRecord(
        job_id=task.id.job,
        task_id=task.id.task,
        state=task.state.value,
        reason=task.reason,
        attempt=task.attempt,
        node=task.node,
        holding=task.holding,
        exit_code=task.exit_code,
        signal=task.signal,
        started_at=task.started_at,
        ended_at=task.ended_at,
        spec=task_spec_to_json(task.spec) if with_spec else None,
    )


def node_record(node: Node) -> NodeRecord:
    return NodeRecord(
        name=node.name,
        state=node.state.value,
        reason=node.reason,
        cores=node.capacity.cores,
        memory_mb=node.capacity.memory_mb,
        hostname=node.hostname,
        agent_version=node.agent_version,
        instance_id=node.instance_id,
        registered_at=node.registered_at,
        last_heartbeat=node.last_heartbeat,
    )


def history_record(change: Change) -> HistoryRecord:
    return HistoryRecord(change.job_id, change.task_id, change.at, change.state, change.reason, change.seq)


def change_of(record: HistoryRecord) -> Change:
    return Change(record.job_id, record.task_id, record.at, record.state, record.reason, record.seq)


def restore(loaded: Loaded, now: float) -> Cluster:
    """Rebuild the in-memory cluster. Nodes come back disconnected, with their last
    heartbeat set to `now`, so the grace period for agents to reconnect starts at start-up."""
    cluster = Cluster(next_job_id=int(loaded.meta.get(NEXT_JOB_ID, "1")))
    for r in loaded.nodes:
        cluster.nodes[r.name] = Node(
            name=r.name,
            capacity=Resources(r.cores, r.memory_mb),
            state=NodeState(r.state),
            reason=r.reason,
            connected=False,
            hostname=r.hostname,
            agent_version=r.agent_version,
            instance_id=r.instance_id,
            registered_at=r.registered_at,
            last_heartbeat=now,
        )
    jobs: dict[int, Job] = {}
    for r in loaded.jobs:
        jobs[r.id] = Job(
            id=r.id,
            owner=r.owner,
            name=r.name,
            state=JobState(r.state),
            created_at=r.created_at,
            submitted_at=r.submitted_at,
            started_at=r.started_at,
            ended_at=r.ended_at,
            reason=r.reason,
            history_seq=r.history_seq,
        )
        cluster.next_job_id = max(cluster.next_job_id, r.id + 1)
    for r in loaded.tasks:
        job = jobs.get(r.job_id)
        if job is None:
            continue
        task = Task(
            id=TaskId(r.job_id, r.task_id),
            spec=task_spec_from_json(r.spec),
            state=TaskState(r.state),
            reason=r.reason,
            attempt=r.attempt,
            node=r.node,
            holding=r.holding,
            exit_code=r.exit_code,
            signal=r.signal,
            started_at=r.started_at,
            ended_at=r.ended_at,
        )
        job.add_task(task)
        if task.holding:
            node = cluster.nodes.get(task.node)
            if node is None:
                task.holding = False
            else:
                # launch_seq 0: whether the launch reached the agent is settled when it says Hello.
                node.allocate(Allocation(task.id, task.attempt, task.spec.resources))
    for job in jobs.values():
        cluster.add_job(job)
    return cluster
