"""`shoal job ...`: the HPC Pack job lifecycle from the command line.

The job-file parsers and the renderer are imported where used: `shoal job submit -- CMD`
needs neither, and start-up time is what its user waits for."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from common.ids import parse_job_id
from shoal.cli.base import EXIT_JOB_FAILED, EXIT_OK, now, talks_to_head, task_ids, usage
from shoal.cli.options import command_of, job_spec_from, task_spec_from
from shoal.client import Client
from shoal.v1 import jobs_pb2


@talks_to_head
def new(args: argparse.Namespace, head: str) -> int:
    spec, _ = job_spec_from(args)
    with Client(head) as client:
        job = client.create_job(spec)
    print(job.id)
    return EXIT_OK


@talks_to_head
def add(args: argparse.Namespace, head: str) -> int:
    job_id = parse_job_id(args.job)
    command = command_of(args)
    if command is None:
        return usage(f"give the command to run after --, for example: shoal job add {job_id} -- ./step.sh")
    task, _ = task_spec_from(args, command, default_workdir=True)
    with Client(head) as client:
        numbers = client.add_tasks(job_id, task)
    for n in numbers:
        print(f"{job_id}.{n}")
    return EXIT_OK


@talks_to_head
def submit(args: argparse.Namespace, head: str) -> int:
    job_spec, job_fields = job_spec_from(args)
    task, task_fields = task_spec_from(args)
    if args.job is not None:
        if job_fields or task_fields or args.file or args.command is not None:
            return usage(f"give either a job id, or options and -- CMD for a new job; change job {args.job} "
                         f"with `shoal job modify` or `shoal task modify`")
        with Client(head) as client:
            job_id = client.submit_existing(parse_job_id(args.job))
            print(job_id, flush=True)
            return _wait(client, job_id) if args.wait else EXIT_OK
    if args.file:
        if command_of(args) is not None or task_fields:
            return usage("--file brings its own tasks: give no command and no task options with it")
        from shoal import jobfile

        spec = jobfile.load(Path(args.file))
        overrides = jobs_pb2.JobSpec()
        overrides.CopyFrom(job_spec)
        spec.MergeFrom(overrides)
    else:
        command = command_of(args)
        if command is None:
            return usage("give the command to run after --, for example: shoal job submit -- echo hello, "
                         "or a job file with --file")
        task, _ = task_spec_from(args, command, default_workdir=True)
        spec = job_spec
        if not spec.name:
            first = command.split()[0] if command.split() else ""
            spec.name = Path(first).name
        spec.tasks.append(task)
    with Client(head) as client:
        job_id = client.submit(spec)
        print(job_id, flush=True)
        return _wait(client, job_id) if args.wait else EXIT_OK


def _wait(client: Client, job_id: int) -> int:
    from shoal.cli import render

    job = client.wait_job(job_id)
    print(f"job {job_id} {render.job_state(job.state)}" + (f": {job.reason}" if job.reason else ""), file=sys.stderr)
    return EXIT_OK if job.state == jobs_pb2.JOB_STATE_FINISHED else EXIT_JOB_FAILED


@talks_to_head
def view(args: argparse.Namespace, head: str) -> int:
    from shoal.cli import render

    job_id = parse_job_id(args.job)
    with Client(head) as client:
        job = client.get_job(job_id)
    print(render.to_json(job) if args.json else render.job_view(job, now()))
    return EXIT_OK


@talks_to_head
def list_jobs(args: argparse.Namespace, head: str) -> int:
    from shoal.cli import render

    states = render.parse_states(args.state, jobs_pb2.JobState, "JOB_STATE_")
    with Client(head) as client:
        jobs = list(client.list_jobs(tuple(states), args.owner, name=args.name))
    if args.json:
        print(render.to_json(jobs_pb2.ListJobsResponse(jobs=jobs)))
    else:
        print(render.job_table(jobs, now()))
    return EXIT_OK


def _job_line(job: jobs_pb2.Job) -> None:
    from shoal.cli import render

    line = f"job {job.id} {render.job_state(job.state)}"
    if job.held:
        line += " (held)"
    print(line + (f": {job.pending_reason}" if job.pending_reason else ""))


@talks_to_head
def cancel(args: argparse.Namespace, head: str) -> int:
    with Client(head) as client:
        _job_line(client.cancel_job(parse_job_id(args.job), args.reason))
    return EXIT_OK


@talks_to_head
def requeue(args: argparse.Namespace, head: str) -> int:
    job_id = parse_job_id(args.job)
    with Client(head) as client:
        _job_line(client.requeue_job(job_id, task_ids(args.task, job_id)))
    return EXIT_OK


@talks_to_head
def configure(args: argparse.Namespace, head: str) -> int:
    with Client(head) as client:
        _job_line(client.configure_job(parse_job_id(args.job)))
    return EXIT_OK


@talks_to_head
def clone(args: argparse.Namespace, head: str) -> int:
    with Client(head) as client:
        job = client.clone_job(parse_job_id(args.job))
    print(job.id)
    return EXIT_OK


@talks_to_head
def hold(args: argparse.Namespace, head: str) -> int:
    with Client(head) as client:
        _job_line(client.hold_job(parse_job_id(args.job), args.reason))
    return EXIT_OK


@talks_to_head
def release(args: argparse.Namespace, head: str) -> int:
    with Client(head) as client:
        _job_line(client.release_job(parse_job_id(args.job)))
    return EXIT_OK


@talks_to_head
def modify(args: argparse.Namespace, head: str) -> int:
    job_id = parse_job_id(args.job)
    spec, fields = job_spec_from(args)
    if spec.template or spec.hold:
        return usage("--template and --hold apply when a job is created; use `shoal job hold` to hold it")
    if not fields:
        return usage("nothing to change: give the options to modify, for example --priority Highest")
    with Client(head) as client:
        _job_line(client.modify_job(job_id, spec, fields))
    return EXIT_OK


@talks_to_head
def export(args: argparse.Namespace, head: str) -> int:
    with Client(head) as client:
        job = client.get_job(parse_job_id(args.job))
    from shoal import jobfile

    spec = jobfile.spec_of(job)
    text = jobfile.to_hpc_xml(spec) if args.format == "xml" else jobfile.to_json(spec)
    if args.output:
        Path(args.output).write_text(text)
    else:
        sys.stdout.write(text)
    return EXIT_OK


@talks_to_head
def watch(args: argparse.Namespace, head: str) -> int:
    from google.protobuf import json_format

    from shoal.cli import render

    with Client(head) as client:
        events = client.watch_job(parse_job_id(args.job)) if args.job else client.watch_jobs(args.owner)
        for event in events:
            if args.json:
                print(json.dumps(json_format.MessageToDict(event, preserving_proto_field_name=True)), flush=True)
            else:
                print(render.event_line(event), flush=True)
    return EXIT_OK
