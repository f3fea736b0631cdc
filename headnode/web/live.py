"""The dashboard's push streams: server-sent events, so pages change without polling.

`/api/events?topics=jobs,cluster,nodes` is one stream per open page. `jobs` relays the
WatchJobs servicer (batched, so only jobs the caller may see, gathered for up to
BATCH_WINDOW seconds into one message); `cluster` sends the newest sample at each of the
history's samples; `nodes` the node list at the same beat. `/api/jobs/{id}/tasks/{task}/output`
relays ReadOutput with follow, as text. A comment line every KEEPALIVE seconds keeps proxies
from closing an idle stream and finds a browser that has gone (aiohttp does not cancel a
handler when its client leaves; the next write fails).
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import json
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

from aiohttp import web

from common.errors import InvalidArgument, ShoalError
from headnode.web.context import Refused
from headnode.web.routes import (
    Api,
    int_param,
    json_errors,
    minute_json,
    path_int,
    point_json,
    refusal,
    to_json,
    totals_json,
)
from shoal.v1 import admin_pb2, common_pb2, jobs_pb2

KEEPALIVE = 10.0
BATCH_WINDOW = 0.2
TOPICS = ("jobs", "cluster", "nodes")
Send = Callable[[str, Any], Coroutine[Any, Any, None]]


async def _open(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store",
                                           "X-Accel-Buffering": "no"})
    await response.prepare(request)
    return response


def _frame(event: str, data: Any) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


def live_routes(api: Api) -> list[web.RouteDef]:
    async def events(request: web.Request) -> web.StreamResponse:
        topics = [t for t in request.query.get("topics", "jobs,cluster").split(",") if t]
        if unknown := [t for t in topics if t not in TOPICS]:
            raise InvalidArgument(f"unknown topic {unknown[0]!r}: topics are {', '.join(TOPICS)}")
        ctx, _ = api.user(request)  # refused here, before the stream opens, gets a plain JSON error
        response = await _open(request)
        outbox: asyncio.Queue[bytes] = asyncio.Queue(maxsize=256)

        async def send(event: str, data: Any) -> None:
            await outbox.put(_frame(event, data))

        feeds = {"jobs": lambda: _jobs(api, ctx, send), "cluster": lambda: _cluster(api, send),
                 "nodes": lambda: _nodes(api, ctx, send)}
        workers = [asyncio.create_task(feeds[t]()) for t in topics]
        try:
            await response.write(b": connected\n\n")
            while True:
                try:
                    frame = await asyncio.wait_for(outbox.get(), KEEPALIVE)
                except TimeoutError:
                    frame = b": keepalive\n\n"
                await response.write(frame)
        except (ConnectionError, asyncio.CancelledError):
            pass  # the browser left, or the head node is stopping
        finally:
            for w in workers:
                w.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
        return response

    async def output(request: web.Request) -> web.StreamResponse:
        stream = request.query.get("stream", "stdout")
        if stream not in ("stdout", "stderr"):
            raise InvalidArgument(f"stream must be stdout or stderr, got {stream!r}")
        ref = common_pb2.TaskRef(job_id=path_int(request, "id"), task_id=path_int(request, "task"),
                                 instance_id=int_param(request, "instance", 0, 0, 2**31 - 1))
        msg = jobs_pb2.ReadOutputRequest(
            task=ref, offset=int_param(request, "offset", 0), follow=True,
            stream=common_pb2.OUTPUT_STREAM_STDERR if stream == "stderr" else common_pb2.OUTPUT_STREAM_STDOUT)
        ctx = api.context(request)
        # Checked before the stream opens, so a refusal is a plain HTTP error; ReadOutput checks
        # again, and what it refuses later (no such task) comes as an `error` event.
        api.auth.may_read_output(ctx, api.queue.cluster.job(ref.job_id))  # type: ignore[arg-type]
        chunks = aiter(api.jobs.ReadOutput(msg, ctx))
        response = await _open(request)
        decoder = codecs.getincrementaldecoder("utf-8")("replace")
        try:
            await response.write(b": following\n\n")
            async for chunk in _with_keepalive(chunks, response):
                await response.write(_frame("chunk", {"offset": chunk.offset, "text": decoder.decode(chunk.data)}))
            await response.write(_frame("end", {}))
        except (Refused, ShoalError) as exc:
            with contextlib.suppress(ConnectionError):
                await response.write(_frame("error", refusal(exc).body()))
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            await chunks.aclose()  # type: ignore[attr-defined]
        return response

    return [web.get("/api/events", json_errors(events)),
            web.get("/api/jobs/{id}/tasks/{task}/output", json_errors(output))]


async def _with_keepalive(items: AsyncIterator[Any], response: web.StreamResponse) -> AsyncIterator[Any]:
    """The items, writing a keepalive comment whenever none came for KEEPALIVE seconds."""
    pending = asyncio.ensure_future(anext(items, StopAsyncIteration))
    try:
        while True:
            done, _ = await asyncio.wait({pending}, timeout=KEEPALIVE)
            if not done:
                await response.write(b": keepalive\n\n")
                continue
            item = pending.result()
            if item is StopAsyncIteration:
                return
            yield item
            pending = asyncio.ensure_future(anext(items, StopAsyncIteration))
    finally:
        pending.cancel()


async def _jobs(api: Api, ctx: Any, send: Send) -> None:
    stream = api.jobs.WatchJobs(jobs_pb2.WatchJobsRequest(batched=True), ctx)
    batch: list[dict[str, Any]] = []
    flush: asyncio.Task[None] | None = None

    async def later() -> None:
        await asyncio.sleep(BATCH_WINDOW)
        out = batch[:]
        batch.clear()
        await send("jobs", out)

    try:
        async for msg in stream:
            more = list(msg.more)
            msg.ClearField("more")
            batch.extend(to_json(m) for m in [msg, *more])
            if flush is None or flush.done():
                flush = asyncio.create_task(later())
    except (Refused, ShoalError) as exc:
        await send("error", refusal(exc).body())
    finally:
        if flush is not None:
            flush.cancel()
        await stream.aclose()


async def _cluster(api: Api, send: Send) -> None:
    history = api.history
    while True:
        await history.changed().wait()
        latest = history.latest
        if latest is None:
            continue
        body = totals_json(latest)
        body["point"] = point_json(latest)
        body["minute"] = minute_json(history.last_hour(latest.time)[-1])
        await send("cluster", body)


async def _nodes(api: Api, ctx: Any, send: Send) -> None:
    while True:
        await api.history.changed().wait()
        try:
            await send("nodes", to_json(await api.admin.ListNodes(admin_pb2.ListNodesRequest(), ctx)))
        except (Refused, ShoalError) as exc:
            await send("error", refusal(exc).body())
            return
