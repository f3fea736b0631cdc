"""The dashboard's JSON endpoints (web/API.md is their contract): thin, like the servicers.

Each handler turns query parameters into the request message a gRPC client would send,
calls the servicer method in process with a WebContext (so rights and messages are the
API's own), and answers the reply in protobuf's JSON mapping. What has no RPC (the
overview, the grid, usage over time) authenticates the same way and reads the service.
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from aiohttp import web
from google.protobuf import json_format
from google.protobuf.message import Message

from common.config import HeadConfig
from common.errors import InvalidArgument, ShoalError, Unauthenticated
from common.wire import timestamp
from headnode.api.admin_servicer import AdminServicer
from headnode.api.errors import status_of
from headnode.api.identity import Authority, Principal
from headnode.api.job_servicer import JobServicer
from headnode.domain.states import TaskState
from headnode.services.history import ClusterHistory, Minute, Totals
from headnode.services.queue import QueueService
from headnode.web.context import TOKEN_COOKIE, USER_COOKIE, Refused, WebContext
from shoal.v1 import admin_pb2, jobs_pb2

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
MAX_PAGE = 1000
MAX_BUCKETS = 366
BUCKETS = {"hour": 3600.0, "day": 86400.0}


@dataclass
class Api:
    """Everything the handlers call: the servicers, and the services that have no RPC."""

    config: HeadConfig
    jobs: JobServicer
    admin: AdminServicer
    queue: QueueService
    auth: Authority
    history: ClusterHistory
    default_user: str  # plaintext mode: who the dashboard is when no one signed in
    version: str = ""

    def context(self, request: web.Request) -> WebContext:
        return WebContext.of(request, self.config.plaintext, self.default_user)

    def user(self, request: web.Request) -> tuple[WebContext, Principal]:
        ctx = self.context(request)
        return ctx, self.auth.user(ctx)  # type: ignore[arg-type]


def to_json(msg: Message) -> dict[str, Any]:
    return json_format.MessageToDict(msg, preserving_proto_field_name=True,
                                     always_print_fields_with_no_presence=True)


def answer(body: Any, status: int = 200) -> web.Response:
    return web.Response(text=json.dumps(body, separators=(",", ":")), status=status,
                        content_type="application/json", headers={"Cache-Control": "no-store"})


def refusal(exc: BaseException) -> Refused:
    if isinstance(exc, Refused):
        return exc
    if isinstance(exc, ShoalError):
        return Refused(status_of(exc), exc.message)
    raise exc


def json_errors(handler: Handler) -> Handler:
    """Refusals and domain errors -> their HTTP status with {"error", "code"}."""

    @functools.wraps(handler)
    async def wrapped(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except (Refused, ShoalError) as exc:
            r = refusal(exc)
            return answer(r.body(), r.http_status)

    return wrapped


# -- query parameters ----------------------------------------------------------------------------

def int_param(request: web.Request, name: str, default: int = 0, low: int = 0, high: int = 2**62) -> int:
    raw = request.query.get(name, "")
    if raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise InvalidArgument(f"{name} must be a whole number, got {raw!r}") from None
    if not low <= value <= high:
        raise InvalidArgument(f"{name} must be {low}..{high}, got {value}")
    return value


def path_int(request: web.Request, name: str) -> int:
    raw = request.match_info[name]
    if not raw.isdigit():
        raise InvalidArgument(f"{name} must be a positive whole number, got {raw!r}")
    return int(raw)


def enum_values(request: web.Request, name: str, enum: Any, prefix: str) -> list[int]:
    out = []
    for raw in request.query.getall(name, []):
        for word in filter(None, raw.split(",")):
            try:
                out.append(enum.Value(prefix + word.strip().upper()))
            except ValueError:
                known = ", ".join(n.removeprefix(prefix).title() for n in enum.keys()[1:])
                raise InvalidArgument(f"{name} {word!r} is not one of {known}") from None
    return out


def time_param(request: web.Request, name: str) -> float | None:
    raw = request.query.get(name, "")
    if not raw:
        return None
    try:
        return datetime.fromisoformat(raw.replace("Z", "+00:00")).timestamp()
    except ValueError:
        raise InvalidArgument(f"{name} must be an ISO 8601 date or time (2026-11-22 or "
                              f"2026-11-22T10:00:00Z), got {raw!r}") from None


# -- the endpoints --------------------------------------------------------------------------------

def routes(api: Api) -> list[web.RouteDef]:
    async def session(request: web.Request) -> web.Response:
        try:
            _, p = api.user(request)
        except Unauthenticated as e:  # the sign-in form asks for a token or a name by this
            return answer({"error": e.message, "code": "UNAUTHENTICATED", "secure": not api.config.plaintext}, 401)
        return answer(_session(api, p))

    async def sign_in(request: web.Request) -> web.Response:
        # JSON only: a page of another site can post a form (text/plain, urlencoded) without
        # asking, but not application/json (that needs a CORS preflight, which is never
        # granted): a second wall behind the origin check (server.py) against login CSRF.
        if request.content_type != "application/json":
            raise InvalidArgument(f"send JSON with Content-Type: application/json, not {request.content_type[:100]} "
                                  "({\"token\": \"...\"} from `shoal user token`)")
        try:
            body = await request.json()
        except (ValueError, UnicodeDecodeError):
            raise InvalidArgument("send JSON: {\"token\": \"...\"} (from `shoal user token`)") from None
        token = str(body.get("token", "")).strip() if isinstance(body, dict) else ""
        user = str(body.get("user", "")).strip() if isinstance(body, dict) else ""
        if token:
            p = api.auth.user(WebContext.with_token(token))  # type: ignore[arg-type]
            cookie, value = TOKEN_COOKIE, token
        elif user and api.config.plaintext:
            p = api.auth.user(WebContext.as_user(user[:64]))  # type: ignore[arg-type]
            cookie, value = USER_COOKIE, p.name
        else:
            raise InvalidArgument("sign in with a token from `shoal user token`" if not api.config.plaintext
                                  else "give a user name (this development cluster trusts names as sent)")
        response = answer(_session(api, p))
        response.set_cookie(cookie, value, httponly=True, samesite="Strict", secure=not api.config.plaintext,
                            path="/")
        return response

    async def sign_out(request: web.Request) -> web.Response:
        response = answer({})
        for cookie in (TOKEN_COOKIE, USER_COOKIE):
            response.del_cookie(cookie, path="/")
        return response

    async def overview(request: web.Request) -> web.Response:
        api.user(request)
        latest = api.history.latest or api.history.sample()
        body = totals_json(latest)
        body["series"] = [point_json(t) for t in api.history.series]
        hour = api.history.last_hour(latest.time)
        body["throughput"] = [minute_json(m) for m in hour]
        body["finished_last_hour"] = sum(m.finished + m.failed for m in hour)
        return answer(body)

    async def nodes(request: web.Request) -> web.Response:
        return answer(to_json(await api.admin.ListNodes(admin_pb2.ListNodesRequest(), api.context(request))))

    async def node(request: web.Request) -> web.Response:
        msg = admin_pb2.GetNodeRequest(name=request.match_info["name"])
        return answer(to_json(await api.admin.GetNode(msg, api.context(request))))

    async def jobs(request: web.Request) -> web.Response:
        msg = jobs_pb2.ListJobsRequest(
            states=enum_values(request, "state", jobs_pb2.JobState, "JOB_STATE_"),
            owner=request.query.get("owner", ""), name=request.query.get("name", ""),
            page_size=int_param(request, "page_size", 50, 1, MAX_PAGE),
            page_token=request.query.get("page_token", ""), newest_first=True, count_total=True)
        return answer(to_json(await api.jobs.ListJobs(msg, api.context(request))))

    async def job(request: web.Request) -> web.Response:
        msg = jobs_pb2.GetJobRequest(job_id=path_int(request, "id"))
        return answer(to_json(await api.jobs.GetJob(msg, api.context(request))))

    async def grid(request: web.Request) -> web.Response:
        job_id = path_int(request, "id")
        ctx = api.context(request)
        api.auth.may_view(ctx, api.queue.cluster.job(job_id))  # type: ignore[arg-type]
        tasks = []
        for task, states in api.queue.unit_states(job_id):
            sweep = task.spec.sweep
            tasks.append({"task_id": task.id.task, "name": task.spec.name, "count": len(states),
                          "first": sweep.start if sweep else 1, "step": sweep.step if sweep else 1,
                          "states": states})
        return answer({"job_id": job_id, "tasks": tasks})

    async def instances(request: web.Request) -> web.Response:
        msg = jobs_pb2.ListTasksRequest(
            job_id=path_int(request, "id"), task_id=int_param(request, "task", 0, 0, 2**31 - 1), instances=True,
            states=enum_values(request, "state", jobs_pb2.TaskState, "TASK_STATE_"),
            page_size=int_param(request, "page_size", 100, 1, MAX_PAGE), page_token=request.query.get("page_token", ""))
        reply = await api.jobs.ListTasks(msg, api.context(request))
        return answer({"instances": [to_json(i) for i in reply.instances], "next_page_token": reply.next_page_token})

    async def usage(request: web.Request) -> web.Response:
        by = request.query.get("by", "owner")
        grouping = {"owner": jobs_pb2.USAGE_GROUPING_OWNER, "project": jobs_pb2.USAGE_GROUPING_PROJECT,
                    "job": jobs_pb2.USAGE_GROUPING_JOB}.get(by)
        if grouping is None:
            raise InvalidArgument(f"by must be owner, project or job, got {by!r}")
        msg = jobs_pb2.UsageReportRequest(by=grouping, owner=request.query.get("owner", ""))
        for field in ("since", "until"):
            when = time_param(request, field)
            if when is not None:
                getattr(msg, field).CopyFrom(timestamp(when))
        return answer(to_json(await api.jobs.GetUsageReport(msg, api.context(request))))

    async def usage_series(request: web.Request) -> web.Response:
        bucket = request.query.get("bucket", "hour")
        if bucket not in BUCKETS:
            raise InvalidArgument(f"bucket must be hour or day, got {bucket!r}")
        n = int_param(request, "buckets", 24, 1, MAX_BUCKETS)
        owner = request.query.get("owner", "")
        ctx, width = api.context(request), BUCKETS[bucket]
        now = api.history.clock.now()
        end = math.floor(now / width) * width + width  # the current bucket, to its end
        points = []
        for i in range(n, 0, -1):
            start = end - i * width
            msg = jobs_pb2.UsageReportRequest(by=jobs_pb2.USAGE_GROUPING_OWNER, owner=owner, since=timestamp(start),
                                              until=timestamp(start + width))
            total = (await api.jobs.GetUsageReport(msg, ctx)).total
            points.append({"t": start, "core_seconds": total.core_seconds, "jobs": total.jobs,
                           "failed": total.failed, "wall_seconds": total.wall_seconds})
        return answer({"owner": owner, "bucket": bucket, "points": points})

    table: list[tuple[str, str, Handler]] = [
        ("GET", "/api/session", session), ("POST", "/api/session", sign_in), ("DELETE", "/api/session", sign_out),
        ("GET", "/api/overview", overview), ("GET", "/api/nodes", nodes), ("GET", "/api/nodes/{name}", node),
        ("GET", "/api/jobs", jobs), ("GET", "/api/jobs/{id}", job), ("GET", "/api/jobs/{id}/grid", grid),
        ("GET", "/api/jobs/{id}/instances", instances), ("GET", "/api/usage", usage),
        ("GET", "/api/usage/series", usage_series),
    ]
    return [web.route(method, path, json_errors(handler)) for method, path, handler in table]


def _session(api: Api, p: Principal) -> dict[str, Any]:
    return {"user": p.name, "role": p.role, "secure": not api.config.plaintext, "version": api.version}


# -- our own JSON ---------------------------------------------------------------------------------

def _named(counts: dict[Any, int]) -> dict[str, int]:
    return {state.value: n for state, n in counts.items()}


def totals_json(t: Totals) -> dict[str, Any]:
    return {
        "time": t.time,
        "nodes": {"total": sum(t.nodes.values()), "connected": t.connected, "by_state": _named(t.nodes)},
        "cores": {"used": t.cores_used, "total": t.cores_total},
        "memory_mb": {"used": t.memory_used_mb, "total": t.memory_total_mb},
        "gpus": {"used": t.gpus_used, "total": t.gpus_total},
        "jobs": _named(t.jobs), "tasks": _named(t.units),
    }


def point_json(t: Totals) -> dict[str, Any]:
    return {"t": t.time, "cores_used": t.cores_used, "cores_total": t.cores_total,
            "memory_used_mb": t.memory_used_mb, "memory_total_mb": t.memory_total_mb, "gpus_used": t.gpus_used,
            "gpus_total": t.gpus_total, "queued": t.units[TaskState.QUEUED], "running": t.units[TaskState.RUNNING]}


def minute_json(m: Minute) -> dict[str, Any]:
    return {"t": m.start, "finished": m.finished, "failed": m.failed}

