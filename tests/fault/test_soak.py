"""The short form of the fault-injection soak (the long one is `make soak`): head and agents
SIGKILLed, frozen and (where network namespaces can be made) agents cut off, under a workload."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.fault.soak import Report, run_soak

pytestmark = pytest.mark.cluster


@pytest.mark.timeout(400)
def test_nothing_is_lost_or_run_twice_while_daemons_are_killed_frozen_and_cut_off(tmp_path: Path) -> None:
    report = run_soak(tmp_path, tasks=300, seed=11, agents=4, pause=(0.4, 1.2), task_seconds=0.4, timeout=300)
    summary = report.summary()
    print(json.dumps(summary))
    if report.partition_skipped:
        print(f"no partitions: {report.partition_skipped}")
    where = f"{summary} (faults: {tmp_path / 'faults.log'}, logs: {tmp_path / 'cluster' / 'logs'})"
    assert report.head_kills >= 2 and report.agent_kills >= 1, f"too few kills to mean anything: {where}"
    assert report.agent_freezes >= 1 and report.head_freezes >= 1, f"no freeze of each kind: {where}"
    assert report.partitions >= 1 or report.partition_skipped, f"no partition, none skipped: {where}"
    assert not report.agent_not_back, f"agents that never came back: {report.agent_not_back}"
    assert not report.overlaps, f"two attempts of a task ran at once: {report.overlaps[:5]}; {where}"
    for name in (*Report.RUN_TWICE, *Report.LOST):
        assert not getattr(report, name), f"{name}: {getattr(report, name)[:5]}; {where}"
    assert report.overlap_s == 0 and report.lost == 0 and report.run_twice == 0, where
