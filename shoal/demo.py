"""`shoal demo` (and `make run`): a local cluster, one sample job, its output, its final view."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from common.clock import SystemClock
from common.ids import TaskId
from shoal.cli import render
from shoal.client import Client, RequestFailed, task_spec
from shoal.local import ClusterError, LocalCluster
from shoal.v1 import jobs_pb2

SAMPLE_TASKS = 4
SAMPLE_COMMAND = (
    'echo "task $SHOAL_TASK says hello from $SHOAL_NODE"; '
    'sleep 0.5; '
    'echo "task $SHOAL_TASK: $SHOAL_TASK_ID squared is $((SHOAL_TASK_ID * SHOAL_TASK_ID))"'
)


def run_demo(nodes: int = 2) -> int:
    with tempfile.TemporaryDirectory(prefix="shoal-demo-") as tmp:
        print(f"Starting a local cluster: a head node and {nodes} compute-node agents ...", flush=True)
        try:
            with LocalCluster(Path(tmp), nodes=nodes, web_listen="127.0.0.1:0") as cluster:
                print(f"Head node at {cluster.address}; nodes {', '.join(cluster.node_names)} are online.")
                print(f"Dashboard at {cluster.web_url} while the demo runs.\n", flush=True)
                with Client(cluster.address) as client:
                    return _run_sample(client)
        except (ClusterError, RequestFailed) as e:
            print(f"shoal demo: {e}", file=sys.stderr)
            return 1
        finally:
            print("\nLocal cluster stopped.")


def _run_sample(client: Client) -> int:
    spec = jobs_pb2.JobSpec(
        name="demo",
        tasks=[task_spec(SAMPLE_COMMAND, name=f"part-{i}") for i in range(1, SAMPLE_TASKS + 1)],
    )
    job_id = client.submit(spec)
    print(f"$ shoal job submit ...  -> job {job_id} with {SAMPLE_TASKS} tasks")
    for event in client.watch_job(job_id):
        if event.HasField("task"):
            who = f"task {event.task.job_id}.{event.task.task_id}"
            state = render.task_state(event.task_state)
        else:
            who = f"job {event.job_id}"
            state = render.job_state(event.job_state)
        print(f"  {who:<10} {state:<9} {event.reason}", flush=True)
    print()
    for number in range(1, SAMPLE_TASKS + 1):
        print(f"$ shoal task output {job_id}.{number}")
        for data in client.read_output(TaskId(job_id, number)):
            sys.stdout.write(data.decode(errors="replace"))
    print(f"\n$ shoal job view {job_id}")
    job = client.get_job(job_id)
    print(render.job_view(job, SystemClock().now()))
    return 0 if job.state == jobs_pb2.JOB_STATE_FINISHED else 1
