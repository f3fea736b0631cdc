"""The head node's Prometheus metrics: their names, and how each one is counted.

Off unless `metrics_listen` is set (`shoal head --metrics-listen HOST:PORT`); then
common/metrics.py serves them at http://HOST:PORT/metrics. Off, the services hold `Metrics`,
whose hooks do nothing, and prometheus_client is not even imported.

State is read at scrape time, on the event loop's thread, from the in-memory cluster (so
nothing is kept per event for it):
  shoal_jobs{state}                  gauge      jobs by state (ended ones until they are purged)
  shoal_task_instances{state}        gauge      run units (task instances) by state, over those jobs
  shoal_queued_tasks                 gauge      tasks in the queue (with instances waiting to start)
  shoal_nodes{state}                 gauge      nodes by state (Online, Draining, Offline, Unreachable)
  shoal_nodes_connected              gauge      nodes whose agent is connected
  shoal_cores_capacity               gauge      cores of Online, connected nodes
  shoal_cores_used                   gauge      cores allocated or reserved, on all nodes
Counted as it happens (a counter increment or a histogram observation, about a microsecond):
  shoal_tasks_started_total          counter    instances placed on a node (every attempt)
  shoal_tasks_finished_total{state}  counter    placed runs that ended, by the instance's state after:
                                                Finished, Failed, Cancelled, or Requeued (preempted, or
                                                its node lost with retries left); started minus all of
                                                these is what runs now
  shoal_queue_wait_seconds           histogram  a job's submission to each instance's first start
  shoal_scheduling_pass_seconds      histogram  one scheduling pass that had work: plan and commit
  shoal_rpc_started_total{service,method,type}  counter  RPCs begun, every type (unary, server_stream,
                                                client_stream, bidi_stream)
  shoal_rpc_handled_total{service,method,code}  counter  unary RPCs answered, by status code
  shoal_rpc_duration_seconds{service,method}    histogram  unary RPCs' handling time (a stream's
                                                lifetime is not a latency: streams are only counted)
  process_*                          the head process's CPU seconds, resident memory, open files
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

from headnode.domain.cluster import Cluster
from headnode.domain.states import TaskState

# Seconds. Waits run from instant to days; passes and RPCs from sub-millisecond up.
QUEUE_WAIT_BUCKETS = (0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 4 * 3600, 86400)
PASS_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5)
RPC_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)
# A run's end by the instance's state after it: Queued means it will run again.
_ENDED = {TaskState.FINISHED: "Finished", TaskState.FAILED: "Failed", TaskState.CANCELLED: "Cancelled",
          TaskState.QUEUED: "Requeued"}


class Metrics:
    """What the services report; this one drops it all (metrics off)."""

    enabled = False

    def run_started(self, submitted_at: float | None, attempt: int, now: float) -> None:
        pass

    def run_ended(self, state: TaskState) -> None:
        pass

    def pass_done(self, seconds: float) -> None:
        pass


NO_METRICS = Metrics()


class HeadMetrics(Metrics):
    """The real ones, in a registry of their own (so several head nodes in one process, as in
    tests, never clash in prometheus_client's global one)."""

    enabled = True

    def __init__(self) -> None:
        # Imported only when metrics are on: the exposition side costs tens of milliseconds.
        from prometheus_client import CollectorRegistry, Counter, Histogram, ProcessCollector

        self.registry = CollectorRegistry()
        r = self.registry
        self._started = Counter("shoal_tasks_started", "Task instances placed on a node (every attempt)",
                                registry=r)
        finished = Counter("shoal_tasks_finished", "Placed runs that ended, by the instance's state after",
                           ["state"], registry=r)
        self._finished = {state: finished.labels(label) for state, label in _ENDED.items()}
        self._finished_family = finished
        self._wait = Histogram("shoal_queue_wait_seconds", "Job submission to each instance's first start",
                               buckets=QUEUE_WAIT_BUCKETS, registry=r)
        self._pass = Histogram("shoal_scheduling_pass_seconds", "A scheduling pass with work (plan, commit)",
                               buckets=PASS_BUCKETS, registry=r)
        self.rpc_started = Counter("shoal_rpc_started", "RPCs begun", ["service", "method", "type"],
                                   registry=r)
        self.rpc_handled = Counter("shoal_rpc_handled", "Unary RPCs answered, by status code",
                                   ["service", "method", "code"], registry=r)
        self.rpc_duration = Histogram("shoal_rpc_duration_seconds", "Unary RPCs' handling time",
                                      ["service", "method"], buckets=RPC_BUCKETS, registry=r)
        ProcessCollector(registry=r)

    def run_started(self, submitted_at: float | None, attempt: int, now: float) -> None:
        self._started.inc()
        if attempt == 1 and submitted_at is not None:
            self._wait.observe(max(0.0, now - submitted_at))

    def run_ended(self, state: TaskState) -> None:
        child = self._finished.get(state)
        if child is None:  # not expected: every run ends in one of those
            child = self._finished_family.labels(state.value)
        child.inc()

    def pass_done(self, seconds: float) -> None:
        self._pass.observe(seconds)

    def watch(self, cluster: Cluster, loop: asyncio.AbstractEventLoop) -> None:
        """Report the cluster's state at scrape time, read on `loop` (which changes it)."""
        from common.metrics import LoopCollector

        self.registry.register(LoopCollector(loop, lambda: _state_families(cluster)))


def _state_families(cluster: Cluster) -> Iterator[Any]:
    from prometheus_client.core import GaugeMetricFamily

    from headnode.services.history import totals  # it imports this module's Metrics

    t = totals(cluster)
    for name, doc, counts in (("shoal_jobs", "Jobs by state", t.jobs),
                              ("shoal_task_instances", "Task instances (run units) by state", t.units),
                              ("shoal_nodes", "Nodes by state", t.nodes)):
        family = GaugeMetricFamily(name, doc, labels=["state"])
        for state, n in counts.items():
            family.add_metric([state.value], n)
        yield family
    yield GaugeMetricFamily("shoal_queued_tasks", "Tasks in the queue", value=t.queued_tasks)
    yield GaugeMetricFamily("shoal_nodes_connected", "Nodes whose agent is connected", value=t.connected)
    yield GaugeMetricFamily("shoal_cores_capacity", "Cores of Online, connected nodes", value=t.cores_total)
    yield GaugeMetricFamily("shoal_cores_used", "Cores allocated or reserved", value=t.cores_used)
