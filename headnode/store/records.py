"""Conversions between the in-memory domain objects and store records (an ended job's usage
among them), and the rebuild of the in-memory Cluster from a loaded store at start-up."""

from __future__ import annotations

import json
from collections import deque
from types import MappingProxyType
from typing import Any

from common import jsontext
from common.constraints import NONE, Constraints, make
from common.ids import TaskId
from common.resources import ZERO, Resources, generic_of
from headnode.domain.cluster import Cluster
from headnode.domain.model import (
    DEFAULT_MAX_RETRIES,
    NORMAL_PRIORITY,
    RESERVE_NODES,
    Change,
    DependencyKind,
    Instance,
    Job,
    JobDependency,
    JobSpec,
    Reservation,
    Sweep,
    Task,
    TaskSpec,
)
from headnode.domain.node import Allocation, Node
from headnode.domain.operations import index_dependencies
from headnode.domain.states import JobState, NodeState, TaskState
from headnode.store.base import (
    HistoryRecord,
    InstanceRecord,
    JobRecord,
    Loaded,
    NodeRecord,
    TaskRecord,
    UsageRecord,
)

NEXT_JOB_ID = "next_job_id"


_dumps = jsontext.compact


def task_spec_to_json(spec: TaskSpec) -> str:
    d: dict[str, Any] = {
        "command_line": spec.command_line,
        "name": spec.name,
        "cores": spec.resources.cores,
        "memory_mb": spec.resources.memory_mb,
        "max_cores": spec.max_cores,
        "environment": dict(spec.environment),
        "working_directory": spec.working_directory,
        "stdin_path": spec.stdin_path,
        "stdout_path": spec.stdout_path,
        "stderr_path": spec.stderr_path,
        "depends_on": list(spec.depends_on),
        "runtime_limit": spec.runtime_limit,
        "valid_exit_codes": [list(r) for r in spec.valid_exit_codes],
        "rerunnable": spec.rerunnable,
        "max_retries": spec.max_retries,
        "exclusive": spec.exclusive,
        "instances": spec.instances,
    }
    if spec.resources.generic:
        d["generic"] = dict(spec.resources.generic)
    if spec.placement:
        d["placement"] = _constraints_json(spec.placement)
    if spec.nodes:
        d["nodes"] = spec.nodes
    if spec.sweep is not None:
        d["sweep"] = [spec.sweep.start, spec.sweep.end, spec.sweep.step]
    return _dumps(d)


def task_spec_from_json(text: str) -> TaskSpec:
    d = json.loads(text)
    sweep = d.get("sweep")
    return TaskSpec(
        command_line=d["command_line"],
        name=d.get("name", ""),
        resources=Resources(d.get("cores", 1), d.get("memory_mb", 0), generic_of(d.get("generic"))),
        max_cores=d.get("max_cores", 0),
        environment=MappingProxyType(dict(d.get("environment", {}))),
        working_directory=d.get("working_directory", ""),
        stdin_path=d.get("stdin_path", ""),
        stdout_path=d.get("stdout_path", ""),
        stderr_path=d.get("stderr_path", ""),
        depends_on=tuple(d.get("depends_on", ())),
        runtime_limit=d.get("runtime_limit", 0.0),
        valid_exit_codes=tuple((lo, hi) for lo, hi in d.get("valid_exit_codes", ())),
        rerunnable=d.get("rerunnable", True),
        max_retries=d.get("max_retries", DEFAULT_MAX_RETRIES),
        exclusive=d.get("exclusive", False),
        sweep=Sweep(*sweep) if sweep else None,
        instances=d.get("instances", 0),
        placement=_constraints(d.get("placement")),
        nodes=d.get("nodes", 0),
    )


def _constraints_json(c: Constraints) -> dict[str, list[str]]:
    return {k: sorted(v) for k, v in (("groups", c.groups), ("require", c.require), ("avoid", c.avoid),
                                       ("nodes", c.nodes)) if v}


def _constraints(d: dict[str, list[str]] | None) -> Constraints:
    if not d:
        return NONE
    return make(d.get("groups", ()), d.get("require", ()), d.get("avoid", ()), d.get("nodes", ()))


# The JSON of recently written job specs, by identity (a spec is frozen; the entry holds it, so
# its id cannot be reused while cached): a job is written again on every change to its tasks,
# and serialising its spec each time was a fiftieth of the head's work in a busy sweep.
_SPEC_JSON: dict[int, tuple[JobSpec, str]] = {}
_SPEC_JSON_SIZE = 4096


def job_spec_to_json(spec: JobSpec) -> str:
    hit = _SPEC_JSON.get(id(spec))
    if hit is not None and hit[0] is spec:
        return hit[1]
    text = _job_spec_to_json(spec)
    if len(_SPEC_JSON) >= _SPEC_JSON_SIZE:
        _SPEC_JSON.pop(next(iter(_SPEC_JSON), None), None)
    _SPEC_JSON[id(spec)] = (spec, text)
    return text


def _job_spec_to_json(spec: JobSpec) -> str:
    extra: dict[str, Any] = {}
    if spec.placement:
        extra["placement"] = _constraints_json(spec.placement)
    if spec.exclusive:
        extra["exclusive"] = True
    if spec.reservation is not None:
        r = spec.reservation
        extra["reservation"] = [r.unit, r.minimum, r.maximum]
    return _dumps({**extra,
        "name": spec.name,
        "project": spec.project,
        "priority": spec.priority,
        "runtime_limit": spec.runtime_limit,
        "fail_on_task_failure": spec.fail_on_task_failure,
        "dependencies": [[d.kind.value, d.job_id] for d in spec.dependencies],
        "cancel_on_unsatisfiable_dependency": spec.cancel_on_unsatisfiable_dependency,
        "run_dependents_after_failure": spec.run_dependents_after_failure,
        "hold": spec.hold,
    })


def job_spec_from_json(text: str) -> JobSpec:
    d = json.loads(text)
    return JobSpec(
        name=d.get("name", ""),
        project=d.get("project", ""),
        priority=d.get("priority", NORMAL_PRIORITY),
        runtime_limit=d.get("runtime_limit", 0.0),
        fail_on_task_failure=d.get("fail_on_task_failure", False),
        dependencies=tuple(JobDependency(DependencyKind(k), j) for k, j in d.get("dependencies", ())),
        cancel_on_unsatisfiable_dependency=d.get("cancel_on_unsatisfiable_dependency", False),
        run_dependents_after_failure=d.get("run_dependents_after_failure", False),
        hold=d.get("hold", False),
        placement=_constraints(d.get("placement")),
        exclusive=d.get("exclusive", False),
        reservation=Reservation(*d["reservation"]) if d.get("reservation") else None,
    )


def job_record(job: Job) -> JobRecord:
    return JobRecord(
        id=job.id,
        owner=job.owner,
        state=job.state.value,
        reason=job.reason,
        created_at=job.created_at,
        submitted_at=job.submitted_at,
        started_at=job.started_at,
        ended_at=job.ended_at,
        held_by=job.held_by,
        history_seq=job.history_seq,
        spec=job_spec_to_json(job.spec),
    )


def task_record(task: Task, with_spec: bool = False) -> TaskRecord:
    return TaskRecord(
        job_id=task.id.job,
        task_id=task.id.task,
        state=task.state.value,
        reason=task.reason,
        unstarted=task.unstarted.value,
        cursor=task.cursor,
        ahead=task.ahead,
        requeued=json.dumps(list(task.requeued)),
        started_at=task.started_at,
        ended_at=task.ended_at,
        spec=task_spec_to_json(task.spec) if with_spec else None,
    )


def instance_record(inst: Instance) -> InstanceRecord:
    return InstanceRecord(
        job_id=inst.id.job,
        task_id=inst.id.task,
        instance_id=inst.id.instance,
        state=inst.state.value,
        reason=inst.reason,
        attempt=inst.attempt,
        node=inst.node,
        holding=inst.holding,
        exit_code=inst.exit_code,
        signal=inst.signal,
        started_at=inst.started_at,
        ended_at=inst.ended_at,
        retries=inst.retries,
        cores=inst.cores,
        memory_mb=inst.memory_mb,
        detail=_instance_detail(inst),
    )


def _instance_detail(inst: Instance) -> str:
    if not inst.generic and not inst.hosts:
        return "{}"
    return _dumps({"generic": dict(inst.generic), "hosts": [list(h) for h in inst.hosts]})


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
        detail=_dumps({
            "generic": dict(node.capacity.generic),
            "groups": sorted(node.groups),
            "labels": sorted(node.labels),
            "state_at": node.state_at,
            "history": [list(h) for h in node.history],
        }),
    )


MAX_EXIT_CODES = 16  # distinct exit codes kept in a usage record


def usage_record(job: Job) -> UsageRecord:
    """What an ended job used, from its instances as they are now: each run unit's latest run
    (an earlier run of a requeued or retried unit is not remembered by the head). One walk
    over the units that ran, done once when the job ends."""
    core_seconds = 0.0
    memory = nonzero = 0
    codes: set[int] = set()
    end = job.ended_at if job.ended_at is not None else 0.0
    for task in job.tasks.values():
        for inst in task.instances.values():
            if inst.started_at is None:
                continue
            cores = inst.cores + sum(c for _, c in inst.hosts)
            # A unit cancelled while running ended when it was cancelled (its kill may land later).
            ended = inst.ended_at if inst.ended_at is not None else end
            core_seconds += cores * max(0.0, ended - inst.started_at)
            memory = max(memory, inst.memory_mb)
            if inst.exit_code is not None:
                codes.add(inst.exit_code)
            if inst.signal or (inst.exit_code is not None and inst.exit_code != 0):
                nonzero += 1
    started = job.started_at
    return UsageRecord(
        job_id=job.id,
        owner=job.owner,
        project=job.spec.project,
        name=job.spec.name,
        state=job.state.value,
        submitted_at=job.submitted_at,
        started_at=started,
        ended_at=end,
        tasks=len(job.tasks),
        units=job.total,
        failed=job.counts[TaskState.FAILED],
        core_seconds=core_seconds,
        wall_seconds=max(0.0, end - started) if started is not None else 0.0,
        max_memory_mb=memory,
        nonzero_exits=nonzero,
        exit_codes=",".join(str(c) for c in sorted(codes)[:MAX_EXIT_CODES]),
    )


def history_record(change: Change) -> HistoryRecord:
    return HistoryRecord(change.job_id, change.task_id, change.at, change.state, change.reason, change.seq,
                         change.instance_id)


def change_of(record: HistoryRecord) -> Change:
    return Change(record.job_id, record.task_id, record.at, record.state, record.reason, record.seq,
                  record.instance_id)


def restore(loaded: Loaded, now: float) -> Cluster:
    """Rebuild the in-memory cluster. Nodes come back disconnected, with their last
    heartbeat set to `now`, so the grace period for agents to reconnect starts at start-up."""
    cluster = Cluster(next_job_id=int(loaded.meta.get(NEXT_JOB_ID, "1")))
    for r in loaded.nodes:
        cluster.nodes[r.name] = _node(r, now)
    jobs: dict[int, Job] = {}
    for r in loaded.jobs:
        jobs[r.id] = _job(r)
        cluster.next_job_id = max(cluster.next_job_id, r.id + 1)
    tasks: dict[tuple[int, int], Task] = {}
    for r in loaded.tasks:
        job = jobs.get(r.job_id)
        if job is None:
            continue
        task = Task(
            id=TaskId(r.job_id, r.task_id),
            spec=task_spec_from_json(r.spec or "{}"),
            state=TaskState(r.state),
            reason=r.reason,
            unstarted=TaskState(r.unstarted),
            cursor=r.cursor,
            ahead=r.ahead,
            requeued=deque(json.loads(r.requeued)),
            started_at=r.started_at,
            ended_at=r.ended_at,
        )
        task.counts[task.unstarted] += task.unstarted_count
        job.tasks[r.task_id] = task
        tasks[(r.job_id, r.task_id)] = task
    for r in loaded.instances:
        task = tasks.get((r.job_id, r.task_id))
        if task is None:
            continue
        inst = _instance(r)
        task.instances[r.instance_id] = inst
        task.counts[inst.state] += 1
        node = cluster.nodes.get(inst.node) if inst.holding else None
        if node is not None:
            _hold(cluster, jobs[r.job_id], inst, node)
        else:
            inst.holding = False
    for job in jobs.values():
        for task in job.tasks.values():
            job.counts.update(task.counts)
        if job.state is not JobState.CONFIGURING:
            index_dependencies(job)
        cluster.add_job(job)
    return cluster


def _hold(cluster: Cluster, job: Job, inst: Instance, node: Node) -> None:
    """Hold a running instance's resources again. A job's reservation comes back as what its
    running instances use; the scheduler grows it again from there."""
    given = Resources(inst.cores, inst.memory_mb, inst.generic)
    # launch_seq 0: whether the launch reached the agent is settled when it says Hello.
    reservation = job.spec.reservation
    if reservation is not None:
        whole = reservation.unit == RESERVE_NODES
        node.reserve(job.id, node.capacity if whole and job.id not in node.reserved else Resources(0 if whole else inst.cores))
        charge = ZERO if whole else given.with_cores(0)
        node.allocate(Allocation(inst.id, inst.attempt, given, charge=charge, pool=job.id))
        cluster.reserving.add(job.id)
        return
    node.allocate(Allocation(inst.id, inst.attempt, given))
    for name, cores in inst.hosts:
        other = cluster.nodes.get(name)
        if other is not None:
            other.allocate(Allocation(inst.id, inst.attempt, given.with_cores(cores), secondary=True))


def _node(r: NodeRecord, now: float) -> Node:
    d = json.loads(r.detail or "{}")
    return Node(
        name=r.name,
        capacity=Resources(r.cores, r.memory_mb, generic_of(d.get("generic"))),
        groups=frozenset(d.get("groups", ())),
        labels=frozenset(d.get("labels", ())),
        state_at=d.get("state_at", 0.0),
        history=[tuple(h) for h in d.get("history", ())],
        state=NodeState(r.state),
        reason=r.reason,
        connected=False,
        hostname=r.hostname,
        agent_version=r.agent_version,
        instance_id=r.instance_id,
        registered_at=r.registered_at,
        last_heartbeat=now,
    )


def _job(r: JobRecord) -> Job:
    return Job(
        id=r.id,
        owner=r.owner,
        spec=job_spec_from_json(r.spec),
        state=JobState(r.state),
        created_at=r.created_at,
        submitted_at=r.submitted_at,
        started_at=r.started_at,
        ended_at=r.ended_at,
        reason=r.reason,
        held_by=r.held_by,
        history_seq=r.history_seq,
    )


def _instance(r: InstanceRecord) -> Instance:
    detail = json.loads(r.detail or "{}")
    return Instance(
        id=TaskId(r.job_id, r.task_id, r.instance_id),
        state=TaskState(r.state),
        reason=r.reason,
        attempt=r.attempt,
        node=r.node,
        holding=r.holding,
        exit_code=r.exit_code,
        signal=r.signal,
        started_at=r.started_at,
        ended_at=r.ended_at,
        retries=r.retries,
        cores=r.cores,
        memory_mb=r.memory_mb,
        generic=generic_of(detail.get("generic")),
        hosts=tuple((h, c) for h, c in detail.get("hosts", ())),
    )
