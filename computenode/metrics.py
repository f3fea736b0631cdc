"""The agent's Prometheus metrics: their names, and how each one is counted.

Off unless `metrics_listen` is set (`shoal node --metrics-listen HOST:PORT`); then
common/metrics.py serves them at http://HOST:PORT/metrics. Off, the agent holds
`AgentMetrics`, whose hooks do nothing, and prometheus_client is not even imported.

  shoal_agent_tasks_started_total            counter  task processes this agent launched
  shoal_agent_tasks_finished_total{outcome}  counter  task exits it reported: killed (stopped by the
                                                      agent: cancelled, preempted, past its runtime
                                                      or memory limit; or ended by a signal),
                                                      succeeded (exit code 0), failed (another exit
                                                      code), error (could not start, or how it ended
                                                      is unknown)
  shoal_agent_tasks_running                  gauge    tasks with a process (running or being killed)
  shoal_agent_connected                      gauge    1 while a session with the head is open
  shoal_agent_cores_offered                  gauge    cores offered to tasks
  shoal_agent_memory_offered_bytes           gauge    memory offered to tasks
  shoal_agent_info{node,version}             gauge    always 1: which node this is
  process_*                                  the agent process's own CPU seconds, resident memory,
                                             open files (the tasks are not in it; the agent does
                                             not sample their use)

The gauges are read at scrape time on the event loop's thread (common/metrics.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from common.resources import Resources
from computenode import state as st

if TYPE_CHECKING:
    from computenode.agent import Agent

_ACTIVE = (st.Phase.RUNNING, st.Phase.KILLING)


class AgentMetrics:
    """What the agent reports; this one drops it all (metrics off)."""

    def task_started(self) -> None:
        pass

    def task_stopping(self, key: st.Key) -> None:
        """The agent began stopping the task (its exit will be the kill landing)."""

    def task_finished(self, entry: st.TaskEntry) -> None:
        pass


NO_METRICS = AgentMetrics()


class PrometheusAgentMetrics(AgentMetrics):
    """The real ones, in a registry of their own (swarm.py runs many agents in one process)."""

    def __init__(self) -> None:
        # Imported only when metrics are on: the exposition side costs tens of milliseconds.
        from prometheus_client import CollectorRegistry, Counter, ProcessCollector

        self.registry = CollectorRegistry()
        self._started = Counter("shoal_agent_tasks_started", "Task processes this agent launched",
                                registry=self.registry)
        finished = Counter("shoal_agent_tasks_finished", "Task exits this agent reported, by outcome",
                           ["outcome"], registry=self.registry)
        self._finished = {o: finished.labels(o) for o in ("succeeded", "failed", "killed", "error")}
        # Tasks being stopped: a shell killed by SIGTERM exits 143, which is no failure of the task.
        self._stopping: set[st.Key] = set()
        ProcessCollector(registry=self.registry)

    def task_started(self) -> None:
        self._started.inc()

    def task_stopping(self, key: st.Key) -> None:
        self._stopping.add(key)

    def task_finished(self, entry: st.TaskEntry) -> None:
        if entry.key in self._stopping:
            self._stopping.discard(entry.key)
            self._finished["killed" if not entry.error else "error"].inc()
        else:
            self._finished[outcome(entry)].inc()

    def watch(self, agent: Agent, offered: Resources, loop: asyncio.AbstractEventLoop) -> None:
        """Report the agent's tasks and connection at scrape time, read on `loop`."""
        from common.metrics import LoopCollector
        from shoal import __version__

        def read() -> Iterator[Any]:
            from prometheus_client.core import GaugeMetricFamily

            running = sum(1 for e in agent.state.tasks.values() if e.phase in _ACTIVE)
            yield GaugeMetricFamily("shoal_agent_tasks_running", "Tasks with a process", value=running)
            yield GaugeMetricFamily("shoal_agent_connected", "1 while a session with the head is open",
                                    value=int(agent.connected))
            yield GaugeMetricFamily("shoal_agent_cores_offered", "Cores offered to tasks",
                                    value=offered.cores)
            yield GaugeMetricFamily("shoal_agent_memory_offered_bytes", "Memory offered to tasks",
                                    value=offered.memory_mb * 1024 * 1024)
            info = GaugeMetricFamily("shoal_agent_info", "Which node this agent serves",
                                     labels=["node", "version"])
            info.add_metric([agent.config.name, __version__], 1)
            yield info

        self.registry.register(LoopCollector(loop, read))


def outcome(entry: st.TaskEntry) -> str:
    if entry.error:
        return "error"
    if entry.signal or entry.runtime_exceeded or entry.out_of_memory:
        return "killed"
    return "succeeded" if entry.exit_code == 0 else "failed"
