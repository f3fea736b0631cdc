"""Human-readable views of jobs and nodes, and the one JSON form of every read command."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime

from google.protobuf import json_format
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from common.errors import InvalidArgument
from common.formats import format_priority
from shoal.v1 import admin_pb2, common_pb2, jobs_pb2, templates_pb2

COUNT_NAMES = ("queued", "running", "finished", "failed", "cancelled", "configuring")


def to_json(message: Message) -> str:
    """The JSON form of an API message: proto field names, every field present."""
    data = json_format.MessageToDict(
        message, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
    )
    return json.dumps(data, indent=2)


def job_state(value: int) -> str:
    return jobs_pb2.JobState.Name(value).removeprefix("JOB_STATE_").capitalize()


def task_state(value: int) -> str:
    return jobs_pb2.TaskState.Name(value).removeprefix("TASK_STATE_").capitalize()


def node_state(value: int) -> str:
    return admin_pb2.NodeState.Name(value).removeprefix("NODE_STATE_").capitalize()


def _secs(ts: Timestamp) -> float | None:
    return ts.ToNanoseconds() / 1e9 if ts.seconds or ts.nanos else None


def when(ts: Timestamp, precise: bool = False) -> str:
    s = _secs(ts)
    if s is None:
        return "-"
    fmt = "%Y-%m-%d %H:%M:%S.%f" if precise else "%Y-%m-%d %H:%M:%S"
    text = datetime.fromtimestamp(s).strftime(fmt)
    return text[:-3] if precise else text


def duration(start: Timestamp, end: Timestamp, now: float) -> str:
    a = _secs(start)
    if a is None:
        return "-"
    b = _secs(end) or now
    d = max(0.0, b - a)
    if d < 60:
        return f"{d:.1f}s"
    if d < 3600:
        return f"{int(d // 60)}m{int(d % 60):02d}s"
    return f"{int(d // 3600)}h{int(d % 3600 // 60):02d}m"


def counts(c: jobs_pb2.TaskCounts) -> str:
    parts = [f"{getattr(c, name)} {name}" for name in COUNT_NAMES if getattr(c, name)]
    return ", ".join(parts) or "no tasks"


def table(header: Sequence[str], rows: Sequence[Sequence[str]], right: Sequence[int] = ()) -> str:
    widths = [len(h) for h in header]
    for row in rows:
        for i, cell in enumerate(row[:-1]):
            widths[i] = max(widths[i], len(cell))
    lines = []
    for row in [header, *rows]:
        cells = []
        for i, cell in enumerate(row):
            if i == len(row) - 1:
                cells.append(cell)
            elif i in right:
                cells.append(cell.rjust(widths[i]))
            else:
                cells.append(cell.ljust(widths[i]))
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def parse_states(names: list[str], enum: object, prefix: str) -> list[int]:
    values = []
    for name in names:
        key = prefix + name.upper()
        if key not in enum.keys() or key.endswith("UNSPECIFIED"):  # type: ignore[attr-defined]
            valid = ", ".join(n.removeprefix(prefix).capitalize() for n in enum.keys()  # type: ignore[attr-defined]
                              if not n.endswith("UNSPECIFIED"))
            raise InvalidArgument(f"--state {name!r} is not a state ({valid})")
        values.append(enum.Value(key))  # type: ignore[attr-defined]
    return values


def _priority(spec: jobs_pb2.JobSpec) -> str:
    level = spec.priority or jobs_pb2.PRIORITY_NORMAL
    return format_priority((level - 1) * 1000 + spec.priority_offset)


def _dependencies(spec: jobs_pb2.JobSpec) -> str:
    names = {jobs_pb2.DEPENDENCY_KIND_AFTER_OK: "after-ok", jobs_pb2.DEPENDENCY_KIND_AFTER_ANY: "after-any",
             jobs_pb2.DEPENDENCY_KIND_AFTER_NOT_OK: "after-not-ok", jobs_pb2.DEPENDENCY_KIND_UNSPECIFIED: "after-ok"}
    return ", ".join(f"{names[d.kind]} {d.job_id}" for d in spec.dependencies)


def _placement(p: common_pb2.PlacementConstraints) -> str:
    parts = []
    for label, values in (("groups", p.groups), ("labels", p.require_labels), ("not", p.avoid_labels),
                          ("nodes", p.nodes)):
        if values:
            parts.append(f"{label} {','.join(values)}")
    return "; ".join(parts)


def job_view(job: jobs_pb2.Job, now: float) -> str:
    out = [f"Job {job.id}  {job.name or '(no name)'}  {job_state(job.state)}" + ("  (held)" if job.held else "")]
    out.append(f"  owner      {job.owner}" + (f"  project {job.spec.project}" if job.spec.project else ""))
    out.append(f"  priority   {_priority(job.spec)}")
    if job.spec.dependencies:
        out.append(f"  depends on {_dependencies(job.spec)}")
    out.append(f"  submitted  {when(job.submit_time)}")
    if _secs(job.start_time):
        out.append(f"  started    {when(job.start_time)}")
    if _secs(job.end_time):
        out.append(f"  ended      {when(job.end_time)}  ({duration(job.start_time or job.submit_time, job.end_time, now)})")
    out.append(f"  tasks      {counts(job.task_counts)}")
    if job.spec.HasField("reservation"):
        r = job.spec.reservation
        unit = "nodes" if r.unit == jobs_pb2.RESERVATION_UNIT_NODES else "cores"
        n = job.allocated.cores
        held = f"; holds {n} core{'' if n == 1 else 's'} on {', '.join(job.allocated_nodes)}" if job.allocated_nodes else ""
        out.append(f"  reserves   {r.min}-{r.max or r.min} {unit}{held}")
    placement = _placement(job.spec.placement)
    if placement or job.spec.exclusive:
        out.append(f"  placement  {placement or 'any node'}" + ("  (exclusive)" if job.spec.exclusive else ""))
    if job.reason:
        out.append(f"  reason     {job.reason}")
    if job.pending_reason:
        out.append(f"  pending    {job.pending_reason}")
    if job.tasks:
        out.append("")
        out.append(task_table(job.tasks, now))
    if job.history or any(t.history for t in job.tasks):
        events = [(u.seq, u.time, f"job {job.id}", job_state(u.state), u.reason) for u in job.history]
        for t in job.tasks:
            events += [(u.seq, u.time, f"task {t.ref.job_id}.{t.ref.task_id}", task_state(u.state), u.reason)
                       for u in t.history]
        events.sort(key=lambda e: e[0])
        out.append("")
        out.append("History")
        rows = [[datetime.fromtimestamp(_secs(e[1]) or 0).strftime("%H:%M:%S.%f")[:-3], *e[2:]] for e in events]
        # (instances' own history: `shoal task view JOB.TASK.INSTANCE`)
        out.append(_indent(table(["TIME", "WHAT", "STATE", "REASON"], rows)))
    return "\n".join(out)


def _exit_text(t: jobs_pb2.Task | jobs_pb2.Instance) -> str:
    if t.signal:
        return f"sig{t.signal}"
    return str(t.exit_code) if t.HasField("exit_code") else "-"


def task_table(tasks: Sequence[jobs_pb2.Task], now: float) -> str:
    if not tasks:
        return "no tasks"
    rows = []
    for t in tasks:
        mem = t.spec.resources.memory_mb
        cores = str(t.spec.resources.cores) + (f"-{t.spec.max_cores}" if t.spec.max_cores > t.spec.resources.cores else "")
        note = t.pending_reason or (t.reason if t.state != jobs_pb2.TASK_STATE_RUNNING or t.instance_count > 1 else "")
        units = "" if t.instance_count <= 1 else f" ({counts(t.instance_counts)})"
        rows.append([
            f"{t.ref.job_id}.{t.ref.task_id}",
            _clip(t.spec.name or "-", 16),
            task_state(t.state) + units,
            t.node or "-",
            _exit_text(t),
            cores,
            f"{mem}MB" if mem else "-",
            duration(t.start_time, t.end_time, now),
            f"{_clip(t.spec.command_line, 40)}" + (f"  [{note}]" if note else ""),
        ])
    return table(["TASK", "NAME", "STATE", "NODE", "EXIT", "CORES", "MEMORY", "TIME", "COMMAND"], rows,
                 right=(4, 5, 6, 7))


def instance_table(units: Sequence[jobs_pb2.Instance], now: float) -> str:
    if not units:
        return "no tasks"
    rows = []
    for u in units:
        ref = f"{u.ref.job_id}.{u.ref.task_id}" + (f".{u.ref.instance_id}" if u.ref.instance_id else "")
        note = u.pending_reason or u.reason
        rows.append([ref, task_state(u.state), u.node or "-", _exit_text(u), duration(u.start_time, u.end_time, now),
                     _clip(u.command_line, 40) + (f"  [{note}]" if note else "")])
    return table(["TASK", "STATE", "NODE", "EXIT", "TIME", "COMMAND"], rows, right=(3, 4))


def task_view(t: jobs_pb2.Task, now: float) -> str:
    ref = f"{t.ref.job_id}.{t.ref.task_id}" + (f".{t.ref.instance_id}" if t.ref.instance_id else "")
    out = [f"Task {ref}  {t.spec.name or '(no name)'}  {task_state(t.state)}"]
    out.append(f"  command    {t.spec.command_line}")
    if t.instance_count > 1:
        out.append(f"  instances  {t.instance_count}: {counts(t.instance_counts)}")
    if t.node:
        out.append(f"  node       {t.node} (attempt {t.attempt})")
    if t.HasField("exit_code") or t.signal:
        out.append(f"  exit       {_exit_text(t)}")
    if _secs(t.start_time):
        out.append(f"  started    {when(t.start_time)}  ({duration(t.start_time, t.end_time, now)})")
    if t.reason:
        out.append(f"  reason     {t.reason}")
    if t.pending_reason:
        out.append(f"  pending    {t.pending_reason}")
    if t.history:
        rows = [[datetime.fromtimestamp(_secs(u.time) or 0).strftime("%H:%M:%S.%f")[:-3],
                 task_state(u.state) + (f" (instance {u.instance_id})" if u.instance_id else ""), u.reason]
                for u in t.history]
        out += ["", "History", _indent(table(["TIME", "STATE", "REASON"], rows))]
    return "\n".join(out)


def event_line(e: jobs_pb2.JobEvent) -> str:
    at = datetime.fromtimestamp(_secs(e.time) or 0).strftime("%H:%M:%S.%f")[:-3]
    if e.HasField("task"):
        ref = f"{e.task.job_id}.{e.task.task_id}" + (f".{e.task.instance_id}" if e.task.instance_id else "")
        what, state = f"task {ref}", task_state(e.task_state)
    else:
        what, state = f"job {e.job_id}", job_state(e.job_state)
    return f"{at}  {what:<14} {state:<11} {e.reason}".rstrip()


def template_table(templates: Sequence[templates_pb2.Template]) -> str:
    if not templates:
        return "no templates"
    rows = [[t.name, t.owner, str(len(t.job.tasks)), _clip(",".join(t.users) or "everyone", 30),
             _clip(t.description, 50)] for t in templates]
    return table(["NAME", "OWNER", "TASKS", "USERS", "DESCRIPTION"], rows)


def job_table(jobs: Sequence[jobs_pb2.Job], now: float) -> str:
    if not jobs:
        return "no jobs"
    rows = []
    for j in jobs:
        note = j.pending_reason or j.reason
        rows.append([
            str(j.id), _clip(j.name or "-", 24), j.owner, job_state(j.state) + (" (held)" if j.held else ""),
            counts(j.task_counts),
            when(j.submit_time), duration(j.start_time, j.end_time, now), _clip(note, 60),
        ])
    return table(["ID", "NAME", "OWNER", "STATE", "TASKS", "SUBMITTED", "TIME", "REASON"], rows, right=(0,))


def node_table(nodes: Sequence[admin_pb2.Node], now: float) -> str:
    if not nodes:
        return "no nodes have registered"
    rows = []
    for n in nodes:
        state = node_state(n.state) + ("" if n.connected else " (disconnected)")
        beat = _secs(n.last_heartbeat)
        gpus = n.capacity.generic.get("gpu", 0)
        rows.append([
            n.name, state,
            f"{n.allocated.cores}/{n.capacity.cores}",
            f"{n.allocated.memory_mb}/{n.capacity.memory_mb}",
            f"{n.allocated.generic.get('gpu', 0)}/{gpus}" if gpus else "-",
            str(n.running_tasks),
            ",".join(n.groups) or "-",
            ",".join(n.labels) or "-",
            f"{max(0.0, now - beat):.0f}s ago" if beat else "-",
            n.reason,
        ])
    return table(["NAME", "STATE", "CORES", "MEMORY_MB", "GPUS", "TASKS", "GROUPS", "LABELS", "HEARTBEAT", "REASON"],
                 rows, right=(2, 3, 4, 5))


def node_view(n: admin_pb2.Node, now: float) -> str:
    beat = _secs(n.last_heartbeat)
    other = ", ".join(f"{k}={n.allocated.generic.get(k, 0)}/{v}" for k, v in sorted(n.capacity.generic.items()))
    lines = [
        f"node {n.name}: {node_state(n.state)}" + ("" if n.connected else " (agent disconnected)"),
        f"  reason:     {n.reason or '-'} (since {when(n.state_time)})",
        f"  host:       {n.hostname or '-'}  agent {n.agent_version or '-'}",
        f"  cores:      {n.allocated.cores}/{n.capacity.cores} in use",
        f"  memory:     {n.allocated.memory_mb}/{n.capacity.memory_mb} MB in use",
        f"  resources:  {other or '-'}",
        f"  groups:     {', '.join(n.groups) or '-'}",
        f"  labels:     {', '.join(n.labels) or '-'}",
        f"  tasks:      {', '.join(n.tasks) or '-'}",
        f"  heartbeat:  {f'{max(0.0, now - beat):.0f}s ago' if beat else '-'}",
        "  history:",
    ]
    lines += [f"    {when(h.time)}  {node_state(h.state):<11} {h.reason}" for h in n.history] or ["    -"]
    return "\n".join(lines)


def _clip(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def _indent(text: str) -> str:
    return "\n".join("  " + line for line in text.splitlines())
