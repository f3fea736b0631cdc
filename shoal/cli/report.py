"""`shoal report usage`: accounting, what ended jobs used (Slurm's sreport and sacct).

Dates on the command line are local time: YYYY-MM-DD (midnight), an ISO date-time, or a time
ago such as 7d, 12h, 30m, 2w.
"""

from __future__ import annotations

import argparse
import re
import sys
from datetime import datetime

from common.errors import InvalidArgument
from shoal.cli import render
from shoal.cli.base import EXIT_OK, now, talks_to_head
from shoal.client import Client
from shoal.v1 import jobs_pb2

_AGO = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
DATE_FORMS = "YYYY-MM-DD, an ISO date-time (2026-01-31T14:00) or a time ago (7d, 12h, 30m, 2w)"


def parse_date(text: str, flag: str, current: float) -> float:
    """Seconds since the epoch for a date as the command line gives it."""
    t = text.strip()
    if m := re.fullmatch(r"(\d+(?:\.\d+)?)\s*([smhdw])", t.lower()):
        return current - float(m.group(1)) * _AGO[m.group(2)]
    try:
        return datetime.fromisoformat(t).timestamp()  # a naive date or date-time is local time
    except ValueError:
        raise InvalidArgument(f"{flag} {text!r} is not a date: use {DATE_FORMS}") from None


@talks_to_head
def usage(args: argparse.Namespace, head: str) -> int:
    current = now()
    since = parse_date(args.since, "--since", current) if args.since else None
    until = parse_date(args.until, "--until", current) if args.until else None
    if since is not None and until is not None and since >= until:
        raise InvalidArgument(f"--since {args.since} is not before --until {args.until}")
    with Client(head) as client:
        report = client.usage_report(args.by, since, until, owner=args.owner, project=args.project,
                                     limit=args.limit)
    if args.json:
        print(render.to_json(report))
    else:
        print(usage_table(report, args.by))
    if report.truncated:
        print(f"shoal: the report stops at {len(report.rows):,} rows (--limit); its total counts every job. "
              "Narrow it with --since, --until, --owner or --project", file=sys.stderr)
    return EXIT_OK


def usage_table(report: jobs_pb2.UsageReport, by: str) -> str:
    if not report.rows:
        return "no jobs ended in that time"
    t = report.total
    if by == "job":
        header = ["JOB", "NAME", "OWNER", "PROJECT", "STATE", "ENDED", "TASKS", "FAILED", "CORE-HOURS",
                  "WALL", "MAX MEM", "EXIT CODES"]
        rows = [[r.key, _clip(r.name or "-", 24), r.owner, r.project or "-", render.job_state(r.state),
                 render.when(r.end_time), str(r.tasks), str(r.failed), _hours(r.core_seconds),
                 _wall(r.wall_seconds), _memory(r.max_memory_mb), r.exit_codes or "-"] for r in report.rows]
        rows.append(["TOTAL", "", "", "", "", "", str(t.tasks), str(t.failed), _hours(t.core_seconds),
                     _wall(t.wall_seconds), _memory(t.max_memory_mb), ""])
        return render.table(header, rows, right=(0, 6, 7, 8, 9, 10))
    header = [by.upper(), "JOBS", "TASKS", "FAILED", "CORE-HOURS", "WALL-HOURS", "MAX MEM", "NONZERO EXITS"]
    rows = [[r.key or "(none)", str(r.jobs), str(r.tasks), str(r.failed), _hours(r.core_seconds),
             _hours(r.wall_seconds), _memory(r.max_memory_mb), str(r.nonzero_exits)] for r in report.rows]
    rows.append(["TOTAL", str(t.jobs), str(t.tasks), str(t.failed), _hours(t.core_seconds),
                 _hours(t.wall_seconds), _memory(t.max_memory_mb), str(t.nonzero_exits)])
    return render.table(header, rows, right=(1, 2, 3, 4, 5, 6))


def _hours(seconds: float) -> str:
    hours = seconds / 3600
    # Short jobs are a small fraction of an hour: show them to the second (1/3600 h).
    return f"{hours:,.2f}" if hours >= 1 else f"{hours:.4f}"


def _wall(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f}s"
    s = int(seconds)
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


def _memory(mb: int) -> str:
    return f"{mb:,} MB" if mb else "-"


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[:width - 1] + "…"
