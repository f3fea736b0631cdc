"""An HTTP request as the servicers' context: who is asking, and how a refusal comes back.

The dashboard calls the same servicer methods as the gRPC API, in process, so identity,
roles, visibility and error messages are decided in exactly the places they are for gRPC
(api/identity.py, api/errors.py). `WebContext` hands the servicers what they read of a
gRPC context: the metadata a client would send (a bearer token from the session cookie,
or in plaintext mode the trusted user name) and the TLS peer certificate when the browser
presented one. `context.abort` raises `Refused`, which routes.py turns into an HTTP status
and `{"error", "code"}`.
"""

from __future__ import annotations

import ssl
from typing import Any, NoReturn

import grpc
from aiohttp import web

from headnode.api.identity import AUTHORIZATION, USER_METADATA

TOKEN_COOKIE = "shoal_token"
USER_COOKIE = "shoal_user"

HTTP_STATUS = {
    grpc.StatusCode.INVALID_ARGUMENT: 400, grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.UNAUTHENTICATED: 401, grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.NOT_FOUND: 404, grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.FAILED_PRECONDITION: 409, grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429, grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504, grpc.StatusCode.UNIMPLEMENTED: 501,
}


class Refused(Exception):
    """A servicer's abort: a status code and its one-line message."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    @property
    def http_status(self) -> int:
        return HTTP_STATUS.get(self.code, 500)

    def body(self) -> dict[str, str]:
        return {"error": self.message, "code": self.code.name}


class WebContext:
    """What a servicer reads of its grpc.aio.ServicerContext, taken from an HTTP request."""

    def __init__(self, metadata: tuple[tuple[str, str], ...], pem: bytes | None = None) -> None:
        self._metadata = metadata
        self._pem = pem

    @classmethod
    def of(cls, request: web.Request, plaintext: bool, default_user: str) -> WebContext:
        token = request.cookies.get(TOKEN_COOKIE, "")
        bearer = request.headers.get("Authorization", "")
        if bearer.startswith("Bearer "):  # scripts may send the token as gRPC clients do
            token = bearer.removeprefix("Bearer ").strip()
        metadata: list[tuple[str, str]] = []
        if token:
            metadata.append((AUTHORIZATION, f"Bearer {token}"))
        elif plaintext:
            metadata.append((USER_METADATA, request.cookies.get(USER_COOKIE, "") or default_user))
        return cls(tuple(metadata), _peer_pem(request))

    @classmethod
    def with_token(cls, token: str) -> WebContext:
        return cls(((AUTHORIZATION, f"Bearer {token}"),))

    @classmethod
    def as_user(cls, name: str) -> WebContext:
        return cls(((USER_METADATA, name),))

    def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
        return self._metadata

    def auth_context(self) -> dict[str, list[bytes]]:
        return {"x509_pem_cert": [self._pem]} if self._pem else {}

    async def abort(self, code: grpc.StatusCode, details: str = "", *_: Any) -> NoReturn:
        raise Refused(code, details)

    async def send_initial_metadata(self, _metadata: Any) -> None:
        pass

    def peer(self) -> str:
        return "web"


def _peer_pem(request: web.Request) -> bytes | None:
    """The browser's client certificate, when it sent one the cluster CA signed."""
    transport = request.transport
    ssl_object = transport.get_extra_info("ssl_object") if transport is not None else None
    if ssl_object is None:
        return None
    der = ssl_object.getpeercert(binary_form=True)
    return ssl.DER_cert_to_PEM_cert(der).encode() if der else None
