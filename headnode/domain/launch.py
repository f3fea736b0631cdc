"""What one instance runs, resolved from its task's spec (pure).

For a parametric sweep, each run of asterisks in the command line, working directory and
stdin/stdout/stderr paths becomes the instance's value, zero-padded to the run's length
(HPC Pack: with value 7, `*` gives 7 and `***` gives 007). Other tasks are left as
written, since `*` is also a shell glob. Every run gets SHOAL_* variables describing it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from types import MappingProxyType

from common.resources import Resources
from headnode.domain.model import Instance, Job, Task

_STARS = re.compile(r"\*+")


@lru_cache(maxsize=1024)
def _template(text: str) -> tuple[tuple[str, ...], tuple[int, ...]]:
    """The text split around its runs of asterisks: literal parts and run widths."""
    return tuple(_STARS.split(text)), tuple(len(m) for m in _STARS.findall(text))


def substitute(text: str, value: int) -> str:
    parts, widths = _template(text)
    if not widths:
        return text
    out = [parts[0]]
    for width, part in zip(widths, parts[1:]):
        out.append(f"-{str(-value).zfill(width)}" if value < 0 else str(value).zfill(width))
        out.append(part)
    return "".join(out)


# Values, never changed once built; not frozen= (see headnode/scheduling/snapshot.py: 4-5x cheaper to build).
@dataclass(slots=True)
class RunSpec:
    command_line: str
    environment: Mapping[str, str]
    working_directory: str
    stdin_path: str
    stdout_path: str
    stderr_path: str
    resources: Resources
    runtime_limit: float
    owner: str


def resolve(job: Job, task: Task, inst: Instance) -> RunSpec:
    spec = task.spec
    iid = inst.id.instance
    env = dict(spec.environment)
    env.update({
        "SHOAL_JOB_ID": str(job.id),
        "SHOAL_JOB_NAME": job.name,
        "SHOAL_TASK_ID": str(task.id.task),
        "SHOAL_TASK_NAME": spec.name,
        "SHOAL_TASK": str(inst.id),
        "SHOAL_CORES": str(inst.cores),
        "SHOAL_OWNER": job.owner,
    })
    fields = [spec.command_line, spec.working_directory, spec.stdin_path, spec.stdout_path, spec.stderr_path]
    if not spec.plain:
        env["SHOAL_TASK_INSTANCE"] = str(iid)
        env["SHOAL_TASK_INSTANCE_COUNT"] = str(spec.count)
    # HPC Pack's CCP_NODES shape: "host cores host cores ..."; for a multi-node run the agent
    # also writes it as an MPI hostfile and names it in SHOAL_HOSTFILE.
    env["SHOAL_NODES"] = " ".join(f"{h} {c}" for h, c in ((inst.node, inst.cores), *inst.hosts))
    env["SHOAL_NODE_COUNT"] = str(1 + len(inst.hosts))
    if inst.hosts:
        env["SHOAL_CORES"] = str(inst.cores + sum(c for _, c in inst.hosts))
    if spec.sweep is not None:
        value = spec.sweep.value(iid)
        env["SHOAL_PARAMETRIC_VALUE"] = str(value)
        fields = [substitute(f, value) for f in fields]
    command, workdir, stdin, stdout, stderr = fields
    return RunSpec(
        command_line=command,
        environment=MappingProxyType(env),
        working_directory=workdir,
        stdin_path=stdin,
        stdout_path=stdout,
        stderr_path=stderr,
        resources=Resources(inst.cores, inst.memory_mb, inst.generic),
        runtime_limit=spec.runtime_limit,
        owner=job.owner,
    )
