"""JobService and TemplateService: from_proto -> service call -> to_proto. Nothing else."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import grpc
from google.protobuf import json_format

from common.errors import InvalidArgument, PermissionDenied, ShoalError, quote
from common.ids import TaskId
from common.wire import STREAM_NAMES, task_id, timestamp
from headnode.api import convert, usage_convert
from headnode.api.errors import WriteGate, check, maps_errors
from headnode.api.identity import ADMIN, Authority, Principal
from headnode.domain.model import Job, JobSpec, TaskSpec
from headnode.services.output import OutputStore
from headnode.services.queue import QueueService
from headnode.services.templates import TemplateService
from headnode.services.usage import UsageService
from headnode.services.validation import MAX_BATCH, reason_text, validate_users
from headnode.store.base import TemplateRecord
from shoal.v1 import jobs_pb2, jobs_pb2_grpc, templates_pb2, templates_pb2_grpc

WATCH_BATCH = 256  # events in one WatchJobs message, for a watcher that asked for batches
# The TaskSpec fields that say what a task runs and with what inputs: only the job's owner
# changes them (identity.py, changes_what_runs). A sweep's values are substituted into the
# command line and file paths. The rest (resources, limits, placement, retries, instances,
# exit codes) is scheduling, which JobAdmins may change too.
WHAT_RUNS = ("command_line", "environment", "working_directory", "stdin_path", "stdout_path", "stderr_path", "sweep")


def _what_runs_changed(current: TaskSpec, new: TaskSpec) -> list[str]:
    def value(spec: TaskSpec, name: str) -> object:
        v = getattr(spec, name)
        return dict(v) if name == "environment" else v
    return [name for name in WHAT_RUNS if value(current, name) != value(new, name)]


def template_msg(record: TemplateRecord) -> templates_pb2.Template:
    msg = json_format.Parse(record.body, templates_pb2.Template())
    msg.owner = record.owner
    msg.create_time.CopyFrom(timestamp(record.created_at))
    return msg


class _Arrivals:
    """What SubmitJobStream's reader hands on: jobs checked and not yet queued, and how the
    stream ended (a refusal, or an error)."""

    def __init__(self) -> None:
        self.checked: list[JobSpec] = []
        self.arrived = asyncio.Event()
        self.ended = False
        self.refused: Exception | None = None


@maps_errors
class JobServicer(jobs_pb2_grpc.JobServiceServicer):
    # Answered while the head cannot write (headnode/api/errors.py); every other RPC changes something.
    SERVED_WHILE_FULL = frozenset({"GetJob", "GetTask", "ListJobs", "ListTasks", "WatchJob", "WatchJobs",
                                   "ReadOutput", "GetUsageReport"})

    def __init__(self, queue: QueueService, output: OutputStore, templates: TemplateService, auth: Authority,
                 usage: UsageService, gate: WriteGate | None = None) -> None:
        self.gate = gate
        self.queue = queue
        self.output = output
        self.templates = templates
        self.auth = auth
        self.usage = usage

    def _on(self, context: grpc.aio.ServicerContext, job_id: int, action: str) -> str:
        """The caller's name, if it may act on the job (its owner, a JobAdmin, an Admin)."""
        return self.auth.on_job(context, self.queue.cluster.job(job_id), action).name

    def _visible_owner(self, context: grpc.aio.ServicerContext, asked: str, action: str) -> tuple[Principal, str]:
        """The caller, and the owner whose jobs (or usage) it may list: the one asked for (""
        for everyone's) where the caller sees all jobs, else the caller's own."""
        p = self.auth.user(context)
        owner = asked if self.auth.sees_all(p) else p.name
        if asked and asked != owner:
            raise PermissionDenied(f"{p.name} may not {action.format(asked)}: this cluster shows users only their own")
        return p, owner

    def _view(self, context: grpc.aio.ServicerContext, job_id: int) -> bool:
        """Refused unless the caller may see the job; then whether it sees what the job runs
        (else the answer is redacted: convert.redact_*)."""
        job = self.queue.cluster.job(job_id)
        return self.auth.sees_payload(self.auth.may_view(context, job), job)

    def _owner_only(self, context: grpc.aio.ServicerContext, job_id: int, action: str) -> str:
        """The caller's name, if it is the job's owner: what the job runs is its owner's alone."""
        return self.auth.changes_what_runs(context, self.queue.cluster.job(job_id), action).name

    def _spec(self, context: grpc.aio.ServicerContext, spec: jobs_pb2.JobSpec) -> jobs_pb2.JobSpec:
        if spec.template:
            template = template_msg(self.templates.get(spec.template))
            self.auth.may_use_template(context, template.name, list(template.users))
            return convert.merge_template(template, spec)
        return spec

    async def SubmitJobs(self, request: jobs_pb2.SubmitJobsRequest, context: grpc.aio.ServicerContext):
        owner = self.auth.user(context).name
        specs = []
        for i, spec in enumerate(request.specs):
            try:
                specs.append(convert.job_spec(self._spec(context, spec)))
            except InvalidArgument as e:
                raise InvalidArgument(f"specs[{i}]: {e}") from None
        return jobs_pb2.SubmitJobsResponse(job_ids=await self.queue.submit_many(specs, owner))

    async def SubmitJobStream(self, requests: AsyncIterator[jobs_pb2.SubmitJobRequest],
                              context: grpc.aio.ServicerContext) -> AsyncIterator[jobs_pb2.SubmitJobStreamResponse]:
        """Separate jobs over one call. Requests are read and checked on a task of their own,
        so reading goes on while a group is made durable; what arrived meanwhile is the next
        group, queued in one step and answered in one response. Against a SubmitJob call per
        job, this spares each job a call's cost on both sides. The first refused request ends
        the call with its error, once every one before it is queued and answered."""
        owner = self.auth.user(context).name
        stream = _Arrivals()
        reader = asyncio.create_task(self._check_each(requests, context, owner, stream))
        try:
            while stream.checked or not stream.ended:
                if not stream.checked:
                    stream.arrived.clear()  # nothing waiting, checked in the same step: no wake-up lost
                    await stream.arrived.wait()
                    continue
                group = stream.checked[:MAX_BATCH]
                del stream.checked[:len(group)]
                yield jobs_pb2.SubmitJobStreamResponse(job_ids=await self.queue.queue_checked(group, owner))
            if stream.refused is not None:
                raise stream.refused
        finally:
            reader.cancel()

    async def _check_each(self, requests: AsyncIterator[jobs_pb2.SubmitJobRequest], context: grpc.aio.ServicerContext,
                          owner: str, stream: _Arrivals) -> None:
        n = 0
        try:
            async for request in requests:
                n += 1
                if n > 1:  # the first was counted with the call; each of the rest replaces a call
                    self.auth.throttle(owner)
                check(request)
                if request.job_id:
                    raise InvalidArgument("SubmitJobStream queues new jobs: give spec, not job_id (queue a "
                                          "Configuring job with SubmitJob)")
                spec = convert.job_spec(self._spec(context, request.spec))
                self.queue.check_new(spec, owner, len(stream.checked))
                stream.checked.append(spec)
                stream.arrived.set()
        except ShoalError as e:
            stream.refused = type(e)(f"request {n} of the stream: {e.message}")
        except Exception as e:  # noqa: BLE001 - raised by the call, which answers INTERNAL and logs it
            stream.refused = e
        finally:
            stream.ended = True
            stream.arrived.set()

    async def SubmitJob(self, request: jobs_pb2.SubmitJobRequest, context: grpc.aio.ServicerContext):
        if request.job_id:
            if request.HasField("spec"):
                raise InvalidArgument("give either spec (a new job) or job_id (a Configuring job), not both")
            # Queuing a Configuring job says its tasks are ready to run as its owner: the owner's call.
            job_id = await self.queue.submit_existing(request.job_id,
                                                      self._owner_only(context, request.job_id, "submit"))
        else:
            owner = self.auth.user(context).name
            job_id = await self.queue.submit(convert.job_spec(self._spec(context, request.spec)), owner)
        return jobs_pb2.SubmitJobResponse(job_id=job_id)

    async def CreateJob(self, request: jobs_pb2.CreateJobRequest, context: grpc.aio.ServicerContext):
        job = await self.queue.create(convert.job_spec(self._spec(context, request.spec)), self.auth.user(context).name)
        return convert.job_msg(job)

    async def AddTasks(self, request: jobs_pb2.AddTasksRequest, context: grpc.aio.ServicerContext):
        by = self._owner_only(context, request.job_id, "add tasks to")  # rights before work (issue 33)
        specs = [convert.task_spec(t, f"tasks[{i}]") for i, t in enumerate(request.tasks)]
        numbers = await self.queue.add_tasks(request.job_id, specs, by)
        return jobs_pb2.AddTasksResponse(task_ids=numbers)

    async def ModifyTask(self, request: jobs_pb2.ModifyTaskRequest, context: grpc.aio.ServicerContext):
        ref = task_id(request.task)
        by = self._on(context, ref.job, "modify")
        current = self.queue.task_spec(ref)
        spec = convert.merged_task_spec(current, request.spec, request.update_mask)
        if changed := _what_runs_changed(current, spec):  # a JobAdmin changes only how it is scheduled
            self._owner_only(context, ref.job, f"change task {ref.task}'s {', '.join(changed)} in")
        task = await self.queue.modify_task(ref, spec, by)
        return convert.task_msg(task, "")

    async def ModifyJob(self, request: jobs_pb2.ModifyJobRequest, context: grpc.aio.ServicerContext):
        by = self._on(context, request.job_id, "modify")
        current = self.queue.job_spec(request.job_id)
        fields = convert.job_fields(request.spec, request.update_mask, current)
        job = await self.queue.modify_job(request.job_id, fields, by)
        return convert.job_msg(job, self.queue.job_pending_reason(job))

    async def GetJob(self, request: jobs_pb2.GetJobRequest, context: grpc.aio.ServicerContext):
        full = request.view != jobs_pb2.JOB_VIEW_SUMMARY
        shown = self._view(context, request.job_id)
        msg = convert.job_details_msg(await self.queue.details(request.job_id, full))
        return msg if shown else convert.redact_job(msg)

    async def GetTask(self, request: jobs_pb2.GetTaskRequest, context: grpc.aio.ServicerContext):
        shown = self._view(context, request.task.job_id)
        msg = convert.task_details_msg(await self.queue.task_details(task_id(request.task)))
        return msg if shown else convert.redact_task(msg)

    async def ListJobs(self, request: jobs_pb2.ListJobsRequest, context: grpc.aio.ServicerContext):
        p, owner = self._visible_owner(context, request.owner, "list {}'s jobs")
        jobs, token, total = self.queue.list_jobs(convert.job_states(list(request.states)), owner, request.name,
                                                  request.page_size, request.page_token, request.newest_first,
                                                  request.count_total)

        def row(j: Job) -> jobs_pb2.Job:
            msg = convert.job_msg(j, self.queue.job_pending_reason(j))
            msg.redacted = not self.auth.sees_payload(p, j)  # a list carries no payload; says what GetJob shows
            return msg
        return jobs_pb2.ListJobsResponse(jobs=[row(j) for j in jobs], next_page_token=token, total=total)

    async def ListTasks(self, request: jobs_pb2.ListTasksRequest, context: grpc.aio.ServicerContext):
        shown = self._view(context, request.job_id)
        states = convert.task_states(list(request.states))
        if request.instances:
            units, token = self.queue.list_units(request.job_id, request.task_id, states, request.page_size,
                                                 request.page_token)
            instances = [convert.unit_msg(u) for u in units]
            if not shown:
                instances = [convert.redact_instance(i) for i in instances]
            return jobs_pb2.ListTasksResponse(instances=instances, next_page_token=token)
        tasks, token = self.queue.list_tasks(request.job_id, request.task_id, states, request.page_size,
                                             request.page_token)
        msgs = [convert.task_msg(t, why) for t, why in tasks]
        if not shown:
            msgs = [convert.redact_task(t) for t in msgs]
        return jobs_pb2.ListTasksResponse(tasks=msgs, next_page_token=token)

    async def CancelJob(self, request: jobs_pb2.CancelJobRequest, context: grpc.aio.ServicerContext):
        by = self._on(context, request.job_id, "cancel")
        return convert.job_msg(await self.queue.cancel(request.job_id, by, reason_text(request.reason)))

    async def CancelTask(self, request: jobs_pb2.CancelTaskRequest, context: grpc.aio.ServicerContext):
        by = self._on(context, request.task.job_id, "cancel")
        task = await self.queue.cancel_task(task_id(request.task), by, reason_text(request.reason))
        return convert.task_msg(task, "")

    async def RequeueJob(self, request: jobs_pb2.RequeueJobRequest, context: grpc.aio.ServicerContext):
        chosen = [TaskId(request.job_id, t.task_id, t.instance_id) for t in request.tasks]
        for t in request.tasks:
            if t.job_id and t.job_id != request.job_id:
                raise InvalidArgument(f"tasks: {t.job_id}.{t.task_id} is not a task of job {request.job_id}")
        job = await self.queue.requeue(request.job_id, self._on(context, request.job_id, "requeue"), chosen)
        return convert.job_msg(job, self.queue.job_pending_reason(job))

    async def ConfigureJob(self, request: jobs_pb2.JobRequest, context: grpc.aio.ServicerContext):
        # Back to Configuring is the way to changing its tasks: the owner's call, like adding them.
        return convert.job_msg(await self.queue.configure(request.job_id,
                                                          self._owner_only(context, request.job_id, "configure")))

    async def CloneJob(self, request: jobs_pb2.JobRequest, context: grpc.aio.ServicerContext):
        return convert.job_msg(await self.queue.clone(request.job_id, self._on(context, request.job_id, "clone")))

    async def HoldJob(self, request: jobs_pb2.JobRequest, context: grpc.aio.ServicerContext):
        job = await self.queue.hold(request.job_id, self._on(context, request.job_id, "hold"),
                                    reason_text(request.reason))
        return convert.job_msg(job, self.queue.job_pending_reason(job))

    async def ReleaseJob(self, request: jobs_pb2.JobRequest, context: grpc.aio.ServicerContext):
        job = await self.queue.release(request.job_id, self._on(context, request.job_id, "release"))
        return convert.job_msg(job, self.queue.job_pending_reason(job))

    async def WatchJob(
        self, request: jobs_pb2.WatchJobRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[jobs_pb2.JobEvent]:
        self._view(context, request.job_id)
        async for event in self.queue.watch(request.job_id, request.job_events_only):
            yield convert.job_event_msg(event)

    async def WatchJobs(
        self, request: jobs_pb2.WatchJobsRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[jobs_pb2.JobEvent]:
        # Initial metadata goes out once the subscription exists: the client waits for it.
        p = self.auth.user(context)
        owner = request.owner if self.auth.sees_all(p) else p.name
        most = WATCH_BATCH if request.batched else 1
        async for events in self.queue.watch_all(owner, lambda: context.send_initial_metadata(()), most,
                                                 request.job_events_only, request.ends_only):
            msg = convert.job_event_msg(events[0])
            msg.more.extend(convert.job_event_msg(e) for e in events[1:])
            yield msg

    async def ReadOutput(
        self, request: jobs_pb2.ReadOutputRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[jobs_pb2.OutputChunk]:
        if request.offset < 0:
            raise InvalidArgument(f"offset must be >= 0, got {request.offset}")
        self.auth.may_read_output(context, self.queue.cluster.job(request.task.job_id))
        target = self.queue.output_target(task_id(request.task))
        stream = STREAM_NAMES.get(request.stream, "stdout")
        async for offset, data in self.output.read(target, stream, request.offset, request.follow):
            yield jobs_pb2.OutputChunk(offset=offset, data=data)

    async def GetUsageReport(self, request: jobs_pb2.UsageReportRequest, context: grpc.aio.ServicerContext):
        # Who sees whose usage follows who sees whose jobs (ListJobs).
        _, owner = self._visible_owner(context, request.owner, "see {}'s usage")
        report = await self.usage.report(usage_convert.usage_query(request, owner))
        return usage_convert.usage_report_msg(report)


@maps_errors
class TemplateServicer(templates_pb2_grpc.TemplateServiceServicer):
    SERVED_WHILE_FULL = frozenset({"GetTemplate", "ListTemplates"})

    def __init__(self, templates: TemplateService, auth: Authority, gate: WriteGate | None = None) -> None:
        self.gate = gate
        self.templates = templates
        self.auth = auth

    async def CreateTemplate(self, request: templates_pb2.CreateTemplateRequest, context: grpc.aio.ServicerContext):
        # Rights before work: a non-Admin's template is refused before any of it is checked or copied.
        verb = "replace" if request.replace else "create"
        p = self.auth.require(context, ADMIN, f"{verb} template {quote(request.template.name, 64)}")
        t = templates_pb2.Template()
        t.CopyFrom(request.template)
        t.ClearField("owner")
        t.ClearField("create_time")
        if t.job.template:
            raise InvalidArgument("template.job.template must be empty: a template cannot start from another")
        validate_users("template.users", t.users)
        # Its tasks must make sense once merged with the task defaults (an empty job is fine).
        probe = convert.merge_template(t, jobs_pb2.JobSpec())
        for i, task in enumerate(probe.tasks):
            convert.task_spec(task, f"template.job.tasks[{i}]")
        try:
            body = json_format.MessageToJson(t, preserving_proto_field_name=True, indent=None)
        except json_format.Error as e:  # e.g. a Duration with nanos out of range
            raise InvalidArgument(f"template: {e}") from None
        record = await self.templates.create(t.name, body, p.name, request.replace)
        return template_msg(record)

    async def GetTemplate(self, request: templates_pb2.GetTemplateRequest, context: grpc.aio.ServicerContext):
        self.auth.user(context)
        return template_msg(self.templates.get(request.name))

    async def ListTemplates(self, request: templates_pb2.ListTemplatesRequest, context: grpc.aio.ServicerContext):
        self.auth.user(context)
        return templates_pb2.ListTemplatesResponse(templates=[template_msg(r) for r in self.templates.list()])

    async def DeleteTemplate(self, request: templates_pb2.DeleteTemplateRequest, context: grpc.aio.ServicerContext):
        self.auth.require(context, ADMIN, f"delete template {quote(request.name, 64)}")
        self.templates.get(request.name)
        await self.templates.delete(request.name)
        return templates_pb2.DeleteTemplateResponse()
