"""`shoal task ...`: output, listing, viewing, cancelling and modifying tasks."""

from __future__ import annotations

import argparse
import sys

from common import heap
from common.ids import TaskId, parse_job_id
from shoal.cli import hints, render
from shoal.cli.base import EXIT_OK, now, talks_to_head, usage
from shoal.cli.options import command_of, task_spec_from
from shoal.client import Client
from shoal.v1 import jobs_pb2


@talks_to_head
def output(args: argparse.Namespace, head: str) -> int:
    task = TaskId.parse(args.task)
    out = sys.stdout.buffer
    heap.tune()  # output arrives in 256 KiB messages, as on the head node (common/heap.py)
    with Client(head) as client:
        if args.follow:
            # An unknown task or no head node fails here, at once; once under way, the follow
            # rides out a head node's restart or a failover and reads on from the byte it got to.
            client.get_task(task)
        for data in client.read_output(task, stderr=args.stderr, follow=args.follow):
            out.write(data)
            out.flush()
    return EXIT_OK


@talks_to_head
def list_tasks(args: argparse.Namespace, head: str) -> int:
    job_id = parse_job_id(args.job)
    states = tuple(render.parse_states(args.state, jobs_pb2.TaskState, "TASK_STATE_"))
    with Client(head) as client:
        if args.instances:
            units = list(client.list_instances(job_id, args.task, states))
            render.show(render.to_json(jobs_pb2.ListTasksResponse(instances=units)) if args.json
                        else render.instance_rows(units, now()))
        else:
            tasks = list(client.list_tasks(job_id, args.task, states))
            render.show(render.to_json(jobs_pb2.ListTasksResponse(tasks=tasks)) if args.json
                        else render.task_rows(tasks, now()))
    return EXIT_OK


@talks_to_head
def view(args: argparse.Namespace, head: str) -> int:
    with Client(head) as client:
        task = client.get_task(TaskId.parse(args.task))
    render.show(render.to_json(task) if args.json else render.task_doc(task, now()))
    return EXIT_OK


@talks_to_head
def cancel(args: argparse.Namespace, head: str) -> int:
    task_id = TaskId.parse(args.task)
    with Client(head) as client:
        task = client.cancel_task(task_id, args.reason)
    if args.json:
        print(render.to_json(task))
    else:
        print(f"task {task_id} {render.task_state(task.state)}" if not task_id.instance
              else f"task {task_id} Cancelled")
    return EXIT_OK


@talks_to_head
def modify(args: argparse.Namespace, head: str) -> int:
    task_id = TaskId.parse(args.task)
    spec, fields = task_spec_from(args, command_of(args))
    if not fields:
        return usage("nothing to change: give the options to modify, or a new command after --")
    with Client(head) as client, hints.explained(client, "task modify", task_id.job):
        task = client.modify_task(task_id, spec, fields)
    print(render.to_json(task) if args.json else f"task {task_id} {render.task_state(task.state)}: "
          f"{task.spec.command_line}")
    return EXIT_OK
