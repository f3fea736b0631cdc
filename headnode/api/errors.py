"""Domain errors -> gRPC status codes, in exactly one place.

`@maps_errors` on a servicer class wraps every RPC method (unary or streaming): a
ShoalError becomes its status code with its one-line message; anything else is logged with
its traceback and answered INTERNAL, so a bug never kills the server or leaks a traceback.

It also keeps the head's write gate (services/journal.py), for servicers given one: while the
head cannot write (its disk is full), every RPC but those the class names in
`SERVED_WHILE_FULL` (the reads) is refused with DiskFull before it changes anything, and a
unary one already under way is answered DiskFull as soon as a write is held. Listing the
reads rather than the writes means a new RPC is refused by default, the safe side.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
from collections.abc import Awaitable
from typing import Any, Protocol, TypeVar

from dataclasses import dataclass

import grpc
from google.protobuf.message import DecodeError

from common import log
from common.errors import InvalidArgument, ShoalError

_log = log.get("api")
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Malformed:
    """A request that did not parse as its message type."""

    type_name: str
    detail: str


def tolerant(cls: Any) -> Any:
    """A request deserializer that hands a bad message on as Malformed instead of raising."""

    def parse(data: bytes) -> Any:
        try:
            return cls.FromString(data)
        except DecodeError as e:
            return Malformed(cls.DESCRIPTOR.full_name, str(e))

    return parse


def check(request: Any) -> None:
    if isinstance(request, Malformed):
        raise InvalidArgument(f"the request is not a valid {request.type_name} message ({request.detail})")


class WriteGate(Protocol):
    """What the head's journal offers the API layer (headnode/services/journal.py)."""

    def writable(self) -> None:
        """Raise DiskFull while the head cannot write."""

    async def answered(self, work: Awaitable[T]) -> T:
        """Run the request; raise DiskFull as soon as a write is held, leaving it to finish."""


def status_of(error: ShoalError) -> grpc.StatusCode:
    return grpc.StatusCode[error.status]


async def _abort(context: grpc.aio.ServicerContext, method: str, exc: BaseException) -> None:
    if isinstance(exc, ShoalError):
        await context.abort(status_of(exc), exc.message)
    _log.exception("rpc_failed", method=method, exc_info=exc)
    await context.abort(grpc.StatusCode.INTERNAL, f"internal error in {method} ({type(exc).__name__}); see the head node's log")


def _passthrough(exc: BaseException) -> bool:
    # AbortError is how context.abort ends the call; cancellation is the client going away.
    return isinstance(exc, (grpc.aio.AbortError, asyncio.CancelledError, GeneratorExit))


def _wrap(name: str, fn: Any, gated: bool) -> Any:
    if inspect.isasyncgenfunction(fn):

        @functools.wraps(fn)
        async def stream(self: Any, request: Any, context: grpc.aio.ServicerContext) -> Any:
            try:
                check(request)
                if gated and (gate := self.gate) is not None:
                    gate.writable()
                async for item in fn(self, request, context):
                    yield item
            except BaseException as exc:
                if _passthrough(exc):
                    raise
                await _abort(context, name, exc)

        return stream

    @functools.wraps(fn)
    async def unary(self: Any, request: Any, context: grpc.aio.ServicerContext) -> Any:
        try:
            check(request)
            if gated and (gate := self.gate) is not None:
                gate.writable()
                return await gate.answered(fn(self, request, context))
            return await fn(self, request, context)
        except BaseException as exc:
            if _passthrough(exc):
                raise
            await _abort(context, name, exc)

    return unary


def maps_errors(cls: type[T]) -> type[T]:
    served = getattr(cls, "SERVED_WHILE_FULL", None)
    if served is not None and (unknown := served - set(vars(cls))):
        raise TypeError(f"{cls.__name__}.SERVED_WHILE_FULL names no method {', '.join(sorted(unknown))}")
    if served is not None and not hasattr(cls, "gate"):
        cls.gate = None  # type: ignore[attr-defined] # none given: nothing is gated
    for name, fn in list(vars(cls).items()):
        if name[:1].isupper() and (inspect.iscoroutinefunction(fn) or inspect.isasyncgenfunction(fn)):
            gated = served is not None and name not in served
            setattr(cls, name, _wrap(f"{cls.__name__}.{name}", fn, gated))
    return cls
