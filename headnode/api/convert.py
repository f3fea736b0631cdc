"""to_proto / from_proto for the head node's client API. The only module that knows both the
domain types and the generated job messages; servicers stay thin by calling these.
(The agent protocol's conversions are in node_convert.py.)"""

from __future__ import annotations

from types import MappingProxyType
from typing import Any

from google.protobuf import field_mask_pb2
from google.protobuf.duration_pb2 import Duration

from common.constraints import NONE, Constraints, check_token, make
from common.errors import InvalidArgument
from common.formats import format_exit_codes, parse_exit_codes
from common.resources import Generic, Resources, check_name, generic_of
from common.wire import resources_msg, task_ref, timestamp
from headnode.domain.launch import substitute
from headnode.domain.model import (
    DEFAULT_MAX_RETRIES,
    DEFAULT_TASK_RESOURCES,
    RESERVE_CORES,
    RESERVE_NODES,
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
from headnode.domain.states import JobState, TaskState
from headnode.services.events import JobChanged
from headnode.services.queue import JobDetails, TaskDetails, UnitView
from headnode.store.base import HistoryRecord
from shoal.v1 import common_pb2, jobs_pb2, templates_pb2

JOB_STATES = {s: jobs_pb2.JobState.Value(f"JOB_STATE_{s.name}") for s in JobState}
JOB_STATES_BACK = {v: k for k, v in JOB_STATES.items()}
TASK_STATES = {s: jobs_pb2.TaskState.Value(f"TASK_STATE_{s.name}") for s in TaskState}
TASK_STATES_BACK = {v: k for k, v in TASK_STATES.items()}
_COUNT_FIELDS = {s: s.name.lower() for s in TaskState}
_DEP_KINDS = {
    jobs_pb2.DEPENDENCY_KIND_UNSPECIFIED: DependencyKind.AFTER_OK,
    jobs_pb2.DEPENDENCY_KIND_AFTER_OK: DependencyKind.AFTER_OK,
    jobs_pb2.DEPENDENCY_KIND_AFTER_ANY: DependencyKind.AFTER_ANY,
    jobs_pb2.DEPENDENCY_KIND_AFTER_NOT_OK: DependencyKind.AFTER_NOT_OK,
}
_DEP_KINDS_BACK = {DependencyKind.AFTER_OK: jobs_pb2.DEPENDENCY_KIND_AFTER_OK,
                   DependencyKind.AFTER_ANY: jobs_pb2.DEPENDENCY_KIND_AFTER_ANY,
                   DependencyKind.AFTER_NOT_OK: jobs_pb2.DEPENDENCY_KIND_AFTER_NOT_OK}
# Proto Priority value -> level index 0..4 (UNSPECIFIED is Normal).
_PRIORITY_LEVEL = {0: 2, 1: 0, 2: 1, 3: 2, 4: 3, 5: 4}


def _seconds(d: Duration) -> float:
    return d.ToNanoseconds() / 1e9


def _duration(seconds: float) -> Duration | None:
    if not seconds:
        return None
    d = Duration()
    d.FromNanoseconds(int(seconds * 1e9))
    return d


# -- specs: in -------------------------------------------------------------------------------


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
    generic = _generic(msg.resources.generic, where) if msg.HasField("resources") else ()
    if msg.max_cores < 0:
        raise InvalidArgument(f"{where}.max_cores must not be negative, got {msg.max_cores}")
    runtime = _seconds(msg.runtime_limit) if msg.HasField("runtime_limit") else 0.0
    if runtime < 0:
        raise InvalidArgument(f"{where}.runtime_limit must not be negative")
    try:
        exit_codes = parse_exit_codes(msg.valid_exit_codes)
    except InvalidArgument as e:
        raise InvalidArgument(f"{where}.valid_exit_codes: {e.message}") from None
    sweep = None
    if msg.HasField("sweep"):
        sweep = Sweep(msg.sweep.start, msg.sweep.end, msg.sweep.step or 1)
    return TaskSpec(
        command_line=msg.command_line,
        name=msg.name,
        resources=Resources(cores, memory, generic),
        # A maximum at or below the minimum is no range at all: store it as unset.
        max_cores=msg.max_cores if msg.max_cores > cores else 0,
        environment=MappingProxyType(dict(msg.environment)),
        working_directory=msg.working_directory,
        stdin_path=msg.stdin_path,
        stdout_path=msg.stdout_path,
        stderr_path=msg.stderr_path,
        depends_on=tuple(msg.depends_on),
        runtime_limit=runtime,
        valid_exit_codes=exit_codes,
        rerunnable=msg.rerunnable if msg.HasField("rerunnable") else True,
        max_retries=msg.max_retries if msg.HasField("max_retries") else DEFAULT_MAX_RETRIES,
        exclusive=msg.exclusive,
        sweep=sweep,
        instances=msg.instances,
        placement=constraints(msg.placement, f"{where}.placement"),
        nodes=msg.nodes,
    )


def _generic(values: Any, where: str) -> Generic:
    for name, value in values.items():
        if why := check_name(name):
            raise InvalidArgument(f"{where}.resources.generic: {why}")
        if value < 0:
            raise InvalidArgument(f"{where}.resources.generic[{name!r}] must not be negative, got {value}")
    return generic_of(dict(values))


def constraints(msg: common_pb2.PlacementConstraints, where: str) -> Constraints:
    if not (msg.groups or msg.require_labels or msg.avoid_labels or msg.nodes):
        return NONE  # most jobs and tasks name none: no sets to build
    for field_name in ("groups", "require_labels", "avoid_labels", "nodes"):
        for value in getattr(msg, field_name):
            if why := check_token(value, field_name.rstrip("s").replace("_label", " label")):
                raise InvalidArgument(f"{where}.{field_name}: {why}")
    return make(msg.groups, msg.require_labels, msg.avoid_labels, msg.nodes)


def constraints_msg(c: Constraints) -> common_pb2.PlacementConstraints:
    return common_pb2.PlacementConstraints(groups=sorted(c.groups), require_labels=sorted(c.require),
                                           avoid_labels=sorted(c.avoid), nodes=sorted(c.nodes))


_UNITS = {jobs_pb2.RESERVATION_UNIT_UNSPECIFIED: RESERVE_CORES, jobs_pb2.RESERVATION_UNIT_CORES: RESERVE_CORES,
          jobs_pb2.RESERVATION_UNIT_NODES: RESERVE_NODES}
_UNITS_BACK = {RESERVE_CORES: jobs_pb2.RESERVATION_UNIT_CORES, RESERVE_NODES: jobs_pb2.RESERVATION_UNIT_NODES}


def reservation(msg: jobs_pb2.JobSpec) -> Reservation | None:
    if not msg.HasField("reservation"):
        return None
    r = msg.reservation
    if r.unit not in _UNITS:
        raise InvalidArgument(f"spec.reservation.unit: {r.unit} is not a reservation unit (cores or nodes)")
    if r.min < 1:
        raise InvalidArgument(f"spec.reservation.min must be at least 1, got {r.min}")
    if r.max and r.max < r.min:
        raise InvalidArgument(f"spec.reservation.max ({r.max}) is below its min ({r.min})")
    return Reservation(_UNITS[r.unit], r.min, r.max or r.min)


def priority(level: int, offset: int) -> int:
    if not 0 <= offset <= 999:
        raise InvalidArgument(f"spec.priority_offset must be between 0 and 999, got {offset}")
    if level not in _PRIORITY_LEVEL:
        raise InvalidArgument(f"spec.priority: {level} is not a priority level")
    return _PRIORITY_LEVEL[level] * 1000 + offset


def dependencies(deps: Any) -> tuple[JobDependency, ...]:
    out = []
    for i, d in enumerate(deps):
        if d.job_id < 1:
            raise InvalidArgument(f"spec.dependencies[{i}].job_id must be a job id, got {d.job_id}")
        if d.kind not in _DEP_KINDS:
            raise InvalidArgument(f"spec.dependencies[{i}].kind: {d.kind} is not a dependency kind")
        out.append(JobDependency(_DEP_KINDS[d.kind], d.job_id))
    return tuple(out)


def job_spec(msg: jobs_pb2.JobSpec) -> JobSpec:
    runtime = _seconds(msg.runtime_limit) if msg.HasField("runtime_limit") else 0.0
    return JobSpec(
        name=msg.name,
        project=msg.project,
        priority=priority(msg.priority, msg.priority_offset),
        runtime_limit=runtime,
        fail_on_task_failure=msg.fail_on_task_failure,
        dependencies=dependencies(msg.dependencies),
        cancel_on_unsatisfiable_dependency=msg.cancel_on_unsatisfiable_dependency,
        run_dependents_after_failure=msg.run_dependents_after_failure,
        hold=msg.hold,
        placement=constraints(msg.placement, "spec.placement"),
        exclusive=msg.exclusive,
        reservation=reservation(msg),
        tasks=tuple(task_spec(t, f"spec.tasks[{i}]") for i, t in enumerate(msg.tasks)),
    )


def job_states(values: list[int]) -> list[JobState]:
    if bad := [v for v in values if v not in JOB_STATES_BACK]:
        raise InvalidArgument(f"states: {bad[0]} is not a job state")
    return [JOB_STATES_BACK[v] for v in values]


def task_states(values: list[int]) -> list[TaskState]:
    if bad := [v for v in values if v not in TASK_STATES_BACK]:
        raise InvalidArgument(f"states: {bad[0]} is not a task state")
    return [TASK_STATES_BACK[v] for v in values]


def _mask_paths(mask: field_mask_pb2.FieldMask, msg: Any) -> list[str]:
    if mask.paths:
        if not mask.IsValidForDescriptor(msg.DESCRIPTOR):
            raise InvalidArgument(f"update_mask {list(mask.paths)} names fields {msg.DESCRIPTOR.name} does not have")
        return list(mask.paths)
    return [f.name for f, _ in msg.ListFields()]


_JOB_FIELD_PATHS = {
    "name", "project", "priority", "priority_offset", "runtime_limit", "fail_on_task_failure", "dependencies",
    "cancel_on_unsatisfiable_dependency", "run_dependents_after_failure",
}


def job_fields(msg: jobs_pb2.JobSpec, mask: field_mask_pb2.FieldMask, current: JobSpec) -> dict[str, Any]:
    """The domain fields a ModifyJob request changes (those in the mask, else those set)."""
    paths = _mask_paths(mask, msg)
    fields: dict[str, Any] = {}
    for path in paths:
        if path not in _JOB_FIELD_PATHS:
            raise InvalidArgument(f"{path} cannot be modified; modifiable: {', '.join(sorted(_JOB_FIELD_PATHS))}")
        if path == "runtime_limit":
            fields["runtime_limit"] = _seconds(msg.runtime_limit)
        elif path == "dependencies":
            fields["dependencies"] = dependencies(msg.dependencies)
        elif path not in ("priority", "priority_offset"):
            fields[path] = getattr(msg, path)
    if "priority" in paths or "priority_offset" in paths:
        level = _PRIORITY_LEVEL[msg.priority] if "priority" in paths else current.priority // 1000
        offset = msg.priority_offset if "priority_offset" in paths else current.priority % 1000
        if not 0 <= offset <= 999:
            raise InvalidArgument(f"spec.priority_offset must be between 0 and 999, got {offset}")
        fields["priority"] = level * 1000 + offset
    return fields


def merged_task_spec(current: TaskSpec, msg: jobs_pb2.TaskSpec, mask: field_mask_pb2.FieldMask) -> TaskSpec:
    """The task's spec with the request's fields replaced: those in the mask (an unset one
    goes back to its default), else every field the request sets."""
    merged = task_spec_msg(current)
    paths = _mask_paths(mask, msg)
    field_mask_pb2.FieldMask(paths=paths).MergeMessage(
        msg, merged, replace_message_field=True, replace_repeated_field=True
    )
    return task_spec(merged, "spec")


def merge_template(template: templates_pb2.Template, spec: jobs_pb2.JobSpec) -> jobs_pb2.JobSpec:
    """A submission starting from a template: the template's job, overridden by every field
    the submission sets; each task starts from the template's task defaults. A submission
    without tasks takes the template's tasks."""
    merged = jobs_pb2.JobSpec()
    merged.CopyFrom(template.job)
    template_tasks = list(merged.tasks)
    del merged.tasks[:]
    job_level = jobs_pb2.JobSpec()
    job_level.CopyFrom(spec)
    del job_level.tasks[:]
    merged.MergeFrom(job_level)
    merged.template = ""
    for t in spec.tasks or template_tasks:
        task = jobs_pb2.TaskSpec()
        task.CopyFrom(template.task)
        task.MergeFrom(t)
        merged.tasks.append(task)
    return merged


# -- specs: out ------------------------------------------------------------------------------


def task_spec_msg(spec: TaskSpec) -> jobs_pb2.TaskSpec:
    msg = jobs_pb2.TaskSpec(
        name=spec.name,
        command_line=spec.command_line,
        environment=dict(spec.environment),
        working_directory=spec.working_directory,
        max_cores=spec.max_cores,
        stdin_path=spec.stdin_path,
        stdout_path=spec.stdout_path,
        stderr_path=spec.stderr_path,
        depends_on=list(spec.depends_on),
        runtime_limit=_duration(spec.runtime_limit),
        valid_exit_codes=format_exit_codes(spec.valid_exit_codes),
        rerunnable=spec.rerunnable,
        max_retries=spec.max_retries,
        exclusive=spec.exclusive,
        instances=spec.instances,
        nodes=spec.nodes,
    )
    if spec.placement:
        msg.placement.CopyFrom(constraints_msg(spec.placement))
    msg.resources.cores = spec.resources.cores
    if spec.resources.generic:
        msg.resources.generic.update(dict(spec.resources.generic))
    if spec.resources.memory_mb:
        msg.resources.memory_mb = spec.resources.memory_mb
    if spec.sweep is not None:
        msg.sweep.CopyFrom(jobs_pb2.ParametricSweep(start=spec.sweep.start, end=spec.sweep.end, step=spec.sweep.step))
    return msg


def job_spec_msg(spec: JobSpec) -> jobs_pb2.JobSpec:
    level, offset = divmod(spec.priority, 1000)
    msg = jobs_pb2.JobSpec(
        name=spec.name,
        project=spec.project,
        priority=level + 1,
        priority_offset=offset,
        runtime_limit=_duration(spec.runtime_limit),
        fail_on_task_failure=spec.fail_on_task_failure,
        dependencies=[jobs_pb2.JobDependency(kind=_DEP_KINDS_BACK[d.kind], job_id=d.job_id)
                      for d in spec.dependencies],
        cancel_on_unsatisfiable_dependency=spec.cancel_on_unsatisfiable_dependency,
        run_dependents_after_failure=spec.run_dependents_after_failure,
        hold=spec.hold,
        exclusive=spec.exclusive,
    )
    if spec.placement:
        msg.placement.CopyFrom(constraints_msg(spec.placement))
    if spec.reservation is not None:
        r = spec.reservation
        msg.reservation.CopyFrom(jobs_pb2.JobReservation(unit=_UNITS_BACK[r.unit], min=r.minimum, max=r.maximum))
    return msg


# -- views -----------------------------------------------------------------------------------


def counts_msg(counts: Any) -> jobs_pb2.TaskCounts:
    msg = jobs_pb2.TaskCounts()
    for state, n in counts.items() if isinstance(counts, dict) else counts:
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
        spec=job_spec_msg(job.spec),
        held=bool(job.held_by),
        task_total=len(job.tasks),
    )


def _task_update(h: HistoryRecord) -> jobs_pb2.TaskUpdate:
    return jobs_pb2.TaskUpdate(time=timestamp(h.at), state=TASK_STATES[TaskState(h.state)], reason=h.reason,
                               seq=h.seq, instance_id=h.instance_id)


def task_msg(task: Task, pending_reason: str, sizes: tuple[int, int] = (0, 0)) -> jobs_pb2.Task:
    msg = jobs_pb2.Task(
        ref=task_ref(task.id),
        spec=task_spec_msg(task.spec),
        state=TASK_STATES[task.state],
        reason=task.reason,
        pending_reason=pending_reason,
        start_time=timestamp(task.started_at),
        end_time=timestamp(task.ended_at),
        stdout_bytes=sizes[0],
        stderr_bytes=sizes[1],
        instance_count=task.spec.count,
        instance_counts=counts_msg(task.counts),
    )
    run = task.run()
    if run is not None:
        _fill_run(msg, run)
    return msg


def job_details_msg(d: JobDetails) -> jobs_pb2.Job:
    msg = job_msg(d.job, d.pending_reason)
    if d.reserved:
        total = sum((r for _, r in d.reserved), Resources())
        msg.allocated.CopyFrom(resources_msg(total))
        msg.allocated_nodes.extend(name for name, _ in d.reserved)
    if d.history is None:
        return msg
    task_history: dict[int, list[jobs_pb2.TaskUpdate]] = {}
    for h in d.history:
        if h.task_id == 0:
            msg.history.append(jobs_pb2.JobUpdate(time=timestamp(h.at), state=JOB_STATES[JobState(h.state)],
                                                  reason=h.reason, seq=h.seq))
        else:
            task_history.setdefault(h.task_id, []).append(_task_update(h))
    for number, task in d.job.tasks.items():
        t = task_msg(task, d.task_pending.get(number, ""), d.output_sizes.get(number, (0, 0)))
        t.history.extend(task_history.get(number, ()))
        msg.tasks.append(t)
    return msg


def task_details_msg(d: TaskDetails) -> jobs_pb2.Task:
    if d.unit is None:
        msg = task_msg(d.task, d.pending_reason, d.sizes)
    else:
        u = d.unit
        msg = jobs_pb2.Task(ref=task_ref(d.task.id), spec=task_spec_msg(d.task.spec), state=TASK_STATES[u.state],
                            pending_reason=u.pending_reason, stdout_bytes=u.sizes[0], stderr_bytes=u.sizes[1],
                            instance_count=1)
        msg.ref.instance_id = u.instance_id
        if u.inst is not None:
            msg.reason = u.inst.reason
            _fill_run(msg, u.inst)
    msg.history.extend(_task_update(h) for h in d.history)
    return msg


def _fill_run(msg: Any, inst: Instance) -> None:
    """Where and how an instance ran, into a Task or Instance message."""
    msg.node = inst.node
    msg.other_nodes.extend(h for h, _ in inst.hosts)
    msg.attempt = inst.attempt
    msg.signal = inst.signal
    if inst.exit_code is not None:
        msg.exit_code = inst.exit_code
    if inst.started_at:
        msg.start_time.CopyFrom(timestamp(inst.started_at))
    if inst.ended_at:
        msg.end_time.CopyFrom(timestamp(inst.ended_at))


def unit_msg(u: UnitView) -> jobs_pb2.Instance:
    spec = u.task.spec
    ref = common_pb2.TaskRef(job_id=u.job.id, task_id=u.task.id.task, instance_id=u.instance_id)
    command, stdout, stderr = spec.command_line, spec.stdout_path, spec.stderr_path
    msg = jobs_pb2.Instance(ref=ref, state=TASK_STATES[u.state], pending_reason=u.pending_reason,
                            stdout_bytes=u.sizes[0], stderr_bytes=u.sizes[1])
    if spec.sweep is not None:
        value = spec.sweep.value(u.instance_id)
        msg.parametric_value = value
        command, stdout, stderr = (substitute(f, value) for f in (command, stdout, stderr))
    msg.command_line, msg.stdout_path, msg.stderr_path = command, stdout, stderr
    if u.inst is not None:
        msg.reason = u.inst.reason
        _fill_run(msg, u.inst)
        msg.retries = u.inst.retries
    elif u.state.terminal:
        msg.reason = u.task.reason
    return msg


# -- what others may not see -----------------------------------------------------------------
# A job shown to a User who is not its owner (where users_see_all_jobs is off: identity.py's
# sees_payload) keeps its state, owner, name, resources, placement, timings, exit codes and
# reasons, and loses what it runs: the fields below, which carry the owner's commands, secrets
# in the environment and file names. Output is refused outright (ReadOutput).

TASK_PAYLOAD = ("command_line", "environment", "working_directory", "stdin_path", "stdout_path", "stderr_path")
INSTANCE_PAYLOAD = ("command_line", "stdout_path", "stderr_path")


def redact_task(msg: jobs_pb2.Task) -> jobs_pb2.Task:
    for name in TASK_PAYLOAD:
        msg.spec.ClearField(name)
    msg.redacted = True
    return msg


def redact_instance(msg: jobs_pb2.Instance) -> jobs_pb2.Instance:
    for name in INSTANCE_PAYLOAD:
        msg.ClearField(name)
    msg.redacted = True
    return msg


def redact_job(msg: jobs_pb2.Job) -> jobs_pb2.Job:
    for task in msg.tasks:
        redact_task(task)
    msg.redacted = True
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
        msg.task.CopyFrom(common_pb2.TaskRef(job_id=c.job_id, task_id=c.task_id, instance_id=c.instance_id))
        msg.task_state = TASK_STATES[TaskState(c.state)]
    return msg

