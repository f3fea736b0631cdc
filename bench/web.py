"""The dashboard on a big cluster: 100,000 jobs and a sweep of 100,000 instances.

On a local head node with the dashboard on (no agents: everything stays Queued, held),
after submitting N held jobs and one held sweep of N instances, over R runs:
  web_jobs_first_page     GET /api/jobs?page_size=50 (newest first, with the total), ms
  web_jobs_last_page      the oldest 50 (page token near the end), ms
  web_jobs_filtered       GET /api/jobs?state=Running (nothing matches: a scan of all), ms
  web_sweep_grid          GET /api/jobs/ID/grid of the sweep (one letter per instance), ms
  browser_job_list        headless Chromium: open #/jobs until the first rows show, ms
  browser_sweep_grid      headless Chromium: open #/jobs/ID until all N cells are drawn, ms
  head_rss                the head node's resident memory with all of it loaded, MiB
The browser figures need Debian's chromium and chromium-driver (`make browser`); without
them the benchmark says so and measures the rest.

    .venv/bin/python bench/web.py [--runs 5] [--jobs 100000] [--instances 100000]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import urllib.request
from pathlib import Path
from typing import Any

os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")
os.environ.setdefault("SE_OFFLINE", "true")

import psutil  # noqa: E402
from figures import figure, report, stat, timed  # noqa: E402

from common.clock import SystemClock, perf_counter  # noqa: E402
from shoal.client import Client, task_spec  # noqa: E402
from shoal.local import LocalCluster  # noqa: E402
from shoal.v1 import jobs_pb2  # noqa: E402


def get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=60) as r:
        return json.loads(r.read())


def browser() -> Any | None:
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not chromium or not driver:
        print("# no chromium/chromedriver here (make browser): the browser figures are left out", flush=True)
        return None
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--window-size=1400,1000"):
        options.add_argument(arg)
    return webdriver.Chrome(service=Service(executable_path=driver), options=options)


def until(driver: Any, script: str, timeout: float = 60.0) -> float:
    """Seconds until the page's `script` returns true (polled every 5 ms in the page)."""
    start = perf_counter()
    clock = SystemClock()
    deadline = clock.monotonic() + timeout
    while not driver.execute_script(script):
        if clock.monotonic() > deadline:
            raise SystemExit(f"the page never satisfied: {script}")
    return perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--jobs", type=int, default=100_000)
    parser.add_argument("--instances", type=int, default=100_000)
    args = parser.parse_args()
    samples: dict[str, list[float]] = {k: [] for k in ("web_jobs_first_page", "web_jobs_last_page", "web_jobs_filtered",
                                                       "web_sweep_grid", "browser_job_list", "browser_sweep_grid")}
    with tempfile.TemporaryDirectory(prefix="shoal-bench-") as tmp:
        cluster = LocalCluster(Path(tmp), nodes=0, web_listen="127.0.0.1:0")
        with cluster, Client(cluster.address, timeout=300) as client:
            spec = jobs_pb2.JobSpec(name="many", hold=True, tasks=[task_spec("true")])
            client.submit_many([spec] * args.jobs, batch=5000)
            sweep = client.submit(jobs_pb2.JobSpec(name="sweep", hold=True,
                                                   tasks=[task_spec("echo *", sweep=(1, args.instances, 1))]))
            url = cluster.web_url
            newest = get(url + "api/jobs?page_size=50&name=many")
            assert int(newest["total"]) == args.jobs, newest["total"]
            first_id = int(newest["jobs"][0]["id"]) - (args.jobs - 1)
            last_token = str(first_id + 50)  # newest first: the page of ids below it, the oldest 50
            driver = browser()
            try:
                for _ in range(args.runs):
                    samples["web_jobs_first_page"].append(timed(lambda: get(url + "api/jobs?page_size=50"))[0])
                    t, page = timed(lambda: get(url + f"api/jobs?page_size=50&page_token={last_token}"))
                    assert page["jobs"], "the last page is not empty"
                    samples["web_jobs_last_page"].append(t)
                    samples["web_jobs_filtered"].append(timed(lambda: get(url + "api/jobs?state=Running"))[0])
                    t, grid = timed(lambda: get(url + f"api/jobs/{sweep}/grid"))
                    assert grid["tasks"][0]["count"] == args.instances
                    samples["web_sweep_grid"].append(t)
                    if driver is not None:
                        driver.get("about:blank")
                        driver.get(url + "#/jobs")
                        samples["browser_job_list"].append(until(
                            driver, "return document.querySelectorAll('[data-testid=job-row]').length >= 50"))
                        driver.get("about:blank")
                        driver.get(url + f"#/jobs/{sweep}")
                        samples["browser_sweep_grid"].append(until(
                            driver, f"const g = document.querySelector('[data-testid=grid]');"
                                    f"return g !== null && g.dataset.drawn === '{args.instances}'"))
            finally:
                if driver is not None:
                    driver.quit()
            assert cluster.head is not None
            rss = psutil.Process(cluster.head.pid).memory_info().rss / (1 << 20)
    figures = [figure(name, values, jobs=args.jobs, instances=args.instances)
               for name, values in samples.items() if values]
    figures.append(stat("head_rss", [rss], "MiB", jobs=args.jobs, instances=args.instances))
    report(figures, f"{args.runs} runs, {args.jobs} held jobs and a held sweep of {args.instances} instances")


if __name__ == "__main__":
    main()
