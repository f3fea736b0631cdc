"""Checks on what clients send, before anything is stored: each failure is InvalidArgument
with the field's path and what to fix. Whether a task graph can run (names, cycles) is
checked at submit by the domain (operations.dag_problem), since tasks may be added later."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

from common.constraints import Constraints
from common.errors import InvalidArgument
from headnode.domain.model import Job, JobSpec, TaskSpec

MAX_INSTANCES = 10_000_000  # per task; a sweep beyond this is almost surely a typo
MAX_PRIORITY = 4999
# Hostile or mistaken input is refused before it costs memory, disk or a launch (Linux's
# ARG_MAX is 2 MiB for the command and environment together).
MAX_TASKS = 100_000  # per job (a sweep is one task)
MAX_BATCH = 10_000  # jobs per SubmitJobs call
MAX_COMMAND = 128 * 1024  # bytes of a command line
MAX_ENVIRONMENT = 256 * 1024  # bytes of a task's variables, names and values together
MAX_VARIABLES = 4096
MAX_TEXT = 4096  # bytes of a name, a path or a reason
MAX_LIST = 1000  # entries of depends_on, placement lists, dependencies


def validate_job_spec(spec: JobSpec, jobs: Mapping[int, Job], need_tasks: bool = True) -> None:
    if need_tasks and not spec.tasks:
        raise InvalidArgument("spec.tasks is empty: a job needs at least one task")
    if len(spec.tasks) > MAX_TASKS:
        raise InvalidArgument(f"spec.tasks has {len(spec.tasks)} tasks; at most {MAX_TASKS} are allowed per job "
                              f"(use a parametric sweep for many alike)")
    for field_name in ("name", "project"):
        _text(f"spec.{field_name}", getattr(spec, field_name))
    if len(spec.dependencies) > MAX_LIST:
        raise InvalidArgument(f"spec.dependencies has {len(spec.dependencies)} entries; at most {MAX_LIST}")
    _constraints("spec.placement", spec.placement)
    if not 0 <= spec.priority <= MAX_PRIORITY:
        raise InvalidArgument("spec.priority_offset must be between 0 and 999")
    if spec.runtime_limit < 0:
        raise InvalidArgument(f"spec.runtime_limit must not be negative, got {spec.runtime_limit:g}s")
    validate_dependencies(spec, jobs)
    for i, task in enumerate(spec.tasks):
        validate_task(f"spec.tasks[{i}]", task)
        validate_task_in_job(f"spec.tasks[{i}]", task, spec)


def validate_task_in_job(where: str, task: TaskSpec, job: JobSpec) -> None:
    if job.reservation is not None and task.nodes:
        raise InvalidArgument(f"{where}.nodes: tasks of a job with a reservation run on one node each; "
                              f"drop the task's nodes or the job's reservation")
    if job.reservation is not None and task.exclusive:
        raise InvalidArgument(f"{where}.exclusive: tasks of a job with a reservation share its allocation; "
                              f"reserve whole nodes (--numnodes) instead")


def validate_dependencies(spec: JobSpec, jobs: Mapping[int, Job]) -> None:
    for i, dep in enumerate(spec.dependencies):
        if dep.job_id not in jobs:
            raise InvalidArgument(f"spec.dependencies[{i}]: job {dep.job_id} does not exist")


def _text(where: str, value: str, limit: int = MAX_TEXT) -> None:
    size = len(value.encode("utf-8", "surrogatepass"))
    if size > limit:
        raise InvalidArgument(f"{where} is {size} bytes; at most {limit} are allowed")


def _constraints(where: str, c: Constraints) -> None:
    for name in ("groups", "require", "avoid", "nodes"):
        if len(getattr(c, name)) > MAX_LIST:
            raise InvalidArgument(f"{where}.{name} has {len(getattr(c, name))} entries; at most {MAX_LIST}")


def validate_task(where: str, task: TaskSpec) -> None:
    if not task.command_line.strip():
        raise InvalidArgument(f"{where}.command_line is empty: give the command to run")
    _text(f"{where}.command_line", task.command_line, MAX_COMMAND)
    for field_name in ("working_directory", "stdin_path", "stdout_path", "stderr_path", "name"):
        _text(f"{where}.{field_name}", getattr(task, field_name))
    if len(task.environment) > MAX_VARIABLES:
        raise InvalidArgument(f"{where}.environment has {len(task.environment)} variables; at most {MAX_VARIABLES}")
    env_size = sum(len(k) + len(v) + 2 for k, v in task.environment.items())
    if env_size > MAX_ENVIRONMENT:
        raise InvalidArgument(f"{where}.environment is {env_size} bytes; at most {MAX_ENVIRONMENT} are allowed")
    if len(task.depends_on) > MAX_LIST:
        raise InvalidArgument(f"{where}.depends_on has {len(task.depends_on)} entries; at most {MAX_LIST}")
    _constraints(f"{where}.placement", task.placement)
    if len(task.resources.generic) > 64:
        raise InvalidArgument(f"{where}.resources.generic names {len(task.resources.generic)} resources; at most 64")
    for field_name in ("command_line", "working_directory", "stdin_path", "stdout_path", "stderr_path", "name"):
        if "\0" in getattr(task, field_name):
            raise InvalidArgument(f"{where}.{field_name} contains a NUL byte")
    if "," in task.name or task.name != task.name.strip():
        raise InvalidArgument(f"{where}.name {task.name!r} must not contain commas or start or end with spaces")
    if task.resources.cores < 1:
        raise InvalidArgument(f"{where}.resources.cores must be at least 1, got {task.resources.cores}")
    if task.resources.memory_mb < 0:
        raise InvalidArgument(f"{where}.resources.memory_mb must be at least 1, got {task.resources.memory_mb}")
    if task.max_cores and task.max_cores < task.resources.cores:
        raise InvalidArgument(
            f"{where}.max_cores ({task.max_cores}) is below the minimum resources.cores ({task.resources.cores})"
        )
    for key, value in task.environment.items():
        if not key or "=" in key or "\0" in key:
            raise InvalidArgument(f"{where}.environment has an invalid name {key!r} (empty, '=' or NUL)")
        if "\0" in value:
            raise InvalidArgument(f"{where}.environment[{key!r}] contains a NUL byte")
    wd = task.working_directory
    if wd and "*" not in wd and not os.path.isabs(wd):
        raise InvalidArgument(f"{where}.working_directory {wd!r} must be an absolute path")
    for i, name in enumerate(task.depends_on):
        if not name.strip():
            raise InvalidArgument(f"{where}.depends_on[{i}] is empty: give a task name")
    if task.runtime_limit < 0:
        raise InvalidArgument(f"{where}.runtime_limit must not be negative")
    if task.max_retries < 0:
        raise InvalidArgument(f"{where}.max_retries must not be negative, got {task.max_retries}")
    if task.sweep is not None:
        if task.instances > 1:
            raise InvalidArgument(f"{where}: a task is a parametric sweep or a multi-instance task, not both")
        s = task.sweep
        if s.step < 1:
            raise InvalidArgument(f"{where}.sweep.step must be at least 1, got {s.step}")
        if s.end < s.start:
            raise InvalidArgument(f"{where}.sweep.end ({s.end}) is before sweep.start ({s.start})")
    if task.nodes < 0:
        raise InvalidArgument(f"{where}.nodes must not be negative, got {task.nodes}")
    if task.nodes and task.instances > 1:
        raise InvalidArgument(f"{where}: a task takes several nodes (nodes) or starts several instances "
                              f"together (instances), not both")
    if task.instances < 0:
        raise InvalidArgument(f"{where}.instances must not be negative, got {task.instances}")
    if task.count > MAX_INSTANCES:
        raise InvalidArgument(f"{where} has {task.count} instances; at most {MAX_INSTANCES} are allowed")


def validate_users(where: str, users: Sequence[str]) -> None:
    """A list of user names (a template's permissions)."""
    if len(users) > MAX_LIST:
        raise InvalidArgument(f"{where} has {len(users)} entries; at most {MAX_LIST}")
    for i, name in enumerate(users):
        if not name or name != name.strip() or any(c.isspace() or c == "," for c in name) or len(name) > 256:
            raise InvalidArgument(f"{where}[{i}] {name[:64]!r} is not a user name (non-empty, no spaces or commas)")


def reason_text(text: str) -> str:
    """A reason a client gives (cancel, hold, drain): kept in history, so bounded."""
    _text("reason", text)
    return text
