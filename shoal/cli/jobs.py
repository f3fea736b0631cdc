"""`shoal job ...`: the HPC Pack job lifecycle from the command line.

The job-file parsers, the renderer, json and pathlib are imported where used: `shoal job
submit -- CMD` needs none of them, and start-up time is what its user waits for."""

from __future__ import annotations

import argparse
import os
import sys

from common.ids import parse_job_id
from shoal.cli import hints
from shoal.cli.base import EXIT_JOB_FAILED, EXIT_OK, now, talks_to_head, task_ids, usage
from shoal.cli.options import command_of, job_spec_from, task_spec_from
from shoal.client import Client
from shoal.v1 import jobs_pb2


@talks_to_head
def new(args: argparse.Namespace, head: str) -> int:
    spec, _ = job_spec_from(args)
    with Client(head) as client:
        job = client.create_job(spec)
    _print_job(args, job, str(job.id))
    hints.hint(args, hints.created(job.id))
    return EXIT_OK


@talks_to_head
def add(args: argparse.Namespace, head: str) -> int:
    job_id = parse_job_id(args.job)
    command = command_of(args)
    if command is None:
        return usage(f"give the command to run after --, for example: shoal job add {job_id} -- ./step.sh")
    task, _ = task_spec_from(args, command, default_workdir=True)
    with Client(head) as client, hints.explained(client, "add", job_id):
        numbers = client.add_tasks(job_id, task)
    for n in numbers:
        print(f"{job_id}.{n}")
    hints.hint(args, hints.added(job_id))
    return EXIT_OK


@talks_to_head
def submit(args: argparse.Namespace, head: str) -> int:
    job_spec, job_fields = job_spec_from(args)
    task, task_fields = task_spec_from(args)
    if args.job is not None:
        if job_fields or task_fields or args.file or args.command is not None:
            return usage(f"give either a job id, or options and -- CMD for a new job; change job {args.job} "
                         f"with `shoal job modify` or `shoal task modify`")
        existing = parse_job_id(args.job)
        with Client(head) as client:
            with hints.explained(client, "submit", existing):
                job_id = client.submit_existing(existing)
            print(job_id, flush=True)
            return _wait(args, client, job_id) if args.wait else EXIT_OK
    if args.file:
        if command_of(args) is not None or task_fields:
            return usage("--file brings its own tasks: give no command and no task options with it")
        from pathlib import Path

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
            spec.name = os.path.basename(first.rstrip("/"))  # as Path(first).name
        spec.tasks.append(task)
    with Client(head) as client:
        job_id = client.submit(spec)
        print(job_id, flush=True)
        if spec.hold and not args.wait:
            hints.hint(args, hints.held(job_id))
        return _wait(args, client, job_id) if args.wait else EXIT_OK


def _wait(args: argparse.Namespace, client: Client, job_id: int) -> int:
    """Follow the job to its end (progress on stderr: stdout is the job id, or --json's
    final job); exit 0 only if it Finished."""
    from shoal.cli import progress, render

    as_json = getattr(args, "json", False)
    job = progress.follow(client, job_id, None if as_json else sys.stderr)
    if as_json:
        print(render.to_json(job))
    else:
        print(f"job {job_id} {render.job_state(job.state)}" + (f": {job.reason}" if job.reason else ""),
              file=sys.stderr)
    if job.state == jobs_pb2.JOB_STATE_FINISHED:
        return EXIT_OK
    hints.hint(args, hints.ended_badly(job))
    return EXIT_JOB_FAILED


@talks_to_head
def wait(args: argparse.Namespace, head: str) -> int:
    with Client(head) as client:
        return _wait(args, client, parse_job_id(args.job))


@talks_to_head
def view(args: argparse.Namespace, head: str) -> int:
    from shoal.cli import render

    job_id = parse_job_id(args.job)
    with Client(head) as client:
        job = client.get_job(job_id)
    render.show(render.to_json(job) if args.json else render.job_doc(job, now()))
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
        render.show(render.job_rows(jobs, now()))
    return EXIT_OK


def _print_job(args: argparse.Namespace, job: jobs_pb2.Job, text: str) -> None:
    """`text` for people, or the whole job with --json."""
    from shoal.cli import render

    print(render.to_json(job) if getattr(args, "json", False) else text)


def _job_line(args: argparse.Namespace, job: jobs_pb2.Job) -> None:
    from shoal.cli import render

    line = f"job {job.id} {render.job_state(job.state)}"
    if job.held:
        line += " (held)"
    _print_job(args, job, line + (f": {job.pending_reason}" if job.pending_reason else ""))


@talks_to_head
def cancel(args: argparse.Namespace, head: str) -> int:
    with Client(head) as client:
        _job_line(args, client.cancel_job(parse_job_id(args.job), args.reason))
    return EXIT_OK


@talks_to_head
def requeue(args: argparse.Namespace, head: str) -> int:
    job_id = parse_job_id(args.job)
    with Client(head) as client, hints.explained(client, "requeue", job_id):
        _job_line(args, client.requeue_job(job_id, task_ids(args.task, job_id)))
    return EXIT_OK


@talks_to_head
def configure(args: argparse.Namespace, head: str) -> int:
    job_id = parse_job_id(args.job)
    with Client(head) as client, hints.explained(client, "configure", job_id):
        _job_line(args, client.configure_job(job_id))
    hints.hint(args, hints.configuring(job_id))
    return EXIT_OK


@talks_to_head
def clone(args: argparse.Namespace, head: str) -> int:
    job_id = parse_job_id(args.job)
    with Client(head) as client:
        job = client.clone_job(job_id)
    _print_job(args, job, str(job.id))
    hints.hint(args, hints.configuring(job.id, copy_of=job_id))
    return EXIT_OK


@talks_to_head
def hold(args: argparse.Namespace, head: str) -> int:
    job_id = parse_job_id(args.job)
    with Client(head) as client, hints.explained(client, "hold", job_id):
        _job_line(args, client.hold_job(job_id, args.reason))
    hints.hint(args, hints.held(job_id))
    return EXIT_OK


@talks_to_head
def release(args: argparse.Namespace, head: str) -> int:
    job_id = parse_job_id(args.job)
    with Client(head) as client, hints.explained(client, "release", job_id):
        _job_line(args, client.release_job(job_id))
    return EXIT_OK


@talks_to_head
def modify(args: argparse.Namespace, head: str) -> int:
    job_id = parse_job_id(args.job)
    spec, fields = job_spec_from(args)
    if spec.template or spec.hold:
        return usage("--template and --hold apply when a job is created; use `shoal job hold` to hold it")
    if not fields:
        return usage("nothing to change: give the options to modify, for example --priority Highest")
    with Client(head) as client, hints.explained(client, "modify", job_id):
        _job_line(args, client.modify_job(job_id, spec, fields))
    return EXIT_OK


@talks_to_head
def export(args: argparse.Namespace, head: str) -> int:
    with Client(head) as client:
        job = client.get_job(parse_job_id(args.job))
    from shoal import jobfile

    spec = jobfile.spec_of(job)
    text = jobfile.to_hpc_xml(spec) if args.format == "xml" else jobfile.to_json(spec)
    if args.output:
        with open(args.output, "w") as f:
            f.write(text)
    else:
        sys.stdout.write(text)
    return EXIT_OK


@talks_to_head
def watch(args: argparse.Namespace, head: str) -> int:
    import json

    from google.protobuf import json_format

    from shoal.cli import render

    if args.job and args.ends_only:
        return usage(f"--ends-only is for a watch of every job; for job {args.job}'s end, run "
                     f"`shoal job wait {args.job}`")
    with Client(head) as client:
        if args.job and not args.json and not args.jobs_only:
            # Each change as a line, with the job's progress after it (a live bar on a terminal).
            from shoal.cli import progress

            progress.follow(client, parse_job_id(args.job), sys.stdout, log=True)
            return EXIT_OK
        # An unknown job or no head node fails here, at once; once under way, the watch rides
        # out a head node's restart or a failover, each change shown once (shoal.resume).
        if args.job:
            job_id = parse_job_id(args.job)
            client.get_job(job_id, full=False)
            events = client.watch_job(job_id, args.jobs_only)
        else:
            events = client.watch_jobs(args.owner, args.jobs_only, args.ends_only)
        for event in events:
            if args.json:
                print(json.dumps(json_format.MessageToDict(event, preserving_proto_field_name=True)), flush=True)
            else:
                print(render.event_line(event), flush=True)
    return EXIT_OK
