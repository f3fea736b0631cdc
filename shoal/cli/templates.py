"""`shoal template ...`: named job and task templates."""

from __future__ import annotations

import argparse
from pathlib import Path

from shoal import jobfile
from shoal.cli import hints, render
from shoal.cli.base import EXIT_OK, talks_to_head
from shoal.cli.options import job_spec_from, task_spec_from
from shoal.client import Client
from shoal.v1 import jobs_pb2, templates_pb2


@talks_to_head
def create(args: argparse.Namespace, head: str) -> int:
    job = jobfile.load(Path(args.file)) if args.file else jobs_pb2.JobSpec()
    job_options, _ = job_spec_from(args)
    job.MergeFrom(job_options)
    task, _ = task_spec_from(args)
    template = templates_pb2.Template(name=args.name, description=args.description, job=job, task=task,
                                      users=args.users or [])
    with Client(head) as client:
        created = client.create_template(template, replace=args.replace)
    print(render.to_json(created) if args.json else f"template {created.name} saved")
    hints.hint(args, hints.template_saved(created.name))
    return EXIT_OK


@talks_to_head
def list_templates(args: argparse.Namespace, head: str) -> int:
    with Client(head) as client:
        templates = client.list_templates()
    if args.json:
        print(render.to_json(templates_pb2.ListTemplatesResponse(templates=templates)))
    else:
        render.show(render.template_rows(templates))
    return EXIT_OK


@talks_to_head
def view(args: argparse.Namespace, head: str) -> int:
    with Client(head) as client:
        template = client.get_template(args.name)
    render.show(render.to_json(template) if args.json else render.template_doc(template))
    return EXIT_OK


@talks_to_head
def delete(args: argparse.Namespace, head: str) -> int:
    with Client(head) as client:
        client.delete_template(args.name)
    print(f"template {args.name} deleted")
    return EXIT_OK
