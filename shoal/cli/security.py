"""`shoal certs init|issue|revoke`, `shoal node token create|list|revoke`, `shoal user token|revoke`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from common.formats import parse_duration
from shoal.cli import render
from shoal.cli.base import EXIT_OK, now, talks_to_head, usage
from shoal.client import Client


def certs_init(args: argparse.Namespace, head: str) -> int:
    from common import tls

    del head
    try:
        paths = tls.init(Path(args.dir), now(), list(args.name or ()), days=args.days)
    except ValueError as e:
        return usage(str(e))
    print(f"cluster CA and head node certificate in {args.dir}:")
    for path in paths:
        print(f"  {path}")
    print(f"keep {Path(args.dir) / tls.CA_KEY} on the head node only; give agents and users {tls.CA_CERT}")
    return EXIT_OK


def certs_issue(args: argparse.Namespace, head: str) -> int:
    from common import tls

    del head
    kind, name = ("node", args.node) if args.node else ("user", args.user)
    try:
        key, cert = tls.issue(Path(args.dir), kind, name, now(), args.role or "", days=args.days)
    except ValueError as e:
        return usage(str(e))
    print(f"{kind} {name}: certificate {cert}, key {key}")
    return EXIT_OK


def _ttl(text: str | None) -> object:
    from google.protobuf.duration_pb2 import Duration

    if not text:
        return None
    d = Duration()
    d.FromNanoseconds(int(parse_duration(text) * 1e9))
    return d


@talks_to_head
def node_token(args: argparse.Namespace, head: str) -> int:
    from shoal.v1 import admin_pb2

    if not 1 <= args.uses <= 10_000:
        return usage(f"--uses must be between 1 and 10000, got {args.uses}")
    with Client(head) as client:
        response = client.call_admin("CreateJoinToken", admin_pb2.CreateJoinTokenRequest(
            ttl=_ttl(args.ttl), groups=args.group or [], uses=args.uses, names=args.name or []))
    print(response.token)
    # The token alone goes to stdout (`> join.token`); what it is, to stderr.
    plural = "s" if args.uses != 1 else ""
    print(f"join token {response.id}: admits {args.uses} node{plural} until {render.when(response.expire_time)} "
          f"(`shoal node token list`)", file=sys.stderr)
    return EXIT_OK


@talks_to_head
def list_join_tokens(args: argparse.Namespace, head: str) -> int:
    from shoal.v1 import admin_pb2

    with Client(head) as client:
        response = client.call_admin("ListJoinTokens", admin_pb2.ListJoinTokensRequest())
    if args.json:
        print(render.to_json(response))
        return EXIT_OK
    rows = [[t.id, str(t.uses_left), str(t.uses), ",".join(t.admitted) or "-", ",".join(t.names) or "any",
             ",".join(t.groups) or "-", render.when(t.expire_time), t.created_by,
             "revoked" if t.revoked else "expired" if render.expired(t.expire_time, now()) else ""]
            for t in response.tokens]
    render.show(render.Table(["ID", "LEFT", "USES", "ADMITTED", "NAMES", "GROUPS", "EXPIRES", "BY", ""], rows,
                             right=(1, 2), empty="no join tokens"))
    return EXIT_OK


@talks_to_head
def user_token(args: argparse.Namespace, head: str) -> int:
    from shoal.v1 import admin_pb2

    with Client(head) as client:
        response = client.call_admin("CreateUserToken", admin_pb2.CreateUserTokenRequest(
            user=args.user or "", role=args.role or "", ttl=_ttl(args.ttl)))
    print(response.token)
    return EXIT_OK


def _revoke(head: str, **fields: object) -> int:
    from shoal.v1 import admin_pb2

    with Client(head) as client:
        response = client.call_admin("Revoke", admin_pb2.RevokeRequest(**fields))
    print(f"revoked {response.revoked}")
    return EXIT_OK


@talks_to_head
def revoke_user(args: argparse.Namespace, head: str) -> int:
    return _revoke(head, user=args.user)


@talks_to_head
def revoke_join_tokens(args: argparse.Namespace, head: str) -> int:
    if bool(args.id) == bool(args.all):
        return usage("give a join token's id (`shoal node token list`) or --all")
    return _revoke(head, join_token_id=args.id) if args.id else _revoke(head, join_tokens=True)


@talks_to_head
def certs_revoke(args: argparse.Namespace, head: str) -> int:
    path = Path(args.certificate)
    if path.is_file():
        from common import tls

        try:
            serial = tls.identify(path.read_bytes())[2]
        except ValueError as e:
            return usage(f"{path} is not a PEM certificate: {e}")
    elif all(c in "0123456789abcdefABCDEF:" for c in args.certificate):
        serial = args.certificate.replace(":", "")
    else:
        return usage(f"{args.certificate} is neither a certificate file nor a hexadecimal serial number")
    return _revoke(head, certificate_serial=serial)
