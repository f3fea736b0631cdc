"""to_proto / from_proto for usage reports (JobService.GetUsageReport)."""

from __future__ import annotations

from common.errors import InvalidArgument
from common.wire import seconds, timestamp
from headnode.api.convert import JOB_STATES
from headnode.domain.states import JobState
from headnode.services.usage import DEFAULT_LIMIT
from headnode.store.base import UsageQuery, UsageReport, UsageRow
from shoal.v1 import jobs_pb2

_GROUPINGS = {
    jobs_pb2.USAGE_GROUPING_UNSPECIFIED: "owner",
    jobs_pb2.USAGE_GROUPING_OWNER: "owner",
    jobs_pb2.USAGE_GROUPING_PROJECT: "project",
    jobs_pb2.USAGE_GROUPING_JOB: "job",
}


def usage_query(msg: jobs_pb2.UsageReportRequest, owner: str) -> UsageQuery:
    """The request as a query, for `owner` (the one the caller asked for, or may see)."""
    by = _GROUPINGS.get(msg.by)
    if by is None:
        raise InvalidArgument(f"by {msg.by} is not a UsageGrouping (owner, project or job)")
    return UsageQuery(
        by=by,
        since=_when(msg, "since"),
        until=_when(msg, "until"),
        owner=owner,
        project=msg.project,
        limit=msg.limit or DEFAULT_LIMIT,
    )


def _when(msg: jobs_pb2.UsageReportRequest, field: str) -> float | None:
    return seconds(getattr(msg, field), field) if msg.HasField(field) else None


def usage_report_msg(report: UsageReport) -> jobs_pb2.UsageReport:
    return jobs_pb2.UsageReport(rows=[_row_msg(r) for r in report.rows], total=_row_msg(report.total),
                                truncated=report.truncated)


def _row_msg(row: UsageRow) -> jobs_pb2.UsageRow:
    msg = jobs_pb2.UsageRow(key=row.key, jobs=row.jobs, tasks=row.units, failed=row.failed,
                            core_seconds=row.core_seconds, wall_seconds=row.wall_seconds,
                            max_memory_mb=row.max_memory_mb, nonzero_exits=row.nonzero_exits)
    r = row.record
    if r is not None:
        msg.owner, msg.project, msg.name, msg.exit_codes = r.owner, r.project, r.name, r.exit_codes
        msg.state = JOB_STATES[JobState(r.state)]
        for field, value in (("submit_time", r.submitted_at), ("start_time", r.started_at),
                             ("end_time", r.ended_at)):
            if value is not None:
                getattr(msg, field).CopyFrom(timestamp(value))
    return msg
