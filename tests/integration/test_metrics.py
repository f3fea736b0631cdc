"""Prometheus metrics on the head node and agents: scraped over HTTP from a real cluster while a
job runs and after it ends, and absent (no file, no port) when not asked for."""

from __future__ import annotations

import json
import re
import socket
import urllib.request
from pathlib import Path

import psutil
import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from common.config import HeadConfig, NodeConfig, load
from common.errors import ConfigError
from common.metrics import ADDRESS_FILE, MetricsServer
from computenode import metrics as agent_metrics
from headnode.services import metrics as head_metrics
from shoal.client import Client, RequestFailed, task_spec
from shoal.local import LocalCluster
from shoal.v1 import jobs_pb2
from tests.conftest import eventually, run_cli

pytestmark = pytest.mark.cluster
DASHBOARD = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "shoal-dashboard.json"

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]
METRICS = ["--metrics-listen", "127.0.0.1:0"]


def scrape(address: str) -> Samples:
    with urllib.request.urlopen(f"http://{address}/metrics", timeout=10) as response:
        text = response.read().decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(samples: Samples, name: str, **labels: str) -> float:
    """The sum of the samples named `name` whose labels include `labels` (0 if none)."""
    want = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and want <= set(ls))


def family(sample_name: str) -> str:
    """A sample's metric as the docs and dashboard name it (histograms without their suffixes)."""
    return re.sub(r"_(bucket|count|sum)$", "", sample_name)


def documented() -> set[str]:
    """The shoal_* metrics the two metrics modules' docstrings list."""
    return set(re.findall(r"\b(shoal_\w+)", f"{head_metrics.__doc__}{agent_metrics.__doc__}"))


def listening_ports(pid: int) -> set[int]:
    connections = psutil.Process(pid).net_connections(kind="inet")
    return {c.laddr.port for c in connections if c.status == psutil.CONN_LISTEN}


def test_the_counters_move_while_a_job_runs(tmp_path: Path) -> None:
    cluster = LocalCluster(tmp_path / "cluster", nodes=2, cores=2, head_args=METRICS, node_args=METRICS)
    with cluster:
        head = (cluster.state_dir / "head" / ADDRESS_FILE).read_text().strip()
        agents = [(cluster.state_dir / n / ADDRESS_FILE).read_text().strip() for n in cluster.node_names]
        eventually(lambda: all(value(scrape(a), "shoal_agent_connected") == 1 for a in agents),
                   what="both agents to report a connection")
        before = scrape(head)
        assert value(before, "shoal_nodes", state="Online") == 2
        assert value(before, "shoal_nodes_connected") == 2
        assert value(before, "shoal_cores_capacity") == 4
        assert value(before, "shoal_rpc_started_total", method="Connect", type="bidi_stream") >= 2
        assert value(before, "process_resident_memory_bytes") > 0

        def gated(gate: Path) -> jobs_pb2.JobSpec:
            """Four instances, one core each, that run until the gate opens: all four run at once."""
            return jobs_pb2.JobSpec(name="metrics", tasks=[task_spec(
                f"while [ ! -e {gate} ]; do sleep 0.05; done", cores=1, sweep=(1, 4, 1))])

        gate = tmp_path / "gate"
        with Client(cluster.address) as client:
            job_id = client.submit(gated(gate))
            with pytest.raises(RequestFailed):
                client.get_job(job_id + 1000)

            def running() -> Samples | None:
                s = scrape(head)
                if value(s, "shoal_task_instances", state="Running") == 4:
                    return s
                return None

            during = eventually(running, what="four instances Running in the head's metrics")
            assert value(during, "shoal_jobs", state="Running") == 1
            for counter in ("shoal_tasks_started_total", "shoal_queue_wait_seconds_count"):
                assert value(during, counter) - value(before, counter) == 4, counter
            assert value(during, "shoal_scheduling_pass_seconds_count") > 0
            assert value(during, "shoal_cores_used") == 4
            assert value(during, "shoal_rpc_started_total", method="SubmitJob", type="unary") >= 1
            assert value(during, "shoal_rpc_duration_seconds_count", service="shoal.v1.JobService",
                         method="SubmitJob") >= 1
            assert value(during, "shoal_rpc_handled_total", method="SubmitJob", code="OK") >= 1
            # Counted as the handler returns, which is just after the caller has its answer.
            eventually(lambda: value(scrape(head), "shoal_rpc_handled_total", method="GetJob", code="NOT_FOUND") == 1,
                       what="the refused GetJob to be counted")
            eventually(lambda: sum(value(scrape(a), "shoal_agent_tasks_running") for a in agents) == 4,
                       what="the agents to report four tasks running")
            assert sum(value(scrape(a), "shoal_agent_tasks_started_total") for a in agents) == 4

            gate.touch()
            assert client.wait_job(job_id).state == jobs_pb2.JOB_STATE_FINISHED

            def ended() -> Samples | None:
                s = scrape(head)
                done = value(s, "shoal_tasks_finished_total", state="Finished") - value(
                    before, "shoal_tasks_finished_total", state="Finished")
                return s if done == 4 else None

            after = eventually(ended, what="four runs Finished in the head's metrics")
            assert value(after, "shoal_jobs", state="Running") == 0
            jobs_finished = [value(s, "shoal_jobs", state="Finished") for s in (before, after)]
            assert jobs_finished[1] - jobs_finished[0] == 1
            assert value(after, "shoal_task_instances", state="Finished") == 4
            assert value(after, "shoal_tasks_finished_total", state="Failed") == 0
            eventually(lambda: sum(value(scrape(a), "shoal_agent_tasks_finished_total", outcome="succeeded")
                                   for a in agents) == 4, what="the agents to count four tasks succeeded")
            scraped = [scrape(a) for a in agents]
            exposed = {family(n) for s in (after, *scraped) for n, _ in s
                       if n.startswith("shoal_") and not n.endswith("_created")}
            assert exposed == documented()
            assert sum(value(s, "shoal_agent_tasks_running") for s in scraped) == 0
            assert all(value(s, "shoal_agent_cores_offered") == 2 for s in scraped)
            assert all(value(s, "process_cpu_seconds_total") > 0 for s in scraped)
            assert sorted(dict(ls)["node"] for s in scraped for n, ls in s if n == "shoal_agent_info") == \
                cluster.node_names

            # Cancelled while running: each run ends once, when its process is gone.
            job_id = client.submit(gated(tmp_path / "never"))
            eventually(running, what="four instances of the second job Running")
            eventually(lambda: sum(value(scrape(a), "shoal_agent_tasks_running") for a in agents) == 4,
                       what="the agents to run the second job's four tasks")
            client.cancel_job(job_id, "metrics test")

            def cancelled() -> Samples | None:
                s = scrape(head)
                return s if value(s, "shoal_tasks_finished_total", state="Cancelled") == 4 else None

            last = eventually(cancelled, what="four runs Cancelled in the head's metrics")
            assert value(last, "shoal_tasks_started_total") == value(last, "shoal_tasks_finished_total") == 8
            eventually(lambda: sum(value(scrape(a), "shoal_agent_tasks_finished_total", outcome="killed")
                                   for a in agents) == 4, what="the agents to count four tasks killed")
    for name in ("head", *cluster.node_names):
        assert not (cluster.state_dir / name / ADDRESS_FILE).exists(), f"{name} left {ADDRESS_FILE} behind"


def test_a_sweep_takes_no_pass_that_places_nothing(tmp_path: Path) -> None:
    """Each pass is asked for by an instance's end, which frees a core for the next: a pass
    whose only news was its own placements (it used to ask for one more) would find nothing."""
    n = 200
    with LocalCluster(tmp_path / "cluster", nodes=2, cores=2, head_args=METRICS) as cluster:
        head = (cluster.state_dir / "head" / ADDRESS_FILE).read_text().strip()
        with Client(cluster.address) as client:
            before = value(scrape(head), "shoal_scheduling_pass_seconds_count")
            job_id = client.submit(jobs_pb2.JobSpec(tasks=[task_spec("true", cores=1, sweep=(1, n, 1))]))
            assert client.wait_job(job_id).state == jobs_pb2.JOB_STATE_FINISHED
        passes = value(scrape(head), "shoal_scheduling_pass_seconds_count") - before
    assert 0 < passes <= n, f"{passes:g} scheduling passes for {n} instances"


def test_without_metrics_listen_there_is_no_metrics_file_or_port(tmp_path: Path) -> None:
    cluster = LocalCluster(tmp_path / "cluster", nodes=1, cores=1)
    with cluster:
        head_dir, node_dir = cluster.state_dir / "head", cluster.state_dir / "node1"
        assert not (head_dir / ADDRESS_FILE).exists() and not (node_dir / ADDRESS_FILE).exists()
        grpc_port = int(cluster.address.rpartition(":")[2])
        assert cluster.head is not None
        assert listening_ports(cluster.head.pid) == {grpc_port}
        assert listening_ports(cluster.agents["node1"].pid) == set()
        with Client(cluster.address) as client:
            job_id = client.submit(jobs_pb2.JobSpec(name="m", tasks=[task_spec("true")]))
            assert client.wait_job(job_id).state == jobs_pb2.JOB_STATE_FINISHED  # the hooks' no-op path


def test_a_bad_metrics_address_is_a_config_error(tmp_path: Path) -> None:
    for cls, table in ((HeadConfig, "head"), (NodeConfig, "node")):
        with pytest.raises(ConfigError, match="metrics_listen 'nine' is not HOST:PORT"):
            load(cls, table, None, {"metrics_listen": "nine", "plaintext": True})
        assert load(cls, table, None, {"plaintext": True}).metrics_listen == ""
    result = run_cli("head", "--plaintext", "--state-dir", str(tmp_path / "head"),
                     "--metrics-listen", "localhost")
    assert result.returncode == 2, result.stderr
    assert "metrics_listen 'localhost' is not HOST:PORT" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_a_busy_metrics_port_is_a_config_error(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(ConfigError, match=f"cannot serve metrics on 127.0.0.1:{port}"):
            MetricsServer(f"127.0.0.1:{port}", CollectorRegistry(), tmp_path)
    assert not (tmp_path / ADDRESS_FILE).exists()


def test_the_dashboard_charts_every_documented_metric() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["schemaVersion"] >= 36
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert (variables["datasource"]["type"], variables["datasource"]["query"]) == ("datasource", "prometheus")
    charts = [p for p in dashboard["panels"] if p["type"] != "row"]
    assert all(p["targets"] and p["datasource"]["uid"] == "${datasource}" for p in charts)
    assert len({p["id"] for p in dashboard["panels"]}) == len(dashboard["panels"])
    exprs = " ".join(t["expr"] for p in charts for t in p["targets"])
    assert {family(n) for n in re.findall(r"\b(shoal_\w+)", exprs)} == documented()
    # Counters are charted as rates, histograms as quantiles.
    assert not re.search(r"(?<!rate\()shoal_\w+_total\{", exprs)
    assert "histogram_quantile(0.95, sum by (le) (rate(shoal_queue_wait_seconds_bucket" in exprs
