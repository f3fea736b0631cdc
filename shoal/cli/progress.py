"""Following one job to its end, for `shoal job wait`, `shoal job watch JOB` and
`shoal job submit --wait`: a live progress bar on a terminal (run units done, failed,
running and queued; rate; ETA), plain lines otherwise.

The job's watch stream (its history, then each change) is read on a thread, so the bar
keeps moving between events and a job that ends quickly never draws one: `--wait` on a
one-second job does not pay rich's import. Events carry the job's run-unit counts right
after each change (replayed history only on its last event); the bar follows them."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from typing import IO, Any

from common.clock import Clock, SystemClock
from shoal.cli import render
from shoal.client import Client
from shoal.v1 import jobs_pb2

# A job that ends sooner never shows a bar (nor imports rich) under `wait`.
BAR_DELAY = 0.3
# Plain lines: at most one a second (a sweep of 10,000 makes 20,000 changes); the last always.
LINE_INTERVAL = 1.0


def follow(client: Client, job_id: int, out: IO[str] | None, log: bool = False,
           clock: Clock | None = None) -> jobs_pb2.Job:
    """Follow job `job_id` until it ends and return its final full view. `out`: where the
    progress goes (None: nowhere); `log`: also print each change as an event line (watch)."""
    first = client.get_job(job_id, full=False)  # an unknown job fails here, before any output
    items: queue.Queue[tuple[str, Any]] = queue.Queue()
    threading.Thread(target=_feed, args=(client, job_id, items.put), daemon=True, name="watch").start()
    view: _View = _View()
    delay: float | None = None
    if out is not None and render.is_terminal(out):
        view, delay = _Bar(out, first, log), (0.0 if log else BAR_DELAY)
    elif out is not None:
        view = _Lines(out, first, log, clock or SystemClock())
    try:
        while True:
            try:
                kind, value = items.get(timeout=delay)
            except queue.Empty:
                view.start()
                delay = None
                continue
            if kind == "event":
                view.event(value)
            elif kind == "end":
                view.end(value)
                return value
            else:
                raise value
    finally:
        view.close()


def _feed(client: Client, job_id: int, put: Callable[[tuple[str, Any]], None]) -> None:
    """Watch the job until it has ended, riding out a head node's restart or a failover
    (Client.wait_job: the watch replays the history, events already seen are dropped)."""
    try:
        put(("end", client.wait_job(job_id, on_event=lambda event: put(("event", event)))))
    except Exception as e:  # handed to the main thread, which raises it
        put(("error", e))


def _has_counts(c: jobs_pb2.TaskCounts) -> bool:
    return any(getattr(c, name) for name in render.COUNT_NAMES)


class _View:
    """Shows nothing (`--json`: only the final job is printed)."""

    def start(self) -> None:
        pass

    def event(self, event: jobs_pb2.JobEvent) -> None:
        pass

    def end(self, job: jobs_pb2.Job) -> None:
        pass

    def close(self) -> None:
        pass


class _Lines(_View):
    """Plain lines: "job 42: 10/100 done, 2 failed, 4 running, 84 queued" when the counts
    change (wait), or each event line with the counts after it (watch)."""

    def __init__(self, out: IO[str], job: jobs_pb2.Job, log: bool, clock: Clock) -> None:
        self.out, self.job_id, self.log, self.clock = out, job.id, log, clock
        self.shown = ""
        self.pending = render.progress_text(job.task_counts) if _has_counts(job.task_counts) else ""
        self.last = float("-inf")

    def event(self, event: jobs_pb2.JobEvent) -> None:
        counts = render.progress_text(event.task_counts) if _has_counts(event.task_counts) else ""
        if self.log:
            print(render.event_line(event) + (f"  [{counts}]" if counts else ""), file=self.out, flush=True)
            return
        if counts:
            self.pending = counts
        now = self.clock.monotonic()
        if now - self.last >= LINE_INTERVAL:
            self._print()
            self.last = now

    def end(self, job: jobs_pb2.Job) -> None:
        if not self.log:
            self.pending = render.progress_text(job.task_counts)
            self._print()

    def _print(self) -> None:
        if self.pending and self.pending != self.shown:
            print(f"job {self.job_id}: {self.pending}", file=self.out, flush=True)
            self.shown = self.pending


class _Bar(_View):
    """A rich progress bar; with `log`, event lines scroll above it."""

    def __init__(self, out: IO[str], job: jobs_pb2.Job, log: bool) -> None:
        self.out, self.job_id, self.log = out, job.id, log
        self.state = render.job_state(job.state)
        self.counts = jobs_pb2.TaskCounts()
        self.counts.CopyFrom(job.task_counts)
        self.progress: Any = None
        self.task: Any = None

    def start(self) -> None:
        if self.progress is None:
            self.progress = _progress(self.out)
            # Created with the units already ended, so they do not count as a burst of speed.
            values = self._values()
            self.task = self.progress.add_task(**values, base=values["completed"])
            self.progress.start()

    def event(self, event: jobs_pb2.JobEvent) -> None:
        self.state = render.job_state(event.job_state)
        if _has_counts(event.task_counts):
            self.counts.CopyFrom(event.task_counts)
        if self.log:
            self.start()
        if self.progress is not None:
            self._update()
        if self.log:
            from rich.text import Text

            text = Text(render.event_line(event))
            state = render.task_state(event.task_state) if event.HasField("task") else self.state
            text.highlight_words([state], style=render.state_style(state))
            self.progress.console.print(text)

    def end(self, job: jobs_pb2.Job) -> None:
        self.state = render.job_state(job.state)
        self.counts.CopyFrom(job.task_counts)
        if self.progress is not None:
            self._update()

    def close(self) -> None:
        if self.progress is not None:
            self.progress.stop()

    def _values(self) -> dict[str, Any]:
        c = self.counts
        total = sum(getattr(c, name) for name in render.COUNT_NAMES)
        style = render.state_style(self.state)
        return {"description": f"job {self.job_id} " + (f"[{style}]{self.state}[/]" if style else self.state),
                "total": total or None, "completed": c.finished + c.failed + c.cancelled, "units": total,
                "done": c.finished, "failed": c.failed, "cancelled": c.cancelled, "running": c.running,
                "queued": c.queued + c.configuring}

    def _update(self) -> None:
        self.progress.update(self.task, **self._values())


def _progress(out: IO[str]) -> Any:
    from rich.progress import BarColumn, Progress, ProgressColumn, TextColumn
    from rich.table import Column
    from rich.text import Text

    class Counts(ProgressColumn):
        def render(self, task: Any) -> Text:
            f = task.fields
            text = Text()
            text.append(f"{f['done']}/{f['units']} done", style="green")
            text.append(", ")
            text.append(f"{f['failed']} failed", style="bold red" if f["failed"] else "")
            if f["cancelled"]:
                text.append(f", {f['cancelled']} cancelled", style="yellow")
            text.append(", ")
            text.append(f"{f['running']} running", style="cyan" if f["running"] else "")
            text.append(f", {f['queued']} queued")
            return text

    # Rate and ETA over the whole time shown, not rich's recent samples: units end in bursts
    # (a node's instances finish together), and two samples a millisecond apart read as 1000/s.
    def rate(task: Any) -> float:
        elapsed = task.elapsed or 0.0
        return (task.completed - task.fields["base"]) / elapsed if elapsed > 1.0 else 0.0

    class Rate(ProgressColumn):
        def render(self, task: Any) -> Text:
            r = rate(task)
            return Text(f"{r:.1f}/s" if r else "-/s", style="progress.data.speed")

    class Eta(ProgressColumn):
        def render(self, task: Any) -> Text:
            r = rate(task)
            if task.finished or not r or not task.total:
                return Text("" if task.finished else "ETA --:--", style="progress.remaining")
            left = int((task.total - task.completed) / r)
            hours = f"{left // 3600}:" if left >= 3600 else ""
            text = f"ETA {hours}{left % 3600 // 60:02d}:{left % 60:02d}"
            return Text(text, style="progress.remaining")

    # The bar takes what the text leaves of the terminal's width (the counts matter more).
    text = Column(no_wrap=True)
    return Progress(TextColumn("{task.description}", table_column=text), BarColumn(bar_width=None),
                    Counts(table_column=text), Rate(table_column=text), Eta(table_column=text),
                    console=render.terminal(out), transient=False, expand=True)
