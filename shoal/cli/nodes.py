"""`shoal node list`."""

from __future__ import annotations

import argparse

from shoal.cli import render
from shoal.cli.base import EXIT_OK, now, talks_to_head
from shoal.client import Client


@talks_to_head
def list_nodes(args: argparse.Namespace, head: str) -> int:
    from shoal.v1 import admin_pb2

    with Client(head) as client:
        nodes = client.list_nodes()
    if args.json:
        print(render.to_json(admin_pb2.ListNodesResponse(nodes=nodes)))
    else:
        print(render.node_table(nodes, now()))
    return EXIT_OK
