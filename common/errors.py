"""Typed domain errors.

Services raise these; the API layer maps each to a gRPC status code in exactly one place
(headnode/api/errors.py). Messages are one line that says what to fix.
"""

from __future__ import annotations

import re

QUOTED = 200  # the most characters of any input a message or a log line repeats


def quote(text: object, most: int = QUOTED) -> str:
    """Input as a message or a log line may repeat it: at most `most` characters of it, a
    short prefix with an ellipsis, however long it was (a 10 MiB name is not echoed back)."""
    s = text if isinstance(text, str) else str(text)
    return s if len(s) <= most else f"{s[:most]}…"


_LONG_RUN = re.compile(r"\S{%d,}" % (QUOTED + 1))
MESSAGE_MOST = 1000  # characters of a whole status message


def one_line(message: str) -> str:
    """A status message as it goes back to a caller: one line, no run of more than QUOTED
    characters without a space (what an unquoted input would be), at most MESSAGE_MOST in all.
    The last guard behind `quote`: gRPC carries a status message in a header, and a caller's
    header limit (16 KiB) turns a longer one into a confusing RESOURCE_EXHAUSTED."""
    if len(message) <= QUOTED and "\n" not in message:
        return message
    if "\n" in message or "\r" in message:
        message = " ".join(message.split())
    return quote(_LONG_RUN.sub(lambda m: quote(m.group()), message), MESSAGE_MOST)


class ShoalError(Exception):
    """Base of every error a caller should see as a status, not as a crash."""

    status = "INTERNAL"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidArgument(ShoalError):
    status = "INVALID_ARGUMENT"


class NotFound(ShoalError):
    status = "NOT_FOUND"


class AlreadyExists(ShoalError):
    status = "ALREADY_EXISTS"


class FailedPrecondition(ShoalError):
    """The request is valid but the object is in the wrong state for it."""

    status = "FAILED_PRECONDITION"


class PermissionDenied(ShoalError):
    status = "PERMISSION_DENIED"


class Unauthenticated(ShoalError):
    """No identity, or one that does not check out (bad or expired token, unknown certificate)."""

    status = "UNAUTHENTICATED"


class ResourceExhausted(ShoalError):
    status = "RESOURCE_EXHAUSTED"


class Unavailable(ShoalError):
    status = "UNAVAILABLE"


class ConfigError(ShoalError):
    """A bad config file, flag or environment variable (daemons exit with this message)."""

    status = "INVALID_ARGUMENT"


class DiskFull(ResourceExhausted):
    """The head node cannot write its state: the disk under its database is full. The head
    keeps serving: the write that failed is retried until there is room, and requests that
    would change something are refused meanwhile (services/journal.py). `fault` says whose
    disk: "the head node's disk is full (state dir PATH)"."""

    def __init__(self, message: str, fault: str = "") -> None:
        super().__init__(message)
        self.fault = fault or message

    @classmethod
    def at(cls, fault: str) -> DiskFull:
        return cls(f"{fault}; free space and retry", fault)

    def in_flight(self) -> DiskFull:
        """The same fault, told to a caller whose change was made but is not yet durable."""
        return DiskFull(f"{self.fault}; this request is written once there is room again (free space, then "
                        "check whether it took effect before repeating it)", self.fault)


class UntrustedDatabase(ShoalError):
    """The head node's database is corrupted, or is not this cluster's (emptied or replaced):
    the head refuses to start with this message rather than serve from it."""

    status = "FAILED_PRECONDITION"
