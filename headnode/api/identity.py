"""Who is calling. The one place the API decides a caller's identity.

v0 trusts the `shoal-user` metadata the client sends (the CLI sends the OS user). The
security issue replaces this with client certificates and signed tokens; nothing else
changes, because every servicer asks here.
"""

from __future__ import annotations

import grpc

from common.errors import PermissionDenied

USER_METADATA = "shoal-user"
ANONYMOUS = "anonymous"


def caller(context: grpc.aio.ServicerContext) -> str:
    for key, value in context.invocation_metadata() or ():
        if key == USER_METADATA and isinstance(value, str) and value.strip():
            return value.strip()[:64]
    return ANONYMOUS


def require_admin(context: grpc.aio.ServicerContext, admins: tuple[str, ...]) -> str:
    """The caller, if it may manage the cluster (the one place this is decided)."""
    who = caller(context)
    if admins and who not in admins:
        raise PermissionDenied(f"{who} is not an admin of this cluster: managing nodes needs the Admin role "
                               f"(the head node's `admins` setting)")
    return who
