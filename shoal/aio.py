"""The SDK's asyncio client: the same calls as shoal.client.Client, awaited, over grpc.aio.

    import asyncio
    from shoal.aio import AsyncClient
    from shoal.client import task_spec
    from shoal.v1 import jobs_pb2

    async def main():
        async with AsyncClient("head:7676") as client:
            job_id = await client.submit(jobs_pb2.JobSpec(tasks=[task_spec("hostname")]))
            async for event in client.watch_job(job_id):
                print(event.job_state, event.reason)

    asyncio.run(main())

Errors are the sync client's: RequestFailed (with `.code`, a grpc.StatusCode) and
HeadUnreachable. Streams (`watch_jobs`, `watch_job`, `read_output`, the list calls) are async
iterators; leaving the loop early cancels the call. The followers (`wait_job`, `watch_job`,
`watch_jobs`, `read_output(follow=True)`) ride out a head node's restart or a failover to a
standby as the sync client's do, carrying on from where they were (shoal.resume).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from typing import Any, TypeVar

import grpc
from google.protobuf import field_mask_pb2

from common.addr import channel
from common.ids import TaskId
from common.tls import Files
from shoal.client import LIST_PAGE, USER_METADATA, in_batches, os_user, ref
from shoal.errors import HeadUnreachable, RequestFailed, translate
from shoal.resume import ENDED_JOB_STATES, RECONNECT_FOR, JobsCursor, Outage, ended, in_order
from shoal.v1 import admin_pb2, admin_pb2_grpc, common_pb2, jobs_pb2, jobs_pb2_grpc

T = TypeVar("T")


class AsyncClient:
    def __init__(self, address: str = "", user: str | None = None, timeout: float = 30.0,
                 tls: Files | None = None, token: str | None = None) -> None:
        """As shoal.client.Client; `address` defaults to $SHOAL_HEAD, else localhost:7676."""
        tls = tls if tls is not None else Files.from_env()
        token = token if token is not None else os.environ.get("SHOAL_TOKEN") or None
        self.address = address or os.environ.get("SHOAL_HEAD") or "localhost:7676"
        self.timeout = timeout
        self._channel = channel(self.address, tls, aio=True)
        self._jobs = jobs_pb2_grpc.JobServiceStub(self._channel)
        self._admin = admin_pb2_grpc.AdminServiceStub(self._channel)
        self._metadata: tuple[tuple[str, str], ...] = ((USER_METADATA, user or os_user()),)
        if token:
            self._metadata += (("authorization", f"Bearer {token}"),)

    async def close(self) -> None:
        await self._channel.close()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- jobs ------------------------------------------------------------------------------

    async def submit(self, spec: jobs_pb2.JobSpec) -> int:
        """Create, add the tasks and queue, in one call (a job too large for one request goes
        in batches, as Client.submit says)."""
        split = in_batches(spec)
        if split is None:
            return (await self._unary(self._jobs.SubmitJob, jobs_pb2.SubmitJobRequest(spec=spec))).job_id
        bare, batches = split
        job_id = (await self.create_job(bare)).id
        try:
            for batch in batches:
                await self.add_tasks(job_id, *batch)
            return await self.submit_existing(job_id)
        except BaseException:
            with contextlib.suppress(RequestFailed, HeadUnreachable):
                await self.cancel_job(job_id, "its submission in batches failed")
            raise

    async def submit_many(self, specs: Sequence[jobs_pb2.JobSpec], batch: int = 1000) -> list[int]:
        """Queue many jobs, `batch` per call (each call is one durable step: all or none)."""
        ids: list[int] = []
        for start in range(0, max(len(specs), 1), batch):
            request = jobs_pb2.SubmitJobsRequest(specs=specs[start:start + batch])
            ids.extend((await self._unary(self._jobs.SubmitJobs, request)).job_ids)
        return ids

    async def submit_each(self, specs: Iterable[jobs_pb2.JobSpec], window: int = 32) -> list[int]:
        """Each job a request of its own on one SubmitJobStream call, up to `window` unanswered;
        ids in the order of `specs`. As the sync client's: one refused raises RequestFailed,
        the jobs before it queued (their ids in its `queued`), none after it."""
        room = asyncio.Semaphore(window)

        async def requests() -> AsyncIterator[jobs_pb2.SubmitJobRequest]:
            for spec in specs:
                await room.acquire()
                yield jobs_pb2.SubmitJobRequest(spec=spec)

        ids: list[int] = []
        try:
            async for response in self._jobs.SubmitJobStream(requests(), metadata=self._metadata):
                ids.extend(response.job_ids)
                for _ in response.job_ids:
                    room.release()
        except grpc.RpcError as e:
            failed = translate(e, self.address, self.timeout)
            failed.queued = ids
            raise failed from None
        return ids

    async def submit_existing(self, job_id: int) -> int:
        return (await self._unary(self._jobs.SubmitJob, jobs_pb2.SubmitJobRequest(job_id=job_id))).job_id

    async def create_job(self, spec: jobs_pb2.JobSpec) -> jobs_pb2.Job:
        return await self._unary(self._jobs.CreateJob, jobs_pb2.CreateJobRequest(spec=spec))

    async def add_tasks(self, job_id: int, *tasks: jobs_pb2.TaskSpec) -> list[int]:
        reply = await self._unary(self._jobs.AddTasks, jobs_pb2.AddTasksRequest(job_id=job_id, tasks=tasks))
        return list(reply.task_ids)

    async def modify_task(self, task: TaskId, spec: jobs_pb2.TaskSpec, fields: list[str] | None = None
                          ) -> jobs_pb2.Task:
        request = jobs_pb2.ModifyTaskRequest(task=ref(task), spec=spec,
                                             update_mask=field_mask_pb2.FieldMask(paths=fields or []))
        return await self._unary(self._jobs.ModifyTask, request)

    async def get_job(self, job_id: int, full: bool = True) -> jobs_pb2.Job:
        view = jobs_pb2.JOB_VIEW_FULL if full else jobs_pb2.JOB_VIEW_SUMMARY
        return await self._unary(self._jobs.GetJob, jobs_pb2.GetJobRequest(job_id=job_id, view=view))

    async def get_task(self, task: TaskId) -> jobs_pb2.Task:
        return await self._unary(self._jobs.GetTask, jobs_pb2.GetTaskRequest(task=ref(task)))

    async def list_jobs(self, states: tuple[int, ...] = (), owner: str = "", page_size: int = 0, name: str = ""
                        ) -> AsyncIterator[jobs_pb2.Job]:
        token = ""
        while True:
            page = await self._unary(self._jobs.ListJobs, jobs_pb2.ListJobsRequest(
                states=states, owner=owner, page_size=page_size, page_token=token, name=name))
            for job in page.jobs:
                yield job
            token = page.next_page_token
            if not token:
                return

    async def list_instances(self, job_id: int, task: int = 0, states: tuple[int, ...] = ()
                             ) -> AsyncIterator[jobs_pb2.Instance]:
        request = jobs_pb2.ListTasksRequest(job_id=job_id, task_id=task, states=states, instances=True)
        while True:
            page = await self._unary(self._jobs.ListTasks, request)
            for inst in page.instances:
                yield inst
            if not page.next_page_token:
                return
            request.page_token = page.next_page_token

    async def cancel_job(self, job_id: int, reason: str = "") -> jobs_pb2.Job:
        return await self._unary(self._jobs.CancelJob, jobs_pb2.CancelJobRequest(job_id=job_id, reason=reason))

    async def clone_job(self, job_id: int) -> jobs_pb2.Job:
        return await self._unary(self._jobs.CloneJob, jobs_pb2.JobRequest(job_id=job_id))

    async def requeue_job(self, job_id: int) -> jobs_pb2.Job:
        return await self._unary(self._jobs.RequeueJob, jobs_pb2.RequeueJobRequest(job_id=job_id))

    def watch_job(self, job_id: int, job_events_only: bool = False,
                  reconnect_for: float = RECONNECT_FOR) -> AsyncIterator[jobs_pb2.JobEvent]:
        """The job's history so far, then each change, until it ends (the job's own changes
        alone with `job_events_only`). Rides out a head node's restart or a failover as the
        sync client's does: the history replayed again, what was delivered (by `seq`) dropped."""
        outage = Outage(self.address, f"watching job {job_id}", reconnect_for)
        return self._watch_job(job_id, job_events_only, outage, JobsCursor())

    async def _watch_job(self, job_id: int, job_events_only: bool, outage: Outage,
                         cursor: JobsCursor) -> AsyncIterator[jobs_pb2.JobEvent]:
        request = jobs_pb2.WatchJobRequest(job_id=job_id, job_events_only=job_events_only)
        while True:
            last = None
            try:
                async for last in self._stream(self._jobs.WatchJob(request, metadata=self._metadata)):
                    outage.answered()
                    if cursor.admit(last):
                        yield last
                if last is not None and ended(last):
                    return
                error = HeadUnreachable(grpc.StatusCode.UNAVAILABLE, f"the watch of job {job_id} ended early")
            except HeadUnreachable as e:
                error = e
            await asyncio.sleep(outage.delay(error))

    async def watch_jobs(self, owner: str = "", job_events_only: bool = False, ends_only: bool = False,
                         reconnect_for: float = RECONNECT_FOR) -> AsyncIterator[jobs_pb2.JobEvent]:
        """Every change to every job (of this owner) from the moment this returns:
        `events = await client.watch_jobs()`, then `async for event in events` (jobs' own
        changes alone with `job_events_only`, jobs' changes into an end state with `ends_only`).
        No head node answering fails this call at once; the events then ride out a restart or
        a failover as the sync client's do (shoal.resume.JobsCursor)."""
        request = jobs_pb2.WatchJobsRequest(owner=owner, batched=True, job_events_only=job_events_only,
                                            ends_only=ends_only)
        cursor = JobsCursor(time.time(), job_events_only, ends_only)
        call = await self._subscribe(request)
        return self._watching(request, call, cursor, Outage(self.address, "watching jobs", reconnect_for))

    async def _subscribe(self, request: jobs_pb2.WatchJobsRequest) -> Any:
        """A WatchJobs call with the watch in place (the head then sends initial metadata)."""
        call = self._jobs.WatchJobs(request, metadata=self._metadata)
        await call.initial_metadata()
        if call.done():  # it failed: reading it raises the error
            async for _ in self._stream(call):
                pass
            raise HeadUnreachable(grpc.StatusCode.UNAVAILABLE, "the watch of jobs ended")
        return call

    async def _watching(self, request: jobs_pb2.WatchJobsRequest, call: Any, cursor: JobsCursor,
                        outage: Outage) -> AsyncIterator[jobs_pb2.JobEvent]:
        missed: list[jobs_pb2.JobEvent] = []
        try:
            while True:
                try:
                    for event in missed:
                        if cursor.admit(event):
                            yield event
                    async for event in self._unbatched(self._stream(call)):
                        if cursor.admit(event):
                            yield event
                    error = HeadUnreachable(grpc.StatusCode.UNAVAILABLE, "the watch of jobs ended")
                except HeadUnreachable as e:
                    error = e
                while True:  # wait for a head node, subscribe again, re-read what was missed
                    call.cancel()
                    await asyncio.sleep(outage.delay(error))
                    try:
                        call = await self._subscribe(request)
                        outage.answered()
                        missed = await self._missed(cursor, request.owner)
                        break
                    except HeadUnreachable as e:
                        error = e
        finally:
            call.cancel()

    async def _missed(self, cursor: JobsCursor, owner: str) -> list[jobs_pb2.JobEvent]:
        """The changes a watch of every job missed while no head node answered (JobsCursor)."""
        events: list[jobs_pb2.JobEvent] = []
        for job_id in cursor.changed([job async for job in self.list_jobs(owner=owner, page_size=LIST_PAGE)]):
            try:
                events += cursor.missed(await self.get_job(job_id))
            except RequestFailed as e:
                if e.code != grpc.StatusCode.NOT_FOUND:  # purged meanwhile: nothing to show
                    raise
        return in_order(events)

    async def wait_job(self, job_id: int, reconnect_for: float = RECONNECT_FOR) -> jobs_pb2.Job:
        """Wait until the job ends; returns its final full view. Rides out a head node's
        restart or a failover, from the start or on the way, as the sync client's does."""
        outage, cursor = Outage(self.address, f"waiting for job {job_id}", reconnect_for), JobsCursor()
        while True:
            async for _ in self._watch_job(job_id, True, outage, cursor):
                pass
            job = await self._patiently(lambda: self.get_job(job_id), outage)
            if job.state in ENDED_JOB_STATES:
                return job

    def read_output(self, task: TaskId, stderr: bool = False, offset: int = 0, follow: bool = False,
                    reconnect_for: float = RECONNECT_FOR) -> AsyncIterator[bytes]:
        """As the sync client's: a follow rides out a head node's restart or a failover and
        reads on from the byte it had got to."""
        request = jobs_pb2.ReadOutputRequest(
            task=ref(task), offset=offset, follow=follow,
            stream=common_pb2.OUTPUT_STREAM_STDERR if stderr else common_pb2.OUTPUT_STREAM_STDOUT)
        outage = Outage(self.address, f"following the output of task {task}", reconnect_for if follow else 0)
        return self._output(request, task, outage)

    async def _output(self, request: jobs_pb2.ReadOutputRequest, task: TaskId,
                      outage: Outage) -> AsyncIterator[bytes]:
        while True:
            try:
                async for chunk in self._stream(self._jobs.ReadOutput(request, metadata=self._metadata)):
                    request.offset = chunk.offset + len(chunk.data)
                    yield chunk.data
                return
            except HeadUnreachable as e:
                await asyncio.sleep(outage.delay(e))
            await self._patiently(lambda: self.get_task(task), outage)  # a head node answers again

    # -- nodes -----------------------------------------------------------------------------

    async def list_nodes(self) -> list[admin_pb2.Node]:
        return list((await self._unary(self._admin.ListNodes, admin_pb2.ListNodesRequest())).nodes)

    # -- plumbing --------------------------------------------------------------------------

    async def _unary(self, method: Callable[..., Awaitable[T]], request: Any) -> T:
        try:
            return await method(request, timeout=self.timeout, metadata=self._metadata)
        except grpc.RpcError as e:
            raise translate(e, self.address, self.timeout) from None

    async def _patiently(self, call: Callable[[], Awaitable[T]], outage: Outage) -> T:
        """`await call()`, tried again while no head node answers, within the outage's budget."""
        while True:
            try:
                result = await call()
            except HeadUnreachable as e:
                await asyncio.sleep(outage.delay(e))
                continue
            outage.answered()
            return result

    async def _stream(self, call: Any) -> AsyncIterator[Any]:
        try:
            async for item in call:
                yield item
        except grpc.RpcError as e:
            raise translate(e, self.address, self.timeout) from None
        finally:
            call.cancel()

    @staticmethod
    async def _unbatched(events: AsyncIterator[jobs_pb2.JobEvent]) -> AsyncIterator[jobs_pb2.JobEvent]:
        async for event in events:
            more = list(event.more)
            event.ClearField("more")
            yield event
            for extra in more:
                yield extra
