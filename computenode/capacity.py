"""What this node can offer: cores and memory, from psutil, CPU affinity and cgroup limits;
NVIDIA GPUs from nvidia-smi; named resources from the config.

psutil reports the host's totals; inside a container or a systemd slice the cgroup limit
is what tasks can really use, so the smallest of the three wins. Both cgroup v2 and the v1
hierarchy are read (this machine kind is hybrid; a normal Debian 12 host is pure v2).
GPUs are found with `nvidia-smi --query-gpu=index` where the tool is installed; elsewhere
they are declared (`--resource gpu=2`), and a declared count overrides the detected one.
"""

from __future__ import annotations

import math
import os
import shutil
import subprocess
from pathlib import Path

import psutil

from common.config import NodeConfig
from common.resources import GPU, Resources, generic_of, parse_generic

CGROUP_ROOT = Path("/sys/fs/cgroup")
_UNLIMITED = 1 << 60


def detect() -> Resources:
    gpus = detect_gpus()
    return Resources(cores=detect_cores(), memory_mb=detect_memory_mb(), generic=generic_of({GPU: len(gpus)}))


def offered(config: NodeConfig, detected: Resources) -> Resources:
    """What the agent offers: the config where it says, else what was detected."""
    generic = dict(detected.generic)
    generic.update(dict(parse_generic(config.resources)))
    return Resources(config.cores or detected.cores, config.memory_mb or detected.memory_mb, generic_of(generic))


def gpu_devices(config: NodeConfig, count: int) -> list[str]:
    """The device ids handed out as CUDA_VISIBLE_DEVICES, `count` of them."""
    devices = list(config.gpu_devices) or detect_gpus() or [str(i) for i in range(count)]
    return devices[:count] + [str(i) for i in range(len(devices), count)]


def detect_gpus() -> list[str]:
    """NVIDIA GPU indices, or [] where nvidia-smi is absent or fails."""
    tool = shutil.which("nvidia-smi")
    if tool is None:
        return []
    try:
        out = subprocess.run([tool, "--query-gpu=index", "--format=csv,noheader"], capture_output=True,
                             text=True, timeout=10, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [line.strip() for line in out.splitlines() if line.strip().isdigit()]


def detect_cores() -> int:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (psutil.cpu_count() or 1)
    quota = _cgroup_cpu_quota()
    if quota is not None:
        cores = min(cores, max(1, math.ceil(quota)))
    return max(1, cores)


def detect_memory_mb() -> int:
    total = psutil.virtual_memory().total
    limit = _cgroup_memory_limit()
    if limit is not None:
        total = min(total, limit)
    return max(1, total // (1024 * 1024))


def _cgroup_paths() -> dict[str, str]:
    """controller -> path in its hierarchy ('' key for the v2 unified hierarchy)."""
    paths: dict[str, str] = {}
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return paths
    for line in lines:
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, path = parts
        if controllers == "":
            paths[""] = path
        for c in controllers.split(","):
            if c:
                paths[c] = path
    return paths


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def _cgroup_cpu_quota() -> float | None:
    paths = _cgroup_paths()
    if "" in paths:
        text = _read(CGROUP_ROOT / paths[""].lstrip("/") / "cpu.max")
        if text:
            quota, _, period = text.partition(" ")
            if quota != "max" and period.isdigit() and int(period) > 0:
                return int(quota) / int(period)
    if "cpu" in paths:
        base = CGROUP_ROOT / "cpu" / paths["cpu"].lstrip("/")
        quota, period = _read(base / "cpu.cfs_quota_us"), _read(base / "cpu.cfs_period_us")
        if quota and period and quota.lstrip("-").isdigit() and int(quota) > 0 and int(period) > 0:
            return int(quota) / int(period)
    return None


def _cgroup_memory_limit() -> int | None:
    paths = _cgroup_paths()
    candidates = []
    if "" in paths:
        text = _read(CGROUP_ROOT / paths[""].lstrip("/") / "memory.max")
        if text and text.isdigit():
            candidates.append(int(text))
    if "memory" in paths:
        text = _read(CGROUP_ROOT / "memory" / paths["memory"].lstrip("/") / "memory.limit_in_bytes")
        if text and text.isdigit() and int(text) < _UNLIMITED:
            candidates.append(int(text))
    return min(candidates) if candidates else None
