"""The task and job options shared by `job new/add/submit/modify`, `task modify` and
`template create`, following HPC Pack's `job add` parameters in GNU style, and their
translation into JobSpec / TaskSpec messages plus the list of fields they set (the update
mask of a modify). Every option defaults to None, so "not given" is never confused with a
value."""

from __future__ import annotations

import argparse
import os
import re

from common.errors import InvalidArgument
from common.formats import parse_duration, parse_exit_codes, parse_priority, parse_sweep
from shoal.v1 import jobs_pb2


def add_task_options(p: argparse.ArgumentParser, name_flags: tuple[str, ...] = ("--name",),
                     runtime_flags: tuple[str, ...] = ("--runtime",)) -> None:
    g = p.add_argument_group("task options")
    g.add_argument(*name_flags, dest="task_name", help="task name (for --depend)")
    g.add_argument("--depend", metavar="NAME[,NAME...]", help="tasks of the job that must finish first")
    g.add_argument("--env", action="append", metavar="VAR=VALUE", help="set in the task (repeatable)")
    g.add_argument("--workdir", help="working directory on the node (default: the current directory)")
    g.add_argument("--stdin", help="file the task reads as stdin (relative to the working directory)")
    g.add_argument("--stdout", help="also write stdout to this file on the node")
    g.add_argument("--stderr", help="also write stderr to this file on the node")
    g.add_argument("--cores", metavar="MIN[-MAX]", help="cores (default 1); with a MAX, up to that many when free")
    g.add_argument("--memory-mb", type=int, help="memory in MB (default: no reservation)")
    g.add_argument("--exclusive", action="store_true", default=None, help="whole nodes, nothing else beside it")
    g.add_argument(*runtime_flags, dest="task_runtime", metavar="TIME",
                   help="kill it and fail it after this long (90s, 15m, 2h, HH:MM:SS; a number is minutes)")
    g.add_argument("--valid-exit-codes", metavar="CODES", help="exit codes that mean success, e.g. 0,3,10-20")
    g.add_argument("--parametric", metavar="START-END[:STEP]",
                   help="a parametric sweep; * in the command, paths and workdir becomes the value (*** pads)")
    g.add_argument("--instances", type=int, metavar="N", help="a multi-instance task: N instances start together")
    g.add_argument("--rerunnable", dest="rerunnable", action="store_true", default=None,
                   help="requeue it when its node is lost (the default)")
    g.add_argument("--no-rerunnable", dest="rerunnable", action="store_false", help="fail it when its node is lost")
    g.add_argument("--retries", type=int, metavar="N", help="requeues after a lost node (default 3)")
    g.add_argument("--gpus", type=int, metavar="N", help="GPUs (the node sets CUDA_VISIBLE_DEVICES)")
    g.add_argument("--resource", action="append", metavar="NAME=COUNT",
                   help="a named resource nodes advertise, e.g. license_matlab=1 (repeatable)")
    g.add_argument("--nodes", dest="task_nodes", type=int, metavar="N",
                   help="MPI-style: N whole nodes at once; runs on the first, told SHOAL_NODES and SHOAL_HOSTFILE")
    g.add_argument("--node-group", action="append", metavar="GROUP", help="run only on nodes of this group (repeatable)")
    g.add_argument("--require-label", action="append", metavar="LABEL", help="run only on nodes with this label")
    g.add_argument("--avoid-label", action="append", metavar="LABEL", help="never run on nodes with this label")
    g.add_argument("--requested-nodes", metavar="NODE[,NODE...]", help="run only on these nodes")


def add_job_options(p: argparse.ArgumentParser, name_flags: tuple[str, ...] = ("--name",),
                    runtime_flags: tuple[str, ...] = ("--runtime",)) -> None:
    g = p.add_argument_group("job options")
    g.add_argument(*name_flags, dest="job_name", help="job name")
    g.add_argument("--project", help="project the job is accounted to")
    g.add_argument("--priority", metavar="LEVEL[+N]",
                   help="Lowest, BelowNormal, Normal, AboveNormal or Highest, optionally +0..999")
    g.add_argument(*runtime_flags, dest="job_runtime", metavar="TIME", help="fail the whole job after this long")
    g.add_argument("--fail-on-task-failure", action="store_true", default=None,
                   help="fail the job and cancel the rest as soon as one task fails")
    g.add_argument("--after-ok", action="append", type=int, metavar="JOB", help="start after JOB Finished")
    g.add_argument("--after-any", action="append", type=int, metavar="JOB", help="start after JOB ended")
    g.add_argument("--after-not-ok", action="append", type=int, metavar="JOB", help="start after JOB Failed or was Cancelled")
    g.add_argument("--cancel-if-dependency-never", action="store_true", default=None,
                   help="cancel the job if a dependency can never be satisfied")
    g.add_argument("--run-dependents-after-failure", action="store_true", default=None,
                   help="run tasks even when a task they depend on failed")
    g.add_argument("--hold", action="store_true", default=None, help="submit it held (release with `job release`)")
    g.add_argument("--template", help="start from this template")
    g.add_argument("--exclusive-job", dest="job_exclusive", action="store_true", default=None,
                   help="the job's nodes run no other job's work")
    g.add_argument("--numcores", metavar="MIN[-MAX]",
                   help="reserve MIN to MAX cores for the job; its tasks run inside them (HPC Pack's /numcores)")
    g.add_argument("--numnodes", metavar="MIN[-MAX]", help="reserve MIN to MAX whole nodes for the job")


def _cores(text: str, flag: str = "--cores") -> tuple[int, int]:
    m = re.fullmatch(r"\s*(\d+)\s*(?:-\s*(\d+))?\s*", text)
    if not m:
        raise InvalidArgument(f"{flag} {text!r} is not MIN or MIN-MAX (for example 2 or 2-8)")
    lo = int(m.group(1))
    hi = int(m.group(2)) if m.group(2) else 0
    if hi and hi < lo:
        raise InvalidArgument(f"{flag} {text!r}: MAX is below MIN")
    return lo, hi


def task_spec_from(args: argparse.Namespace, command: str | None = None,
                   default_workdir: bool = False) -> tuple[jobs_pb2.TaskSpec, list[str]]:
    t = jobs_pb2.TaskSpec()
    fields: list[str] = []

    def given(name: str) -> bool:
        return getattr(args, name, None) is not None

    if command is not None:
        t.command_line = command
        fields.append("command_line")
    if given("task_name"):
        t.name = args.task_name
        fields.append("name")
    if given("depend"):
        t.depends_on.extend(n.strip() for n in args.depend.split(",") if n.strip())
        fields.append("depends_on")
    if given("env"):
        for item in args.env:
            name, sep, value = item.partition("=")
            if not sep or not name:
                raise InvalidArgument(f"--env {item!r} is not VAR=VALUE")
            t.environment[name] = value
        fields.append("environment")
    if given("workdir"):
        t.working_directory = os.path.abspath(args.workdir) if "*" not in args.workdir else args.workdir
        fields.append("working_directory")
    elif default_workdir:
        t.working_directory = os.getcwd()
    for flag, field in (("stdin", "stdin_path"), ("stdout", "stdout_path"), ("stderr", "stderr_path")):
        if given(flag):
            setattr(t, field, getattr(args, flag))
            fields.append(field)
    if given("cores"):
        lo, hi = _cores(args.cores)
        t.resources.cores = lo
        fields.append("resources.cores")
        t.max_cores = hi
        fields.append("max_cores")
    if given("memory_mb"):
        t.resources.memory_mb = args.memory_mb
        fields.append("resources.memory_mb")
    if given("exclusive"):
        t.exclusive = args.exclusive
        fields.append("exclusive")
    if given("task_runtime"):
        t.runtime_limit.FromNanoseconds(int(parse_duration(args.task_runtime) * 1e9))
        fields.append("runtime_limit")
    if given("valid_exit_codes"):
        parse_exit_codes(args.valid_exit_codes)
        t.valid_exit_codes = args.valid_exit_codes
        fields.append("valid_exit_codes")
    if given("parametric"):
        start, end, step = parse_sweep(args.parametric)
        t.sweep.CopyFrom(jobs_pb2.ParametricSweep(start=start, end=end, step=step))
        fields.append("sweep")
    if given("instances"):
        t.instances = args.instances
        fields.append("instances")
    if given("rerunnable"):
        t.rerunnable = args.rerunnable
        fields.append("rerunnable")
    if given("retries"):
        t.max_retries = args.retries
        fields.append("max_retries")
    if given("gpus"):
        t.resources.generic["gpu"] = args.gpus
    for item in getattr(args, "resource", None) or ():
        name, sep, value = item.partition("=")
        if not sep or not value.strip().isdigit():
            raise InvalidArgument(f"--resource {item!r} is not NAME=COUNT (for example license_matlab=1)")
        t.resources.generic[name.strip()] = int(value)
    if given("gpus") or given("resource"):
        fields.append("resources.generic")
    if given("task_nodes"):
        t.nodes = args.task_nodes
        fields.append("nodes")
    placed = False
    for flag, target in (("node_group", t.placement.groups), ("require_label", t.placement.require_labels),
                         ("avoid_label", t.placement.avoid_labels)):
        if given(flag):
            target.extend(getattr(args, flag))
            placed = True
    if given("requested_nodes"):
        t.placement.nodes.extend(n.strip() for n in args.requested_nodes.split(",") if n.strip())
        placed = True
    if placed:
        fields.append("placement")
    return t, fields


def job_spec_from(args: argparse.Namespace) -> tuple[jobs_pb2.JobSpec, list[str]]:
    j = jobs_pb2.JobSpec()
    fields: list[str] = []

    def given(name: str) -> bool:
        return getattr(args, name, None) is not None

    if given("job_name"):
        j.name = args.job_name
        fields.append("name")
    if given("project"):
        j.project = args.project
        fields.append("project")
    if given("priority"):
        level, offset = divmod(parse_priority(args.priority), 1000)
        j.priority = level + 1
        j.priority_offset = offset
        fields += ["priority", "priority_offset"]
    if given("job_runtime"):
        j.runtime_limit.FromNanoseconds(int(parse_duration(args.job_runtime) * 1e9))
        fields.append("runtime_limit")
    for flag, field in (("fail_on_task_failure", "fail_on_task_failure"),
                        ("cancel_if_dependency_never", "cancel_on_unsatisfiable_dependency"),
                        ("run_dependents_after_failure", "run_dependents_after_failure"), ("hold", "hold")):
        if given(flag):
            setattr(j, field, getattr(args, flag))
            fields.append(field)
    kinds = (("after_ok", jobs_pb2.DEPENDENCY_KIND_AFTER_OK), ("after_any", jobs_pb2.DEPENDENCY_KIND_AFTER_ANY),
             ("after_not_ok", jobs_pb2.DEPENDENCY_KIND_AFTER_NOT_OK))
    for flag, kind in kinds:
        for job_id in getattr(args, flag, None) or ():
            j.dependencies.append(jobs_pb2.JobDependency(kind=kind, job_id=job_id))
    if j.dependencies:
        fields.append("dependencies")
    if given("template"):
        j.template = args.template
    if given("job_exclusive"):
        j.exclusive = args.job_exclusive
        fields.append("exclusive")
    for flag, unit in (("numcores", jobs_pb2.RESERVATION_UNIT_CORES), ("numnodes", jobs_pb2.RESERVATION_UNIT_NODES)):
        if given(flag):
            if j.HasField("reservation"):
                raise InvalidArgument("give --numcores or --numnodes, not both")
            lo, hi = _cores(getattr(args, flag), f"--{flag}")
            j.reservation.CopyFrom(jobs_pb2.JobReservation(unit=unit, min=lo, max=hi or lo))
            fields.append("reservation")
    return j, fields


def command_of(args: argparse.Namespace) -> str | None:
    """`-- CMD ARGS...` as a command line: one argument as written (a shell command line),
    several quoted so each reaches the program as one argument."""
    import shlex

    command = list(getattr(args, "command", None) or ())
    if not command:
        return None
    return command[0] if len(command) == 1 else shlex.join(command)
