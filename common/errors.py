"""Typed domain errors.

Services raise these; the API layer maps each to a gRPC status code in exactly one place
(headnode/api/errors.py). Messages are one line that says what to fix.
"""

from __future__ import annotations


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
