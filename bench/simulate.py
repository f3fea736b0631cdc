"""The trace simulator's speed: replaying a 10,000-job trace (Lublin-Feitelson, 256 cores)
through the scheduling core under FCFS and EASY, and the full SDSC-SP2 trace (about 59,700
jobs, 128 nodes) under EASY (target: 10 s), timed over N runs (reading the trace is not
timed). Prints one JSON line per figure and a table.

    .venv/bin/python bench/simulate.py [--runs 5] [--lublin-runs N] [--trace PATH]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from figures import figure, report

from headnode.scheduling.policy import Policy
from headnode.sim import replay, swf

TRACES = Path(__file__).resolve().parent / "traces"  # copies of the Parallel Workloads Archive's (README there)
TRACE = TRACES / "lublin_256.swf.gz"
SDSC = TRACES / "SDSC-SP2-1998-4.2-cln.swf.gz"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--trace", type=Path, default=TRACE)
    parser.add_argument("--lublin-runs", type=int, default=0, help="runs of the 10,000-job trace (default: --runs)")
    args = parser.parse_args()
    if not args.trace.exists():
        print(f"no trace at {args.trace}: give one with --trace")
        return
    trace = swf.read(args.trace)
    figures = []
    for name in ("fcfs", "easy"):
        results = [replay.replay(trace, Policy(name=name)) for _ in range(args.lublin_runs or args.runs)]
        figures.append(figure(f"replay_{name}", [r.seconds for r in results], jobs=results[0].jobs,
                              mean_wait=round(results[0].mean_wait, 1),
                              mean_bounded_slowdown=round(results[0].mean_bounded_slowdown, 2)))
    if SDSC.exists() and args.trace == TRACE:
        sdsc = swf.read(SDSC)
        results = [replay.replay(sdsc, Policy(name="easy")) for _ in range(args.runs)]
        f = figure("replay_sdsc_sp2_easy", [r.seconds for r in results], jobs=results[0].jobs,
                   mean_wait=round(results[0].mean_wait, 1))
        f["target"], f["met"] = 10_000.0, f["median"] <= 10_000.0  # type: ignore[operator]
        figures.append(f)
    report(figures, f"{args.runs} runs, {args.trace.name}, {len(trace.jobs)} jobs")


if __name__ == "__main__":
    main()
