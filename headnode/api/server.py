"""The grpc.aio server: the three Shoal services, standard health checking and reflection,
and (with metrics on) the interceptor that counts and times RPCs."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import grpc
from google.protobuf.descriptor import ServiceDescriptor
from google.protobuf.message_factory import GetMessageClass
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from common import tls
from common.clock import perf_counter
from common.errors import ConfigError
from common.hostport import parse_address
from headnode.api.errors import tolerant, unparsed
from shoal.v1 import (
    admin_pb2,
    admin_pb2_grpc,
    jobs_pb2,
    jobs_pb2_grpc,
    nodes_pb2,
    nodes_pb2_grpc,
    templates_pb2,
    templates_pb2_grpc,
)

SERVICE_NAMES = (
    jobs_pb2.DESCRIPTOR.services_by_name["JobService"].full_name,
    nodes_pb2.DESCRIPTOR.services_by_name["NodeService"].full_name,
    admin_pb2.DESCRIPTOR.services_by_name["AdminService"].full_name,
    templates_pb2.DESCRIPTOR.services_by_name["TemplateService"].full_name,
)

# The largest request the head receives (gRPC refuses a longer one with RESOURCE_EXHAUSTED
# before any of it reaches Python). It must admit the largest legal request: a job of
# 100,000 tasks (validation.MAX_TASKS) serializes to ~95 bytes a task plus its command line
# (a sweep is one task), so 64 MiB admits 100,000 tasks averaging ~580 bytes of command,
# name and variables, or 10,000 jobs (MAX_BATCH) of ~6 KiB each, or one task at every limit
# (128 KiB command, 256 KiB environment) many times over. A caller is identified before its
# request is parsed (errors.py), so an anonymous one costs the head at most one receive.
MAX_REQUEST = 8 * 1024 * 1024
# Methods whose requests carry no job, task or template (GetNode, CancelJob, ...) take at
# most this much: a name is 4 KiB, a list 1,000 entries; RequeueJob's list of 100,000 tasks
# is ~1.2 MB. A longer request is INVALID_ARGUMENT before it is parsed.
MAX_SMALL_REQUEST = 4 * 1024 * 1024
_LARGE = ("shoal.v1.JobSpec", "shoal.v1.TaskSpec", "shoal.v1.Template")


def _carries_specs(message: Any, seen: frozenset[str] = frozenset()) -> bool:
    if message.full_name in _LARGE:
        return True
    return any(f.message_type is not None and f.message_type.full_name not in seen
               and _carries_specs(f.message_type, seen | {message.full_name}) for f in message.fields)


def request_bound(method: Any) -> int:
    """The most bytes a request of `method` may have (MAX_REQUEST or MAX_SMALL_REQUEST)."""
    return MAX_REQUEST if _carries_specs(method.input_type) else MAX_SMALL_REQUEST


SERVER_OPTIONS = [
    # grpc sets SO_REUSEPORT by default, which lets a second head node bind the same port and
    # silently share the traffic; a busy port must be an error instead.
    ("grpc.so_reuseport", 0),
    # Agents ping to find dead connections quickly; let them.
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.min_recv_ping_interval_without_data_ms", 5000),
    ("grpc.http2.max_pings_without_data", 0),
    ("grpc.max_receive_message_length", MAX_REQUEST),
]


def _handlers(servicer: object, service: ServiceDescriptor) -> grpc.GenericRpcHandler:
    """The generated registration, except that a unary request reaches the servicer as
    `Unparsed` bytes, parsed once the caller is identified (errors.py), and a streamed one
    that does not parse as `Malformed`: both answered INVALID_ARGUMENT by errors.py rather
    than gRPC's UNKNOWN "Unexpected DecodeError"."""
    handlers = {}
    for m in service.methods:
        request, response = GetMessageClass(m.input_type), GetMessageClass(m.output_type)
        kinds = {(False, False): grpc.unary_unary_rpc_method_handler, (False, True): grpc.unary_stream_rpc_method_handler,
                 (True, False): grpc.stream_unary_rpc_method_handler, (True, True): grpc.stream_stream_rpc_method_handler}
        make = kinds[(m.client_streaming, m.server_streaming)]
        parse = tolerant(request) if m.client_streaming else unparsed(request, request_bound(m))
        handlers[m.name] = make(getattr(servicer, m.name), request_deserializer=parse,
                                response_serializer=response.SerializeToString)
    return grpc.method_handlers_generic_handler(service.full_name, handlers)


def credentials(tls_dir: Path) -> grpc.ServerCredentials:
    """Mutual TLS: the head node's certificate, and a client certificate the cluster CA signed
    required of every caller (a node's or user's own, or the shared client one for callers
    who identify with a token)."""
    try:
        ca, cert, key = tls.Files(tls_dir / tls.CA_CERT, tls_dir / tls.HEAD_CERT, tls_dir / tls.HEAD_KEY).read()
    except ValueError as e:
        raise ConfigError(f"no TLS certificate for the head node ({e}): run `shoal certs init --dir {tls_dir}`, "
                          f"or start it with --plaintext for local development") from None
    return grpc.ssl_server_credentials([(key, cert)], root_certificates=ca, require_client_auth=True)


def build(
    listen: str,
    jobs: jobs_pb2_grpc.JobServiceServicer,
    nodes: nodes_pb2_grpc.NodeServiceServicer,
    admin: admin_pb2_grpc.AdminServiceServicer,
    templates: templates_pb2_grpc.TemplateServiceServicer,
    creds: grpc.ServerCredentials | None = None,
    interceptors: Sequence[grpc.aio.ServerInterceptor] = (),
) -> tuple[grpc.aio.Server, int, health.aio.HealthServicer]:
    """Create the server and bind it (TLS with `creds`, else plaintext); returns it with the
    bound port (listen may ask for 0)."""
    parse_address(listen, "listen")
    # No interceptor at all unless one is given: each costs every RPC a hop through Python.
    server = grpc.aio.server(options=SERVER_OPTIONS, interceptors=list(interceptors) or None)
    for servicer, module, name in ((jobs, jobs_pb2, "JobService"), (nodes, nodes_pb2, "NodeService"),
                                   (admin, admin_pb2, "AdminService"), (templates, templates_pb2, "TemplateService")):
        server.add_generic_rpc_handlers((_handlers(servicer, module.DESCRIPTOR.services_by_name[name]),))
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection((*SERVICE_NAMES, health.SERVICE_NAME, reflection.SERVICE_NAME), server)
    try:
        port = server.add_secure_port(listen, creds) if creds is not None else server.add_insecure_port(listen)
    except RuntimeError:
        port = 0
    if port == 0:
        raise ConfigError(
            f"cannot listen on {listen}: the port is in use or the address is not on this host "
            f"(choose another with --listen)"
        )
    return server, port, health_servicer


async def set_serving(health_servicer: health.aio.HealthServicer, serving: bool) -> None:
    if not serving:
        await health_servicer.enter_graceful_shutdown()
        return
    for name in ("", *SERVICE_NAMES):
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)


_RPC_TYPES = {(False, False): "unary", (False, True): "server_stream", (True, False): "client_stream",
              (True, True): "bidi_stream"}


class RpcMetrics(grpc.aio.ServerInterceptor):
    """Counts every RPC as it begins; times unary ones and counts them by status code.

    `started`, `handled` and `duration` are prometheus_client families labelled (service,
    method, type), (service, method, code) and (service, method). Only methods the server
    has are labelled, so a caller cannot grow the label set by inventing method names."""

    def __init__(self, started: Any, handled: Any, duration: Any) -> None:
        self._started, self._handled, self._duration = started, handled, duration
        # Per method: the handler found, what to count its starts with, and what replaces it.
        self._known: dict[str, tuple[grpc.RpcMethodHandler, Any, grpc.RpcMethodHandler]] = {}

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler | None]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        handler = await continuation(details)
        if handler is None:
            return None
        method: str = details.method  # type: ignore[attr-defined]
        known = self._known.get(method)
        if known is None or known[0] is not handler:
            known = self._known[method] = self._wrap(method, handler)
        known[1].inc()
        return known[2]

    def _wrap(self, method: str,
              handler: grpc.RpcMethodHandler) -> tuple[grpc.RpcMethodHandler, Any, grpc.RpcMethodHandler]:
        service, _, name = method.lstrip("/").rpartition("/")
        kind = _RPC_TYPES[(handler.request_streaming, handler.response_streaming)]
        started = self._started.labels(service, name, kind)
        if kind != "unary":
            return handler, started, handler
        timed = grpc.unary_unary_rpc_method_handler(
            self._timed(handler.unary_unary, service, name),
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )
        return handler, started, timed

    def _timed(self, behavior: Any, service: str, name: str) -> Any:
        duration = self._duration.labels(service, name)
        handled = self._handled
        by_code: dict[str, Any] = {}

        async def run(request: Any, context: grpc.aio.ServicerContext) -> Any:
            began = perf_counter()
            code: Any = None
            try:
                result = behavior(request, context)
                if inspect.isawaitable(result):
                    result = await result
                code = context.code()
                return result
            except asyncio.CancelledError:
                code = grpc.StatusCode.CANCELLED  # the caller went away
                raise
            except BaseException:
                code = context.code() or grpc.StatusCode.UNKNOWN  # context.abort sets it before raising
                raise
            finally:
                duration.observe(perf_counter() - began)
                label = _code_name(code)
                child = by_code.get(label)
                if child is None:
                    child = by_code[label] = handled.labels(service, name, label)
                child.inc()

        return run


def _code_name(code: Any) -> str:
    if code is None:
        return "OK"
    if isinstance(code, grpc.StatusCode):
        return code.name
    for known in grpc.StatusCode:  # some grpc versions keep the wire number
        if known.value[0] == code:
            return known.name
    return str(code)
