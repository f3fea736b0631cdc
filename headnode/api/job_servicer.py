"""JobService: from_proto -> QueueService / OutputStore -> to_proto. Nothing else."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc

from common.errors import InvalidArgument
from common.wire import STREAM_NAMES, task_id
from headnode.api import convert
from headnode.api.errors import maps_errors
from headnode.api.identity import caller
from headnode.services.output import OutputStore
from headnode.services.queue import QueueService
from shoal.v1 import jobs_pb2, jobs_pb2_grpc


@maps_errors
class JobServicer(jobs_pb2_grpc.JobServiceServicer):
    def __init__(self, queue: QueueService, output: OutputStore) -> None:
        self.queue = queue
        self.output = output

    async def SubmitJob(self, request: jobs_pb2.SubmitJobRequest, context: grpc.aio.ServicerContext):
        job_id = await self.queue.submit(convert.job_spec(request.spec), caller(context))
        return jobs_pb2.SubmitJobResponse(job_id=job_id)

    async def GetJob(self, request: jobs_pb2.GetJobRequest, context: grpc.aio.ServicerContext):
        full = request.view != jobs_pb2.JOB_VIEW_SUMMARY
        return convert.job_details_msg(await self.queue.details(request.job_id, full))

    async def ListJobs(self, request: jobs_pb2.ListJobsRequest, context: grpc.aio.ServicerContext):
        jobs, token = self.queue.list_jobs(
            convert.job_states(list(request.states)), request.owner, request.page_size, request.page_token
        )
        return jobs_pb2.ListJobsResponse(
            jobs=[convert.job_msg(j, self.queue.job_pending_reason(j)) for j in jobs], next_page_token=token
        )

    async def CancelJob(self, request: jobs_pb2.CancelJobRequest, context: grpc.aio.ServicerContext):
        job = await self.queue.cancel(request.job_id, caller(context), request.reason)
        return convert.job_msg(job)

    async def WatchJob(
        self, request: jobs_pb2.WatchJobRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[jobs_pb2.JobEvent]:
        async for event in self.queue.watch(request.job_id):
            yield convert.job_event_msg(event)

    async def ReadOutput(
        self, request: jobs_pb2.ReadOutputRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[jobs_pb2.OutputChunk]:
        if request.offset < 0:
            raise InvalidArgument(f"offset must be >= 0, got {request.offset}")
        task = self.queue.task_for_output(task_id(request.task))
        stream = STREAM_NAMES.get(request.stream, "stdout")
        async for offset, data in self.output.read(task.id, stream, request.offset, request.follow):
            yield jobs_pb2.OutputChunk(offset=offset, data=data)
