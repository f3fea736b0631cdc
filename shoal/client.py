"""A small synchronous client for the head node's API (the CLI is built on it).

Errors come out as RequestFailed (the head answered with a status) or HeadUnreachable
(nothing answered at the address); both carry one line fit to show a user (shoal.errors).
The followers (`wait_job`, `watch_job`, `watch_jobs`, `read_output(follow=True)`) ride out a
head node's restart or a failover to a standby, carrying on from where they were (shoal.resume).
"""

from __future__ import annotations

import contextlib
import itertools
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, TypeVar

import grpc
from google.protobuf import field_mask_pb2

from common.addr import channel
from common.ids import TaskId
from common.tls import Files
from shoal.errors import HeadUnreachable, RequestFailed, translate
from shoal.resume import ENDED_JOB_STATES, RECONNECT_FOR, JobsCursor, Outage, ended, in_order
from shoal.v1 import (
    admin_pb2,
    admin_pb2_grpc,
    common_pb2,
    jobs_pb2,
    jobs_pb2_grpc,
    templates_pb2,
    templates_pb2_grpc,
)

__all__ = ["ENDED_JOB_STATES", "USER_METADATA", "Client", "HeadUnreachable", "RequestFailed", "os_user", "ref",
           "task_spec", "translate", "unbatched"]

USER_METADATA = "shoal-user"
LIST_PAGE = 10_000  # the largest page ListJobs sends
# The head takes requests of at most 8 MiB (headnode/api/server.py): a larger job goes in batches.
SUBMIT_MOST = 7 << 20
ADD_MOST = 4 << 20


def in_batches(spec: jobs_pb2.JobSpec) -> tuple[jobs_pb2.JobSpec, list[list[jobs_pb2.TaskSpec]]] | None:
    """A job too large for one request, as the job without its tasks and its tasks in batches
    of at most ADD_MOST bytes (in order); None when it fits in one (Client.submit)."""
    if spec.ByteSize() <= SUBMIT_MOST or len(spec.tasks) < 2:
        return None
    bare = jobs_pb2.JobSpec()
    bare.CopyFrom(spec)
    del bare.tasks[:]
    batches: list[list[jobs_pb2.TaskSpec]] = [[]]
    size = 0
    for task in spec.tasks:
        if batches[-1] and size + task.ByteSize() > ADD_MOST:
            batches.append([])
            size = 0
        batches[-1].append(task)
        size += task.ByteSize() + 8  # its tag and length
    return bare, batches
T = TypeVar("T")


def task_spec(
    command_line: str,
    *,
    name: str = "",
    cores: int | None = None,
    max_cores: int = 0,
    memory_mb: int | None = None,
    environment: Mapping[str, str] | None = None,
    working_directory: str = "",
    depends_on: tuple[str, ...] | list[str] = (),
    sweep: tuple[int, int, int] | None = None,
    instances: int = 0,
    runtime_limit: float = 0.0,
    valid_exit_codes: str = "",
    stdin_path: str = "",
    stdout_path: str = "",
    stderr_path: str = "",
    exclusive: bool = False,
    rerunnable: bool | None = None,
    max_retries: int | None = None,
) -> jobs_pb2.TaskSpec:
    """A TaskSpec with the given fields set (and the others left unset, i.e. defaults)."""
    spec = jobs_pb2.TaskSpec(
        name=name,
        command_line=command_line,
        environment=dict(environment or {}),
        working_directory=working_directory,
        max_cores=max_cores,
        depends_on=list(depends_on),
        instances=instances,
        valid_exit_codes=valid_exit_codes,
        stdin_path=stdin_path,
        stdout_path=stdout_path,
        stderr_path=stderr_path,
        exclusive=exclusive,
    )
    if cores is not None:
        spec.resources.cores = cores
    if memory_mb is not None:
        spec.resources.memory_mb = memory_mb
    if sweep is not None:
        spec.sweep.CopyFrom(jobs_pb2.ParametricSweep(start=sweep[0], end=sweep[1], step=sweep[2]))
    if runtime_limit:
        spec.runtime_limit.FromNanoseconds(int(runtime_limit * 1e9))
    if rerunnable is not None:
        spec.rerunnable = rerunnable
    if max_retries is not None:
        spec.max_retries = max_retries
    return spec


def os_user() -> str:
    """The OS user, as getpass.getuser() finds it ($LOGNAME, $USER, $LNAME, $USERNAME, else the
    password database), without importing getpass and the terminal modules it brings (a few
    milliseconds of every `shoal` command's start-up)."""
    for name in ("LOGNAME", "USER", "LNAME", "USERNAME"):
        if user := os.environ.get(name):
            return user
    import pwd

    return pwd.getpwuid(os.getuid()).pw_name


class Client:
    def __init__(self, address: str, user: str | None = None, timeout: float = 30.0, tls: Files | None = None,
                 token: str | None = None) -> None:
        """`tls`: the cluster CA (and this user's certificate) for a TLS head node; `token`: a
        user token (`shoal user token`). Neither: plaintext, where `user` (default: the OS
        user) is trusted as sent, for local development clusters. Unset, they are taken from
        $SHOAL_CA (with $SHOAL_CERT and $SHOAL_KEY) and $SHOAL_TOKEN."""
        tls = tls if tls is not None else Files.from_env()
        token = token if token is not None else os.environ.get("SHOAL_TOKEN") or None
        self.address = address
        self.timeout = timeout
        self._channel = channel(address, tls)
        self._jobs = jobs_pb2_grpc.JobServiceStub(self._channel)
        self._admin = admin_pb2_grpc.AdminServiceStub(self._channel)
        self._templates = templates_pb2_grpc.TemplateServiceStub(self._channel)
        self._metadata: tuple[tuple[str, str], ...] = ((USER_METADATA, user or os_user()),)
        if token:
            self._metadata += (("authorization", f"Bearer {token}"),)

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- jobs ------------------------------------------------------------------------------

    def submit(self, spec: jobs_pb2.JobSpec) -> int:
        """Create, add the tasks and queue, in one call (HPC Pack's QueueJob). A job too large
        for one request (the head takes at most 8 MiB: ~80,000 tasks of short commands) is
        made Configuring, given its tasks in batches and then queued; if a step fails, the
        Configuring job is cancelled and the error raised."""
        split = in_batches(spec)
        if split is None:
            return self._unary(self._jobs.SubmitJob, jobs_pb2.SubmitJobRequest(spec=spec)).job_id
        bare, batches = split
        job_id = self.create_job(bare).id
        try:
            for batch in batches:
                self.add_tasks(job_id, *batch)
            return self.submit_existing(job_id)
        except BaseException:
            with contextlib.suppress(RequestFailed, HeadUnreachable):
                self.cancel_job(job_id, "its submission in batches failed")
            raise

    def submit_many(self, specs: Sequence[jobs_pb2.JobSpec], batch: int = 1000) -> list[int]:
        """Queue many jobs, `batch` per call (each call is one durable step: all or none)."""
        ids: list[int] = []
        for start in range(0, max(len(specs), 1), batch):  # an empty list is refused by the head
            request = jobs_pb2.SubmitJobsRequest(specs=specs[start:start + batch])
            ids.extend(self._unary(self._jobs.SubmitJobs, request).job_ids)
        return ids

    def submit_each(self, specs: Iterable[jobs_pb2.JobSpec], window: int = 32) -> list[int]:
        """Queue each job as a request of its own on one SubmitJobStream call, with up to
        `window` unanswered; returns the ids in the order of `specs`. Each answered job is
        durable (the head node writes those that arrive together in one step). One refused
        stops the rest: RequestFailed is raised, every job before it queued (their ids in its
        `queued`), none after it."""
        room = threading.Semaphore(window)
        stop = threading.Event()

        def requests() -> Iterator[jobs_pb2.SubmitJobRequest]:
            # On grpc's thread, which waits here for room: so at most `window` are unanswered.
            for spec in specs:
                room.acquire()
                if stop.is_set():
                    return
                yield jobs_pb2.SubmitJobRequest(spec=spec)

        ids: list[int] = []
        call = self._jobs.SubmitJobStream(requests(), metadata=self._metadata)
        try:
            for response in call:
                ids.extend(response.job_ids)
                for _ in response.job_ids:
                    room.release()
        except grpc.RpcError as e:
            failed = self._translate(e)
            failed.queued = ids
            raise failed from None
        finally:
            stop.set()
            room.release()  # a request generator waiting for room sees stop and ends
            call.cancel()  # done already, unless this thread was interrupted (Ctrl-C)
        return ids

    def submit_existing(self, job_id: int) -> int:
        """Queue a Configuring job."""
        return self._unary(self._jobs.SubmitJob, jobs_pb2.SubmitJobRequest(job_id=job_id)).job_id

    def create_job(self, spec: jobs_pb2.JobSpec) -> jobs_pb2.Job:
        return self._unary(self._jobs.CreateJob, jobs_pb2.CreateJobRequest(spec=spec))

    def add_tasks(self, job_id: int, *tasks: jobs_pb2.TaskSpec) -> list[int]:
        return list(self._unary(self._jobs.AddTasks, jobs_pb2.AddTasksRequest(job_id=job_id, tasks=tasks)).task_ids)

    def modify_task(self, task: TaskId, spec: jobs_pb2.TaskSpec, fields: list[str] | None = None) -> jobs_pb2.Task:
        request = jobs_pb2.ModifyTaskRequest(task=_ref(task), spec=spec,
                                             update_mask=field_mask_pb2.FieldMask(paths=fields or []))
        return self._unary(self._jobs.ModifyTask, request)

    def modify_job(self, job_id: int, spec: jobs_pb2.JobSpec, fields: list[str] | None = None) -> jobs_pb2.Job:
        request = jobs_pb2.ModifyJobRequest(job_id=job_id, spec=spec,
                                            update_mask=field_mask_pb2.FieldMask(paths=fields or []))
        return self._unary(self._jobs.ModifyJob, request)

    def get_task(self, task: TaskId) -> jobs_pb2.Task:
        return self._unary(self._jobs.GetTask, jobs_pb2.GetTaskRequest(task=_ref(task)))

    def list_tasks(self, job_id: int, task: int = 0, states: tuple[int, ...] = (), page_size: int = 0
                   ) -> Iterator[jobs_pb2.Task]:
        for page in self._pages(jobs_pb2.ListTasksRequest(job_id=job_id, task_id=task, states=states,
                                                          page_size=page_size)):
            yield from page.tasks

    def list_instances(self, job_id: int, task: int = 0, states: tuple[int, ...] = (), page_size: int = 0
                       ) -> Iterator[jobs_pb2.Instance]:
        for page in self._pages(jobs_pb2.ListTasksRequest(job_id=job_id, task_id=task, states=states,
                                                          instances=True, page_size=page_size)):
            yield from page.instances

    def _pages(self, request: jobs_pb2.ListTasksRequest) -> Iterator[jobs_pb2.ListTasksResponse]:
        while True:
            page = self._unary(self._jobs.ListTasks, request)
            yield page
            if not page.next_page_token:
                return
            request.page_token = page.next_page_token

    def cancel_task(self, task: TaskId, reason: str = "") -> jobs_pb2.Task:
        return self._unary(self._jobs.CancelTask, jobs_pb2.CancelTaskRequest(task=_ref(task), reason=reason))

    def requeue_job(self, job_id: int, tasks: list[TaskId] | None = None) -> jobs_pb2.Job:
        request = jobs_pb2.RequeueJobRequest(job_id=job_id, tasks=[_ref(t) for t in tasks or ()])
        return self._unary(self._jobs.RequeueJob, request)

    def configure_job(self, job_id: int) -> jobs_pb2.Job:
        return self._unary(self._jobs.ConfigureJob, jobs_pb2.JobRequest(job_id=job_id))

    def clone_job(self, job_id: int) -> jobs_pb2.Job:
        return self._unary(self._jobs.CloneJob, jobs_pb2.JobRequest(job_id=job_id))

    def hold_job(self, job_id: int, reason: str = "") -> jobs_pb2.Job:
        return self._unary(self._jobs.HoldJob, jobs_pb2.JobRequest(job_id=job_id, reason=reason))

    def release_job(self, job_id: int) -> jobs_pb2.Job:
        return self._unary(self._jobs.ReleaseJob, jobs_pb2.JobRequest(job_id=job_id))

    def watch_jobs(self, owner: str = "", job_events_only: bool = False, ends_only: bool = False,
                   reconnect_for: float = RECONNECT_FOR) -> Iterator[jobs_pb2.JobEvent]:
        """Every change to every job (of this owner) from the moment this returns; with
        `job_events_only`, jobs' own changes alone (their states), none of their tasks'; with
        `ends_only`, jobs' changes into an end state alone.

        No head node answering fails this call at once (HeadUnreachable). Once it has returned,
        the events ride out a head node's restart or a failover to a standby, waiting up to
        `reconnect_for` seconds for one to answer: the watch subscribes again and re-reads the
        jobs, and each change is shown once (shoal.resume.JobsCursor: how, and what a re-read
        cannot rebuild)."""
        request = jobs_pb2.WatchJobsRequest(owner=owner, batched=True, job_events_only=job_events_only,
                                            ends_only=ends_only)
        cursor = JobsCursor(time.time(), job_events_only, ends_only)
        call = self._subscribe(request)
        return self._watching(request, call, cursor, Outage(self.address, "watching jobs", reconnect_for))

    def _subscribe(self, request: jobs_pb2.WatchJobsRequest) -> Any:
        """A WatchJobs call with the watch in place (the head then sends initial metadata)."""
        call = self._jobs.WatchJobs(request, metadata=self._metadata)
        call.initial_metadata()
        if call.done():  # it failed (initial_metadata() returns rather than raises)
            raise self._translate(call)
        return call

    def _watching(self, request: jobs_pb2.WatchJobsRequest, call: Any, cursor: JobsCursor,
                  outage: Outage) -> Iterator[jobs_pb2.JobEvent]:
        missed: list[jobs_pb2.JobEvent] = []
        try:
            while True:
                try:
                    for event in itertools.chain(missed, unbatched(self._iterate(call))):
                        if cursor.admit(event):
                            yield event
                    error = HeadUnreachable(grpc.StatusCode.UNAVAILABLE, "the watch of jobs ended")
                except HeadUnreachable as e:
                    error = e
                while True:  # wait for a head node, subscribe again, re-read what was missed
                    call.cancel()
                    time.sleep(outage.delay(error))
                    try:
                        call = self._subscribe(request)
                        outage.answered()
                        missed = self._missed(cursor, request.owner)
                        break
                    except HeadUnreachable as e:
                        error = e
        finally:
            call.cancel()

    def _missed(self, cursor: JobsCursor, owner: str) -> list[jobs_pb2.JobEvent]:
        """The changes a watch of every job missed while no head node answered (JobsCursor)."""
        events: list[jobs_pb2.JobEvent] = []
        for job_id in cursor.changed(self.list_jobs(owner=owner, page_size=LIST_PAGE)):
            try:
                events += cursor.missed(self.get_job(job_id))
            except RequestFailed as e:
                if e.code != grpc.StatusCode.NOT_FOUND:  # purged meanwhile: nothing to show
                    raise
        return in_order(events)

    # -- templates -------------------------------------------------------------------------

    def create_template(self, template: templates_pb2.Template, replace: bool = False) -> templates_pb2.Template:
        request = templates_pb2.CreateTemplateRequest(template=template, replace=replace)
        return self._unary(self._templates.CreateTemplate, request)

    def get_template(self, name: str) -> templates_pb2.Template:
        return self._unary(self._templates.GetTemplate, templates_pb2.GetTemplateRequest(name=name))

    def list_templates(self) -> list[templates_pb2.Template]:
        return list(self._unary(self._templates.ListTemplates, templates_pb2.ListTemplatesRequest()).templates)

    def delete_template(self, name: str) -> None:
        self._unary(self._templates.DeleteTemplate, templates_pb2.DeleteTemplateRequest(name=name))

    def get_job(self, job_id: int, full: bool = True) -> jobs_pb2.Job:
        view = jobs_pb2.JOB_VIEW_FULL if full else jobs_pb2.JOB_VIEW_SUMMARY
        return self._unary(self._jobs.GetJob, jobs_pb2.GetJobRequest(job_id=job_id, view=view))

    def list_jobs(self, states: tuple[int, ...] = (), owner: str = "", page_size: int = 0, name: str = ""
                  ) -> Iterator[jobs_pb2.Job]:
        token = ""
        while True:
            page = self._unary(self._jobs.ListJobs, jobs_pb2.ListJobsRequest(
                states=states, owner=owner, page_size=page_size, page_token=token, name=name))
            yield from page.jobs
            token = page.next_page_token
            if not token:
                return

    def cancel_job(self, job_id: int, reason: str = "") -> jobs_pb2.Job:
        return self._unary(self._jobs.CancelJob, jobs_pb2.CancelJobRequest(job_id=job_id, reason=reason))

    def usage_report(self, by: str = "owner", since: float | None = None, until: float | None = None,
                     owner: str = "", project: str = "", limit: int = 0) -> jobs_pb2.UsageReport:
        """What jobs that ended in [since, until) (seconds since the epoch; None: unbounded) used,
        by "owner", "project" or "job"; kept after the jobs themselves are purged."""
        grouping = {"owner": jobs_pb2.USAGE_GROUPING_OWNER, "project": jobs_pb2.USAGE_GROUPING_PROJECT,
                    "job": jobs_pb2.USAGE_GROUPING_JOB}.get(by)
        if grouping is None:
            raise ValueError(f"by={by!r}: use 'owner', 'project' or 'job'")
        request = jobs_pb2.UsageReportRequest(by=grouping, owner=owner, project=project, limit=limit)
        for field, value in (("since", since), ("until", until)):
            if value is not None:
                getattr(request, field).FromNanoseconds(int(value * 1e9))
        return self._unary(self._jobs.GetUsageReport, request)

    def watch_job(self, job_id: int, job_events_only: bool = False,
                  reconnect_for: float = RECONNECT_FOR) -> Iterator[jobs_pb2.JobEvent]:
        """The job's history so far, then each change, until it ends; with
        `job_events_only`, the job's own changes alone, none of its tasks'.

        Rides out a head node's restart or a failover to a standby, waiting up to
        `reconnect_for` seconds for one to answer: the watch is opened again, the head replays
        the job's history, and what was delivered already (by `seq`) is dropped."""
        outage = Outage(self.address, f"watching job {job_id}", reconnect_for)
        return self._watch_job(job_id, job_events_only, outage, JobsCursor())

    def _watch_job(self, job_id: int, job_events_only: bool, outage: Outage,
                   cursor: JobsCursor) -> Iterator[jobs_pb2.JobEvent]:
        request = jobs_pb2.WatchJobRequest(job_id=job_id, job_events_only=job_events_only)
        while True:
            last = None
            try:
                for last in self._stream(self._jobs.WatchJob, request):
                    outage.answered()
                    if cursor.admit(last):
                        yield last
                if last is not None and ended(last):
                    return
                error = HeadUnreachable(grpc.StatusCode.UNAVAILABLE, f"the watch of job {job_id} ended early")
            except HeadUnreachable as e:
                error = e
            time.sleep(outage.delay(error))

    def wait_job(self, job_id: int, reconnect_for: float = RECONNECT_FOR,
                 on_event: Callable[[jobs_pb2.JobEvent], None] | None = None) -> jobs_pb2.Job:
        """Block until the job ends; returns its final full view. `on_event` is called with
        each change of the job and its tasks, its history first (without it, only the job's own
        changes are watched).

        Rides out a head node's restart or a failover to a standby, from the start or on the
        way: while no head node answers it waits for one, for up to `reconnect_for` seconds at
        a time, then watches again (as watch_job: nothing missed, nothing shown twice)."""
        outage, cursor = Outage(self.address, f"waiting for job {job_id}", reconnect_for), JobsCursor()
        while True:
            for event in self._watch_job(job_id, on_event is None, outage, cursor):
                if on_event is not None:
                    on_event(event)
            job = self._patiently(lambda: self.get_job(job_id), outage)
            if job.state in ENDED_JOB_STATES:
                return job

    def read_output(self, task: TaskId, stderr: bool = False, offset: int = 0, follow: bool = False,
                    reconnect_for: float = RECONNECT_FOR) -> Iterator[bytes]:
        """The task's stdout (or stderr) from byte `offset`: what there is now, or with `follow`
        all of it as it is written, until the task has ended.

        A follow rides out a head node's restart or a failover to a standby, waiting up to
        `reconnect_for` seconds for one to answer, then reads on from the byte it had got to:
        nothing is lost or repeated."""
        request = jobs_pb2.ReadOutputRequest(
            task=_ref(task),
            stream=common_pb2.OUTPUT_STREAM_STDERR if stderr else common_pb2.OUTPUT_STREAM_STDOUT,
            offset=offset,
            follow=follow,
        )
        outage = Outage(self.address, f"following the output of task {task}", reconnect_for if follow else 0)
        while True:
            try:
                for chunk in self._stream(self._jobs.ReadOutput, request):
                    request.offset = chunk.offset + len(chunk.data)
                    yield chunk.data
                return
            except HeadUnreachable as e:
                time.sleep(outage.delay(e))
            self._patiently(lambda: self.get_task(task), outage)  # a head node answers again

    # -- nodes -----------------------------------------------------------------------------

    def list_nodes(self) -> list[admin_pb2.Node]:
        return list(self._unary(self._admin.ListNodes, admin_pb2.ListNodesRequest()).nodes)

    def call_admin(self, method: str, request: Any) -> Any:
        """Any AdminService method by name (tokens and the like)."""
        return self._unary(getattr(self._admin, method), request)

    def get_node(self, name: str) -> admin_pb2.Node:
        return self._unary(self._admin.GetNode, admin_pb2.GetNodeRequest(name=name))

    def drain_node(self, name: str, reason: str = "") -> admin_pb2.Node:
        return self._unary(self._admin.DrainNode, admin_pb2.DrainNodeRequest(name=name, reason=reason))

    def set_node_online(self, name: str, reason: str = "") -> admin_pb2.Node:
        return self._unary(self._admin.SetNodeOnline, admin_pb2.SetNodeOnlineRequest(name=name, reason=reason))

    def set_node_offline(self, name: str, reason: str = "", force: bool = False) -> admin_pb2.Node:
        return self._unary(self._admin.SetNodeOffline,
                           admin_pb2.SetNodeOfflineRequest(name=name, reason=reason, force=force))

    def remove_node(self, name: str) -> None:
        self._unary(self._admin.RemoveNode, admin_pb2.RemoveNodeRequest(name=name))

    def node_group(self, group: str, nodes: list[str], add: bool = True) -> list[admin_pb2.Node]:
        rpc = self._admin.AddNodesToGroup if add else self._admin.RemoveNodesFromGroup
        return list(self._unary(rpc, admin_pb2.NodeGroupRequest(group=group, nodes=nodes)).nodes)

    def label_node(self, name: str, add: list[str] = (), remove: list[str] = ()) -> admin_pb2.Node:  # type: ignore[assignment]
        return self._unary(self._admin.LabelNode, admin_pb2.LabelNodeRequest(name=name, add=list(add),
                                                                              remove=list(remove)))

    # -- plumbing --------------------------------------------------------------------------

    def _unary(self, method: Callable[..., T], request: Any) -> T:
        try:
            return method(request, timeout=self.timeout, metadata=self._metadata)
        except grpc.RpcError as e:
            raise self._translate(e) from None

    def _stream(self, method: Callable[..., Any], request: Any) -> Iterator[Any]:
        return self._iterate(method(request, metadata=self._metadata))

    def _iterate(self, call: Any) -> Iterator[Any]:
        try:
            yield from call
        except grpc.RpcError as e:
            raise self._translate(e) from None
        finally:
            call.cancel()

    def _patiently(self, call: Callable[[], T], outage: Outage) -> T:
        """`call()`, tried again while no head node answers, within the outage's budget."""
        while True:
            try:
                result = call()
            except HeadUnreachable as e:
                time.sleep(outage.delay(e))
                continue
            outage.answered()
            return result

    def _translate(self, e: grpc.RpcError) -> RequestFailed:
        return translate(e, self.address, self.timeout)


def ref(task: TaskId) -> common_pb2.TaskRef:
    return common_pb2.TaskRef(job_id=task.job, task_id=task.task, instance_id=task.instance)


_ref = ref


def unbatched(events: Iterator[jobs_pb2.JobEvent]) -> Iterator[jobs_pb2.JobEvent]:
    """One event at a time from a batched WatchJobs stream (see WatchJobsRequest.batched)."""
    for event in events:
        more = list(event.more)
        event.ClearField("more")
        yield event
        yield from more
