"""The trace simulator on a small synthetic trace whose results are worked out by hand.

A 4-core machine. Job 1 (2 cores, 10 s) starts at 0. Job 2 (4 cores, 10 s) arrives at 1 and
must wait for job 1: it can start at 10. Job 3 (2 cores, 5 s) arrives at 2; job 4 (2 cores,
20 s) at 3; job 5 asks for 8 cores and is skipped.

FCFS:  1: 0-10   2: 10-20   3: 20-25   4: 20-40      waits 0, 9, 18, 17
EASY:  1: 0-10   3: 2-7 (ends before job 2's reservation at 10)   2: 10-20
       4: 20-40 (at 3 and at 7 it would end after 10 and run on cores job 2 needs)
                                                      waits 0, 9, 0, 17
Makespan 40 s for both; work 2*10 + 4*10 + 2*5 + 2*20 = 110 core-seconds of 4*40:
utilization 0.6875. Bounded slowdowns max(1, (wait + run) / max(run, 10)):
FCFS 1, 1.9, 2.3, 1.85 (mean 1.7625); EASY 1, 1.9, 1, 1.85 (mean 1.4375).
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from headnode.scheduling.policy import Policy
from headnode.sim import replay, swf
from tests.conftest import run_cli

TRACE = """\
; Version: 2
; MaxProcs: 4
1 0 -1 10 2 -1 -1 2 10 -1 1 7 -1 -1 -1 -1 -1 -1
2 1 -1 10 4 -1 -1 4 10 -1 1 8 -1 -1 -1 -1 -1 -1
3 2 -1 5 2 -1 -1 -1 5 -1 1 7 -1 -1 -1 -1 -1 -1
4 3 -1 20 2 -1 -1 2 -1 -1 1 9 -1 -1 -1 -1 -1 -1
5 4 -1 30 8 -1 -1 8 30 -1 1 9 -1 -1 -1 -1 -1 -1
6 5 -1 -1 2 -1 -1 2 30 -1 5 9 -1 -1 -1 -1 -1 -1
"""


@pytest.fixture
def trace_file(tmp_path: Path) -> Path:
    path = tmp_path / "small.swf"
    path.write_text(TRACE)
    return path


@pytest.mark.parametrize("name, mean_wait, bsld", [("fcfs", 11.0, 1.7625), ("easy", 6.5, 1.4375)])
def test_fcfs_and_easy_give_the_results_worked_out_by_hand(trace_file: Path, name: str, mean_wait: float,
                                                           bsld: float) -> None:
    trace = swf.read(trace_file)
    assert trace.max_procs == 4 and trace.dropped == 1 and len(trace.jobs) == 5
    assert trace.jobs[2].procs == 2 and trace.jobs[3].limit == 20, "allocated procs and run time stand in"
    result = replay.replay(trace, Policy(name=name))
    assert (result.jobs, result.skipped, result.dropped) == (4, 1, 1)
    assert result.makespan == 40 and result.utilization == pytest.approx(0.6875)
    assert result.mean_wait == pytest.approx(mean_wait)
    assert result.mean_bounded_slowdown == pytest.approx(bsld)


def test_the_cli_prints_the_figures_and_json(trace_file: Path) -> None:
    result = run_cli("simulate", str(trace_file), "--policy", "fcfs", "--json")
    assert result.returncode == 0, result.stderr
    figures = json.loads(result.stdout)
    assert figures["mean_wait"] == 11.0 and figures["jobs"] == 4 and figures["skipped"] == 1
    text = run_cli("simulate", str(trace_file), "--cores", "8", "--limit-jobs", "2").stdout
    assert "machine                8 cores" in text and "jobs                   2" in text
    bad = run_cli("simulate", str(trace_file.with_name("missing.swf")))
    assert bad.returncode == 2 and "cannot read" in bad.stderr


def test_a_malformed_line_names_the_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.swf"
    path.write_text("; MaxProcs: 4\n1 0 -1 10 2\n")
    with pytest.raises(ValueError, match=r"bad.swf:2: a job line has 18 fields, this one has 5"):
        swf.read(path)


@pytest.mark.parametrize("name", ["fcfs", "easy"])
def test_skipping_passes_that_could_start_nothing_changes_no_start(name: str) -> None:
    """The replay asks for no pass while fewer cores are free than the smallest waiting job
    needs; on a busy random trace (a queue most of the time, sizes 1-16 of 16 cores) every
    job must start when it does with a pass at every event time, and passes must be saved."""
    rng = random.Random(7)
    jobs, t = [], 0.0
    for i in range(1, 1501):
        t += rng.expovariate(1 / 3)
        run = rng.choice([1, 5, 20, 60, 300])
        jobs.append(swf.TraceJob(i, round(t), run, rng.choice([1, 1, 2, 3, 4, 8, 12, 16]),
                                 run * rng.choice([1, 2, 10]), f"u{i % 5}"))
    trace = swf.Trace(jobs, {"MaxProcs": "16"})
    skipping: dict[int, float] = {}
    every: dict[int, float] = {}
    fewer = replay.replay(trace, Policy(name=name), starts=skipping)
    full = replay.replay(trace, Policy(name=name), every_pass=True, starts=every)
    assert len(skipping) == 1500 and skipping == every
    assert fewer.mean_wait == full.mean_wait > 100, "the trace keeps a queue"
    assert fewer.passes < 0.9 * full.passes
