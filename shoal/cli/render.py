"""Human-readable views of jobs, tasks, nodes and templates, and the one JSON form of every
read command.

Views are built once as blocks (a heading Line, key/value Fields, Tables) and shown two ways:
plain aligned text when standard output is not a terminal (scripts and tests read it; no
escape codes), and rich tables with coloured states on a terminal. rich is imported only
when it draws: it costs ~60 ms, more than `shoal job submit` may spend starting."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from datetime import datetime
from typing import IO, Any

from google.protobuf import json_format
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from common.errors import InvalidArgument
from common.formats import format_priority
from shoal.v1 import admin_pb2, common_pb2, jobs_pb2, templates_pb2

COUNT_NAMES = ("queued", "running", "finished", "failed", "cancelled", "configuring")

# Colours of job, task and node states on a terminal (the first word of a cell decides).
STATE_STYLES = {
    "Running": "cyan", "Finished": "green", "Failed": "bold red", "Cancelled": "yellow",
    "Online": "green", "Draining": "yellow", "Offline": "red", "Unreachable": "bold red",
}


def state_style(text: str) -> str:
    return STATE_STYLES.get(text.split(" ", 1)[0], "") if text else ""


# Plain classes, not dataclasses: making a dataclass costs ~1 ms at import, and `submit --wait`
# imports this module.
class Line:
    """One line; `state` names a word of it to colour, `bold` makes it a heading."""

    def __init__(self, text: str = "", state: str = "", bold: bool = False) -> None:
        self.text, self.state, self.bold = text, state, bold

    def __str__(self) -> str:
        return self.text


class Fields:
    """`key value` lines, keys padded to `width` (`key:` with colon=True)."""

    def __init__(self, pairs: list[tuple[str, str]], width: int = 10, colon: bool = False, indent: int = 2) -> None:
        self.pairs, self.width, self.colon, self.indent = pairs, width, colon, indent

    def __str__(self) -> str:
        return "\n".join(" " * self.indent + (k + ":" * self.colon).ljust(self.width) + " " + v
                         for k, v in self.pairs)


class Table:
    """Rows under a header; `right`: right-aligned columns; `state`: the column coloured by
    state on a terminal; `empty`: what to say when there are no rows."""

    def __init__(self, header: Sequence[str], rows: list[list[str]], right: Sequence[int] = (),
                 state: int | None = None, empty: str = "", indent: int = 0) -> None:
        self.header, self.rows, self.right, self.state, self.empty, self.indent = (
            header, rows, right, state, empty, indent)

    def __str__(self) -> str:
        text = table(self.header, self.rows, self.right) if self.rows else self.empty
        return _indent(text, self.indent) if self.indent else text


class Doc(list):  # type: ignore[type-arg]
    """A view: blocks shown one under the other."""

    def __str__(self) -> str:
        return "\n".join(str(block) for block in self)


def show(item: object, out: IO[str] | None = None) -> None:
    """Print a view: rich on a terminal, plain text otherwise."""
    out = out or sys.stdout
    if isinstance(item, str) or not is_terminal(out):
        print(item, file=out)
        return
    console = terminal(out)
    for block in item if isinstance(item, Doc) else [item]:
        console.print(_rich(block))


def is_terminal(out: IO[str]) -> bool:
    try:
        return out.isatty()
    except (AttributeError, ValueError):
        return False


def terminal(out: IO[str]) -> Any:
    """A rich Console on `out` (a terminal)."""
    from rich.console import Console

    return Console(file=out, highlight=False)


def _state_text(cell: str) -> Any:
    """A table cell whose first word is a state, that word coloured."""
    from rich.text import Text

    text = Text(cell)
    style = state_style(cell)
    if style:
        text.stylize(style, 0, len(cell.split(" ", 1)[0]))
    return text


def _rich(block: object) -> Any:
    from rich.padding import Padding
    from rich.text import Text

    if isinstance(block, Line):
        text = Text(block.text, style="bold" if block.bold else "")
        if block.state:
            text.highlight_words([block.state], style=state_style(block.state) or "bold")
        return text
    if isinstance(block, Fields):
        from rich.table import Table as Grid

        grid = Grid.grid(padding=(0, 2))
        grid.add_column(style="bold", no_wrap=True)
        grid.add_column()
        for key, value in block.pairs:
            grid.add_row(key, Text(value))
        return Padding(grid, (0, 0, 0, block.indent), expand=False)
    if isinstance(block, Table):
        if not block.rows:
            return Text(" " * block.indent + block.empty)
        from rich import box
        from rich.table import Table as RichTable

        t = RichTable(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, collapse_padding=True,
                      header_style="bold")
        for i, name in enumerate(block.header):
            last = i == len(block.header) - 1
            t.add_column(name, justify="right" if i in block.right else "left", no_wrap=not last,
                         overflow="fold" if last else "ellipsis")
        for row in block.rows:
            t.add_row(*(_state_text(cell) if i == block.state else Text(cell) for i, cell in enumerate(row)))
        return Padding(t, (0, 0, 0, block.indent), expand=False) if block.indent else t
    return Text(str(block))


def to_json(message: Message) -> str:
    """The JSON form of an API message: proto field names, every field present, indented.
    A list (ListJobsResponse, ListTasksResponse, ListNodesResponse) has one record to a line:
    json's C encoder serves only output without indentation, and indenting a 100,000-instance
    sweep in Python took 2.3 of the 6.8 s `shoal task list --instances --json` took here."""
    data = json_format.MessageToDict(
        message, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
    )
    if not message.DESCRIPTOR.name.startswith("List"):
        return json.dumps(data, indent=2)
    fields = []
    for key, value in data.items():
        if isinstance(value, list) and value:
            rows = ",\n    ".join(map(_compact, value))
            fields.append(f"  {_compact(key)}: [\n    {rows}\n  ]")
        else:
            fields.append(f"  {_compact(key)}: {_compact(value)}")
    return "{\n" + ",\n".join(fields) + "\n}"  # never empty: every field is printed


_compact = json.JSONEncoder(separators=(", ", ": ")).encode


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


def expired(ts: Timestamp, now: float) -> bool:
    s = _secs(ts)
    return s is not None and s < now


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


def job_doc(job: jobs_pb2.Job, now: float) -> Doc:
    state = job_state(job.state)
    doc = Doc([Line(f"Job {job.id}  {job.name or '(no name)'}  {state}" + ("  (held)" if job.held else ""),
                    state=state, bold=True)])
    fields = [("owner", job.owner + (f"  project {job.spec.project}" if job.spec.project else "")),
              ("priority", _priority(job.spec))]
    if job.spec.dependencies:
        fields.append(("depends on", _dependencies(job.spec)))
    fields.append(("submitted", when(job.submit_time)))
    if _secs(job.start_time):
        fields.append(("started", when(job.start_time)))
    if _secs(job.end_time):
        took = duration(job.start_time or job.submit_time, job.end_time, now)
        fields.append(("ended", f"{when(job.end_time)}  ({took})"))
    fields.append(("tasks", counts(job.task_counts)))
    if job.spec.HasField("reservation"):
        r = job.spec.reservation
        unit = "nodes" if r.unit == jobs_pb2.RESERVATION_UNIT_NODES else "cores"
        n = job.allocated.cores
        held = f"; holds {n} core{'' if n == 1 else 's'} on {', '.join(job.allocated_nodes)}" if job.allocated_nodes else ""
        fields.append(("reserves", f"{r.min}-{r.max or r.min} {unit}{held}"))
    placement = _placement(job.spec.placement)
    if placement or job.spec.exclusive:
        exclusive = "  (exclusive)" if job.spec.exclusive else ""
        fields.append(("placement", (placement or "any node") + exclusive))
    if job.reason:
        fields.append(("reason", job.reason))
    if job.pending_reason:
        fields.append(("pending", job.pending_reason))
    doc.append(Fields(fields))
    if job.tasks:
        doc += [Line(), task_rows(job.tasks, now)]
    if job.history or any(t.history for t in job.tasks):
        events = [(u.seq, u.time, f"job {job.id}", job_state(u.state), u.reason) for u in job.history]
        for t in job.tasks:
            events += [(u.seq, u.time, f"task {t.ref.job_id}.{t.ref.task_id}", task_state(u.state), u.reason)
                       for u in t.history]
        events.sort(key=lambda e: e[0])
        rows = [[_clock_time(e[1]), *e[2:]] for e in events]
        # (instances' own history: `shoal task view JOB.TASK.INSTANCE`)
        doc += [Line(), Line("History", bold=True),
                Table(["TIME", "WHAT", "STATE", "REASON"], rows, state=2, indent=2)]
    return doc


def job_view(job: jobs_pb2.Job, now: float) -> str:
    return str(job_doc(job, now))


def _clock_time(ts: Timestamp) -> str:
    return datetime.fromtimestamp(_secs(ts) or 0).strftime("%H:%M:%S.%f")[:-3]


def _exit_text(t: jobs_pb2.Task | jobs_pb2.Instance) -> str:
    if t.signal:
        return f"sig{t.signal}"
    return str(t.exit_code) if t.HasField("exit_code") else "-"


def task_rows(tasks: Sequence[jobs_pb2.Task], now: float) -> Table:
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
    return Table(["TASK", "NAME", "STATE", "NODE", "EXIT", "CORES", "MEMORY", "TIME", "COMMAND"], rows,
                 right=(4, 5, 6, 7), state=2, empty="no tasks")


def task_table(tasks: Sequence[jobs_pb2.Task], now: float) -> str:
    return str(task_rows(tasks, now))


def instance_rows(units: Sequence[jobs_pb2.Instance], now: float) -> Table:
    rows = []
    for u in units:
        ref = f"{u.ref.job_id}.{u.ref.task_id}" + (f".{u.ref.instance_id}" if u.ref.instance_id else "")
        note = u.pending_reason or u.reason
        rows.append([ref, task_state(u.state), u.node or "-", _exit_text(u), duration(u.start_time, u.end_time, now),
                     _clip(u.command_line, 40) + (f"  [{note}]" if note else "")])
    return Table(["TASK", "STATE", "NODE", "EXIT", "TIME", "COMMAND"], rows, right=(3, 4), state=1,
                 empty="no tasks")


def instance_table(units: Sequence[jobs_pb2.Instance], now: float) -> str:
    return str(instance_rows(units, now))


def task_doc(t: jobs_pb2.Task, now: float) -> Doc:
    ref = f"{t.ref.job_id}.{t.ref.task_id}" + (f".{t.ref.instance_id}" if t.ref.instance_id else "")
    state = task_state(t.state)
    doc = Doc([Line(f"Task {ref}  {t.spec.name or '(no name)'}  {state}", state=state, bold=True)])
    fields = [("command", t.spec.command_line)]
    if t.instance_count > 1:
        fields.append(("instances", f"{t.instance_count}: {counts(t.instance_counts)}"))
    if t.node:
        fields.append(("node", f"{t.node} (attempt {t.attempt})"))
    if t.HasField("exit_code") or t.signal:
        fields.append(("exit", _exit_text(t)))
    if _secs(t.start_time):
        fields.append(("started", f"{when(t.start_time)}  ({duration(t.start_time, t.end_time, now)})"))
    if t.reason:
        fields.append(("reason", t.reason))
    if t.pending_reason:
        fields.append(("pending", t.pending_reason))
    doc.append(Fields(fields))
    if t.history:
        rows = [[_clock_time(u.time), task_state(u.state) + (f" (instance {u.instance_id})" if u.instance_id
                                                              else ""), u.reason] for u in t.history]
        doc += [Line(), Line("History", bold=True),
                Table(["TIME", "STATE", "REASON"], rows, state=1, indent=2)]
    return doc


def task_view(t: jobs_pb2.Task, now: float) -> str:
    return str(task_doc(t, now))


def event_line(e: jobs_pb2.JobEvent) -> str:
    at = _clock_time(e.time)
    if e.HasField("task"):
        ref = f"{e.task.job_id}.{e.task.task_id}" + (f".{e.task.instance_id}" if e.task.instance_id else "")
        what, state = f"task {ref}", task_state(e.task_state)
    else:
        what, state = f"job {e.job_id}", job_state(e.job_state)
    return f"{at}  {what:<14} {state:<11} {e.reason}".rstrip()


def progress_text(c: jobs_pb2.TaskCounts) -> str:
    """Run units of a job by state, as `shoal job wait` prints them: "3/10 done, 1 failed, ..."."""
    total = sum(getattr(c, name) for name in COUNT_NAMES)
    text = f"{c.finished}/{total} done, {c.failed} failed, {c.running} running, {c.queued} queued"
    more = [f", {getattr(c, name)} {name}" for name in ("cancelled", "configuring") if getattr(c, name)]
    return text + "".join(more)


def template_rows(templates: Sequence[templates_pb2.Template]) -> Table:
    rows = [[t.name, t.owner, str(len(t.job.tasks)), _clip(",".join(t.users) or "everyone", 30),
             _clip(t.description, 50)] for t in templates]
    return Table(["NAME", "OWNER", "TASKS", "USERS", "DESCRIPTION"], rows, right=(2,), empty="no templates")


def template_table(templates: Sequence[templates_pb2.Template]) -> str:
    return str(template_rows(templates))


def template_doc(t: templates_pb2.Template) -> Doc:
    fields = [("owner", t.owner or "-"), ("created", when(t.create_time)),
              ("users", ", ".join(t.users) or "everyone")]
    if t.description:
        fields.insert(0, ("about", t.description))
    job = jobs_pb2.JobSpec()
    job.CopyFrom(t.job)
    job.ClearField("tasks")
    fields.append(("job", _settings(job) or "-"))
    fields.append(("each task", _settings(t.task) or "-"))
    if t.job.tasks:
        fields.append(("tasks", "; ".join(_clip(task.command_line, 40) for task in t.job.tasks)))
    return Doc([Line(f"Template {t.name}", bold=True), Fields(fields)])


def _settings(message: Message) -> str:
    """The fields a message sets, as `name=value` (nested ones dotted), for one-line views."""
    def flat(prefix: str, value: object) -> list[str]:
        if isinstance(value, dict):
            return [item for k, v in value.items() for item in flat(f"{prefix}{k}.", v)]
        if isinstance(value, list):
            value = ",".join(str(v) for v in value)
        return [f"{prefix.rstrip('.')}={value}"]

    return " ".join(flat("", json_format.MessageToDict(message, preserving_proto_field_name=True)))


def job_rows(jobs: Sequence[jobs_pb2.Job], now: float) -> Table:
    rows = []
    for j in jobs:
        note = j.pending_reason or j.reason
        rows.append([
            str(j.id), _clip(j.name or "-", 24), j.owner, job_state(j.state) + (" (held)" if j.held else ""),
            counts(j.task_counts),
            when(j.submit_time), duration(j.start_time, j.end_time, now), _clip(note, 60),
        ])
    return Table(["ID", "NAME", "OWNER", "STATE", "TASKS", "SUBMITTED", "TIME", "REASON"], rows, right=(0,),
                 state=3, empty="no jobs")


def job_table(jobs: Sequence[jobs_pb2.Job], now: float) -> str:
    return str(job_rows(jobs, now))


def node_rows(nodes: Sequence[admin_pb2.Node], now: float) -> Table:
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
    header = ["NAME", "STATE", "CORES", "MEMORY_MB", "GPUS", "TASKS", "GROUPS", "LABELS", "HEARTBEAT",
              "REASON"]
    return Table(header, rows, right=(2, 3, 4, 5), state=1, empty="no nodes have registered")


def node_table(nodes: Sequence[admin_pb2.Node], now: float) -> str:
    return str(node_rows(nodes, now))


def node_doc(n: admin_pb2.Node, now: float) -> Doc:
    beat = _secs(n.last_heartbeat)
    other = ", ".join(f"{k}={n.allocated.generic.get(k, 0)}/{v}" for k, v in sorted(n.capacity.generic.items()))
    state = node_state(n.state)
    fields = [
        ("reason", f"{n.reason or '-'} (since {when(n.state_time)})"),
        ("host", f"{n.hostname or '-'}  agent {n.agent_version or '-'}"),
        ("cores", f"{n.allocated.cores}/{n.capacity.cores} in use"),
        ("memory", f"{n.allocated.memory_mb}/{n.capacity.memory_mb} MB in use"),
        ("resources", other or "-"),
        ("groups", ", ".join(n.groups) or "-"),
        ("labels", ", ".join(n.labels) or "-"),
        ("tasks", ", ".join(n.tasks) or "-"),
        ("heartbeat", f"{max(0.0, now - beat):.0f}s ago" if beat else "-"),
    ]
    rows = [[when(h.time), node_state(h.state), h.reason] for h in n.history]
    history = Table(["TIME", "STATE", "REASON"], rows, state=1, empty="-", indent=4)
    heading = f"node {n.name}: {state}" + ("" if n.connected else " (agent disconnected)")
    return Doc([Line(heading, state=state, bold=True), Fields(fields, width=11, colon=True),
                Line("  history:", bold=True), history])


def node_view(n: admin_pb2.Node, now: float) -> str:
    return str(node_doc(n, now))


def _clip(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def _indent(text: str, by: int = 2) -> str:
    return "\n".join(" " * by + line for line in text.splitlines())
