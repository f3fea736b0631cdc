"""`shoal simulate TRACE.swf`: replay a workload trace through the scheduling core."""

from __future__ import annotations

import argparse
import json

from shoal.cli.base import EXIT_OK, usage


def simulate(args: argparse.Namespace, head: str) -> int:
    from headnode.scheduling.policy import Policy
    from headnode.sim import replay, swf

    del head  # runs locally: no head node involved
    if args.cores is not None and args.cores < 1:
        return usage(f"--cores must be at least 1, got {args.cores}")
    try:
        trace = swf.read(args.trace, args.limit_jobs or 0)
    except (ValueError, FileNotFoundError) as e:
        return usage(str(e).splitlines()[0])
    policy = Policy(name=args.policy, default_runtime=args.default_runtime)
    result = replay.replay(trace, policy, args.cores or 0)
    if args.json:
        print(json.dumps({"trace": str(args.trace), **result.as_dict()}))
        return EXIT_OK
    print(f"trace                  {args.trace}")
    print(f"policy                 {result.policy}")
    print(f"machine                {result.cores} cores")
    print(f"jobs                   {result.jobs}  (skipped, wider than the machine: {result.skipped}; "
          f"dropped, never ran: {result.dropped})")
    print(f"makespan               {result.makespan:.0f} s ({result.makespan / 86400:.1f} days)")
    print(f"utilization            {result.utilization:.1%}")
    print(f"mean wait              {result.mean_wait:.0f} s")
    print(f"mean bounded slowdown  {result.mean_bounded_slowdown:.2f}  (10 s threshold)")
    print(f"replayed in            {result.seconds:.1f} s ({result.passes} scheduling passes)")
    return EXIT_OK
