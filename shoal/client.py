"""A small synchronous client for the head node's API (the CLI is built on it).

Errors come out as RequestFailed (the head answered with a status) or HeadUnreachable
(nothing answered at the address); both carry one line fit to show a user.
"""

from __future__ import annotations

import getpass
from collections.abc import Callable, Iterator, Mapping
from typing import Any, TypeVar

import grpc

from common.ids import TaskId
from shoal.v1 import admin_pb2, admin_pb2_grpc, common_pb2, jobs_pb2, jobs_pb2_grpc

USER_METADATA = "shoal-user"
T = TypeVar("T")


class RequestFailed(Exception):
    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class HeadUnreachable(RequestFailed):
    pass


def task_spec(
    command_line: str,
    *,
    name: str = "",
    cores: int | None = None,
    memory_mb: int | None = None,
    environment: Mapping[str, str] | None = None,
    working_directory: str = "",
) -> jobs_pb2.TaskSpec:
    spec = jobs_pb2.TaskSpec(
        name=name,
        command_line=command_line,
        environment=dict(environment or {}),
        working_directory=working_directory,
    )
    if cores is not None:
        spec.resources.cores = cores
    if memory_mb is not None:
        spec.resources.memory_mb = memory_mb
    return spec


class Client:
    def __init__(self, address: str, user: str | None = None, timeout: float = 30.0) -> None:
        self.address = address
        self.timeout = timeout
        self._channel = grpc.insecure_channel(address)
        self._jobs = jobs_pb2_grpc.JobServiceStub(self._channel)
        self._admin = admin_pb2_grpc.AdminServiceStub(self._channel)
        self._metadata = ((USER_METADATA, user or getpass.getuser()),)

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- jobs ------------------------------------------------------------------------------

    def submit(self, spec: jobs_pb2.JobSpec) -> int:
        return self._unary(self._jobs.SubmitJob, jobs_pb2.SubmitJobRequest(spec=spec)).job_id

    def get_job(self, job_id: int, full: bool = True) -> jobs_pb2.Job:
        view = jobs_pb2.JOB_VIEW_FULL if full else jobs_pb2.JOB_VIEW_SUMMARY
        return self._unary(self._jobs.GetJob, jobs_pb2.GetJobRequest(job_id=job_id, view=view))

    def list_jobs(self, states: tuple[int, ...] = (), owner: str = "", page_size: int = 0) -> Iterator[jobs_pb2.Job]:
        token = ""
        while True:
            page = self._unary(self._jobs.ListJobs, jobs_pb2.ListJobsRequest(
                states=states, owner=owner, page_size=page_size, page_token=token))
            yield from page.jobs
            token = page.next_page_token
            if not token:
                return

    def cancel_job(self, job_id: int, reason: str = "") -> jobs_pb2.Job:
        return self._unary(self._jobs.CancelJob, jobs_pb2.CancelJobRequest(job_id=job_id, reason=reason))

    def watch_job(self, job_id: int) -> Iterator[jobs_pb2.JobEvent]:
        return self._stream(self._jobs.WatchJob, jobs_pb2.WatchJobRequest(job_id=job_id))

    def wait_job(self, job_id: int) -> jobs_pb2.Job:
        """Block until the job ends; returns its final full view."""
        for _ in self.watch_job(job_id):
            pass
        return self.get_job(job_id)

    def read_output(
        self, task: TaskId, stderr: bool = False, offset: int = 0, follow: bool = False
    ) -> Iterator[bytes]:
        request = jobs_pb2.ReadOutputRequest(
            task=common_pb2.TaskRef(job_id=task.job, task_id=task.task, instance_id=task.instance),
            stream=common_pb2.OUTPUT_STREAM_STDERR if stderr else common_pb2.OUTPUT_STREAM_STDOUT,
            offset=offset,
            follow=follow,
        )
        for chunk in self._stream(self._jobs.ReadOutput, request):
            yield chunk.data

    # -- nodes -----------------------------------------------------------------------------

    def list_nodes(self) -> list[admin_pb2.Node]:
        return list(self._unary(self._admin.ListNodes, admin_pb2.ListNodesRequest()).nodes)

    # -- plumbing --------------------------------------------------------------------------

    def _unary(self, method: Callable[..., T], request: Any) -> T:
        try:
            return method(request, timeout=self.timeout, metadata=self._metadata)
        except grpc.RpcError as e:
            raise self._translate(e) from None

    def _stream(self, method: Callable[..., Any], request: Any) -> Iterator[Any]:
        call = method(request, metadata=self._metadata)
        try:
            yield from call
        except grpc.RpcError as e:
            raise self._translate(e) from None
        finally:
            call.cancel()

    def _translate(self, e: grpc.RpcError) -> RequestFailed:
        code = e.code() if hasattr(e, "code") else grpc.StatusCode.UNKNOWN
        details = (e.details() if hasattr(e, "details") else "") or code.name
        if code == grpc.StatusCode.UNAVAILABLE:
            return HeadUnreachable(code, f"cannot reach the head node at {self.address} ({_short(details)})")
        if code == grpc.StatusCode.DEADLINE_EXCEEDED:
            return HeadUnreachable(code, f"the head node at {self.address} did not answer within {self.timeout:g}s")
        return RequestFailed(code, details)


def _short(details: str) -> str:
    # grpc's connection errors are long; keep the part a person can act on.
    lowered = details.lower()
    if "connection refused" in lowered:
        return "connection refused: is `shoal head` running there? set --head or SHOAL_HEAD"
    if "dns" in lowered or "resolve" in lowered:
        return "the host name does not resolve"
    return details.splitlines()[0][:200]
