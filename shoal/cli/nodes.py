"""`shoal node list|view|drain|online|offline|remove|group|label`."""

from __future__ import annotations

import argparse

from shoal.cli import hints, render
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
        render.show(render.node_rows(nodes, now()))
    return EXIT_OK


def _show(args: argparse.Namespace, node: object, hint: str = "") -> int:
    as_json = getattr(args, "json", False)
    render.show(render.to_json(node) if as_json else render.node_doc(node, now()))  # type: ignore[arg-type]
    hints.hint(args, hint)
    return EXIT_OK


@talks_to_head
def view_node(args: argparse.Namespace, head: str) -> int:
    with Client(head) as client:
        return _show(args, client.get_node(args.node))


@talks_to_head
def drain_node(args: argparse.Namespace, head: str) -> int:
    with Client(head) as client:
        return _show(args, client.drain_node(args.node, args.reason), hints.drained(args.node))


@talks_to_head
def online_node(args: argparse.Namespace, head: str) -> int:
    with Client(head) as client:
        return _show(args, client.set_node_online(args.node, args.reason))


@talks_to_head
def offline_node(args: argparse.Namespace, head: str) -> int:
    with Client(head) as client:
        node = client.set_node_offline(args.node, args.reason, args.force)
    return _show(args, node, hints.offline(args.node))


@talks_to_head
def remove_node(args: argparse.Namespace, head: str) -> int:
    with Client(head) as client:
        client.remove_node(args.node)
    print(f"node {args.node} removed")
    return EXIT_OK


@talks_to_head
def group_nodes(args: argparse.Namespace, head: str) -> int:
    with Client(head) as client:
        nodes = client.node_group(args.group, args.nodes, add=args.action == "add")
    if args.json:
        from shoal.v1 import admin_pb2

        print(render.to_json(admin_pb2.ListNodesResponse(nodes=nodes)))
    else:
        render.show(render.node_rows(nodes, now()))
    return EXIT_OK


@talks_to_head
def label_node(args: argparse.Namespace, head: str) -> int:
    with Client(head) as client:
        return _show(args, client.label_node(args.node, args.labels, args.remove))
