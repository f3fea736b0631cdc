"""Reading the Standard Workload Format (the Parallel Workloads Archive's).

Header lines start with ';' (`; MaxProcs: 128`); each other line is one job of 18
whitespace-separated fields: 1 job number, 2 submit time, 3 wait, 4 run time, 5 allocated
processors, 6 average CPU time, 7 used memory, 8 requested processors, 9 requested time,
10 requested memory, 11 status, 12 user, 13 group, ... -1 means unknown. As simulators
commonly do: processors are the requested ones, else the allocated ones; the requested time
is the runtime limit, else the run time. Jobs that never ran (run time -1) or ask for no
processors are dropped and counted.
"""

from __future__ import annotations

import gzip
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True, slots=True)
class TraceJob:
    id: int
    submit: float
    run: float  # actual run time
    procs: int
    limit: float  # requested time (the runtime limit)
    user: str


@dataclass
class Trace:
    jobs: list[TraceJob] = field(default_factory=list)
    header: dict[str, str] = field(default_factory=dict)
    dropped: int = 0  # never ran, or asked for no processors

    @property
    def max_procs(self) -> int:
        for key in ("MaxProcs", "MaxNodes"):
            value = self.header.get(key, "").split()
            if value and value[0].isdigit() and int(value[0]) > 0:
                return int(value[0])
        return 0


def read(path: Path, limit: int = 0) -> Trace:
    """The first `limit` jobs (0: all) of the trace at `path` (.swf or .swf.gz)."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    trace = Trace()
    try:
        with opener(path, "rt", encoding="utf-8", errors="replace") as f:  # type: ignore[operator]
            for number, line in enumerate(f, start=1):
                line = line.strip()
                if not line:
                    continue
                if line.startswith(";"):
                    key, sep, value = line[1:].partition(":")
                    if sep:
                        trace.header[key.strip()] = value.strip()
                    continue
                job = _job(line, number, path)
                if job is None:
                    trace.dropped += 1
                    continue
                trace.jobs.append(job)
                if limit and len(trace.jobs) >= limit:
                    break
    except (OSError, EOFError, gzip.BadGzipFile) as e:
        raise ValueError(f"cannot read {path}: {e}") from None
    return trace


def _job(line: str, number: int, path: Path) -> TraceJob | None:
    fields = line.split()
    if len(fields) < 18:
        raise ValueError(f"{path}:{number}: a job line has 18 fields, this one has {len(fields)}")
    try:
        job_id, submit, _wait, run, allocated = int(fields[0]), float(fields[1]), fields[2], float(fields[3]), int(fields[4])
        requested, req_time = int(fields[7]), float(fields[8])
    except ValueError:
        raise ValueError(f"{path}:{number}: fields must be numbers: {line[:60]!r}") from None
    procs = requested if requested > 0 else allocated
    if run < 0 or procs <= 0:
        return None
    return TraceJob(job_id, submit, run, procs, req_time if req_time > 0 else run, fields[11])
