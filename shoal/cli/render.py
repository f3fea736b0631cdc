"""Human-readable views of jobs and nodes, and the one JSON form of every read command."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime

from google.protobuf import json_format
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from shoal.v1 import admin_pb2, jobs_pb2

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


def job_view(job: jobs_pb2.Job, now: float) -> str:
    out = [f"Job {job.id}  {job.name or '(no name)'}  {job_state(job.state)}"]
    out.append(f"  owner      {job.owner}")
    out.append(f"  submitted  {when(job.submit_time)}")
    if _secs(job.start_time):
        out.append(f"  started    {when(job.start_time)}")
    if _secs(job.end_time):
        out.append(f"  ended      {when(job.end_time)}  ({duration(job.start_time or job.submit_time, job.end_time, now)})")
    out.append(f"  tasks      {counts(job.task_counts)}")
    if job.reason:
        out.append(f"  reason     {job.reason}")
    if job.pending_reason:
        out.append(f"  pending    {job.pending_reason}")
    if job.tasks:
        rows = []
        for t in job.tasks:
            exit_text = str(t.exit_code) if t.HasField("exit_code") else "-"
            if t.signal:
                exit_text = f"sig{t.signal}"
            mem = t.spec.resources.memory_mb
            note = t.pending_reason or (t.reason if t.state != jobs_pb2.TASK_STATE_RUNNING else "") or ""
            rows.append([
                f"{t.ref.job_id}.{t.ref.task_id}",
                task_state(t.state),
                t.node or "-",
                exit_text,
                str(t.spec.resources.cores),
                f"{mem}MB" if mem else "-",
                duration(t.start_time, t.end_time, now),
                f"{_clip(t.spec.command_line, 40)}" + (f"  [{note}]" if note else ""),
            ])
        out.append("")
        out.append(table(["TASK", "STATE", "NODE", "EXIT", "CORES", "MEMORY", "TIME", "COMMAND"], rows, right=(3, 4, 5, 6)))
    if job.history or any(t.history for t in job.tasks):
        events = [(u.seq, u.time, f"job {job.id}", job_state(u.state), u.reason) for u in job.history]
        for t in job.tasks:
            events += [(u.seq, u.time, f"task {t.ref.job_id}.{t.ref.task_id}", task_state(u.state), u.reason)
                       for u in t.history]
        events.sort(key=lambda e: e[0])
        out.append("")
        out.append("History")
        rows = [[datetime.fromtimestamp(_secs(e[1]) or 0).strftime("%H:%M:%S.%f")[:-3], *e[2:]] for e in events]
        out.append(_indent(table(["TIME", "WHAT", "STATE", "REASON"], rows)))
    return "\n".join(out)


def job_table(jobs: Sequence[jobs_pb2.Job], now: float) -> str:
    if not jobs:
        return "no jobs"
    rows = []
    for j in jobs:
        note = j.pending_reason or j.reason
        rows.append([
            str(j.id), _clip(j.name or "-", 24), j.owner, job_state(j.state), counts(j.task_counts),
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
        rows.append([
            n.name, state,
            f"{n.allocated.cores}/{n.capacity.cores}",
            f"{n.allocated.memory_mb}/{n.capacity.memory_mb}",
            str(n.running_tasks),
            f"{max(0.0, now - beat):.0f}s ago" if beat else "-",
            n.reason,
        ])
    return table(["NAME", "STATE", "CORES", "MEMORY_MB", "TASKS", "HEARTBEAT", "REASON"], rows, right=(2, 3, 4))


def _clip(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def _indent(text: str) -> str:
    return "\n".join("  " + line for line in text.splitlines())
