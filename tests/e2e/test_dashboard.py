"""The dashboard in a real browser (headless Chromium) against a real local cluster.

Each test opens a page the way a user would, changes the cluster through the CLI or the SDK,
and waits (with a deadline) for the page to show it by itself: a marker set on `window`
proves no reload happened. Each page is photographed (docs/screenshots via `make screenshots`).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from shoal.client import Client, task_spec
from shoal.local import LocalCluster
from shoal.v1 import admin_pb2, jobs_pb2
from tests.conftest import eventually, run_cli
from tests.e2e.conftest import wait

pytestmark = pytest.mark.cluster


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    c = LocalCluster(tmp_path_factory.mktemp("e2e"), nodes=2, cores=2, web_listen="127.0.0.1:0",
                     head_args=["--heartbeat-interval", "1", "--web-sample-interval", "1"])
    with c:
        yield c


def css(driver: Any, selector: str) -> list[Any]:
    from selenium.webdriver.common.by import By

    return driver.find_elements(By.CSS_SELECTOR, selector)


def attr(driver: Any, selector: str, name: str) -> str | None:
    found = css(driver, selector)
    return found[0].get_attribute(name) if found else None


def open_page(driver: Any, cluster: LocalCluster, route: str) -> None:
    driver.get(cluster.web_url + "#" + route)
    driver.execute_script("window.__noReload = true")
    wait(driver, lambda d: attr(d, "[data-testid=live]", "data-live") == "1", what="the push stream to connect")


def text(driver: Any, selector: str) -> str:
    found = css(driver, selector)
    return found[0].text if found else ""


def not_reloaded(driver: Any) -> bool:
    return driver.execute_script("return window.__noReload === true") is True


def shot(driver: Any, screenshots: Path, name: str) -> None:
    driver.save_screenshot(str(screenshots / f"{name}.png"))


def test_the_overview_shows_the_cluster_and_moves_by_itself(browser: Any, cluster: LocalCluster,
                                                           screenshots: Path) -> None:
    with Client(cluster.address) as client:
        jobs = [client.submit(jobs_pb2.JobSpec(name=f"warm-up-{i}", tasks=[task_spec("true", sweep=(1, 30, 1))]))
                for i in range(3)]
        eventually(lambda: all(client.get_job(j).state == jobs_pb2.JOB_STATE_FINISHED for j in jobs), 60,
                   "the warm-up sweeps to finish")
    open_page(browser, cluster, "/")
    wait(browser, lambda d: css(d, "[data-testid=overview] [data-testid=card-nodes]"), what="the overview")
    wait(browser, lambda d: "2" in text(d, "[data-testid=card-nodes]"), what="2 nodes on the nodes card")
    assert css(browser, "[data-testid=chart-usage] canvas"), "the usage chart is drawn"
    assert css(browser, "[data-testid=chart-throughput]")
    # The cluster changes; the overview follows from the push stream.
    gate = cluster.state_dir / "overview-gate"
    with Client(cluster.address) as client:
        job = client.submit(jobs_pb2.JobSpec(name="busy", tasks=[task_spec(
            f"while [ ! -e {gate} ]; do sleep 0.05; done", sweep=(1, 4, 1))]))
        try:
            wait(browser, lambda d: attr(d, "[data-testid=card-cores]", "data-used") == "4", what="4 cores in use")
            assert "4 / 4" in text(browser, "[data-testid=card-cores]"), "the card says so too"
            shot(browser, screenshots, "overview")
        finally:
            gate.touch()  # the next tests need the cores
        eventually(lambda: client.get_job(job).state == jobs_pb2.JOB_STATE_FINISHED, 30, "the busy job to end")
    assert not_reloaded(browser)


def test_a_job_submitted_with_the_cli_appears_and_finishes_without_a_reload(
        browser: Any, cluster: LocalCluster, screenshots: Path) -> None:
    open_page(browser, cluster, "/jobs")
    wait(browser, lambda d: css(d, "[data-testid=jobs-table]"), what="the job list")
    gate = cluster.state_dir / "cli-gate"
    done = run_cli("job", "submit", "--name", "from-the-cli", "--", "sh", "-c",
                   f"while [ ! -e {gate} ]; do sleep 0.05; done", head=cluster.address)
    assert done.returncode == 0, done.stderr
    job = done.stdout.strip()
    row = f"[data-testid=job-row][data-job-id='{job}']"
    try:
        wait(browser, lambda d: attr(d, row, "data-state") == "Running", what=f"job {job} Running in the list")
        shot(browser, screenshots, "jobs")
    finally:
        gate.touch()
    wait(browser, lambda d: attr(d, row, "data-state") == "Finished", what=f"job {job} Finished in the list")
    assert not_reloaded(browser), "the list changed by itself, without a reload"


def test_a_tasks_output_arrives_line_by_line(browser: Any, cluster: LocalCluster, screenshots: Path) -> None:
    gate = cluster.state_dir / "output-gate"
    command = (f"for i in 1 2 3; do echo \"line $i of the first part\"; done; "
               f"while [ ! -e {gate} ]; do sleep 0.05; done; echo 'the last line'")
    with Client(cluster.address) as client:
        job = client.submit(jobs_pb2.JobSpec(name="talker", tasks=[task_spec(command, name="talk")]))
    try:
        _follow_the_output(browser, cluster, screenshots, job, gate)
    finally:
        gate.touch()


def _follow_the_output(browser: Any, cluster: LocalCluster, screenshots: Path, job: int, gate: Path) -> None:
    open_page(browser, cluster, f"/jobs/{job}")
    wait(browser, lambda d: css(d, "[data-testid=task-row] [data-testid=output-link]"), what="the task's output link")
    css(browser, "[data-testid=output-link]")[0].click()
    output = "[data-testid=output]"
    wait(browser, lambda d: "line 3 of the first part" in text(d, output), what="the first lines")
    assert "the last line" not in text(browser, output)
    assert "following" in text(browser, "[data-testid=output-status]")
    gate.touch()
    wait(browser, lambda d: "the last line" in text(d, output), what="the last line to arrive")
    wait(browser, lambda d: "ended" in text(d, "[data-testid=output-status]"), what="the end of the output")
    wait(browser, lambda d: attr(d, "[data-testid=task-state]", "data-state") == "Finished",
         what="the task Finished on its output page, pushed")
    shot(browser, screenshots, "output")
    assert not_reloaded(browser)


def test_a_sweeps_grid_and_its_dag(browser: Any, cluster: LocalCluster, screenshots: Path) -> None:
    gate = cluster.state_dir / "grid-gate"
    with Client(cluster.address) as client:
        job = client.submit(jobs_pb2.JobSpec(name="pipeline", tasks=[
            task_spec("true", name="prepare"),
            task_spec(f"[ * -le 150 ] || while [ ! -e {gate} ]; do sleep 0.05; done",
                      name="sweep", sweep=(1, 400, 1), depends_on=["prepare"]),
            task_spec("true", name="check", depends_on=["prepare"]),
            task_spec("true", name="collect", depends_on=["sweep", "check"]),
        ]))
        try:
            # prepare and the 150 instances that do not wait for the gate: the legend below counts them all
            eventually(lambda: client.get_job(job).task_counts.finished >= 151, 60,
                       "prepare and 150 instances to finish")
            _grid_and_dag(browser, cluster, screenshots, job)
        finally:
            gate.touch()
    wait(browser, lambda d: attr(d, "[data-testid=job-page]", "data-state") == "Finished", 60,
         "the job page to show the job Finished by itself")
    wait(browser, lambda d: {e.get_attribute("data-state") for e in css(d, "[data-testid=dag-node]")} == {"Finished"},
         what="every DAG node Finished")
    assert not_reloaded(browser)


def _grid_and_dag(browser: Any, cluster: LocalCluster, screenshots: Path, job: int) -> None:
    open_page(browser, cluster, f"/jobs/{job}")
    grid = "[data-testid=grid][data-task-id='2']"
    wait(browser, lambda d: attr(d, grid, "data-drawn") == "400", what="the sweep's 400 cells drawn")
    legend = {e.get_attribute("data-state"): int(e.get_attribute("data-count") or 0)
              for e in css(browser, "[data-testid=grid-legend] [data-state]")}  # the job's run units
    assert legend.get("Finished", 0) >= 151 and sum(legend.values()) == 403, legend
    nodes = {e.get_attribute("data-task"): e.get_attribute("data-state")
             for e in css(browser, "[data-testid=dag] [data-testid=dag-node]")}
    assert set(nodes) == {"prepare", "sweep", "check", "collect"} and nodes["prepare"] == "Finished", nodes
    assert css(browser, "[data-testid=history] tr")
    shot(browser, screenshots, "job")


def test_a_sweep_of_100000_instances_draws_without_freezing(browser: Any, cluster: LocalCluster) -> None:
    with Client(cluster.address) as client:
        job = client.submit(jobs_pb2.JobSpec(name="huge", hold=True, tasks=[task_spec("true", sweep=(1, 100_000, 1))]))
    open_page(browser, cluster, f"/jobs/{job}")
    wait(browser, lambda d: attr(d, "[data-testid=grid]", "data-drawn") == "100000", 30, "100,000 cells drawn")
    # The page answers at once afterwards: the main thread is not stuck drawing.
    assert browser.execute_script("return 6 * 7") == 42
    legend = {e.get_attribute("data-state"): e.get_attribute("data-count")
              for e in css(browser, "[data-testid=grid-legend] [data-state]")}
    assert legend.get("Queued") == "100000", legend
    with Client(cluster.address) as client:
        client.cancel_job(job, "e2e done")


def test_the_node_pages_show_heartbeats_and_a_drain_reason(browser: Any, cluster: LocalCluster,
                                                          screenshots: Path) -> None:
    open_page(browser, cluster, "/nodes")
    wait(browser, lambda d: len(css(d, "[data-testid=node-row]")) == 2, what="two node rows")
    with Client(cluster.address) as admin:
        admin.call_admin("DrainNode", admin_pb2.DrainNodeRequest(name="node2", reason="replacing a disk"))
        try:
            # With nothing running it drains at once: Offline, the drain's reason kept.
            wait(browser, lambda d: attr(d, "[data-testid=node-row][data-name=node2]", "data-state") == "Offline",
                 what="node2 drained (Offline) in the list, pushed")
            shot(browser, screenshots, "nodes")
            open_page(browser, cluster, "/nodes/node2")
            wait(browser, lambda d: "replacing a disk" in text(d, "[data-testid=node-reason]"),
                 what="the drain reason")
            wait(browser, lambda d: css(d, "[data-testid=node-heartbeats] *"), what="the heartbeat history")
            shot(browser, screenshots, "node")
        finally:
            admin.call_admin("SetNodeOnline", admin_pb2.SetNodeOnlineRequest(name="node2"))


def test_the_usage_page_charts_a_users_usage(browser: Any, cluster: LocalCluster, screenshots: Path) -> None:
    open_page(browser, cluster, "/usage")
    wait(browser, lambda d: css(d, "[data-testid=usage-page] [data-testid=chart-user-usage]"), what="the usage chart")
    wait(browser, lambda d: len(css(d, "[data-testid=usage-table] tbody tr")) >= 1, what="a usage row")
    shot(browser, screenshots, "usage")
