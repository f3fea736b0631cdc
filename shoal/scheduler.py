"""The SDK's object model, shaped like HPC Pack's scheduler API (IScheduler, ISchedulerJob,
ISchedulerTask), over the typed client in shoal/client.py.

    from shoal.scheduler import Scheduler

    with Scheduler.connect("head:7676") as scheduler:
        job = scheduler.create_job(name="render")
        task = job.create_task("render --frame *")
        task.is_parametric, task.start_value, task.end_value = True, 1, 100
        job.add_task(task)
        scheduler.submit_job(job)
        print(scheduler.wait_job(job.id).state)

HPC Pack's names in Python's spelling: `CreateJob` is `create_job`, `task.CommandLine` is
`task.command_line`, `job.GetTaskList(null, null, true)` is `job.get_task_list(expand=True)`.
As in HPC Pack, a job made by `create_job` lives only here until `submit_job` (or `add_job`,
which stores it Configuring) sends it; a job opened from the head (`open_job`, `clone_job`)
sends each change as it is made (`add_task`) or on `commit()`.

Errors are `RequestFailed` (`.code` is the grpc.StatusCode, `.message` the head's one line)
and its subclass `HeadUnreachable`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from typing import Any

from common.ids import TaskId
from shoal.client import Client, RequestFailed, task_spec
from shoal.v1 import jobs_pb2

__all__ = ["Scheduler", "SchedulerJob", "SchedulerTask", "TaskId", "RequestFailed"]

JOB_STATE_NAMES = {v: k.removeprefix("JOB_STATE_").title() for k, v in jobs_pb2.JobState.items()}
TASK_STATE_NAMES = {v: k.removeprefix("TASK_STATE_").title() for k, v in jobs_pb2.TaskState.items()}


class Scheduler:
    """A connection to a head node (HPC Pack's IScheduler)."""

    def __init__(self, client: Client) -> None:
        self.client = client

    @classmethod
    def connect(cls, address: str = "", *, user: str | None = None, timeout: float = 30.0, **security: Any
                ) -> Scheduler:
        """`address`: HOST:PORT (default $SHOAL_HEAD, else localhost:7676); `security`: the
        Client's `tls` and `token` (default from $SHOAL_CA, $SHOAL_TOKEN)."""
        address = address or os.environ.get("SHOAL_HEAD") or "localhost:7676"
        return cls(Client(address, user=user, timeout=timeout, **security))

    def close(self) -> None:
        self.client.close()

    def __enter__(self) -> Scheduler:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def create_job(self, name: str = "", **fields: Any) -> SchedulerJob:
        """A new job, kept here until submit_job or add_job sends it. `fields`: any JobSpec
        field (project, priority, runtime_limit, ...)."""
        return SchedulerJob(self, jobs_pb2.JobSpec(name=name, **fields))

    @staticmethod
    def create_task_id(task: int, instance: int = 0, job: int = 0) -> TaskId:
        return TaskId(job, task, instance)

    def add_job(self, job: SchedulerJob) -> SchedulerJob:
        """Store a new job as Configuring, with the tasks added so far."""
        if job.id:
            raise ValueError(f"job {job.id} is already on the head node")
        job._load(self.client.create_job(job._staged()))
        return job

    def submit_job(self, job: SchedulerJob | int) -> int:
        """Queue a job: a new one is stored and queued in one step, a Configuring one queued."""
        if isinstance(job, int):
            return self.client.submit_existing(job)
        if job.id:
            self.client.submit_existing(job.id)
        else:
            job._load(self.client.get_job(self.client.submit(job._staged())))
        return job.id

    def open_job(self, job_id: int) -> SchedulerJob:
        job = SchedulerJob(self, jobs_pb2.JobSpec())
        job._load(self.client.get_job(job_id))
        return job

    def clone_job(self, job_id: int) -> SchedulerJob:
        """A Configuring copy of a job (any state) with its tasks; change it, then submit it."""
        return self.open_job(self.client.clone_job(job_id).id)

    def cancel_job(self, job_id: int, reason: str = "") -> None:
        self.client.cancel_job(job_id, reason)

    def configure_job(self, job_id: int) -> None:
        """Move a Queued or ended job back to Configuring, to change it and submit it again."""
        self.client.configure_job(job_id)

    def wait_job(self, job_id: int) -> SchedulerJob:
        """Block until the job ends; returns it as it ended."""
        job = SchedulerJob(self, jobs_pb2.JobSpec())
        job._load(self.client.wait_job(job_id))
        return job

    def get_job_list(self, states: tuple[int, ...] = (), owner: str = "") -> list[SchedulerJob]:
        jobs = []
        for msg in self.client.list_jobs(states=states, owner=owner):
            job = SchedulerJob(self, jobs_pb2.JobSpec())
            job._load(msg)
            jobs.append(job)
        return jobs


class SchedulerJob:
    """A job (HPC Pack's ISchedulerJob). `id` is 0 until the head node has it."""

    def __init__(self, scheduler: Scheduler, spec: jobs_pb2.JobSpec) -> None:
        self._scheduler = scheduler
        self._spec = spec
        self._pending: list[SchedulerTask] = []
        self._msg: jobs_pb2.Job | None = None
        self._changed: set[str] = set()

    @property
    def id(self) -> int:
        return self._msg.id if self._msg is not None else 0

    @property
    def state(self) -> str:
        """"Configuring", "Queued", "Running", "Finished", "Failed" or "Cancelled"."""
        return JOB_STATE_NAMES[self._msg.state] if self._msg is not None else "Configuring"

    @property
    def owner(self) -> str:
        return self._msg.owner if self._msg is not None else ""

    @property
    def message(self) -> jobs_pb2.Job | None:
        """The job as the head node last described it (None before it is sent)."""
        return self._msg

    @property
    def name(self) -> str:
        return self._spec.name

    @name.setter
    def name(self, value: str) -> None:
        self._spec.name = value
        self._changed.add("name")

    @property
    def priority(self) -> int:
        return int(self._spec.priority)

    @priority.setter
    def priority(self, value: int) -> None:
        self._spec.priority = value  # type: ignore[assignment]
        self._changed.add("priority")

    @property
    def project(self) -> str:
        return self._spec.project

    @project.setter
    def project(self, value: str) -> None:
        self._spec.project = value
        self._changed.add("project")

    def create_task(self, command_line: str = "", **fields: Any) -> SchedulerTask:
        """A new task for this job, sent by add_task. `fields`: shoal.client.task_spec's."""
        return SchedulerTask(self, task_spec(command_line, **fields))

    def add_task(self, task: SchedulerTask) -> None:
        """Add a task: kept with a new job until it is sent, sent now to a Configuring one."""
        self.add_tasks([task])

    def add_tasks(self, tasks: list[SchedulerTask]) -> None:
        if not self.id:
            self._pending.extend(tasks)
            return
        ids = self._scheduler.client.add_tasks(self.id, *(t._spec for t in tasks))
        for task, task_id in zip(tasks, ids):
            task._load(self._scheduler.client.get_task(TaskId(self.id, task_id)))

    def open_task(self, task_id: TaskId | int) -> SchedulerTask:
        """One task of this job (its job number in `task_id` is ignored, as in HPC Pack)."""
        number = task_id if isinstance(task_id, int) else task_id.task
        task = SchedulerTask(self, jobs_pb2.TaskSpec())
        task._load(self._scheduler.client.get_task(TaskId(self._require_id(), number)))
        return task

    def get_task_list(self, expand: bool = True) -> list[SchedulerTask]:
        """The job's tasks in order; `expand`: a sweep's or multi-instance task's instances
        one by one, with their own ids, command lines and stdout paths."""
        client, job_id = self._scheduler.client, self._require_id()
        if not expand:
            return [SchedulerTask(self, jobs_pb2.TaskSpec())._load(t) for t in client.list_tasks(job_id)]
        specs = {t.ref.task_id: t for t in client.list_tasks(job_id)}
        tasks = []
        for inst in client.list_instances(job_id):
            task = SchedulerTask(self, jobs_pb2.TaskSpec())._load(specs[inst.ref.task_id])
            task._instance = inst
            tasks.append(task)
        return tasks

    def commit(self) -> None:
        """Send the job-level properties changed since the last commit (name, priority, ...)."""
        if not self._changed:
            return
        self._load(self._scheduler.client.modify_job(self._require_id(), self._spec, sorted(self._changed)))

    def refresh(self) -> SchedulerJob:
        self._load(self._scheduler.client.get_job(self._require_id()))
        return self

    def cancel(self, reason: str = "") -> None:
        self._scheduler.cancel_job(self._require_id(), reason)

    def _staged(self) -> jobs_pb2.JobSpec:
        spec = jobs_pb2.JobSpec()
        spec.CopyFrom(self._spec)
        spec.tasks.extend(t._spec for t in self._pending)
        return spec

    def _load(self, msg: jobs_pb2.Job) -> None:
        self._msg = msg
        self._spec = jobs_pb2.JobSpec()
        self._spec.CopyFrom(msg.spec)
        del self._spec.tasks[:]
        self._pending.clear()
        self._changed.clear()

    def _require_id(self) -> int:
        if not self.id:
            raise ValueError("the job is not on the head node yet: submit_job or add_job it first")
        return self.id

    def __repr__(self) -> str:
        return f"<SchedulerJob {self.id or 'new'} {self.name!r} {self.state}>"


class SchedulerTask:
    """A task, or one instance of a sweep in an expanded task list (HPC Pack's ISchedulerTask).

    Setting a property changes the task here; `commit()` sends the changes of a task that is
    on the head node (only while its job is Configuring, or for the fields the head node
    allows later)."""

    def __init__(self, job: SchedulerJob, spec: jobs_pb2.TaskSpec) -> None:
        self._job = job
        self._spec = spec
        self._msg: jobs_pb2.Task | None = None
        self._instance: jobs_pb2.Instance | None = None
        self._changed: set[str] = set()

    # -- identity and progress -------------------------------------------------------------

    @property
    def task_id(self) -> TaskId:
        """(job, task, instance); instance 0 for a task as a whole. task 0 before it is sent."""
        if self._instance is not None:
            ref = self._instance.ref
            return TaskId(ref.job_id, ref.task_id, ref.instance_id)
        if self._msg is not None:
            return TaskId(self._msg.ref.job_id, self._msg.ref.task_id, 0)
        return TaskId(self._job.id, 0, 0)

    @property
    def state(self) -> str:
        if self._instance is not None:
            return TASK_STATE_NAMES[self._instance.state]
        return TASK_STATE_NAMES[self._msg.state] if self._msg is not None else "Configuring"

    @property
    def exit_code(self) -> int | None:
        source = self._instance if self._instance is not None else self._msg
        return source.exit_code if source is not None and source.HasField("exit_code") else None

    @property
    def node(self) -> str:
        source = self._instance if self._instance is not None else self._msg
        return source.node if source is not None else ""

    def output(self, stderr: bool = False) -> bytes:
        """What the task (or this instance) has written so far, from the head node's copy."""
        return b"".join(self._job._scheduler.client.read_output(self._ref(), stderr=stderr))

    def follow(self, stderr: bool = False) -> Iterator[bytes]:
        """The output as it is written, until the task ends."""
        return self._job._scheduler.client.read_output(self._ref(), stderr=stderr, follow=True)

    # -- properties (HPC Pack's names, Python's spelling) ----------------------------------

    @property
    def command_line(self) -> str:
        """As run, for an instance of an expanded list (a sweep's asterisks substituted)."""
        return self._instance.command_line if self._instance is not None else self._spec.command_line

    @command_line.setter
    def command_line(self, value: str) -> None:
        self._set("command_line", value)

    @property
    def stdout_path(self) -> str:
        return self._instance.stdout_path if self._instance is not None else self._spec.stdout_path

    @stdout_path.setter
    def stdout_path(self, value: str) -> None:
        self._set("stdout_path", value)

    @property
    def stderr_path(self) -> str:
        return self._instance.stderr_path if self._instance is not None else self._spec.stderr_path

    @stderr_path.setter
    def stderr_path(self, value: str) -> None:
        self._set("stderr_path", value)

    @property
    def name(self) -> str:
        return self._spec.name

    @name.setter
    def name(self, value: str) -> None:
        self._set("name", value)

    @property
    def working_directory(self) -> str:
        return self._spec.working_directory

    @working_directory.setter
    def working_directory(self, value: str) -> None:
        self._set("working_directory", value)

    @property
    def min_cores(self) -> int:
        return self._spec.resources.cores or 1

    @min_cores.setter
    def min_cores(self, value: int) -> None:
        self._spec.resources.cores = value
        self._changed.add("resources")

    @property
    def environment(self) -> Mapping[str, str]:
        return dict(self._spec.environment)

    @environment.setter
    def environment(self, value: Mapping[str, str]) -> None:
        self._spec.environment.clear()
        self._spec.environment.update(value)
        self._changed.add("environment")

    @property
    def depends_on(self) -> list[str]:
        return list(self._spec.depends_on)

    @depends_on.setter
    def depends_on(self, names: list[str]) -> None:
        self._spec.ClearField("depends_on")
        self._spec.depends_on.extend(names)
        self._changed.add("depends_on")

    # A parametric task (HPC Pack: IsParametric, StartValue, EndValue, IncrementValue): one
    # instance per value, each asterisk run in the command line and paths replaced by it.
    @property
    def is_parametric(self) -> bool:
        return self._spec.HasField("sweep")

    @is_parametric.setter
    def is_parametric(self, value: bool) -> None:
        if value and not self._spec.HasField("sweep"):
            self._spec.sweep.CopyFrom(jobs_pb2.ParametricSweep(start=1, end=1, step=1))
        elif not value:
            self._spec.ClearField("sweep")
        self._changed.add("sweep")

    @property
    def start_value(self) -> int:
        return self._spec.sweep.start

    @start_value.setter
    def start_value(self, value: int) -> None:
        self._sweep_field("start", value)

    @property
    def end_value(self) -> int:
        return self._spec.sweep.end

    @end_value.setter
    def end_value(self, value: int) -> None:
        self._sweep_field("end", value)

    @property
    def increment_value(self) -> int:
        return self._spec.sweep.step or 1

    @increment_value.setter
    def increment_value(self, value: int) -> None:
        self._sweep_field("step", value)

    @property
    def spec(self) -> jobs_pb2.TaskSpec:
        """The TaskSpec message behind the properties (for fields without one here)."""
        return self._spec

    def commit(self) -> None:
        """Send the changes made since the task was opened or last committed."""
        if self._msg is None:
            raise ValueError("the task is not on the head node yet: add it to a job that is")
        if self._instance is not None:
            raise ValueError(f"{self.task_id} is one instance of a task: open the task to change it")
        if self._changed:
            self._load(self._job._scheduler.client.modify_task(self.task_id, self._spec, sorted(self._changed)))

    def refresh(self) -> SchedulerTask:
        ref = self._ref()
        client = self._job._scheduler.client
        if self._instance is not None:
            self._instance = next(i for i in client.list_instances(ref.job, ref.task) if i.ref.instance_id == ref.instance)
        else:
            self._load(client.get_task(ref))
        return self

    def _ref(self) -> TaskId:
        ref = self.task_id
        if not ref.task:
            raise ValueError("the task is not on the head node yet")
        return ref

    def _set(self, field: str, value: Any) -> None:
        setattr(self._spec, field, value)
        self._changed.add(field)

    def _sweep_field(self, field: str, value: int) -> None:
        if not self._spec.HasField("sweep"):
            self._spec.sweep.CopyFrom(jobs_pb2.ParametricSweep(start=1, end=1, step=1))
        setattr(self._spec.sweep, field, value)
        self._changed.add("sweep")

    def _load(self, msg: jobs_pb2.Task) -> SchedulerTask:
        self._msg = msg
        self._spec = jobs_pb2.TaskSpec()
        self._spec.CopyFrom(msg.spec)
        self._changed.clear()
        return self

    def __repr__(self) -> str:
        return f"<SchedulerTask {self.task_id} {self.command_line!r} {self.state}>"
