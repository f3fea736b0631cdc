"""Domain errors -> gRPC status codes, in exactly one place.

`@maps_errors` on a servicer class wraps every RPC method (unary or streaming): a
ShoalError becomes its status code with its one-line message; anything else is logged with
its traceback and answered INTERNAL, so a bug never kills the server or leaks a traceback.

It also keeps the head's write gate (services/journal.py), for servicers given one: while the
head cannot write (its disk is full), every RPC but those the class names in
`SERVED_WHILE_FULL` (the reads) is refused with DiskFull before it changes anything, and a
unary one already under way is answered DiskFull as soon as a write is held. Listing the
reads rather than the writes means a new RPC is refused by default, the safe side.

Identity comes first (issue 33): a request arrives from gRPC as `Unparsed` bytes, and the
wrapper authenticates and rate-limits the caller (`self.auth.user`, or `self.auth.agent` for
a class with AGENTS) before it checks the request's size against its method's bound and
parses it; a streaming request is read only after the caller is known. So an anonymous
caller costs the head no parsing and no validation, and gets the same UNAUTHENTICATED
whatever it names. (The dashboard calls the same methods in process with parsed messages;
their first `self.auth` call identifies the caller.) Every status message is one line that
repeats at most 200 characters of any input (common.errors.one_line).
"""

from __future__ import annotations

import asyncio
import functools
import inspect
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import grpc
from google.protobuf.message import DecodeError

from common import heap, log
from common.errors import InvalidArgument, ShoalError, one_line

_log = log.get("api")
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Malformed:
    """A request that did not parse as its message type."""

    type_name: str
    detail: str


class Unparsed:
    """A unary request as gRPC received it: parsed only once its caller is known (`parse`)."""

    __slots__ = ("cls", "data", "most")

    def __init__(self, cls: Any, data: bytes, most: int) -> None:
        self.cls, self.data, self.most = cls, data, most

    def parse(self) -> Any:
        data, self.data = self.data, b""  # the bytes go with the parse: nothing else holds them
        if len(data) > self.most:
            raise InvalidArgument(f"the request is {len(data)} bytes; a {self.cls.DESCRIPTOR.full_name} is at most "
                                  f"{self.most} (names, paths and lists are far smaller: see the limits in the README)")
        try:
            return self.cls.FromString(data)
        except DecodeError as e:
            raise InvalidArgument(f"the request is not a valid {self.cls.DESCRIPTOR.full_name} message ({e})") from None


def unparsed(cls: Any, most: int) -> Any:
    """The request deserializer of a unary request: no parsing before identity (Unparsed)."""

    def keep(data: bytes) -> Unparsed:
        return Unparsed(cls, data, most)

    return keep


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


def _failure(method: str, exc: BaseException) -> tuple[grpc.StatusCode, str]:
    """The status code and one-line message a failed call is answered with."""
    if isinstance(exc, ShoalError):
        return status_of(exc), one_line(exc.message)
    _log.exception("rpc_failed", method=method, exc_info=exc)
    return grpc.StatusCode.INTERNAL, f"internal error in {method} ({type(exc).__name__}); see the head node's log"


# Why a failed call is answered only after the `except` block, with the request dropped:
# context.abort raises an AbortError that gRPC keeps on the call's state, which the context
# refers to, which the frames in the AbortError's traceback refer to: a reference cycle that
# only the cyclic collector frees, and the head runs it rarely (common/heap.py, tune_gc).
# Raised inside the `except`, the AbortError also held the domain error, its traceback and
# every frame's locals: the request and whatever was made of it. A loop of GetNode calls with
# a 10 MiB name grew the head ~30 MiB a call (issue 33). Now the cycle holds the status only.


def _drop(request: Any) -> None:
    """An unparsed request's bytes are let go before the abort (callers' frames, e.g. the
    metrics interceptor's, still refer to the Unparsed itself)."""
    if type(request) is Unparsed:
        request.data = b""


def _large(request: Any) -> bool:
    """A request large enough that the heap is trimmed after it (common/heap.py)."""
    return type(request) is Unparsed and len(request.data) > heap.TRIM_AFTER


def _identify(servicer: Any, context: grpc.aio.ServicerContext, agents: bool) -> None:
    """Authenticate and rate-limit the caller, before its request is read or parsed."""
    if agents:
        servicer.auth.agent(context)
    else:
        servicer.auth.user(context)


def _passthrough(exc: BaseException) -> bool:
    # AbortError is how context.abort ends the call; cancellation is the client going away.
    return isinstance(exc, (grpc.aio.AbortError, asyncio.CancelledError, GeneratorExit))


def _wrap(name: str, fn: Any, gated: bool, agents: bool) -> Any:
    if inspect.isasyncgenfunction(fn):

        @functools.wraps(fn)
        async def stream(self: Any, request: Any, context: grpc.aio.ServicerContext) -> Any:
            if _large(request):
                heap.trim_soon()  # scheduled now, it runs once this call's first step is over
            try:
                if type(request) is Unparsed:
                    _identify(self, context, agents)
                    request = request.parse()
                elif hasattr(request, "__aiter__"):  # a stream of requests: read once the caller is known
                    _identify(self, context, agents)
                check(request)
                if gated and (gate := self.gate) is not None:
                    gate.writable()
                async for item in fn(self, request, context):
                    yield item
                return
            except BaseException as exc:
                if _passthrough(exc):
                    raise
                failure = _failure(name, exc)
            _drop(request)
            del request
            await context.abort(*failure)

        return stream

    @functools.wraps(fn)
    async def unary(self: Any, request: Any, context: grpc.aio.ServicerContext) -> Any:
        if _large(request):
            try:
                return await _unary(self, request, context)
            finally:
                heap.trim_soon()  # once the call's request and what was made of it are freed
        return await _unary(self, request, context)

    async def _unary(self: Any, request: Any, context: grpc.aio.ServicerContext) -> Any:
        try:
            if type(request) is Unparsed:
                _identify(self, context, agents)
                request = request.parse()
            check(request)
            if gated and (gate := self.gate) is not None:
                gate.writable()
                return await gate.answered(fn(self, request, context))
            return await fn(self, request, context)
        except BaseException as exc:
            if _passthrough(exc):
                raise
            failure = _failure(name, exc)
        _drop(request)
        del request
        await context.abort(*failure)

    return unary


def maps_errors(cls: type[T]) -> type[T]:
    served = getattr(cls, "SERVED_WHILE_FULL", None)
    if served is not None and (unknown := served - set(vars(cls))):
        raise TypeError(f"{cls.__name__}.SERVED_WHILE_FULL names no method {', '.join(sorted(unknown))}")
    if served is not None and not hasattr(cls, "gate"):
        cls.gate = None  # type: ignore[attr-defined] # none given: nothing is gated
    agents = bool(getattr(cls, "AGENTS", False))  # its callers are agents (auth.agent), not users
    for name, fn in list(vars(cls).items()):
        if name[:1].isupper() and (inspect.iscoroutinefunction(fn) or inspect.isasyncgenfunction(fn)):
            gated = served is not None and name not in served
            setattr(cls, name, _wrap(f"{cls.__name__}.{name}", fn, gated, agents))
    return cls
