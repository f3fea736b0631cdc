"""Serves the dashboard: the built pages, the JSON endpoints and the push streams.

Off unless `web_listen` is set. Over HTTPS with the head node's own certificate unless the
cluster is plaintext; a browser may present a client certificate the cluster CA signed (it
then is that user), else it signs in with a `shoal user token` token, kept in an HttpOnly,
SameSite=Strict cookie. The bound URL is written to <state_dir>/web.addr (port 0 picks one).
Pages are the Vite build in static/ (sources and build step in web/ at the top of the repo),
so a `pip install` needs no Node.js.
"""

from __future__ import annotations

import json
import os
import ssl
from pathlib import Path
from urllib.parse import urlsplit

from aiohttp import web

from common import log, tls
from common.errors import ConfigError
from common.hostport import parse_address
from common.metrics import connectable
from headnode.web import ADDRESS_FILE
from headnode.web.live import live_routes
from headnode.web.routes import Api, routes

_log = log.get("web")
STATIC = Path(__file__).parent / "static"
# Pages load only their own scripts and styles and talk only to this server.
_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
                               "frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    # Nothing of a page's address (job ids, names) goes to other sites; the pages' own
    # requests keep theirs, so a POST carries its true Origin (under no-referrer a browser
    # sends `Origin: null` even to its own origin, which the check below must refuse).
    "Referrer-Policy": "same-origin",
}
# Requests that change something. The session endpoint is the only one today; any added
# later is checked the same way.
_UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_NOT_BUILT = ("<!doctype html><title>Shoal</title><p>The dashboard's pages were not built into this "
              "install: run <code>cd web &amp;&amp; npm ci &amp;&amp; npm run build</code> in the source tree. "
              "The JSON API under <code>/api/</code> works without them.</p>")


@web.middleware
async def _security_headers(request: web.Request, handler: web.RequestHandler) -> web.StreamResponse:
    response = await handler(request)
    response.headers.update(_HEADERS)
    return response


def foreign_origin(request: web.Request) -> str:
    """Where a request comes from when that is not this server's own pages ("" when it is).

    A browser says it in Sec-Fetch-Site (set by the browser, never by a page), else in
    Origin (on every cross-origin POST and DELETE), else in Referer. A request with none of
    them does not come from a web page (curl, a script with `Authorization: Bearer`): no
    browser leaves all three out of a cross-site request, so it passes. `Origin: null`
    (sandboxed frames, data: pages) is foreign."""
    here = f"{request.scheme}://{request.host}".lower()
    site = request.headers.get("Sec-Fetch-Site", "").strip().lower()
    if site:
        return "" if site in ("same-origin", "none") else f"a {site} page (Sec-Fetch-Site)"
    origin = request.headers.get("Origin", "").strip()
    if origin:
        return "" if origin.lower() == here else f"origin {origin[:200]}"
    referer = request.headers.get("Referer", "").strip()
    if referer:
        parts = urlsplit(referer)
        there = f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}".lower()
        return "" if there == here else f"a page of {there[:200]} (Referer)"
    return ""


@web.middleware
async def _same_origin(request: web.Request, handler: web.RequestHandler) -> web.StreamResponse:
    """Cross-site request forgery: a request that changes something (POST, PUT, PATCH,
    DELETE) from another origin's page is refused with 403 before any handler runs. The
    session cookie is SameSite=Strict too; this check also covers browsers that ignore
    SameSite, a sign-in forced on a browser (login CSRF: POST /api/session sets a cookie), and
    a plaintext cluster, where the dashboard is its default user with no cookie at all."""
    if request.method in _UNSAFE and (where := foreign_origin(request)):
        why = (f"{request.method} {request.path[:200]} came from {where}, not from this dashboard "
               f"({request.scheme}://{request.host[:200]}): it accepts changes only from its own pages")
        _log.warning("web_cross_origin_refused", method=request.method, path=request.path[:200], origin=where)
        return web.Response(text=json.dumps({"error": why, "code": "PERMISSION_DENIED"}), status=403,
                            content_type="application/json", headers={"Cache-Control": "no-store"})
    return await handler(request)


def application(api: Api, static: Path = STATIC) -> web.Application:
    app = web.Application(middlewares=[_security_headers, _same_origin], client_max_size=64 * 1024)
    app.add_routes(routes(api) + live_routes(api))
    index = static / "index.html"

    async def page(_request: web.Request) -> web.StreamResponse:
        if not index.is_file():
            return web.Response(text=_NOT_BUILT, content_type="text/html")
        return web.FileResponse(index, headers={"Cache-Control": "no-cache"})

    app.router.add_get("/", page)
    app.router.add_get("/index.html", page)
    if (static / "assets").is_dir():
        # Hashed file names: a new build has new names, so browsers may keep these for ever.
        app.router.add_static("/assets", static / "assets", append_version=False)

        @web.middleware
        async def immutable(request: web.Request, handler: web.RequestHandler) -> web.StreamResponse:
            response = await handler(request)
            if request.path.startswith("/assets/") and response.status == 200:
                response.headers["Cache-Control"] = "public, max-age=31536000, immutable"
            return response

        app.middlewares.append(immutable)
    return app


def tls_context(tls_dir: Path) -> ssl.SSLContext:
    try:
        ca, cert, key = (tls_dir / tls.CA_CERT, tls_dir / tls.HEAD_CERT, tls_dir / tls.HEAD_KEY)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(ca))
        context.load_cert_chain(str(cert), str(key))
    except (OSError, ssl.SSLError) as e:
        raise ConfigError(f"cannot serve the dashboard over HTTPS ({e}): run `shoal certs init --dir {tls_dir}`, "
                          f"or turn it off (web_listen empty)") from None
    context.verify_mode = ssl.CERT_OPTIONAL  # a client certificate identifies; a token does too
    return context


class WebServer:
    """The dashboard on `listen`; `start()` binds it and writes web.addr, `close()` stops it."""

    def __init__(self, listen: str, api: Api, state_dir: Path, tls_dir: Path | None) -> None:
        self.listen = listen
        self.api = api
        self.file = state_dir / ADDRESS_FILE
        self.ssl = tls_context(tls_dir) if tls_dir is not None else None
        # Streams end at shutdown instead of holding the head node for a minute; a browser
        # that leaves cancels its handler (and so its subscriptions) at once.
        self.runner = web.AppRunner(application(api), shutdown_timeout=1.0, handler_cancellation=True,
                                    access_log=None)
        self.url = ""

    async def start(self) -> str:
        host, port = parse_address(self.listen, "web_listen")
        await self.runner.setup()
        site = web.TCPSite(self.runner, host or None, port, ssl_context=self.ssl)
        try:
            await site.start()
        except OSError as e:
            await self.runner.cleanup()
            raise ConfigError(f"cannot serve the dashboard on {self.listen}: {e.strerror or e} "
                              f"(choose another with --web-listen)") from None
        server = site._server  # aiohttp keeps the bound socket here; port 0 needs its real port
        bound = server.sockets[0].getsockname()[1] if server is not None and server.sockets else port
        self.url = f"{'https' if self.ssl else 'http'}://{connectable(host, bound)}/"
        tmp = self.file.with_suffix(".tmp")
        tmp.write_text(self.url + "\n")
        os.replace(tmp, self.file)
        _log.info("web_serving", url=self.url)
        return self.url

    async def close(self) -> None:
        self.file.unlink(missing_ok=True)
        await self.runner.cleanup()

