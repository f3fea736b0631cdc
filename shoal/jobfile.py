"""Job files: the JobSpec message as JSON or TOML, and HPC Pack's job XML.

JSON is protobuf's json_format of JobSpec; TOML has the same field names, so
`shoal job submit --file job.json` builds exactly what a gRPC client builds. HPC Pack users
bring their job XML (CreateJobFromXml's format): the Job element's Name, Project, Priority,
RuntimeSeconds, FailOnTaskFailure, and each Task's Name, CommandLine, WorkDirectory,
StdIn/StdOut/StdErrFilePath, MinCores/MaxCores, IsExclusive, IsRerunnable, RuntimeSeconds,
ValidExitCodes, DependsOn, EnvironmentVariables and parametric sweeps (Type="ParametricSweep"
or IsParametric="true" with StartValue/EndValue/IncrementValue). Read-only attributes HPC
Pack writes (State, Id, times...) are ignored, as are resources Shoal does not have yet
(nodes, sockets). On export, MemoryMb, MaxRetries and Instances (multi-instance tasks) are
written as extra attributes, since HPC Pack's schema has no place for them.
"""

from __future__ import annotations

import tomllib
import xml.etree.ElementTree as ET
from pathlib import Path

from google.protobuf import json_format

from common.errors import InvalidArgument
from common.formats import format_exit_codes, parse_exit_codes
from shoal.v1 import jobs_pb2

HPC_NAMESPACE = "http://schemas.microsoft.com/HPCS2008R2/scheduler/"
DEFAULT_MAX_RETRIES = 3  # the head's default (headnode/domain/model.py); written only when it differs
_LEVELS = ["Lowest", "BelowNormal", "Normal", "AboveNormal", "Highest"]


def load(path: Path) -> jobs_pb2.JobSpec:
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as e:
        raise InvalidArgument(f"cannot read job file {path}: {e.strerror}") from None
    suffix = path.suffix.lower()
    try:
        if suffix == ".json":
            return json_format.Parse(text, jobs_pb2.JobSpec())
        if suffix == ".toml":
            return json_format.ParseDict(tomllib.loads(text), jobs_pb2.JobSpec())
        if suffix == ".xml":
            return from_hpc_xml(text)
    except (json_format.ParseError, tomllib.TOMLDecodeError, ET.ParseError, ValueError) as e:
        raise InvalidArgument(f"job file {path}: {_one_line(e)}") from None
    except InvalidArgument as e:
        raise InvalidArgument(f"job file {path}: {e.message}") from None
    raise InvalidArgument(f"job file {path}: unknown type {suffix or '(none)'}; use .json, .toml or .xml")


def to_json(spec: jobs_pb2.JobSpec) -> str:
    return json_format.MessageToJson(spec, preserving_proto_field_name=True, indent=2) + "\n"


def spec_of(job: jobs_pb2.Job) -> jobs_pb2.JobSpec:
    """The spec that would submit this job again: its job-level fields and its tasks."""
    spec = jobs_pb2.JobSpec()
    spec.CopyFrom(job.spec)
    spec.hold = False
    for task in job.tasks:
        spec.tasks.append(task.spec)
    return spec


# -- HPC Pack XML ----------------------------------------------------------------------------


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _bool(value: str, what: str) -> bool:
    v = value.strip().lower()
    if v in ("true", "1"):
        return True
    if v in ("false", "0"):
        return False
    raise ValueError(f"{what}={value!r} is not true or false")


def _int(value: str, what: str) -> int:
    try:
        return int(value.strip())
    except ValueError:
        raise ValueError(f"{what}={value!r} is not a whole number") from None


def from_hpc_xml(text: str) -> jobs_pb2.JobSpec:
    root = ET.fromstring(text)
    if _local(root.tag) != "Job":
        raise ValueError(f"the root element is <{_local(root.tag)}>, not <Job>")
    a = root.attrib
    spec = jobs_pb2.JobSpec(name=a.get("Name", ""), project=a.get("Project", ""))
    if "Priority" in a:
        level = a["Priority"].strip()
        if level not in _LEVELS:
            raise ValueError(f"Priority={level!r} is not one of {', '.join(_LEVELS)}")
        spec.priority = _LEVELS.index(level) + 1
    if runtime := a.get("RuntimeSeconds"):
        spec.runtime_limit.FromSeconds(_int(runtime, "RuntimeSeconds"))
    if "FailOnTaskFailure" in a:
        spec.fail_on_task_failure = _bool(a["FailOnTaskFailure"], "FailOnTaskFailure")
    _job_resources_from_xml(a, spec)
    for element in root:
        if _local(element.tag) == "Tasks":
            for i, task in enumerate(e for e in element if _local(e.tag) == "Task"):
                spec.tasks.append(_task_from_xml(task, i))
    return spec


def _job_resources_from_xml(a: dict[str, str], spec: jobs_pb2.JobSpec) -> None:
    """HPC Pack's job-level resources: UnitType with Min/Max Cores or Nodes (a reservation),
    IsExclusive, NodeGroups and RequestedNodes (comma lists)."""
    unit = a.get("UnitType", "Core").strip().lower()
    if unit not in ("core", "node"):
        raise ValueError(f"UnitType={a['UnitType']!r} is not Core or Node (Socket and Gpu are not supported)")
    word = "Cores" if unit == "core" else "Nodes"
    lo, hi = a.get(f"Min{word}"), a.get(f"Max{word}")
    if lo is not None or hi is not None:
        low = _int(lo or hi or "1", f"Min{word}")
        spec.reservation.CopyFrom(jobs_pb2.JobReservation(
            unit=jobs_pb2.RESERVATION_UNIT_CORES if unit == "core" else jobs_pb2.RESERVATION_UNIT_NODES,
            min=low, max=_int(hi, f"Max{word}") if hi else low))
    if "IsExclusive" in a:
        spec.exclusive = _bool(a["IsExclusive"], "IsExclusive")
    spec.placement.groups.extend(g.strip() for g in a.get("NodeGroups", "").split(",") if g.strip())
    spec.placement.nodes.extend(n.strip() for n in a.get("RequestedNodes", "").split(",") if n.strip())


def _task_from_xml(element: ET.Element, index: int) -> jobs_pb2.TaskSpec:
    a = element.attrib
    where = f"Task #{index + 1}"
    t = jobs_pb2.TaskSpec(
        name=a.get("Name", ""),
        command_line=a.get("CommandLine", ""),
        working_directory=a.get("WorkDirectory", ""),
        stdin_path=a.get("StdInFilePath", a.get("Stdin", "")),
        stdout_path=a.get("StdOutFilePath", a.get("Stdout", "")),
        stderr_path=a.get("StdErrFilePath", a.get("Stderr", "")),
    )
    min_cores = a.get("MinCores", a.get("MinimumNumberOfProcessors"))
    max_cores = a.get("MaxCores", a.get("MaximumNumberOfProcessors"))
    if min_cores is not None:
        t.resources.cores = _int(min_cores, f"{where} MinCores")
    if max_cores is not None:
        t.max_cores = _int(max_cores, f"{where} MaxCores")
    if memory := a.get("MemoryMb"):
        t.resources.memory_mb = _int(memory, f"{where} MemoryMb")
    if "IsExclusive" in a:
        t.exclusive = _bool(a["IsExclusive"], f"{where} IsExclusive")
    if "IsRerunnable" in a:
        t.rerunnable = _bool(a["IsRerunnable"], f"{where} IsRerunnable")
    if retries := a.get("MaxRetries"):
        t.max_retries = _int(retries, f"{where} MaxRetries")
    if runtime := a.get("RuntimeSeconds"):
        t.runtime_limit.FromSeconds(_int(runtime, f"{where} RuntimeSeconds"))
    if codes := a.get("ValidExitCodes"):
        parse_exit_codes(codes)  # fail here, naming the file, rather than at the head
        t.valid_exit_codes = codes
    depends = a.get("DependsOn", a.get("Depend", ""))
    t.depends_on.extend(d.strip() for d in depends.replace(";", ",").split(",") if d.strip())
    parametric = a.get("Type", "").strip().lower() == "parametricsweep" or _bool(
        a.get("IsParametric", "false"), f"{where} IsParametric")
    if parametric:
        t.sweep.start = _int(a.get("StartValue", "1"), f"{where} StartValue")
        t.sweep.end = _int(a.get("EndValue", "1"), f"{where} EndValue")
        t.sweep.step = _int(a.get("IncrementValue", "1"), f"{where} IncrementValue")
    if instances := a.get("Instances"):
        t.instances = _int(instances, f"{where} Instances")
    t.placement.nodes.extend(n.strip() for n in a.get("RequiredNodes", "").split(",") if n.strip())
    for child in element:
        if _local(child.tag) == "EnvironmentVariables":
            for var in child:
                fields = {_local(c.tag): (c.text or "") for c in var}
                if fields.get("Name"):
                    t.environment[fields["Name"]] = fields.get("Value", "")
    return t


def to_hpc_xml(spec: jobs_pb2.JobSpec) -> str:
    ET.register_namespace("", HPC_NAMESPACE)
    ns = "{" + HPC_NAMESPACE + "}"
    job = ET.Element(ns + "Job", {"Name": spec.name})
    if spec.project:
        job.set("Project", spec.project)
    job.set("Priority", _LEVELS[(spec.priority or 3) - 1])
    if spec.HasField("runtime_limit") and spec.runtime_limit.seconds:
        job.set("RuntimeSeconds", str(spec.runtime_limit.seconds))
    job.set("FailOnTaskFailure", str(spec.fail_on_task_failure).lower())
    if spec.HasField("reservation"):
        r = spec.reservation
        word = "Nodes" if r.unit == jobs_pb2.RESERVATION_UNIT_NODES else "Cores"
        job.set("UnitType", word[:-1])
        job.set(f"Min{word}", str(r.min))
        job.set(f"Max{word}", str(r.max or r.min))
    if spec.exclusive:
        job.set("IsExclusive", "true")
    if spec.placement.groups:
        job.set("NodeGroups", ",".join(spec.placement.groups))
    if spec.placement.nodes:
        job.set("RequestedNodes", ",".join(spec.placement.nodes))
    ET.SubElement(job, ns + "Dependencies")
    tasks = ET.SubElement(job, ns + "Tasks")
    for t in spec.tasks:
        attrs = {"Name": t.name, "CommandLine": t.command_line}
        for key, value in (("WorkDirectory", t.working_directory), ("StdInFilePath", t.stdin_path),
                           ("StdOutFilePath", t.stdout_path), ("StdErrFilePath", t.stderr_path)):
            if value:
                attrs[key] = value
        cores = t.resources.cores if t.resources.HasField("cores") else 1
        attrs["MinCores"] = str(cores)
        attrs["MaxCores"] = str(max(t.max_cores, cores))
        if t.resources.HasField("memory_mb"):
            attrs["MemoryMb"] = str(t.resources.memory_mb)
        attrs["IsExclusive"] = str(t.exclusive).lower()
        attrs["IsRerunnable"] = str(t.rerunnable if t.HasField("rerunnable") else True).lower()
        if t.HasField("max_retries") and t.max_retries != DEFAULT_MAX_RETRIES:
            attrs["MaxRetries"] = str(t.max_retries)
        if t.HasField("runtime_limit") and t.runtime_limit.seconds:
            attrs["RuntimeSeconds"] = str(t.runtime_limit.seconds)
        if t.valid_exit_codes:
            attrs["ValidExitCodes"] = format_exit_codes(parse_exit_codes(t.valid_exit_codes))
        if t.depends_on:
            attrs["DependsOn"] = ",".join(t.depends_on)
        if t.HasField("sweep"):
            attrs.update(Type="ParametricSweep", StartValue=str(t.sweep.start), EndValue=str(t.sweep.end),
                         IncrementValue=str(t.sweep.step or 1))
        if t.instances > 1:
            attrs["Instances"] = str(t.instances)
        if t.placement.nodes:
            attrs["RequiredNodes"] = ",".join(t.placement.nodes)
        task = ET.SubElement(tasks, ns + "Task", attrs)
        if t.environment:
            env = ET.SubElement(task, ns + "EnvironmentVariables")
            for name in sorted(t.environment):
                var = ET.SubElement(env, ns + "Variable")
                ET.SubElement(var, ns + "Name").text = name
                ET.SubElement(var, ns + "Value").text = t.environment[name]
    ET.indent(job)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(job, encoding="unicode") + "\n"


def _one_line(e: Exception) -> str:
    return " ".join(str(e).split()) or type(e).__name__

