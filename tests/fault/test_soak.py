"""The short form of the fault-injection soak (the long one is `make soak`)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.fault.soak import run_soak

pytestmark = pytest.mark.cluster


@pytest.mark.timeout(400)
def test_nothing_is_lost_while_daemons_are_killed_at_random(tmp_path: Path) -> None:
    report = run_soak(tmp_path, tasks=300, seed=11, agents=4, pause=(0.4, 1.2), task_seconds=0.4, timeout=300)
    summary = report.summary()
    print(json.dumps(summary))
    assert report.head_kills >= 2 and report.agent_kills >= 3, f"too little chaos to mean anything: {summary}"
    for name in ("not_ended", "wrong_result", "run_twice", "never_ran", "bad_output"):
        assert not getattr(report, name), f"{name}: {getattr(report, name)[:5]}"
