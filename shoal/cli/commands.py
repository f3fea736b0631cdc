"""What each `shoal` command does. Each takes the parsed args and the head address and
returns the exit code; errors from the head become one line on stderr."""

from __future__ import annotations

import argparse
import functools
import os
import shlex
import signal
import sys
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path

from common.clock import SystemClock
from common.ids import TaskId, parse_job_id
from shoal.cli.main import EXIT_JOB_FAILED, EXIT_OK, EXIT_REFUSED, EXIT_UNREACHABLE, EXIT_USAGE
from shoal.client import Client, HeadUnreachable, RequestFailed, task_spec
from shoal.v1 import jobs_pb2

Command = Callable[[argparse.Namespace, str], int]


def _talks_to_head(fn: Command) -> Command:
    @functools.wraps(fn)
    def wrapper(args: argparse.Namespace, head: str) -> int:
        try:
            return fn(args, head)
        except HeadUnreachable as e:
            print(f"shoal: {e.message}", file=sys.stderr)
            return EXIT_UNREACHABLE
        except RequestFailed as e:
            print(f"shoal: {e.message}", file=sys.stderr)
            return EXIT_REFUSED

    return wrapper


def _usage(message: str) -> int:
    print(f"shoal: {message}", file=sys.stderr)
    return EXIT_USAGE


def _now() -> float:
    return SystemClock().now()


# -- jobs ------------------------------------------------------------------------------------


@_talks_to_head
def job_submit(args: argparse.Namespace, head: str) -> int:
    command = list(args.command)
    if command and command[0] == "--":
        command = command[1:]
    if not command:
        return _usage("give the command to run after --, for example: shoal job submit -- echo hello")
    environment = {}
    for item in args.env:
        name, sep, value = item.partition("=")
        if not sep or not name:
            return _usage(f"--env {item!r} is not VAR=VALUE")
        environment[name] = value
    # One argument is taken as a shell command line as is; several are quoted so that each
    # reaches the program as one argument.
    command_line = command[0] if len(command) == 1 else shlex.join(command)
    words = command[0].split()
    spec = jobs_pb2.JobSpec(
        name=args.name or (os.path.basename(words[0]) if words else ""),
        tasks=[task_spec(
            command_line,
            cores=args.cores,
            memory_mb=args.memory_mb,
            environment=environment,
            working_directory=os.path.abspath(args.workdir) if args.workdir else os.getcwd(),
        )],
    )
    with Client(head) as client:
        job_id = client.submit(spec)
        print(job_id, flush=True)
        if not args.wait:
            return EXIT_OK
        job = client.wait_job(job_id)
    state = jobs_pb2.JobState.Name(job.state).removeprefix("JOB_STATE_").capitalize()
    print(f"job {job_id} {state}" + (f": {job.reason}" if job.reason else ""), file=sys.stderr)
    return EXIT_OK if job.state == jobs_pb2.JOB_STATE_FINISHED else EXIT_JOB_FAILED


@_talks_to_head
def job_view(args: argparse.Namespace, head: str) -> int:
    from shoal.cli import render

    job_id = parse_job_id(args.job)
    with Client(head) as client:
        job = client.get_job(job_id)
    print(render.to_json(job) if args.json else render.job_view(job, _now()))
    return EXIT_OK


@_talks_to_head
def job_list(args: argparse.Namespace, head: str) -> int:
    from shoal.cli import render

    states = []
    for name in args.state:
        key = f"JOB_STATE_{name.upper()}"
        if key not in jobs_pb2.JobState.keys() or key == "JOB_STATE_UNSPECIFIED":
            valid = ", ".join(render.job_state(v) for v in jobs_pb2.JobState.values() if v)
            return _usage(f"--state {name!r} is not a job state ({valid})")
        states.append(jobs_pb2.JobState.Value(key))
    with Client(head) as client:
        jobs = list(client.list_jobs(tuple(states), args.owner))
    if args.json:
        print(render.to_json(jobs_pb2.ListJobsResponse(jobs=jobs)))
    else:
        print(render.job_table(jobs, _now()))
    return EXIT_OK


@_talks_to_head
def job_cancel(args: argparse.Namespace, head: str) -> int:
    from shoal.cli import render

    job_id = parse_job_id(args.job)
    with Client(head) as client:
        job = client.cancel_job(job_id, args.reason)
    print(f"job {job.id} {render.job_state(job.state)}")
    return EXIT_OK


@_talks_to_head
def task_output(args: argparse.Namespace, head: str) -> int:
    task = TaskId.parse(args.task)
    out = sys.stdout.buffer
    with Client(head) as client:
        for data in client.read_output(task, stderr=args.stderr, follow=args.follow):
            out.write(data)
            out.flush()
    return EXIT_OK


# -- nodes -----------------------------------------------------------------------------------


@_talks_to_head
def node_list(args: argparse.Namespace, head: str) -> int:
    from shoal.cli import render
    from shoal.v1 import admin_pb2

    with Client(head) as client:
        nodes = client.list_nodes()
    if args.json:
        print(render.to_json(admin_pb2.ListNodesResponse(nodes=nodes)))
    else:
        print(render.node_table(nodes, _now()))
    return EXIT_OK


# -- local clusters --------------------------------------------------------------------------


def up(args: argparse.Namespace, head: str) -> int:
    from shoal.local import ClusterError, LocalCluster

    temporary = args.state_dir is None
    state_dir = Path(args.state_dir or tempfile.mkdtemp(prefix="shoal-up-"))
    cluster = LocalCluster(state_dir, nodes=args.nodes, listen=args.listen, cores=args.cores,
                           memory_mb=args.memory_mb)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        cluster.start()
    except ClusterError as e:
        cluster.stop()
        return _usage(str(e))
    print(f"Shoal local cluster: head node at {cluster.address} with {args.nodes} nodes "
          f"({', '.join(cluster.node_names)})")
    print(f"  state and logs: {state_dir}" + (" (removed at exit)" if temporary else ""))
    print(f"  use it:         export SHOAL_HEAD={cluster.address}")
    print("Press Ctrl-C to stop.", flush=True)
    code = EXIT_OK
    try:
        while not stop.wait(0.5):
            if cluster.head is not None and cluster.head.poll() is not None:
                print(f"shoal: the head node exited:\n{cluster.log_tail('head')}", file=sys.stderr)
                code = EXIT_REFUSED
                break
    finally:
        print("Stopping...", flush=True)
        cluster.stop()
        if temporary:
            import shutil

            shutil.rmtree(state_dir, ignore_errors=True)
    return code


def demo(args: argparse.Namespace, head: str) -> int:
    from shoal.demo import run_demo

    return run_demo()
