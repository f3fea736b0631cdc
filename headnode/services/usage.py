"""Accounting reports: what ended jobs used, by owner, project or job (Slurm's sreport).

The usage records themselves are written by the journal with each job's end state (see
store/records.py `usage_record`) and outlive the job's purge. A report is aggregated by the
store (SQL GROUP BY over an index on the end time) on a connection of its own in a worker
thread, so it neither blocks the event loop nor holds up the journal's writes; at most
`MAX_CONCURRENT` run at once, the others wait their turn.
"""

from __future__ import annotations

import asyncio

from common import log
from common.errors import InvalidArgument
from headnode.store.base import Store, UsageQuery, UsageReport

_log = log.get("usage")

GROUPINGS = ("owner", "project", "job")
DEFAULT_LIMIT = 10_000
MAX_LIMIT = 100_000
MAX_CONCURRENT = 2
MAX_NAME = 1000


class UsageService:
    def __init__(self, store: Store) -> None:
        self.store = store
        self._running = asyncio.Semaphore(MAX_CONCURRENT)

    async def report(self, query: UsageQuery) -> UsageReport:
        """The report the query asks for; the caller has already narrowed it to what the
        asker may see (owner)."""
        if query.by not in GROUPINGS:
            raise InvalidArgument(f"by {query.by!r}: a usage report groups by {', '.join(GROUPINGS)}")
        if query.since is not None and query.until is not None and query.since >= query.until:
            raise InvalidArgument("since must be before until")
        for name, value in (("owner", query.owner), ("project", query.project)):
            if "\0" in value or len(value) > MAX_NAME:
                raise InvalidArgument(f"{name} must be at most {MAX_NAME} characters, without NUL")
        if not 0 < query.limit <= MAX_LIMIT:
            raise InvalidArgument(f"limit {query.limit}: give 1 to {MAX_LIMIT:,} rows (0: {DEFAULT_LIMIT:,})")
        async with self._running:
            report = await asyncio.to_thread(self.store.usage_report, query)
        _log.info("usage_report", by=query.by, owner=query.owner, project=query.project,
                  rows=len(report.rows), truncated=report.truncated)
        return report
