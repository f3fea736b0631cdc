"""The SDK's exceptions, and how a failed gRPC call becomes one (shared by the sync client,
the asyncio client and the followers that ride out a head node's absence, shoal.resume).

Each carries one line fit to show a user: RequestFailed when the head node answered with an
error status, HeadUnreachable when no head node answered at the address."""

from __future__ import annotations

import grpc


class RequestFailed(Exception):
    """A call the head node refused or failed: `code` is its grpc.StatusCode (NOT_FOUND,
    INVALID_ARGUMENT, PERMISSION_DENIED, FAILED_PRECONDITION, ...), `message` its one line."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.queued: list[int] = []  # submit_each: the ids of the jobs queued before the refusal


class HeadUnreachable(RequestFailed):
    """No head node answered at the address (UNAVAILABLE) or in time (DEADLINE_EXCEEDED)."""


def translate(e: grpc.RpcError, address: str, timeout: float) -> RequestFailed:
    """The SDK's exception for a failed call (shared by the sync and async clients)."""
    code = e.code() if hasattr(e, "code") else grpc.StatusCode.UNKNOWN
    details = (e.details() if hasattr(e, "details") else "") or code.name
    if code == grpc.StatusCode.UNAVAILABLE:
        return HeadUnreachable(code, f"cannot reach the head node at {address} ({_short(details)})")
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return HeadUnreachable(code, f"the head node at {address} did not answer within {timeout:g}s")
    return RequestFailed(code, details)


def _short(details: str) -> str:
    # grpc's connection errors are long; keep the part a person can act on.
    lowered = details.lower()
    if "connection refused" in lowered:
        return "connection refused: is `shoal head` running there? set --head or SHOAL_HEAD"
    if "dns" in lowered or "resolve" in lowered:
        return "the host name does not resolve"
    return details.splitlines()[0][:200]
