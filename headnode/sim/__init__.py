"""Trace replay: workloads in the Standard Workload Format run through the scheduling core in
simulated time (`shoal simulate`)."""
